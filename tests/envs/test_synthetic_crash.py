"""The ``crash`` market: reproducible bars, Poisson crashes in the opening gap, the exact
regime filter and its growth forecast, and the env's margin mechanics through a crash."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.envs.synthetic import SyntheticMarket, generate_market
from quantgym.envs.synthetic_crash import (
    crash_expected_growth,
    crash_expected_return,
    crash_forward_filter,
    crash_growth_table,
)

__all__: list[str] = []

N_LONG = 100_000


@pytest.fixture(scope="module")
def long_market() -> SyntheticMarket:
    return generate_market("crash", n_bars=N_LONG, seed=21)


@pytest.fixture(scope="module")
def long_posterior(long_market) -> np.ndarray:
    frame = long_market.frame
    return crash_forward_filter(frame["open"], frame["close"], long_market.params)


def _gap_and_intraday(market: SyntheticMarket) -> tuple[np.ndarray, np.ndarray]:
    log_open = np.log(market.frame["open"].to_numpy())
    log_close = np.log(market.frame["close"].to_numpy())
    before = math.log(market.params["initial_price"])
    return log_open - np.concatenate(([before], log_close[:-1])), log_close - log_open


def test_same_seed_gives_the_same_bars_and_another_seed_does_not() -> None:
    a = generate_market("crash", n_bars=3000, seed=5, jump_mean=-0.1)
    b = generate_market("crash", n_bars=3000, seed=5, jump_mean=-0.1)
    c = generate_market("crash", n_bars=3000, seed=6, jump_mean=-0.1)
    np.testing.assert_allclose(a.frame.to_numpy(), b.frame.to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(a.regime, b.regime)
    np.testing.assert_array_equal(a.jump_counts, b.jump_counts)
    np.testing.assert_allclose(a.jump_sizes, b.jump_sizes, rtol=1e-12)
    assert a.params == b.params and a.params["jump_mean"] == -0.1
    assert not np.allclose(a.frame["close"].to_numpy(), c.frame["close"].to_numpy())


def test_crash_counts_match_the_rate_of_each_regime(long_market) -> None:
    """Per regime, the number of crashes is Poisson(rate x bars): within 4 standard deviations."""
    rates = long_market.params["crash_rates"]
    for k, rate in enumerate(rates):
        bars = long_market.regime == k
        expected = rate * bars.sum()
        count = long_market.jump_counts[bars].sum()
        assert abs(count - expected) < 4.0 * math.sqrt(expected) + 1, (k, count, expected)
    assert long_market.jump_counts[long_market.regime == 1].sum() > 100  # the test has power


def test_regimes_persist_for_their_mean_durations(long_market) -> None:
    regime = long_market.regime
    change = np.flatnonzero(np.diff(regime)) + 1
    runs = np.diff(np.concatenate(([0], change, [regime.size])))
    states = regime[np.concatenate(([0], change))]
    for k, duration in enumerate(long_market.params["mean_durations"]):
        mean = runs[states == k][1:-1].mean()  # inner runs: not cut by the series ends
        assert mean == pytest.approx(duration, rel=0.2), (k, mean)


def test_crashes_sit_in_the_gap_at_the_open(long_market) -> None:
    """The gap is the crash plus the usual small noise; the intraday return never crashes."""
    gap, intraday = _gap_and_intraday(long_market)
    p = long_market.params
    noise = gap - long_market.jump_sizes
    assert noise.std() == pytest.approx(p["gap_scale"] * p["vol"], rel=0.02)
    crash = long_market.jump_counts > 0
    assert gap[crash].mean() == pytest.approx(p["jump_mean"], rel=0.1)
    assert intraday.min() > -8 * p["vol"]  # no crash inside a bar
    assert np.all(long_market.jump_sizes[~crash] == 0.0)


def test_filter_is_causal_and_finds_the_stressed_regime(long_market, long_posterior) -> None:
    """The posterior is calibrated (an exact Bayes filter: among bars where it says p, a share p
    is stressed, within 4 standard errors per bin) and sharp (it says more than 0.8 on over 2% of bars)."""
    np.testing.assert_allclose(long_posterior.sum(axis=1), 1.0, rtol=1e-12)
    stressed = long_posterior[:, 1]
    truth = long_market.regime == 1
    bins = np.digitize(stressed, [0.2, 0.4, 0.6, 0.8])
    for b in range(5):
        rows = bins == b
        share, said = truth[rows].mean(), stressed[rows].mean()
        se = math.sqrt(said * (1.0 - said) / rows.sum())
        assert rows.sum() > 300 and abs(share - said) < 4.0 * se + 0.01, (b, share, said)
    assert truth[stressed > 0.8].mean() > 0.8 and (stressed > 0.8).mean() > 0.02
    frame = long_market.frame.iloc[:4000].copy()
    t = 2500
    for col in ("open", "high", "low", "close"):
        frame.iloc[t + 1 :, frame.columns.get_loc(col)] *= 0.5  # a huge crash after t
    head = crash_forward_filter(frame["open"], frame["close"], long_market.params)
    np.testing.assert_array_equal(head[: t + 1], long_posterior[: t + 1])
    assert not np.allclose(head[t + 1 : t + 3], long_posterior[t + 1 : t + 3])


def test_expected_return_is_unbiased_for_the_holding_period(long_market, long_posterior) -> None:
    """A decision at t holds from open t+1 to open t+2; its realised log return regressed on
    the filter's forecast has slope 1 within 4 standard errors."""
    gap, intraday = _gap_and_intraday(long_market)
    realised = intraday[1:-1] + gap[2:]
    forecast = crash_expected_return(long_posterior, long_market.params)[:-2]
    x = forecast - forecast.mean()
    slope = float(x @ (realised - realised.mean()) / (x @ x))
    resid = realised - realised.mean() - slope * x
    se = math.sqrt(float(resid @ resid) / resid.size / float(x @ x))
    assert abs(slope - 1.0) < 4.0 * se and se < 0.3, (slope, se)


def test_growth_table_is_exact_for_flat_and_long() -> None:
    params = generate_market("crash", n_bars=10, seed=0).params
    table = crash_growth_table(params, np.array([-1.0, 0.0, 0.5, 1.0]))
    expected_x = params["drift"] + np.asarray(params["crash_rates"]) * params["jump_mean"]
    np.testing.assert_allclose(table[:, 3], expected_x, rtol=1e-12)
    assert np.all(table[:, 1] == 0.0)
    # Concavity of log: half the long earns more than half its log growth, the short less
    # than minus the long's
    assert np.all(table[:, 2] > 0.5 * table[:, 3]) and np.all(table[:, 0] < -table[:, 3])
    assert table[0, 3] > 0 > table[1, 3] and table[1, 0] > 0  # calm: long; stressed: short
    one_hot = np.eye(2)[[0, 1]]
    growth = crash_expected_growth(one_hot, params, np.array([0.0, 1.0]))
    transition = np.asarray(params["transition"])
    np.testing.assert_allclose(growth[:, 1], (transition @ transition) @ expected_x, rtol=1e-12)


def test_env_loads_the_market_with_its_parameters_and_regime() -> None:
    env = gym.make(ENV_ID, data="synthetic:crash", market_kwargs={"n_bars": 900, "seed": 1})
    market = env.unwrapped.market
    assert market.market_params["kind"] == "crash" and market.regime is not None
    assert market.market_params["regime_names"] == ["calm", "stressed"]
    _, info = env.reset(seed=0)
    assert info["regime"] in (0, 1)
    env.close()


def _hold_long(leverage: float, **kwargs) -> list[dict]:
    """Hold a long of ``leverage`` x equity on a market with -30% crashes, until the end."""
    env = gym.make(
        ENV_ID,
        data="synthetic:crash",
        market_kwargs={"n_bars": 2000, "seed": 3, "jump_mean": -0.3, "jump_vol": 0.0},
        positions=(0.0, leverage),
        max_leverage=max(leverage, 1.0),
        episode_length=None,
        **kwargs,
    )
    env.reset(seed=0)
    infos, done = [], False
    while not done:
        *_, terminated, truncated, info = env.step(1)
        infos.append(info)
        done = terminated or truncated
    env.close()
    return infos


def test_an_unlevered_long_rides_every_crash_without_liquidation() -> None:
    infos = _hold_long(1.0, maintenance_margin=0.1)
    equity = np.array([i["equity"] for i in infos])
    assert not any(i["liquidated"] for i in infos) and np.all(equity > 0)
    assert len(infos) > 1000  # held to the end of the data
    drops = equity[1:] / equity[:-1]
    assert drops.min() < 0.8  # it did take at least one -30% gap


def test_a_levered_long_is_liquidated_at_the_open_of_the_crash_bar() -> None:
    infos = _hold_long(3.0, maintenance_margin=0.25)
    hit = [i for i in infos if i["liquidated"]]
    assert len(hit) == 1 and infos[-1] is hit[0]  # terminated there
    env = gym.make(ENV_ID, data="synthetic:crash",
                   market_kwargs={"n_bars": 2000, "seed": 3, "jump_mean": -0.3, "jump_vol": 0.0})  # fmt: skip
    market = env.unwrapped.market
    bar = hit[0]["bar"]
    assert market.open[bar] / market.close[bar - 1] < 0.8  # a crash gap
    assert hit[0]["liquidation_price"] == pytest.approx(market.open[bar], rel=1e-12)


def test_a_levered_long_without_margin_goes_bankrupt_in_a_crash() -> None:
    infos = _hold_long(4.0)
    assert infos[-1]["equity"] <= 0.0 and len(infos) < 1999


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"crash_rates": [0.01, -0.1]}, "crash_rates"),
        ({"crash_rates": [0.01, 6.0]}, "crash_rates"),
        ({"mean_durations": [100.0]}, "mean_durations"),
        ({"mean_durations": [0.5, 10.0]}, "mean_durations"),
        ({"transition": [[0.9, 0.1], [0.5, 0.6]]}, "transition"),
        ({"transition": [[1.0]]}, "transition"),
        ({"mean_durations": [9.0, 9.0], "transition": [[0.9, 0.1], [0.1, 0.9]]}, "transition"),
        ({"vol": 0.0}, "vol"),
        ({"jump_vol": -0.01}, "jump_vol"),
        ({"jump_mean": "big"}, "jump_mean"),
        ({"gap_scale": 0.0}, "gap_scale"),
        ({"regime_names": ["a", "a"]}, "regime_names"),
        ({"initial_distribution": [0.5, 0.6]}, "initial_distribution"),
        ({"lag": 3}, "lag"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate_market("crash", n_bars=100, seed=0, **kwargs)


def test_one_regime_is_a_plain_compound_poisson_market() -> None:
    market = generate_market("crash", n_bars=20_000, seed=4, crash_rates=[0.01])
    assert set(np.unique(market.regime)) == {0} and market.params["transition"] == [[1.0]]
    assert abs(market.jump_counts.sum() - 200) < 4 * math.sqrt(200)
    frame = market.frame
    posterior = crash_forward_filter(frame["open"], frame["close"], market.params)
    np.testing.assert_array_equal(posterior, 1.0)
