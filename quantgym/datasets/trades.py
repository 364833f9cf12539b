"""Turn a human trader's executed-trade log into a trajectory dataset (behaviour cloning).

``from_trades(trades_df, data, positions=None, **env_kwargs)`` replays the log through
``TradingEnv`` on the matching bars and records it with :func:`~quantgym.datasets.rollout.rollout`,
so observations, rewards and costs are exactly the env's.

Trade log columns (case-insensitive):

=============  ==============================================================================
column         meaning
=============  ==============================================================================
timestamp      execution time (a ``timestamp``/``time``/``date``/``datetime`` column or the
               ``DatetimeIndex``)
side           ``buy`` / ``sell``: change the target position by ``+size`` / ``-size``;
               ``long`` / ``short``: target ``+size`` / ``-size``; ``flat``: target 0
size           fraction of equity (default 1.0 for long/short; required for buy/sell)
target         optional: the target position after the trade (overrides side/size)
price          optional: the executed price (checked > 0; its deviation from the env's fill
               price is reported in the metadata)
=============  ==============================================================================

Timing. A trade stamped ``ts`` fills at the open of the bar containing ``ts`` (the last bar
whose timestamp is ``<= ts``): in the env it is the action decided at the close of the bar
before. Several trades in one bar net out (the last target wins). The episode starts at the
decision bar of the first trade and ends after the fill bar of the last trade (or at
``until``); between trades the target is held.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

from quantgym import ENV_ID
from quantgym.datasets.rollout import rollout
from quantgym.datasets.trajectory import TrajectoryDataset
from quantgym.policies import EnvBinding

__all__ = ["SIDES", "from_trades", "trade_targets"]

SIDES = ("buy", "sell", "long", "short", "flat")
_TIME_COLUMNS = ("timestamp", "time", "date", "datetime")
_MAX_LISTED = 20
# Env kwargs that shape the market; they are applied once, when the market is loaded.
_MARKET_KWARGS = (
    "start",
    "end",
    "features",
    "market",
    "market_kwargs",
    "normalize_window",
    "bars_per_year",
)


class _BadRows:
    """Collects bad rows and raises one ``ValueError`` listing them (row numbers + values)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.problems: list[tuple[int, str]] = []

    def add(self, rows: np.ndarray, reason: str) -> None:
        for row in np.asarray(rows).tolist():
            self.problems.append((int(row), reason))

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        self.problems.sort()
        lines = []
        for row, reason in self.problems[:_MAX_LISTED]:
            values = ", ".join(f"{k}={v!r}" for k, v in self.frame.iloc[row].to_dict().items())
            lines.append(f"  row {row} ({values}): {reason}")
        more = len(self.problems) - _MAX_LISTED
        if more > 0:
            lines.append(f"  ... and {more} more")
        raise ValueError(f"{len(self.problems)} bad trade row(s):\n" + "\n".join(lines))


def _normalise(trades: pd.DataFrame) -> pd.DataFrame:
    """Lower-case columns and a ``timestamp`` column (row order kept, positional index)."""
    if not isinstance(trades, pd.DataFrame):
        raise ValueError(f"trades must be a pandas DataFrame, got {type(trades).__name__}")
    if len(trades) == 0:
        raise ValueError("trades is empty")
    frame = trades.rename(columns=lambda c: str(c).strip().lower())
    if frame.columns.duplicated().any():
        raise ValueError(f"duplicate trade columns after lower-casing: {list(frame.columns)}")
    col = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
    if col is None:
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ValueError(
                f"trades need a DatetimeIndex or one of the columns {list(_TIME_COLUMNS)}; "
                f"got columns {list(frame.columns)}"
            )
        frame = frame.reset_index(names="timestamp")
    elif col != "timestamp":
        frame = frame.rename(columns={col: "timestamp"})
    if "side" not in frame.columns and "target" not in frame.columns:
        raise ValueError(
            f"trades need a 'side' column (buy/sell/long/short/flat); got columns {list(frame.columns)}"
        )
    return frame.reset_index(drop=True)


def _numeric(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)


def trade_targets(trades: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Validate a trade log and return ``(frame, targets)``: the normalised frame and the target
    position after each row, in row order. Bad rows raise one ``ValueError`` listing them."""
    frame, targets, bad = _parse_trades(trades)
    bad.raise_if_any()
    return frame, targets


def _parse_trades(trades: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, _BadRows]:
    """``(frame, targets, bad rows)``; bad rows leave the target unchanged."""
    frame = _normalise(trades)
    bad = _BadRows(frame.copy())
    n = len(frame)
    times = pd.to_datetime(frame["timestamp"], errors="coerce", format="mixed")
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    frame["timestamp"] = times
    bad.add(np.flatnonzero(times.isna().to_numpy()), "timestamp is missing or not a date")

    raw_side = frame["side"] if "side" in frame.columns else pd.Series([None] * n)
    side = raw_side.astype("string").str.strip().str.lower().fillna("")
    target_col = (
        _numeric(frame, "target") if "target" in frame.columns else _numeric(frame, "position")
    )
    has_target = ~np.isnan(target_col)
    side_ok = side.isin(SIDES).to_numpy() | has_target
    bad.add(
        np.flatnonzero(~side_ok), f"unknown side (expected one of {', '.join(SIDES)} or a 'target')"
    )

    size = _numeric(frame, "size")
    if "size" in frame.columns:
        given = frame["size"].notna().to_numpy()
        bad_size = given & ~(np.isfinite(size) & (size > 0))
        bad.add(np.flatnonzero(bad_size), "size must be a number > 0")
    relative = side.isin(("buy", "sell")).to_numpy() & ~has_target
    bad.add(np.flatnonzero(relative & np.isnan(size)), "buy/sell need a size (fraction of equity)")
    if "price" in frame.columns:
        price = _numeric(frame, "price")
        given = frame["price"].notna().to_numpy()
        bad.add(
            np.flatnonzero(given & ~(np.isfinite(price) & (price > 0))),
            "price must be a number > 0",
        )

    size = np.where(np.isnan(size), 1.0, size)
    order = np.argsort(times.to_numpy(), kind="stable")
    targets = np.zeros(n)
    current = 0.0
    sides = side.to_numpy()
    invalid = {row for row, _ in bad.problems}
    for row in order.tolist():  # the log itself, one entry per trade (not per bar or step)
        if row in invalid:
            pass
        elif has_target[row]:
            current = float(target_col[row])
        elif sides[row] == "buy":
            current += size[row]
        elif sides[row] == "sell":
            current -= size[row]
        elif sides[row] == "long":
            current = float(size[row])
        elif sides[row] == "short":
            current = -float(size[row])
        else:
            current = 0.0
        targets[row] = current
    return frame, targets, bad


class _TradeLogPolicy:
    """Replays a per-bar action table (the trade log) as an SB3-style policy."""

    name = "trade_log"
    uses_future = False

    def __init__(self, binding: Any, actions_by_bar: np.ndarray, params: dict) -> None:
        self.binding = binding
        self.actions_by_bar = actions_by_bar
        self.params = params

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        obs, batched = self.binding.check_observation(observation)
        bars = self.binding.bars(obs.shape[0])
        actions = self.actions_by_bar[np.minimum(bars, len(self.actions_by_bar) - 1)]
        return self.binding.unbatch(actions, batched), state

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "params": self.params}


class _StartAt(gym.Wrapper):
    """Every reset starts at ``start`` (the first trade's decision bar)."""

    def __init__(self, env: gym.Env, start: int) -> None:
        super().__init__(env)
        self._start = int(start)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self.env.reset(seed=seed, options={**(options or {}), "start": self._start})


def _grid_index(targets: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    distance = np.abs(targets[:, None] - grid[None, :])
    index = distance.argmin(axis=1)
    return index, distance[np.arange(targets.size), index] <= 1e-9


def from_trades(
    trades: pd.DataFrame,
    data: Any = None,
    positions: Any = None,
    *,
    until: Any = None,
    seed: int = 0,
    **env_kwargs: Any,
) -> TrajectoryDataset:
    """Replay an executed-trade log through ``TradingEnv`` and return it as a one-episode dataset.

    Args:
        trades: the trade log (see the module docstring for its columns).
        data: the market the trades were made on (anything ``TradingEnv`` accepts).
        positions: the env's discrete target grid; default: every target of the log plus 0.
            With ``action_type="continuous"`` targets only need ``|target| <= max_leverage``.
        until: end of the episode (a timestamp, inclusive); default: the last trade's fill bar.
        seed: passed to ``env.reset``.
        **env_kwargs: other ``TradingEnv`` kwargs (costs, ``window_size``, ``start``/``end`` ...).

    Raises:
        ValueError: listing every bad row (row number and values): unknown side, missing or
            bad size/price, a timestamp outside the data or before the first tradable bar, a
            target outside ``positions`` or beyond ``max_leverage``.
    """
    frame, targets, bad = _parse_trades(trades)
    if "episode_length" in env_kwargs:
        raise ValueError(
            "episode_length is set by from_trades (first trade .. until); do not pass it"
        )
    continuous = env_kwargs.get("action_type", "discrete") == "continuous"
    if positions is None and not continuous:
        grid = np.unique(np.round(np.concatenate([targets, [0.0]]), 12))
    elif positions is None:
        grid = None
    else:
        grid = np.asarray(positions, dtype=np.float64)
    probe_kwargs = dict(env_kwargs)
    if grid is not None:
        probe_kwargs["positions"] = tuple(grid.tolist())
    probe = gym.make(ENV_ID, data=data, episode_length=None, **probe_kwargs)
    core: Any = probe.unwrapped
    market, first_bar = core.market, int(core.first_bar)
    stamps = market.timestamps

    # Bars: a trade at ts fills at the open of the last bar with timestamp <= ts.
    times = frame["timestamp"].to_numpy(dtype="datetime64[ns]")
    known = ~np.isnat(times)
    spacing = np.median(np.diff(stamps.view(np.int64))) if len(stamps) > 1 else 0
    last_end = stamps[-1] + np.timedelta64(int(spacing), "ns")
    fill_bar = np.searchsorted(stamps, times, side="right") - 1
    decision = fill_bar - 1
    bad.add(
        np.flatnonzero(known & (times < stamps[0])),
        f"timestamp is before the first bar of the data ({stamps[0]})",
    )
    bad.add(
        np.flatnonzero(known & (times >= last_end)),
        f"timestamp is after the last bar of the data ({stamps[-1]})",
    )
    early = known & (times >= stamps[0]) & (times < last_end) & (decision < first_bar)
    bad.add(
        np.flatnonzero(early),
        f"timestamp is before the first tradable fill bar {stamps[min(first_bar + 1, len(stamps) - 1)]} "
        "(feature warm-up + window)",
    )
    binding = EnvBinding(probe)
    parsed = np.ones(len(frame), dtype=bool)
    parsed[[row for row, _ in bad.problems]] = False
    if binding.continuous:
        over = parsed & (np.abs(targets) > binding.max_leverage + 1e-12)
        bad.add(np.flatnonzero(over), f"target position beyond max_leverage={binding.max_leverage}")
        index = None
    else:
        index, on_grid = _grid_index(targets, binding.positions)
        bad.add(
            np.flatnonzero(parsed & ~on_grid),
            f"target position not in positions={binding.positions.tolist()}",
        )
    bad.raise_if_any()
    probe.close()

    start = int(decision.min())
    end_bar = int(fill_bar.max())
    if until is not None:
        until_bar = int(
            np.searchsorted(stamps, np.datetime64(pd.Timestamp(until), "ns"), side="right") - 1
        )
        if until_bar < end_bar:
            raise ValueError(
                f"until={until!r} is before the last trade's fill bar ({stamps[end_bar]})"
            )
        end_bar = min(until_bar, market.last_bar)

    # Per-bar target table: the latest trade (in time order) decided at or before each bar.
    by_time = np.argsort(times, kind="stable")
    rank = np.empty(len(frame), dtype=np.int64)
    rank[by_time] = np.arange(len(frame))
    best = np.full(market.last_bar + 1, -1, dtype=np.int64)
    np.maximum.at(best, decision, rank)
    best = np.maximum.accumulate(best)  # ranks grow with time, so this forward-fills
    target_at_bar = np.where(best >= 0, targets[by_time[np.maximum(best, 0)]], 0.0)

    env_kw = {k: v for k, v in probe_kwargs.items() if k not in _MARKET_KWARGS}
    env = gym.make(ENV_ID, data=market, episode_length=end_bar - start, **env_kw)
    env = _StartAt(env, start)
    binding = EnvBinding(env)
    actions_by_bar = binding.to_actions(target_at_bar)
    fills = market.open[fill_bar]
    params = {"n_trades": int(len(frame)), "start_bar": start, "end_bar": end_bar}
    policy = _TradeLogPolicy(binding, actions_by_bar, params)
    trade_meta: dict[str, Any] = {
        "n_trades": int(len(frame)),
        "first_trade": str(times.min()),
        "last_trade": str(times.max()),
        "start_bar": start,
        "end_bar": end_bar,
        "positions": None if grid is None else grid.tolist(),
    }
    if "price" in frame.columns:
        deviation = (
            pd.to_numeric(frame["price"], errors="coerce").to_numpy(dtype=np.float64) / fills - 1.0
        )
        deviation = deviation[np.isfinite(deviation)]
        if deviation.size:
            trade_meta["price_vs_fill_open_mean_abs"] = float(np.mean(np.abs(deviation)))
            trade_meta["price_vs_fill_open_max_abs"] = float(np.max(np.abs(deviation)))
    try:
        return rollout(
            env, policy, n_episodes=1, seed=seed, progress=False, metadata={"trades": trade_meta}
        )
    finally:
        env.close()
