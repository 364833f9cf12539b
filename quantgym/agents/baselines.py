"""Rule-based baselines, privileged experts and the hindsight oracle.

Every agent here is *env-bound*: it is built with ``env=`` (a ``TradingEnv``, wrapped or not,
a ``TradingVectorEnv`` or its SB3 adapter) to learn the action mapping, the raw market and
the current bar(s) (``env.unwrapped.bar`` / ``vec_env.bars``). Per-bar signals are computed
once, vectorised, at construction, so ``predict`` is a table lookup plus a few numpy ops on
the batch. Each agent decides a *desired position* (fraction of equity) and maps it to the
nearest action of the env: the index of the closest entry of ``positions`` (discrete) or
``desired / max_leverage`` clipped to ``[-1, 1]`` (continuous).

=====================  ==================================================================
agent                  desired position at bar t
=====================  ==================================================================
``RandomAgent``        a uniformly random action (seeded)
``FlatAgent``          0
``BuyAndHoldAgent``    +1
``SMACrossoverAgent``  +1 if SMA_fast(close)_t > SMA_slow(close)_t, -1 if below
``MeanReversionAgent`` Bollinger: -1 above the upper band, +1 below the lower band,
                       flat once the close crosses back over the mean
``RegimeExpert``       sign of the next-bar drift implied by the *true* regime of bar t,
                       with a no-trade band (privileged: synthetic ``regime`` markets only)
``BayesFilterExpert``  sign of the Bayes-optimal forecast of the next-bar drift given the
                       closes up to t (HMM forward filter / OU expectation) with a band
``HindsightOracle``    the best path in hindsight (exact dynamic programme over the
                       position grid with the env's exact costs); ``uses_future = True``
``EpsilonMix``         any policy, with probability epsilon a uniformly random action
=====================  ==================================================================

All agents except ``HindsightOracle`` are causal: the decision at bar t only reads bars
``<= t``. The banded experts read the current target position from the observation (account
feature 0, at index ``window_size * n_market_features``) so they are right even after an
exploration step moved the account off their own path.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from quantgym._io import read_json
from quantgym.agents.base import AGENT_FILE, BaseAgent
from quantgym.envs.accounting import mark, rebalance
from quantgym.envs.unwrap import find_trading_env

__all__ = [
    "EnvBinding",
    "EnvBoundAgent",
    "RandomAgent",
    "FlatAgent",
    "BuyAndHoldAgent",
    "SMACrossoverAgent",
    "MeanReversionAgent",
    "RegimeExpert",
    "BayesFilterExpert",
    "HindsightOracle",
    "OraclePlan",
    "hindsight_plan",
    "EpsilonMix",
    "describe_policy",
]

#: Per-unit trading cost (commission + slippage) the default no-trade bands were tuned for.
_REFERENCE_COST = 0.0015


# --------------------------------------------------------------------------------------------
# Binding to an env
# --------------------------------------------------------------------------------------------


def _find_core(env: Any) -> Any:
    """The ``TradingEnv`` / ``TradingVectorEnv`` behind wrappers and adapters."""
    return find_trading_env(env)


class EnvBinding:
    """What an env-bound agent needs to know about its env: action mapping, market, bars.

    ``env`` may be a single ``TradingEnv`` (wrapped or not), a ``TradingVectorEnv`` or the
    SB3 adapter around one.
    """

    def __init__(self, env: Any) -> None:
        core = _find_core(env)
        self.env = env
        self.core = core
        self.is_vector = hasattr(core, "bars") and hasattr(core, "num_envs")
        self.num_envs = int(core.num_envs) if self.is_vector else 1
        self.market = core.market
        config = core.config
        self.continuous = getattr(config, "action_type", "discrete") == "continuous"
        self.positions = np.asarray(
            getattr(config, "positions", (-1.0, 0.0, 1.0)), dtype=np.float64
        )
        self.max_leverage = float(getattr(config, "max_leverage", 1.0))
        self.commission = float(getattr(config, "commission", 0.0))
        self.fixed_fee = float(getattr(config, "fixed_fee", 0.0))
        self.borrow_rate = float(getattr(config, "borrow_rate", 0.0))
        if hasattr(config, "slippage_rates"):
            self.slippage_rates = np.asarray(config.slippage_rates(self.market), dtype=np.float64)
        else:
            self.slippage_rates = np.full(len(self.market), float(getattr(config, "slippage", 0.0)))
        self.window_size = int(core.window_size)
        self.n_market_features = int(core.n_market_features)
        self.position_index = self.window_size * self.n_market_features
        self.obs_dim = self.position_index + int(core.n_account_features)
        self.n_bars = len(self.market)

    # -- env state -----------------------------------------------------------------------
    @property
    def cost_rate(self) -> float:
        """Average proportional cost per unit of equity traded (commission + mean slippage)."""
        return self.commission + float(np.mean(self.slippage_rates))

    def bars(self, batch_size: int) -> np.ndarray:
        """Current bar of each env, int64 ``(batch_size,)``; the batch must match the env."""
        if self.is_vector:
            bars = np.asarray(self.core.bars, dtype=np.int64)
            if batch_size != bars.shape[0]:
                raise ValueError(
                    f"observation batch has {batch_size} rows but the bound vector env has "
                    f"{bars.shape[0]} envs"
                )
            return bars
        if batch_size != 1:
            raise ValueError(
                f"observation batch has {batch_size} rows but the agent is bound to a single env; "
                "bind it to the vector env to act on a batch"
            )
        return np.array([self.core.bar], dtype=np.int64)

    def _state(self, name: str, private: str, i: int) -> Any:
        value = getattr(self.core, name, None)
        if value is None:
            value = getattr(self.core, private)
        return value[i] if self.is_vector else value

    def account(self, i: int = 0) -> tuple[float, float, float, float, int]:
        """``(units, cash, target, equity, episode_end_bar)`` of env ``i`` (exact float64)."""
        units = float(self._state("units", "_units", i))
        cash = float(self._state("cash", "_cash", i))
        target = float(self._state("target", "_target", i))
        equity = float(self._state("equity", "_equity", i))
        end = int(self._state("episode_end", "_end", i))
        return units, cash, target, equity, end

    # -- actions -------------------------------------------------------------------------
    def target_values(self) -> np.ndarray:
        """Targets of the discrete actions (``positions``); for continuous envs, the targets of
        the actions ``float32(p / max_leverage)`` for ``p`` in ``positions``, computed
        exactly as the env does."""
        if not self.continuous:
            return self.positions.copy()
        actions = self.to_actions(self.positions)
        return actions.reshape(-1).astype(np.float64) * self.max_leverage

    def to_actions(self, desired: np.ndarray) -> np.ndarray:
        """Nearest env action to each desired position: int64 ``(B,)`` or float32 ``(B, 1)``."""
        desired = np.asarray(desired, dtype=np.float64).reshape(-1)
        if self.continuous:
            return np.clip(desired / self.max_leverage, -1.0, 1.0).astype(np.float32).reshape(-1, 1)
        return np.abs(self.positions[None, :] - desired[:, None]).argmin(axis=1).astype(np.int64)

    def random_actions(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Uniformly random actions for a batch."""
        if self.continuous:
            return rng.uniform(-1.0, 1.0, size=(batch_size, 1)).astype(np.float32)
        return rng.integers(0, len(self.positions), size=batch_size, dtype=np.int64)

    def check_observation(self, observation: Any) -> tuple[np.ndarray, bool]:
        """``(obs as (B, D), batched)``; raises ``ValueError`` for a wrong shape."""
        obs = np.asarray(observation)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"observation must have shape ({self.obs_dim},) or (n_envs, {self.obs_dim}), "
                f"got {obs.shape}"
            )
        return (obs, True) if obs.ndim == 2 else (obs[None, :], False)

    @staticmethod
    def unbatch(actions: np.ndarray, batched: bool) -> np.ndarray:
        return actions if batched else actions[0]


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------


class EnvBoundAgent(BaseAgent):
    """Base of the env-bound agents: ``Agent(env=env, **config)``.

    Subclasses implement :meth:`desired_positions` (vectorised over the batch) and may
    precompute per-bar tables in :meth:`_precompute`. ``save``/``load`` store only the config;
    pass ``env=`` to ``load``.
    """

    uses_future: ClassVar[bool] = False

    def __init__(self, config: Any = None, *, env: Any = None, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if env is None:
            raise ValueError(
                f"{type(self).__name__} is env-bound: pass env=gym.make('TradingEnv-v0', ...)"
            )
        self.binding = EnvBinding(env)
        self._validate()
        self._precompute()

    def _validate(self) -> None:
        """Check the config, raising ``ValueError`` naming the field."""

    def _precompute(self) -> None:
        """Compute per-bar signal tables once (vectorised, causal)."""

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        """Desired position (fraction of equity) for each env at ``bars`` holding ``current_positions``."""
        raise NotImplementedError

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """One action per observation (``(D,)`` -> one action, ``(N, D)`` -> ``N`` actions)."""
        obs, batched = self.binding.check_observation(observation)
        bars = self.binding.bars(obs.shape[0])
        current = obs[:, self.binding.position_index].astype(np.float64)
        actions = self.binding.to_actions(self.desired_positions(bars, current))
        return self.binding.unbatch(actions, batched), state

    def describe(self) -> dict[str, Any]:
        """``{"name": ..., "params": config}`` (dataset metadata)."""
        return {"name": self.name, "params": dataclasses.asdict(self.config)}


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _rolling(values: np.ndarray, window: int, fn: str) -> np.ndarray:
    """Trailing rolling mean/std over ``values[t - window + 1 .. t]``; NaN before ``window``."""
    out = np.full(values.shape, np.nan)
    if values.size >= window:
        view = np.lib.stride_tricks.sliding_window_view(values, window)
        out[window - 1 :] = view.mean(axis=1) if fn == "mean" else view.std(axis=1)
    return out


def _band_positions(
    expected: np.ndarray, band: float, current: np.ndarray, allow_short: bool
) -> np.ndarray:
    """+1 above ``band``, -1 (0 without shorts) below ``-band``, otherwise hold ``current``."""
    short = -1.0 if allow_short else 0.0
    return np.where(expected > band, 1.0, np.where(expected < -band, short, current))


# --------------------------------------------------------------------------------------------
# Simple baselines
# --------------------------------------------------------------------------------------------


class RandomAgent(EnvBoundAgent):
    """Uniformly random actions from a seeded generator (one per env in a batch)."""

    name: ClassVar[str] = "random"

    @dataclasses.dataclass
    class Config:
        seed: int = 0

    def _precompute(self) -> None:
        self._rng = np.random.default_rng(self.config.seed)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        obs, batched = self.binding.check_observation(observation)
        actions = self.binding.random_actions(self._rng, obs.shape[0])
        return self.binding.unbatch(actions, batched), state


class _ConstantAgent(EnvBoundAgent):
    _position: ClassVar[float] = 0.0

    def _precompute(self) -> None:
        self._action = self.binding.to_actions(np.array([self._target()]))

    def _target(self) -> float:
        return self._position

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return np.full(bars.shape, self._target())

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        obs, batched = self.binding.check_observation(observation)
        actions = np.repeat(self._action, obs.shape[0], axis=0)
        return self.binding.unbatch(actions, batched), state


class FlatAgent(_ConstantAgent):
    """Always flat (the cash baseline: return 0 when there are no costs to pay)."""

    name: ClassVar[str] = "flat"


class BuyAndHoldAgent(_ConstantAgent):
    """Always long ``position`` (default 1.0 = fully invested); trades once per episode."""

    name: ClassVar[str] = "buy_and_hold"

    @dataclasses.dataclass
    class Config:
        position: float = 1.0

    def _target(self) -> float:
        return float(self.config.position)


class SMACrossoverAgent(EnvBoundAgent):
    """Trend following: long while SMA(``fast``) of the close is above SMA(``slow``), short
    (flat if ``allow_short`` is false) while below, flat before ``slow`` bars exist.

    Both averages at bar t use closes ``t - w + 1 .. t`` only.
    """

    name: ClassVar[str] = "sma_crossover"

    @dataclasses.dataclass
    class Config:
        fast: int = 10
        slow: int = 50
        allow_short: bool = True

    def _validate(self) -> None:
        _check_int("fast", self.config.fast)
        _check_int("slow", self.config.slow, minimum=2)
        if self.config.fast >= self.config.slow:
            raise ValueError(f"fast ({self.config.fast}) must be < slow ({self.config.slow})")

    def _precompute(self) -> None:
        close = self.binding.market.close
        fast = _rolling(close, self.config.fast, "mean")
        slow = _rolling(close, self.config.slow, "mean")
        short = -1.0 if self.config.allow_short else 0.0
        with np.errstate(invalid="ignore"):
            self.signal = np.where(fast > slow, 1.0, np.where(fast < slow, short, 0.0))
        self.signal.flags.writeable = False

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return self.signal[bars]


class MeanReversionAgent(EnvBoundAgent):
    """Bollinger-band mean reversion over ``window`` closes (population std).

    Short when the close is above ``mean + num_std * std``, long below ``mean - num_std * std``;
    a long is closed (flat) once the close is back at or above the mean, a short once it is at
    or below it; otherwise the current position is held.
    """

    name: ClassVar[str] = "mean_reversion"

    @dataclasses.dataclass
    class Config:
        window: int = 20
        num_std: float = 2.0
        allow_short: bool = True

    def _validate(self) -> None:
        _check_int("window", self.config.window, minimum=2)
        if not (math.isfinite(self.config.num_std) and self.config.num_std > 0):
            raise ValueError(f"num_std must be > 0, got {self.config.num_std!r}")

    def _precompute(self) -> None:
        close = self.binding.market.close
        mean = _rolling(close, self.config.window, "mean")
        std = _rolling(close, self.config.window, "std")
        width = self.config.num_std * std
        short = -1.0 if self.config.allow_short else 0.0
        with np.errstate(invalid="ignore"):
            # zone: entry signal (+1 long / short / NaN none); side: sign(close - mean).
            self.zone = np.where(
                close < mean - width, 1.0, np.where(close > mean + width, short, np.nan)
            )
            self.side = np.sign(close - mean)
        self.ready = ~np.isnan(mean)
        for arr in (self.zone, self.side, self.ready):
            arr.flags.writeable = False

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        zone, side = self.zone[bars], self.side[bars]
        p = current_positions
        exit_ = ((p > 0) & (side >= 0)) | ((p < 0) & (side <= 0))
        hold = np.where(exit_, 0.0, p)
        out = np.where(np.isnan(zone), hold, zone)
        return np.where(self.ready[bars], out, 0.0)


# --------------------------------------------------------------------------------------------
# Synthetic-market experts
# --------------------------------------------------------------------------------------------


class _BandedExpert(EnvBoundAgent):
    """Trade the sign of a per-bar expected next-bar return ``self.expected`` with a band."""

    @dataclasses.dataclass
    class Config:
        band: float | None = None
        allow_short: bool = True

    def _validate(self) -> None:
        band = self.config.band
        if band is not None and not (
            isinstance(band, (int, float)) and math.isfinite(band) and band >= 0
        ):
            raise ValueError(f"band must be None or a number >= 0, got {band!r}")

    @property
    def band(self) -> float:
        """No-trade band in expected log return per bar. Default: ``DEFAULT_BAYES_BAND`` (tuned
        for 15 bp per unit traded) scaled by the env's cost per unit traded."""
        if self.config.band is not None:
            return float(self.config.band)
        from quantgym.envs.synthetic import DEFAULT_BAYES_BAND

        return DEFAULT_BAYES_BAND * self.binding.cost_rate / _REFERENCE_COST

    def _precompute(self) -> None:
        self.expected = np.ascontiguousarray(self._expected_returns(), dtype=np.float64)
        self.expected.flags.writeable = False
        self._band = self.band

    def _expected_returns(self) -> np.ndarray:
        raise NotImplementedError

    def _params(self, kinds: tuple[str, ...]) -> dict:
        params = self.binding.market.market_params
        if not params or params.get("kind") not in kinds:
            raise ValueError(
                f"{type(self).__name__} needs a synthetic market of kind {kinds} with known "
                f"parameters (market_params); got market {self.binding.market.name!r}"
            )
        return params

    def desired_positions(self, bars: np.ndarray, current_positions: np.ndarray) -> np.ndarray:
        return _band_positions(
            self.expected[bars], self._band, current_positions, self.config.allow_short
        )


class RegimeExpert(_BandedExpert):
    """Privileged expert of the synthetic ``regime`` market: it reads the *hidden* regime of the
    current bar t from ``market.regime`` (no real agent can) and trades the sign of the
    expected next-bar drift ``transition[regime_t] @ drifts``, holding its position while the
    forecast is inside the no-trade band ``[-band, band]`` (so it does not pay costs to
    leave a position on a zero-drift regime)."""

    name: ClassVar[str] = "regime_expert"

    def _expected_returns(self) -> np.ndarray:
        from quantgym.envs.synthetic import regime_expected_return

        params = self._params(("regime",))
        regime = self.binding.market.regime
        if regime is None:
            raise ValueError("RegimeExpert needs market.regime (a synthetic 'regime' market)")
        k = len(params["drifts"])
        one_hot = np.zeros((regime.size, k))
        one_hot[np.arange(regime.size), regime] = 1.0
        return regime_expected_return(one_hot, params)


class BayesFilterExpert(_BandedExpert):
    """The best causal policy on synthetic markets (the 100 of the normalized score).

    ``regime``: the HMM forward filter with the market's true parameters on the close-to-close
    log returns up to bar t gives ``P(regime_t | closes <= t)``; the expected next-bar drift is
    ``posterior_t @ transition @ drifts``. ``mean_reversion``: the OU expectation
    ``(mu - log close_t) * (1 - exp(-theta))``. ``gbm``: the constant drift. It goes long above
    ``band``, short below ``-band`` and otherwise holds its current position.
    """

    name: ClassVar[str] = "bayes_filter_expert"

    def _expected_returns(self) -> np.ndarray:
        from quantgym.envs.synthetic import (
            hmm_forward_filter,
            ou_expected_return,
            regime_expected_return,
        )

        params = self._params(("regime", "mean_reversion", "gbm"))
        log_close = np.log(self.binding.market.close)
        if params["kind"] == "regime":
            returns = np.diff(log_close, prepend=np.nan)
            return regime_expected_return(hmm_forward_filter(returns, params), params)
        if params["kind"] == "mean_reversion":
            return ou_expected_return(log_close, params)
        return np.full(log_close.shape, float(params.get("drift", 0.0)))


# --------------------------------------------------------------------------------------------
# Hindsight oracle
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OraclePlan:
    """The optimal path from bar ``start`` to bar ``end``.

    ``actions[k]``/``targets[k]``: action and target decided at bar ``start + k``;
    ``held[k]``: target held at bar ``start + k`` before deciding; ``equity[k]``: equity at the
    close of bar ``start + k`` along the plan (``equity[0]`` is the starting equity).
    ``max_labels``: the largest non-dominated label set met (the DP's width).
    """

    start: int
    end: int
    actions: np.ndarray
    targets: np.ndarray
    held: np.ndarray
    equity: np.ndarray
    max_labels: int

    @property
    def log_growth(self) -> float:
        """``log(equity_end / equity_start)``: the sum of ``log_return`` rewards along the plan."""
        return float(np.log(self.equity[-1] / self.equity[0]))


# The ledger functions broadcast arrays of labels against scalar prices (their TypeVar
# signature says "all floats or all arrays"; numpy mixes them exactly the same way).
_ledger_rebalance: Any = rebalance
_ledger_mark: Any = mark


def _prune_dominated(cash: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Indices of the labels not dominated by another (see ``hindsight_plan``).

    Label i dominates j when ``lambda * (cash_j, units_j) <= (cash_i, units_i)`` for some
    ``lambda >= 1``; among mutually dominating (equal) labels the first is kept.
    """
    if cash.size <= 1:
        return np.arange(cash.size)
    # lambda = 1 first (a sort-based skyline, O(m log m)): keep a label only if its units
    # exceed those of every label with at least as much cash.
    order = np.lexsort((-units, -cash))
    u_sorted = units[order]
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = u_sorted[1:] > np.maximum.accumulate(u_sorted)[:-1]
    survivors = np.sort(order[keep])
    return survivors[_prune_scaled(cash[survivors], units[survivors])]


def _prune_scaled(cash: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Pairwise test of the general (``lambda >= 1``) dominance, ``O(m^2)``."""
    m = cash.size
    if m <= 1:
        return np.arange(m)
    lo = np.ones((m, m))
    hi = np.full((m, m), np.inf)
    feasible = np.ones((m, m), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        for x in (cash, units):
            a = x[None, :]  # candidate dominated label j (columns)
            b = x[:, None]  # dominating label i (rows)
            ratio = b / a
            hi = np.where(a > 0, np.minimum(hi, ratio), hi)
            lo = np.where(a < 0, np.maximum(lo, ratio), lo)
            feasible &= (a != 0) | (b >= 0)
    dom = feasible & (lo <= hi)
    np.fill_diagonal(dom, False)
    index = np.arange(m)
    strict = dom & (~dom.T | (index[:, None] < index[None, :]))
    return np.flatnonzero(~strict.any(axis=0))


def hindsight_plan(
    open_: np.ndarray,
    close: np.ndarray,
    slippage_rates: np.ndarray,
    targets: np.ndarray,
    *,
    start: int,
    end: int,
    units: float,
    cash: float,
    current_target: float,
    commission: float,
    fixed_fee: float = 0.0,
    borrow_rate: float = 0.0,
) -> OraclePlan:
    """Exact best path in hindsight over the target grid ``targets`` from bar ``start`` to ``end``.

    The env's ledger (:mod:`quantgym.envs.accounting`) is replayed exactly: the decision at bar
    t fills at ``open[t+1]`` (``rebalance``: ``units = target * equity_open / open`` and cost
    ``(commission + slippage_rate[t]) * |traded notional|`` + ``fixed_fee``, only when the
    target changes) and is marked at ``close[t+1]`` (``mark``: borrow on shorts). The objective
    is the final equity, i.e. the sum of the ``log_return`` rewards.

    Why not a DP over (bar, position) alone. Between trades the *units* are constant, not the
    fraction of equity, so the exposure drifts with the price. After a rebalance to target p at
    the open of bar s with equity ``E`` and cost fraction f, the equity at price P is
    ``E * (1 - p - f + p * P / open_s)`` (minus borrow): linear in the price, so the growth of a
    held stretch depends on its start s, not only on the last bar. Worse, the cost of the *next*
    rebalance, ``k * |p' * E_open - units * open|``, depends on the exposure at that open, which
    depends on f, which depends on the exposure at the previous rebalance, and so on back to the
    last time the account was flat. Log growth therefore does not decompose per bar given
    (previous target, target), nor given (target, bar of last rebalance): a state must carry the
    account itself.

    Exact algorithm. Labels are the account states ``(target, cash, units)`` reachable at each
    bar; each bar every label is extended by every target with the env's own ``rebalance`` and
    ``mark`` (so the arithmetic is bit-identical to the env's), and labels with equity <= 0
    (bankrupt) are dropped. Within one target, label X1 *dominates* X2 when
    ``X1 = lambda * X2 + Y`` with ``lambda >= 1`` and ``Y = (cash >= 0, units >= 0)``. The
    best final equity F from a state is then ordered: (i) positive homogeneity with a fixed fee
    that is paid once, not lambda times, gives ``F(lambda X) >= lambda F(X) >= F(X)``;
    (ii) every step map is superadditive, ``M(X + Y) >= M(X) + M0(Y)`` componentwise with
    ``M0`` the fee-free map (``-|.|`` of the traded notional and the borrow charge on
    ``max(-units, 0)`` are concave and positively homogeneous, the fee is paid once), and a
    long-only remainder Y keeps a non-negative equity under every action sequence (as long as
    no short loses 100 % within a held stretch), so ``F(X1) >= F(lambda X2) + F0(Y) >= F(X2)``.
    Dropping dominated labels therefore never drops the optimum. Cost: ``O(T * P^2 * L^2)``
    for T bars, P targets and at most L labels per target (flat labels collapse to one: L=1);
    L stays small in practice (``OraclePlan.max_labels`` reports it) but has no polynomial
    bound in general. The brute-force test over every action sequence is the judge.
    """
    targets = np.asarray(targets, dtype=np.float64)
    n_targets = targets.size
    if end <= start:
        raise ValueError(f"end ({end}) must be > start ({start})")
    if start < 0 or end >= len(close):
        raise ValueError(f"bars [{start}, {end}] are outside the market (0 .. {len(close) - 1})")
    lab_units = np.array([float(units)])
    lab_cash = np.array([float(cash)])
    lab_target = np.array([float(current_target)])
    lab_equity = np.array([float(cash) + float(units) * float(close[start])])
    parents: list[np.ndarray] = []
    choices: list[np.ndarray] = []
    max_labels = 1
    for t in range(start, end):
        o, c, s = float(open_[t + 1]), float(close[t + 1]), float(slippage_rates[t])
        new_u, new_c, new_e, new_t, par, act = [], [], [], [], [], []
        for a in range(n_targets):
            target = np.full(lab_units.shape, targets[a])
            u2, c2, _, _, _ = _ledger_rebalance(
                target, lab_target, lab_units, lab_cash, o, s, commission, fixed_fee
            )
            c2, eq, _ = _ledger_mark(u2, c2, c, borrow_rate)
            alive = np.flatnonzero(eq > 0.0)
            keep = alive[_prune_dominated(c2[alive], u2[alive])]
            max_labels = max(max_labels, keep.size)
            new_u.append(u2[keep])
            new_c.append(c2[keep])
            new_e.append(eq[keep])
            new_t.append(target[keep])
            par.append(keep)
            act.append(np.full(keep.size, a, dtype=np.int64))
        lab_units = np.concatenate(new_u)
        lab_cash = np.concatenate(new_c)
        lab_equity = np.concatenate(new_e)
        lab_target = np.concatenate(new_t)
        parents.append(np.concatenate(par))
        choices.append(np.concatenate(act))
        if lab_units.size == 0:
            raise ValueError(f"every path is bankrupt by bar {t + 1}")
    n = end - start
    actions = np.empty(n, dtype=np.int64)
    equity = np.empty(n + 1)
    label = int(np.argmax(lab_equity))
    # Walk back: recompute the equity path of the chosen label with the same ledger.
    for k in range(n - 1, -1, -1):
        actions[k] = choices[k][label]
        label = int(parents[k][label])
    chosen = targets[actions]
    held = np.concatenate(([float(current_target)], chosen))
    u, cs, tg = float(units), float(cash), float(current_target)
    equity[0] = cs + u * float(close[start])
    for k in range(n):
        t = start + k
        u, cs, _, _, _ = rebalance(
            chosen[k],
            tg,
            u,
            cs,
            float(open_[t + 1]),
            float(slippage_rates[t]),
            commission,
            fixed_fee,
        )
        cs, equity[k + 1], _ = mark(u, cs, float(close[t + 1]), borrow_rate)
        tg = chosen[k]
    return OraclePlan(
        start=int(start),
        end=int(end),
        actions=actions,
        targets=chosen,
        held=held,
        equity=equity,
        max_labels=int(max_labels),
    )


class HindsightOracle(EnvBoundAgent):
    """The physical upper bound: the best achievable path in hindsight (``uses_future = True``).

    At the first decision of an episode (and whenever the account is not where the plan
    expects it, with ``on_deviation="replan"``) it solves :func:`hindsight_plan` from the
    env's exact account state at the current bar to the episode's last bar, over the env's
    position grid (for continuous actions: ``grid``, default ``positions``, as fractions of
    equity), and then plays the plan. With ``on_deviation="follow"`` a deviation (e.g. an
    ``EpsilonMix`` exploration step) does not trigger a new plan: the oracle steers back to
    the planned target (cheap; used by the dataset presets). Its realised ``log_return``
    total equals ``plan.log_growth`` exactly.
    """

    name: ClassVar[str] = "hindsight_oracle"
    uses_future: ClassVar[bool] = True

    @dataclasses.dataclass
    class Config:
        on_deviation: str = "replan"
        grid: tuple[float, ...] | None = None

    def _validate(self) -> None:
        _check_choice("on_deviation", self.config.on_deviation, ("replan", "follow"))
        if self.config.grid is not None:
            if not self.binding.continuous:
                raise ValueError(
                    "grid is only used with action_type='continuous' (discrete envs use positions)"
                )
            grid = np.asarray(self.config.grid, dtype=np.float64)
            if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
                raise ValueError(
                    f"grid must be a non-empty sequence of finite numbers, got {self.config.grid!r}"
                )

    def _precompute(self) -> None:
        b = self.binding
        if b.continuous:
            grid = (
                b.positions
                if self.config.grid is None
                else np.asarray(self.config.grid, dtype=np.float64)
            )
            self._actions = b.to_actions(grid)
            self._targets = self._actions.reshape(-1).astype(np.float64) * b.max_leverage
        else:
            self._actions = np.arange(b.positions.size, dtype=np.int64)
            self._targets = b.positions.copy()
        self.plans: dict[int, OraclePlan] = {}
        self.n_plans = 0

    def plan(self, i: int = 0) -> OraclePlan:
        """Solve the hindsight DP for env ``i`` from its current bar and account state."""
        b = self.binding
        units, cash, target, _, end = b.account(i)
        start = int(b.bars(b.num_envs)[i])
        plan = hindsight_plan(
            b.market.open, b.market.close, b.slippage_rates, self._targets,
            start=start, end=end, units=units, cash=cash, current_target=target,
            commission=b.commission, fixed_fee=b.fixed_fee, borrow_rate=b.borrow_rate,
        )  # fmt: skip
        self.plans[i] = plan
        self.n_plans += 1
        return plan

    def _action_index(self, i: int, bar: int, new_episode: bool) -> int | None:
        b = self.binding
        units, cash, target, equity, end = b.account(i)
        if bar >= end:
            return None  # episode over: the action is ignored by the env
        plan = self.plans.get(i)
        if plan is not None and plan.end == end and plan.start <= bar < plan.end:
            k = bar - plan.start
            on_plan = plan.held[k] == target and equity == plan.equity[k]
            if on_plan or (self.config.on_deviation == "follow" and not new_episode):
                return int(plan.actions[k])
        plan = self.plan(i)
        return int(plan.actions[0])

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        b = self.binding
        obs, batched = b.check_observation(observation)
        bars = b.bars(obs.shape[0])
        starts = (
            np.zeros(bars.size, dtype=bool)
            if episode_start is None
            else np.asarray(episode_start, dtype=bool).reshape(-1)
        )
        if starts.size != bars.size:
            starts = np.broadcast_to(starts, bars.shape)
        current = obs[:, b.position_index].astype(np.float64)
        actions = b.to_actions(current)  # default for finished episodes: hold
        for i, bar in enumerate(bars.tolist()):
            a = self._action_index(i, bar, bool(starts[i]))
            if a is not None:
                actions[i] = self._actions[a]
        return b.unbatch(actions, batched), state


# --------------------------------------------------------------------------------------------
# Epsilon mixture
# --------------------------------------------------------------------------------------------


def _action_sampler(policy: Any, env: Any) -> Any:
    """A ``(rng, batch_size) -> actions`` sampler for the policy's action space."""
    binding = None
    if env is not None:
        binding = EnvBinding(env)
    elif isinstance(getattr(policy, "binding", None), EnvBinding):
        binding = policy.binding
    if binding is not None:
        return binding.random_actions
    space = getattr(policy, "action_space", None)
    if space is None:
        raise ValueError("EpsilonMix needs env= when the policy has no env binding or action_space")
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return lambda rng, n: (space.start + rng.integers(0, space.n, size=n)).astype(np.int64)
    if isinstance(space, spaces.Box):
        return lambda rng, n: rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(
            space.dtype
        )
    raise ValueError(f"EpsilonMix supports Discrete and Box action spaces, got {space}")


class EpsilonMix(BaseAgent):
    """``policy`` with probability ``1 - epsilon``, a uniformly random action with probability
    ``epsilon`` (per env, per step, from ``default_rng(seed)``).

    The mixture is the behaviour policy even with ``deterministic=True`` (which is passed to
    ``policy``). The inner policy sees every step, so recurrent state and plans stay in sync.
    ``save`` stores the inner policy (a ``BaseAgent``) in ``path/policy``; ``load(path, env=env)``.
    """

    name: ClassVar[str] = "epsilon_mix"

    @dataclasses.dataclass
    class Config:
        epsilon: float = 0.1
        seed: int = 0

    def __init__(
        self,
        policy: Any = None,
        epsilon: float | None = None,
        *,
        env: Any = None,
        config: Any = None,
        **kwargs: Any,
    ) -> None:
        if epsilon is not None:
            kwargs["epsilon"] = epsilon
        super().__init__(config, **kwargs)
        if policy is None or not hasattr(policy, "predict"):
            raise ValueError(f"policy must have a predict(...) method, got {policy!r}")
        eps = self.config.epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {eps!r}")
        self.policy = policy
        self.uses_future = bool(getattr(policy, "uses_future", False))
        self._sample = _action_sampler(policy, env)
        self._rng = np.random.default_rng(self.config.seed)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        action, state = self.policy.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic
        )
        action = np.asarray(action)
        batched = np.ndim(observation) == 2
        n = np.shape(observation)[0] if batched else 1
        explore = self._rng.random(n) < self.config.epsilon
        random_actions = self._sample(self._rng, n)
        if not explore.any():
            return action, state
        out = action.reshape(random_actions.shape).astype(random_actions.dtype, copy=True)
        out[explore] = random_actions[explore]
        return (out if batched else out.reshape(action.shape)), state

    def describe(self) -> dict[str, Any]:
        inner = describe_policy(self.policy)
        return {
            "name": self.name,
            "params": {
                **dataclasses.asdict(self.config),
                "policy": inner["name"],
                "policy_params": inner["params"],
            },
        }

    def _save_state(self, path: Path) -> None:
        if not isinstance(self.policy, BaseAgent):
            raise ValueError(
                f"cannot save the inner policy {type(self.policy).__name__}: not a BaseAgent"
            )
        self.policy.save(path / "policy")

    @classmethod
    def load(cls, path: str | os.PathLike, **kwargs: Any) -> EpsilonMix:
        """Load with the inner policy; ``kwargs`` (e.g. ``env=``) go to the inner policy too."""
        path = Path(path)
        meta = read_json(path / AGENT_FILE)
        policy = BaseAgent.load(path / "policy", **kwargs)
        config = {k: v for k, v in meta.get("config", {}).items() if k not in kwargs}
        return cls(policy, env=kwargs.get("env"), **config)


def describe_policy(policy: Any) -> dict[str, Any]:
    """``{"name": str, "params": dict}`` of any policy (for dataset metadata)."""
    if hasattr(policy, "describe") and callable(policy.describe):
        try:
            out = policy.describe()
            if isinstance(out, dict) and "name" in out:
                return {"name": str(out["name"]), "params": dict(out.get("params", {}))}
        except Exception:  # noqa: BLE001 - fall back to the generic description
            pass
    name = getattr(policy, "name", None)
    if not isinstance(name, str):
        name = type(policy).__name__
    config = getattr(policy, "config", None)
    params = (
        dataclasses.asdict(config)
        if dataclasses.is_dataclass(config) and not isinstance(config, type)
        else {}
    )
    return {"name": name, "params": params}
