"""from_trades(): replay a trader's log through the env; bad rows are listed."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from quantgym import ENV_ID
from quantgym.datasets.trades import from_trades, trade_targets


def market_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0.0, 0.002, n))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * 1.002,
            "low": np.minimum(open_, close) * 0.998,
            "close": close,
            "volume": 1.0,
        },
        index=pd.date_range("2021-01-04", periods=n, freq="B", name="timestamp"),
    )


FRAME = market_frame()
ENV = {"features": ["close"], "window_size": 1}
TS = FRAME.index


def log(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["timestamp", "side", "size", "price"])


def test_replay_follows_the_log_bar_by_bar():
    trades = log(
        [
            (TS[10], "buy", 0.5, FRAME.open.iloc[10]),
            (TS[20], "buy", 0.5, FRAME.open.iloc[20]),
            (
                TS[20] + pd.Timedelta(hours=3),
                "sell",
                1.5,
                FRAME.open.iloc[20],
            ),  # same bar: nets out
            (TS[30], "long", 1.0, FRAME.open.iloc[30]),
            (TS[40], "flat", None, FRAME.open.iloc[40]),
        ]
    )
    ds = from_trades(trades, FRAME, **ENV)
    assert ds.n_episodes == 1 and ds.metadata["behavior_policy"] == "trade_log"
    bars, position = ds.infos["bar"], ds.infos["position"]
    assert bars[0] == 10 and bars[-1] == 40  # from the first fill bar to the last one
    expected = np.select([bars < 20, bars < 30, bars < 40], [0.5, -0.5, 1.0], 0.0)
    np.testing.assert_array_equal(position, expected)
    assert ds.metadata["env_kwargs"]["positions"] == [-0.5, 0.0, 0.5, 1.0]
    assert ds.metadata["trades"]["price_vs_fill_open_max_abs"] == pytest.approx(0.0)
    assert ds.truncations[-1]


def test_replay_equals_the_env_stepped_by_hand():
    trades = log([(TS[15], "short", 1.0, np.nan), (TS[25], "buy", 2.0, np.nan)])
    ds = from_trades(trades, FRAME, commission=0.002, **ENV)
    env = gym.make(ENV_ID, data=FRAME, positions=(-1.0, 0.0, 1.0), commission=0.002, **ENV)
    obs, _ = env.reset(options={"start": 14})
    np.testing.assert_array_equal(ds.observations[0], obs)
    rewards = []
    for bar in range(14, 25):
        obs, reward, *_ = env.step(0 if bar < 24 else 2)
        rewards.append(reward)
    np.testing.assert_allclose(ds.rewards, rewards, rtol=1e-12)
    np.testing.assert_array_equal(ds.observations[-1], obs)


def test_unsorted_log_target_column_and_until():
    trades = pd.DataFrame(
        {"time": [TS[30], TS[12]], "target": [0.0, -0.25], "side": ["flat", "whatever"]}
    )
    frame, targets = trade_targets(trades)
    assert targets.tolist() == [0.0, -0.25]
    ds = from_trades(trades, FRAME, positions=(-0.25, 0.0, 0.25), until=TS[50], **ENV)
    assert ds.infos["bar"][0] == 12 and ds.infos["bar"][-1] == 50
    assert set(ds.infos["position"].tolist()) == {-0.25, 0.0}


def test_continuous_action_env():
    trades = log([(TS[10], "long", 0.8, np.nan), (TS[15], "sell", 0.3, np.nan)])
    ds = from_trades(trades, FRAME, action_type="continuous", max_leverage=2.0, **ENV)
    np.testing.assert_allclose(ds.infos["position"][:5], 0.8, rtol=1e-6)
    np.testing.assert_allclose(ds.infos["position"][5:], 0.5, rtol=1e-6)


def test_datetime_index_log():
    trades = pd.DataFrame(
        {"side": ["long", "flat"]}, index=pd.DatetimeIndex([TS[5], TS[9]], name="when")
    )
    ds = from_trades(trades, FRAME, **ENV)
    assert ds.n_steps == 5


def test_bad_rows_are_listed_with_row_numbers_and_values():
    trades = log(
        [
            (TS[10], "buy", 0.5, 100.0),
            ("2030-01-01", "long", 1.0, 100.0),
            (TS[12], "hold", 1.0, 100.0),
            ("1999-01-01", "long", 1.0, 100.0),
            (TS[14], "buy", None, 100.0),
            (TS[15], "long", -1.0, 100.0),
            (TS[16], "flat", None, -5.0),
            ("not a date", "flat", None, 100.0),
        ]
    )
    with pytest.raises(ValueError) as err:
        from_trades(trades, FRAME, **ENV)
    text = str(err.value)
    assert text.startswith("7 bad trade row(s)")
    for row, reason in [
        (1, "after the last bar"),
        (2, "unknown side"),
        (3, "before the first bar"),
        (4, "need a size"),
        (5, "size must be a number > 0"),
        (6, "price must be a number > 0"),
        (7, "not a date"),
    ]:
        line = next(x for x in text.splitlines() if x.startswith(f"  row {row} "))
        assert reason in line
    assert "side='hold'" in text and "'2030-01-01'" in text


def test_targets_outside_the_grid_or_warmup_are_bad_rows():
    trades = log([(TS[10], "long", 0.7, np.nan), (TS[11], "long", 1.0, np.nan)])
    with pytest.raises(ValueError, match=r"row 0 .*not in positions"):
        from_trades(trades, FRAME, positions=(-1.0, 0.0, 1.0), **ENV)
    early = log([(TS[5], "long", 1.0, np.nan)])
    with pytest.raises(ValueError, match="before the first tradable fill bar"):
        from_trades(early, FRAME, features=["close"], window_size=10)
    with pytest.raises(ValueError, match="max_leverage"):
        from_trades(log([(TS[10], "long", 3.0, np.nan)]), FRAME, action_type="continuous", **ENV)


def test_malformed_logs_raise_value_errors():
    with pytest.raises(ValueError, match="DataFrame"):
        from_trades([("2021-01-05", "buy")], FRAME, **ENV)
    with pytest.raises(ValueError, match="empty"):
        from_trades(log([]), FRAME, **ENV)
    with pytest.raises(ValueError, match="side"):
        from_trades(pd.DataFrame({"timestamp": [TS[10]], "qty": [1]}), FRAME, **ENV)
    with pytest.raises(ValueError, match="timestamp"):
        from_trades(pd.DataFrame({"side": ["buy"], "size": [1.0]}), FRAME, **ENV)
    with pytest.raises(ValueError, match="episode_length"):
        from_trades(log([(TS[10], "long", 1.0, np.nan)]), FRAME, episode_length=5, **ENV)
    with pytest.raises(ValueError, match="until"):
        from_trades(log([(TS[10], "long", 1.0, np.nan)]), FRAME, until=TS[5], **ENV)
