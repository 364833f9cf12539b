"""Tests for quantgym.envs.metrics: empyrical parity, hand-computed examples, edge cases."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantgym.envs.metrics import METRIC_NAMES, ZERO_TOLERANCE, performance_metrics

# Any numpy warning escaping performance_metrics is a bug.
pytestmark = pytest.mark.filterwarnings("error")

ANNUALIZATIONS = (252, 6240)  # daily, hourly (24 * 260)


def equity_from_returns(returns: np.ndarray, initial: float = 10_000.0) -> np.ndarray:
    return initial * np.concatenate(([1.0], np.cumprod(1.0 + np.asarray(returns))))


def simple_returns(equity: np.ndarray) -> np.ndarray:
    return equity[1:] / equity[:-1] - 1.0


def assert_matches_empyrical(equity: np.ndarray, ann: int) -> None:
    """Sharpe, Sortino, max drawdown, CAGR, volatility and Calmar equal empyrical's.

    Where empyrical divides by a zero (or rounding-noise) dispersion and returns +-inf or a
    huge number, we return nan by design.
    """
    metrics = performance_metrics(equity, bars_per_year=ann)
    returns = simple_returns(equity)
    with np.errstate(all="ignore"):  # empyrical itself warns on overflow
        expected = _empyrical_metrics(returns, ann)
    undefined = {
        "sharpe": returns.size < 2 or returns.std(ddof=1) <= ZERO_TOLERANCE,
        "sortino": returns.size < 2
        or math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)) <= ZERO_TOLERANCE,
        "calmar": not expected["max_drawdown"] < -ZERO_TOLERANCE,
    }
    # Calmar divides by the max drawdown, itself a difference of equities near 1: its
    # relative rounding error is about eps / |max_drawdown| (4e-9 at a 5e-9 drawdown).
    calmar_rtol = max(1e-9, 8 * np.finfo(float).eps / max(abs(expected["max_drawdown"]), 1e-300))
    for name, value in expected.items():
        if undefined.get(name, False):
            assert math.isnan(metrics[name]), (name, metrics[name], value)
            continue
        np.testing.assert_allclose(
            metrics[name], value, rtol=calmar_rtol if name == "calmar" else 1e-9, atol=1e-12,
            equal_nan=True, err_msg=name,
        )  # fmt: skip


def _empyrical_metrics(returns: np.ndarray, ann: int) -> dict[str, float]:
    return {
        "sharpe": empyrical.sharpe_ratio(returns, annualization=ann),
        "sortino": empyrical.sortino_ratio(returns, annualization=ann),
        "max_drawdown": empyrical.max_drawdown(returns),
        "annualized_return": empyrical.annual_return(returns, annualization=ann),
        "annualized_volatility": empyrical.annual_volatility(returns, annualization=ann),
        "calmar": empyrical.calmar_ratio(returns, annualization=ann),
    }


# ------------------------------------------------------------------ empyrical parity


@pytest.mark.parametrize("ann", ANNUALIZATIONS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("n_steps", [2, 3, 50, 1000, 10_000])
def test_matches_empyrical_on_fixed_seeds(seed: int, n_steps: int, ann: int) -> None:
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0002, 0.01, n_steps) + rng.standard_t(3, n_steps) * 0.002
    assert_matches_empyrical(equity_from_returns(returns), ann)


@pytest.mark.parametrize("ann", ANNUALIZATIONS)
@settings(max_examples=60, deadline=None)
@given(
    returns=st.lists(
        st.floats(min_value=-0.5, max_value=0.5, allow_nan=False, allow_subnormal=False),
        min_size=1,
        max_size=200,
    ),
    initial=st.floats(min_value=1.0, max_value=1e7),
)
def test_matches_empyrical_on_random_returns(
    returns: list[float], initial: float, ann: int
) -> None:
    assert_matches_empyrical(equity_from_returns(np.array(returns), initial), ann)


@pytest.mark.parametrize("ann", ANNUALIZATIONS)
def test_one_step_annualized_return_matches_empyrical(ann: int) -> None:
    equity = np.array([100.0, 100.05])
    metrics = performance_metrics(equity, bars_per_year=ann)
    assert metrics["annualized_return"] == pytest.approx(
        empyrical.annual_return(simple_returns(equity), annualization=ann), rel=1e-9
    )
    assert metrics["annualized_return"] == pytest.approx(1.0005**ann - 1.0, rel=1e-9)


def test_sortino_uses_downside_deviation_over_all_returns() -> None:
    returns = np.array([0.02, -0.01, 0.03, -0.02, 0.0])
    ann = 252
    downside = math.sqrt((0.01**2 + 0.02**2) / 5) * math.sqrt(ann)
    expected = returns.mean() * ann / downside
    metrics = performance_metrics(equity_from_returns(returns), bars_per_year=ann)
    assert metrics["sortino"] == pytest.approx(expected, rel=1e-9)
    expected_sharpe = returns.mean() / returns.std(ddof=1) * math.sqrt(ann)
    assert metrics["sharpe"] == pytest.approx(expected_sharpe, rel=1e-9)


# ------------------------------------------------------------------ hand-computed examples

# Steps:        0      1     2      3      4
EQUITY = np.array([100.0, 110.0, 99.0, 99.0, 108.9, 120.0])
POSITIONS = np.array([1.0, 1.0, 0.0, 1.0, -1.0])
TRADES = np.array([100.0, 0.0, -110.0, 99.0, -217.8])
FEES = np.array([0.15, 0.0, 0.165, 0.1485, 0.3267])


def hand_metrics() -> dict[str, float]:
    return performance_metrics(
        EQUITY, bars_per_year=252, positions=POSITIONS, trade_notional=TRADES, fees=FEES
    )


def test_hand_computed_trade_statistics() -> None:
    metrics = hand_metrics()
    # Runs: long over steps 0-1 (99/100 - 1 < 0), long at step 3 (108.9/99 - 1 > 0),
    # short at step 4 (120/108.9 - 1 > 0): 2 wins out of 3 holding periods.
    assert metrics["win_rate"] == pytest.approx(2 / 3)
    assert metrics["n_trades"] == 4
    assert metrics["turnover"] == pytest.approx((100 + 110 + 99 + 217.8) / (636.9 / 6))
    assert metrics["fees_paid"] == pytest.approx(0.15 + 0.165 + 0.1485 + 0.3267)
    assert metrics["exposure"] == pytest.approx(0.8)


def test_hand_computed_curve_statistics() -> None:
    metrics = hand_metrics()
    assert metrics["total_return"] == pytest.approx(0.2)
    assert metrics["final_equity"] == 120.0
    assert metrics["n_steps"] == 5
    assert metrics["max_drawdown"] == pytest.approx(99 / 110 - 1)
    assert metrics["annualized_return"] == pytest.approx(1.2 ** (252 / 5) - 1)
    assert metrics["calmar"] == pytest.approx(metrics["annualized_return"] / (1 - 99 / 110))


def test_result_has_all_metric_names_as_python_numbers() -> None:
    metrics = hand_metrics()
    assert tuple(metrics) == METRIC_NAMES
    for name, value in metrics.items():
        expected_type = int if name in ("n_trades", "n_steps") else float
        assert type(value) is expected_type, (name, type(value))


def test_position_size_change_starts_a_new_holding_period() -> None:
    equity = np.array([100.0, 110.0, 105.0, 104.0])
    metrics = performance_metrics(equity, bars_per_year=252, positions=[1.0, 0.5, 0.5])
    # Runs: 1.0 at step 0 (+10%), 0.5 over steps 1-2 (104/110 - 1 < 0).
    assert metrics["win_rate"] == pytest.approx(0.5)
    assert metrics["exposure"] == pytest.approx(2 / 3)


def test_run_still_open_at_the_end_counts() -> None:
    equity = np.array([100.0, 100.0, 101.0])
    metrics = performance_metrics(equity, bars_per_year=252, positions=[0.0, -1.0])
    assert metrics["win_rate"] == 1.0


@pytest.mark.parametrize("positions", [None, [0.0, 0.0, 0.0]])
def test_win_rate_is_nan_without_holding_periods(positions: list[float] | None) -> None:
    metrics = performance_metrics(
        [100.0, 101.0, 99.0, 100.0], bars_per_year=252, positions=positions
    )
    assert math.isnan(metrics["win_rate"])


def test_optional_series_default_to_zero_or_nan() -> None:
    metrics = performance_metrics([100.0, 101.0, 99.0], bars_per_year=252)
    assert metrics["turnover"] == 0.0
    assert metrics["n_trades"] == 0
    assert metrics["fees_paid"] == 0.0
    assert math.isnan(metrics["exposure"])
    assert math.isnan(metrics["win_rate"])


# ------------------------------------------------------------------ edge cases


def test_zero_steps() -> None:
    metrics = performance_metrics([1000.0], bars_per_year=252, positions=[], trade_notional=[])
    assert metrics["n_steps"] == 0
    assert metrics["total_return"] == 0.0
    assert metrics["final_equity"] == 1000.0
    assert metrics["turnover"] == 0.0 and metrics["n_trades"] == 0
    for name in ("annualized_return", "sharpe", "sortino", "max_drawdown", "calmar", "win_rate"):
        assert math.isnan(metrics[name]), name


def test_one_step() -> None:
    metrics = performance_metrics([100.0, 95.0], bars_per_year=252, positions=[1.0])
    assert metrics["total_return"] == pytest.approx(-0.05)
    assert metrics["max_drawdown"] == pytest.approx(-0.05)
    assert metrics["win_rate"] == 0.0
    for name in ("annualized_volatility", "sharpe", "sortino"):
        assert math.isnan(metrics[name]), name
    assert metrics["calmar"] == pytest.approx(metrics["annualized_return"] / 0.05)


def test_flat_equity_has_no_ratios() -> None:
    metrics = performance_metrics(np.full(100, 5000.0), bars_per_year=252)
    assert metrics["annualized_volatility"] == 0.0
    assert metrics["max_drawdown"] == 0.0
    assert metrics["total_return"] == 0.0 and metrics["annualized_return"] == 0.0
    for name in ("sharpe", "sortino", "calmar"):
        assert math.isnan(metrics[name]), name


def test_constant_nonzero_returns_give_nan_not_inf() -> None:
    # empyrical's Sharpe is inf here (zero dispersion); we report nan.
    metrics = performance_metrics(equity_from_returns(np.full(50, 0.001)), bars_per_year=252)
    assert math.isnan(metrics["sharpe"])
    assert math.isnan(metrics["sortino"])  # no losing bar: zero downside risk
    assert math.isnan(metrics["calmar"])  # no drawdown
    assert metrics["annualized_return"] == pytest.approx(1.001**252 - 1)


def test_rounding_noise_on_a_flat_curve_is_not_a_sharpe() -> None:
    rng = np.random.default_rng(0)
    equity = 10_000.0 * (1.0 + rng.choice([-1.0, 0.0, 1.0], 200) * np.finfo(float).eps)
    metrics = performance_metrics(equity, bars_per_year=252)
    assert math.isnan(metrics["sharpe"])
    assert math.isnan(metrics["sortino"])
    assert math.isnan(metrics["calmar"])


def test_only_gains_gives_nan_sortino_and_finite_sharpe() -> None:
    metrics = performance_metrics(equity_from_returns([0.01, 0.02, 0.005]), bars_per_year=252)
    assert math.isnan(metrics["sortino"])
    assert math.isfinite(metrics["sharpe"]) and metrics["sharpe"] > 0


def test_bankruptcy_at_the_end() -> None:
    equity = np.array([100.0, 90.0, 50.0, 0.0])
    metrics = performance_metrics(equity, bars_per_year=252, positions=[1.0, 1.0, 1.0])
    assert metrics["total_return"] == -1.0
    assert metrics["annualized_return"] == -1.0
    assert metrics["max_drawdown"] == -1.0
    assert metrics["calmar"] == -1.0
    assert metrics["win_rate"] == 0.0
    assert metrics["final_equity"] == 0.0
    assert math.isfinite(metrics["sharpe"]) and metrics["sharpe"] < 0


def test_zero_equity_in_the_middle_drops_undefined_returns() -> None:
    equity = np.array([100.0, 50.0, 0.0, 0.0, 0.0])
    metrics = performance_metrics(equity, bars_per_year=252, positions=[1.0, 1.0, 0.0, 1.0])
    defined = np.array([-0.5, -1.0])  # returns after equity hit 0 are undefined
    expected = defined.mean() / defined.std(ddof=1) * math.sqrt(252)
    assert metrics["sharpe"] == pytest.approx(expected)
    assert metrics["max_drawdown"] == -1.0
    assert metrics["win_rate"] == 0.0  # the run opened at zero equity has a nan PnL


@pytest.mark.parametrize(
    "equity",
    [
        [100.0, np.nan, 110.0, 105.0],
        [100.0, np.inf, 110.0, 105.0],
        [100.0, 90.0, -20.0, -30.0],
        [100.0, 90.0, 80.0, np.nan],
        [100.0, np.nan, np.nan, np.nan],
    ],
)
def test_non_finite_or_negative_equity_is_handled(equity: list[float]) -> None:
    metrics = performance_metrics(
        equity, bars_per_year=252, positions=[1.0, -1.0, 1.0], trade_notional=[100.0, 1.0, 2.0]
    )
    assert tuple(metrics) == METRIC_NAMES
    assert metrics["max_drawdown"] <= 0.0 or math.isnan(metrics["max_drawdown"])
    assert metrics["n_trades"] == 3


def test_nan_in_the_middle_keeps_endpoint_returns() -> None:
    metrics = performance_metrics([100.0, np.nan, 110.0, 121.0], bars_per_year=252)
    assert metrics["total_return"] == pytest.approx(0.21)
    assert metrics["annualized_return"] == pytest.approx(1.21 ** (252 / 3) - 1)
    # Only 121/110 - 1 is defined: one return is too few for volatility and Sharpe.
    assert math.isnan(metrics["annualized_volatility"])
    assert math.isnan(metrics["sharpe"])
    assert metrics["max_drawdown"] == 0.0


def test_overflowing_annualization_returns_inf_without_warning() -> None:
    metrics = performance_metrics([1.0, 0.5, 2.0], bars_per_year=6240)
    assert metrics["annualized_return"] == math.inf
    assert math.isnan(metrics["calmar"])  # as empyrical: an infinite Calmar is nan


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name", ["positions", "trade_notional", "fees"])
@pytest.mark.parametrize("length", [2, 4])
def test_mismatched_lengths_name_the_argument(name: str, length: int) -> None:
    with pytest.raises(ValueError, match=name):
        performance_metrics(
            [100.0, 101.0, 102.0, 103.0], bars_per_year=252, **{name: [0.0] * length}
        )


@pytest.mark.parametrize("name", ["positions", "trade_notional", "fees"])
def test_non_finite_per_step_series_name_the_argument(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        performance_metrics([100.0, 101.0], bars_per_year=252, **{name: [np.nan]})


@pytest.mark.parametrize(
    ("equity", "bars_per_year", "match"),
    [
        ([], 252, "equity"),
        ([[100.0, 101.0]], 252, "equity"),
        ([0.0, 1.0], 252, r"equity\[0\]"),
        ([np.nan, 1.0], 252, r"equity\[0\]"),
        (["a", "b"], 252, "equity"),
        ([100.0, 101.0], 0.0, "bars_per_year"),
        ([100.0, 101.0], np.inf, "bars_per_year"),
        ([100.0, 101.0], "daily", "bars_per_year"),
    ],
)
def test_bad_input_raises_value_error(equity: object, bars_per_year: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        performance_metrics(equity, bars_per_year=bars_per_year)  # type: ignore[arg-type]


# ------------------------------------------------------------------ long series


def test_ten_thousand_steps_count_every_trade_and_fee() -> None:
    rng = np.random.default_rng(0)
    n = 10_000
    equity = equity_from_returns(rng.normal(0, 0.01, n))
    positions = np.repeat(rng.choice([-1.0, 0.0, 1.0], n // 20), 20)
    trades = np.diff(np.concatenate(([0.0], positions))) * equity[:-1]
    fees = np.abs(trades) * 0.0015
    m = performance_metrics(
        equity, bars_per_year=252, positions=positions, trade_notional=trades, fees=fees
    )
    assert m["n_trades"] == np.count_nonzero(trades)
    assert m["fees_paid"] == pytest.approx(fees.sum())
    assert all(np.isfinite(v) for v in m.values() if isinstance(v, float))


# --------------------------------------------------------------------------------------------
# drawdown_durations
# --------------------------------------------------------------------------------------------


def test_drawdown_durations_hand_examples() -> None:
    from quantgym.envs.metrics import drawdown_durations

    # No drawdown at all.
    assert drawdown_durations([1.0, 1.1, 1.2]) == {
        "max_underwater_bars": 0.0,
        "recovery_bars": 0.0,
        "recovered": 1.0,
    }
    # Peak 1.0 at bar 0, trough 0.5 at bar 1, back to 1.0 at bar 3: 3 bars to recover; the
    # longest spell under water is bars 1-2 (the dip at bar 4 is one bar).
    out = drawdown_durations([1.0, 0.5, 0.8, 1.0, 0.9])
    assert out == {"max_underwater_bars": 2.0, "recovery_bars": 3.0, "recovered": 1.0}
    # The deepest drawdown (2.1 -> 1.0) is never recovered: recovery undefined.
    out = drawdown_durations([1.0, 2.0, 1.5, 1.8, 2.1, 1.0])
    assert out["recovered"] == 0.0 and math.isnan(out["recovery_bars"])
    assert out["max_underwater_bars"] == 2.0
    # A spell still open at the end counts up to the end.
    assert drawdown_durations([1.0, 0.9, 0.8, 0.7])["max_underwater_bars"] == 3.0
