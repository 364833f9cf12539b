"""Where agents train and where they are tested, as plain bar ranges.

*Synthetic markets* (:func:`window_plan`): one long seeded series per (market, seed). Learners
train on ``train_bars`` bars from the first tradable bar; after ``embargo_bars`` untouched bars
the test part is cut into ``n_windows`` disjoint windows of ``window_bars`` steps. A window
observes bar ``start`` first and marks its last step at bar ``end = start + window_bars``;
the next window starts at ``end + 1``, so no bar is traded twice and none is shared with the
train range (the observation window only *looks back*, which is causal).

*Real data* (:func:`walk_forward_plan`): :func:`quantgym.datasets.splits.walk_forward` with an
expanding train window, an embargo and ``n_folds`` test folds that tile the end of the data;
learners retrain per fold on that fold's train range, and each fold's test range is traded once.

All ranges are inclusive bar indices of the market's full arrays (what the env reports as
``info["bar"]``); :func:`bar_timestamp` turns one into the env's ``start``/``end`` argument.
A cell's market is loaded once (:func:`build_market`: a ``MarketData`` for ``TradingEnv-v0``, a
``PanelData`` for ``PortfolioEnv-v0``; both have ``timestamps``, ``first_bar`` and ``last_bar``)
and its plan follows from the cell's protocol fields (:func:`plan_for`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import gymnasium as gym

from quantgym.policies.references import env_id_for, market_kind

if TYPE_CHECKING:
    import pandas as pd

    from quantgym.benchmark.listing import Cell

__all__ = [
    "BarRange",
    "TestUnit",
    "Plan",
    "WARMUP_MARGIN",
    "synthetic_n_bars",
    "window_plan",
    "walk_forward_plan",
    "bar_timestamp",
    "market_env_kwargs",
    "build_market",
    "plan_for",
]

#: Bars generated before the train range of a synthetic series for the features' warm-up and
#: the first observation window (the plan checks they suffice).
WARMUP_MARGIN = 1_000


@dataclasses.dataclass(frozen=True)
class BarRange:
    """Inclusive ``[start, end]`` bar indices."""

    start: int
    end: int

    @property
    def n_bars(self) -> int:
        return self.end - self.start + 1

    def overlaps(self, other: BarRange) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclasses.dataclass(frozen=True)
class TestUnit:
    """One test window or fold: the agent observes ``start`` first and its last step is marked
    at ``end`` (``n_steps = end - start`` steps); ``train`` is what its learner trained on."""

    unit: int
    fold: int | None
    start: int
    end: int
    train: BarRange

    @property
    def n_steps(self) -> int:
        return self.end - self.start

    @property
    def bars(self) -> BarRange:
        return BarRange(self.start, self.end)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The test units of one (market, seed) and the distinct train ranges (one per fold)."""

    protocol: str  # "windows" | "walk_forward"
    units: tuple[TestUnit, ...]

    @property
    def trains(self) -> list[BarRange]:
        return list(dict.fromkeys(u.train for u in self.units))

    def units_for(self, train: BarRange) -> list[TestUnit]:
        return [u for u in self.units if u.train == train]


def synthetic_n_bars(train_bars: int, embargo_bars: int, n_windows: int, window_bars: int) -> int:
    """Length of the synthetic series that holds the warm-up margin, the train range, the
    embargo and the windows."""
    return WARMUP_MARGIN + train_bars + embargo_bars + n_windows * (window_bars + 1) + 1


def window_plan(
    first_bar: int,
    last_bar: int,
    *,
    train_bars: int,
    embargo_bars: int,
    n_windows: int,
    window_bars: int,
) -> Plan:
    """Train range ``[first_bar, first_bar + train_bars - 1]``, then the embargo, then
    ``n_windows`` disjoint windows of ``window_bars`` steps; ``ValueError`` if they pass
    ``last_bar``."""
    train = BarRange(first_bar, first_bar + train_bars - 1)
    start0 = train.end + embargo_bars + 1
    units = []
    for k in range(n_windows):
        start = start0 + k * (window_bars + 1)
        units.append(TestUnit(k, None, start, start + window_bars, train))
    if units[-1].end > last_bar:
        raise ValueError(
            f"n_windows={n_windows} x window_bars={window_bars} after train_bars={train_bars} "
            f"and embargo_bars={embargo_bars} end at bar {units[-1].end}; the market ends at "
            f"bar {last_bar}"
        )
    return Plan("windows", tuple(units))


def walk_forward_plan(
    market: Any, *, first_bar: int, n_folds: int, train: float, test: float, embargo: int
) -> Plan:
    """Expanding-window walk-forward folds over ``market`` (a ``MarketData``) via
    :func:`quantgym.datasets.splits.walk_forward`; a fold's test range starts no earlier than
    ``first_bar`` (the env's first observable bar)."""
    from quantgym.datasets.splits import bars_in, walk_forward

    folds = walk_forward(
        market, n_folds, train_size=train, test_size=test, embargo=embargo, expanding=True
    )
    units = []
    for k, fold in enumerate(folds):
        train_bars = bars_in(market, fold.train)
        test_bars = bars_in(market, fold.test)
        train_range = BarRange(int(train_bars[0]), int(train_bars[-1]))
        start, end = int(test_bars[0]), int(test_bars[-1])
        if start < first_bar or end - start < 2:
            raise ValueError(
                f"walk-forward fold {k} tests bars {start}..{end}: too short or before the first "
                f"observable bar {first_bar}; lower n_folds or raise fold_test"
            )
        units.append(TestUnit(k, k, start, end, train_range))
    return Plan("walk_forward", tuple(units))


# --------------------------------------------------------------------------------------------
# A cell's market and plan
# --------------------------------------------------------------------------------------------


def bar_timestamp(market: Any, bar: int) -> pd.Timestamp:
    """Timestamp of ``bar`` of ``market`` (a ``MarketData`` or ``PanelData``): what the env
    takes as ``start`` or ``end``."""
    import pandas as pd

    return pd.Timestamp(market.timestamps[bar])


def market_env_kwargs(cell: Cell) -> dict[str, Any]:
    """Env kwargs that load the cell's whole market: the seeded long series on synthetic
    markets (with a variant's ``market_params``), the data source otherwise."""
    kind = market_kind(cell.market)
    if kind == "real":
        return {"data": cell.market}
    assert cell.window_bars and cell.n_windows and cell.train_bars is not None
    n_bars = synthetic_n_bars(
        cell.train_bars, cell.embargo_bars or 0, cell.n_windows, cell.window_bars
    )
    params = dict(cell.market_params or {})
    return {"market": kind, "market_kwargs": {**params, "n_bars": n_bars, "seed": cell.seed}}


def build_market(cell: Cell) -> tuple[Any, int]:
    """The cell's ``MarketData`` or ``PanelData`` (loaded once, reused by every env) and its
    first observable bar."""
    env = gym.make(
        env_id_for(cell.market), **market_env_kwargs(cell), **cell.env_kwargs, episode_length=None
    )
    try:
        core: Any = env.unwrapped
        market = core.panel if hasattr(core, "panel") else core.market
        return market, int(core.first_bar)
    finally:
        env.close()


def plan_for(cell: Cell, market: Any, first_bar: int) -> Plan:
    """The cell's test units on ``market``: :func:`window_plan` or :func:`walk_forward_plan`."""
    if cell.protocol == "windows":
        return window_plan(
            first_bar,
            int(market.last_bar),
            train_bars=int(cell.train_bars or 0),
            embargo_bars=int(cell.embargo_bars or 0),
            n_windows=int(cell.n_windows or 0),
            window_bars=int(cell.window_bars or 0),
        )
    return walk_forward_plan(
        market,
        first_bar=first_bar,
        n_folds=int(cell.n_folds or 0),
        train=float(cell.fold_train or 0.0),
        test=float(cell.fold_test or 0.0),
        embargo=int(cell.embargo_bars or 0),
    )
