"""The common benchmark harness: every agent on the same held-out markets (CleanRL's
``benchmark.py`` pattern: a grid expanded into runs, run in a pool, each run tagged).

A :class:`ComparisonConfig` is a grid ``markets x agents x seeds`` that :func:`expand_grid`
turns into :class:`RunSpec` s; :func:`run_one` executes one and :func:`run_comparison` runs
them all (in a process pool with ``workers > 1``) and writes ``results.json``,
``results.csv``, ``equity_curves.png`` and ``scores.png``.

Protocol of one run (market ``M``, agent ``A``, seed ``s``):

1. ``M``'s tradable bars are split chronologically (``chronological_split``, train / val /
   test = 0.7 / 0.15 / 0.15). The train env is ``gym.make("TradingEnv-v0", data=M,
   end=train.end, **env_kwargs)`` (bars after the train range are never loaded); the test env
   is the same with ``start=test.start`` instead (earlier bars only feed the causal features
   and the observation window) and ``episode_length`` set by the evaluation protocol.
   The val range is left unused, kept for tuning so the test range is touched once.
2. The agent is built by kind (:func:`agent_kind`):

   - *env-bound* rule agents (baselines, experts, the oracle) are constructed with the test
     env; they read bars ``<= t`` only, except ``HindsightOracle`` (``uses_future = True``),
     labelled ``"hindsight_oracle (uses future)"`` in every table;
   - *online* learners (a ``fit`` method) are built with ``seed=s`` and
     ``fit(train_env, total_timesteps=train_steps)`` (``None``: their own default budget);
   - *offline* learners (class attribute ``offline = True``) get a ``TrajectoryDataset``
     collected on the train range (:func:`quantgym.datasets.presets.make_dataset`, quality
     ``dataset_quality``, ``dataset_steps`` transitions, seed ``s``) and
     ``fit(dataset, n_steps=train_steps)``.

   An env-bound agent that rejects the market (``regime_expert`` needs a synthetic regime
   market, ``bayes_filter_expert`` a synthetic one) raises ``ValueError``: the run is
   *skipped* and listed with its reason, never silently dropped.
3. Evaluation (:func:`quantgym.evaluation.evaluate`, deterministic). Default
   (``episode_length=None``): **one pass over the whole test range**, identical for every
   agent and seed. That is the honest, low-variance choice: every test bar is traded
   exactly once, there is no start-sampling noise and no overlap between episodes, and
   path-dependent agents (LSTM state, banded experts) run as they would live. With
   ``episode_length=L`` instead, ``n_episodes`` (default 10) episodes of ``L`` bars start at
   the bars drawn by :func:`~quantgym.evaluation.episode_starts` with the run's seed: the
   same starts for every agent of that seed.
4. Score: ``normalized_score`` with cash = 0 and the reference = 100, the reference being
   evaluated in the same run on the same starts: ``BayesFilterExpert`` on synthetic regime and
   mean-reversion markets, buy-and-hold on real data and on ``gbm`` (no edge: the Bayes
   expert stays flat there, its return is 0 and the score would be undefined). A reference
   return of exactly 0 gives a NaN score; a negative one flips the sign of every score on
   that market (the table says so).

Every row is tagged with the run's settings, the config id (hash of the config), the git
revision and the quantgym version. Runs are deterministic given their seeds (timings aside).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

import quantgym
from quantgym._io import atomic_write, atomic_write_json
from quantgym.agents.registry import agent_class, list_agents, make_agent
from quantgym.datasets.splits import ChronologicalSplit, chronological_split
from quantgym.evaluation import (
    EvaluationResult,
    episode_starts,
    evaluate,
    normalized_score,
    reference_agent_name,
)

__all__ = [
    "MARKETS",
    "DEFAULT_MARKET",
    "BASELINE_AGENTS",
    "WRAPPER_AGENTS",
    "SPLIT_FRACTIONS",
    "DEFAULT_N_EPISODES",
    "PRESETS",
    "RESULT_COLUMNS",
    "TIMING_COLUMNS",
    "ComparisonConfig",
    "RunSpec",
    "RunResult",
    "ComparisonResults",
    "default_agents",
    "check_market",
    "check_agent",
    "agent_kind",
    "agent_label",
    "reference_for",
    "preset_config",
    "expand_grid",
    "run_one",
    "run_comparison",
    "summarize",
    "format_table",
    "print_table",
    "write_results",
    "plot_results",
    "git_revision",
]

MARKETS = (
    "synthetic:regime",
    "synthetic:gbm",
    "synthetic:mean_reversion",
    "sample:googl",
    "sample:eurusd",
)
DEFAULT_MARKET = "synthetic:regime"
#: Rule baselines and experts (env-bound, no training).
BASELINE_AGENTS = (
    "random",
    "flat",
    "buy_and_hold",
    "sma_crossover",
    "mean_reversion",
    "regime_expert",
    "bayes_filter_expert",
    "hindsight_oracle",
)
#: Registered agents that wrap another policy and cannot be benchmarked by name alone.
WRAPPER_AGENTS = ("epsilon_mix",)
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
ENV_ID = quantgym.ENV_ID
_FUTURE_TAG = " (uses future)"
#: Evaluation episodes per run when ``episode_length`` is set and ``n_episodes`` is not.
DEFAULT_N_EPISODES = 10
#: ``ppo_lstm`` budget of ``--preset demo``: ~3 min on one CPU core (1 torch thread).
DEMO_TRAIN_STEPS = 500_000

#: Columns of ``results.csv`` (and keys of each row of ``results.json``), in order.
RESULT_COLUMNS = (
    "market",
    "agent",
    "label",
    "seed",
    "kind",
    "uses_future",
    "score",
    "total_return",
    "annualized_return",
    "sharpe",
    "max_drawdown",
    "turnover",
    "n_trades",
    "fees",
    "costs",
    "reference_agent",
    "reference_return",
    "train_steps",
    "n_episodes",
    "episode_length",
    "train_end",
    "test_start",
    "test_end",
    "train_time_s",
    "eval_time_s",
    "config_id",
    "git_rev",
    "quantgym_version",
)
#: Columns that vary between identical runs (wall-clock times).
TIMING_COLUMNS = ("train_time_s", "eval_time_s")


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def default_agents() -> list[str]:
    """Every registered agent that can be built by name (wrappers such as ``epsilon_mix`` excluded)."""
    return [name for name in list_agents() if name not in WRAPPER_AGENTS]


def check_market(market: Any) -> str:
    """Return ``market`` if it is one of :data:`MARKETS` or an existing OHLCV CSV path, else
    raise ``ValueError`` listing the valid markets."""
    if isinstance(market, str):
        if market in MARKETS:
            return market
        if market.endswith((".csv", ".csv.gz")) and os.path.isfile(market):
            return market
    raise ValueError(
        f"unknown market {market!r}; valid markets: {', '.join(MARKETS)} "
        "(or a path to an OHLCV .csv / .csv.gz file)"
    )


def check_agent(name: Any) -> str:
    """Return ``name`` if it is a registered agent (or a ``"package.module:Class"`` path that
    imports), else raise ``ValueError`` listing the valid agents."""
    if isinstance(name, str) and name in WRAPPER_AGENTS:
        raise ValueError(
            f"agent {name!r} wraps another policy and cannot be benchmarked by name; "
            f"valid agents: {', '.join(default_agents())}"
        )
    if isinstance(name, str) and name in list_agents():
        return name
    if isinstance(name, str) and ":" in name:
        agent_class(name)  # raises ValueError when it does not import
        return name
    raise ValueError(
        f"unknown agent {name!r}; valid agents: {', '.join(default_agents())} "
        "(or 'package.module:Class')"
    )


def agent_kind(cls: type) -> str:
    """``"offline"`` (class attribute ``offline = True``: ``fit(dataset, n_steps=...)``),
    ``"online"`` (has ``fit``: ``fit(env, total_timesteps=...)``) or ``"env_bound"`` (a rule
    agent built with ``env=``)."""
    if getattr(cls, "offline", False):
        return "offline"
    if callable(getattr(cls, "fit", None)):
        return "online"
    return "env_bound"


def agent_label(name: str, cls: type | None = None) -> str:
    """Display name: ``name`` plus ``" (uses future)"`` for agents that read future bars."""
    cls = agent_class(name) if cls is None else cls
    return name + _FUTURE_TAG if getattr(cls, "uses_future", False) else name


def reference_for(market: Any) -> str:
    """The 100-point reference agent of a market (:func:`reference_agent_name`)."""
    return reference_agent_name(market)


# --------------------------------------------------------------------------------------------
# Config, presets and the grid
# --------------------------------------------------------------------------------------------


def _positive_int(name: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclasses.dataclass
class ComparisonConfig:
    """One benchmark: the grid and the protocol every run of it shares.

    Attributes:
        markets: market names (:data:`MARKETS`) or CSV paths.
        agents: registered agent names or ``"package.module:Class"`` paths.
        seeds: one run per seed (agent seed, dataset seed, evaluation start draw).
        train_steps: learners' budget (``total_timesteps`` online, ``n_steps`` offline);
            ``None``: each learner's own default.
        agent_kwargs: extra constructor kwargs per agent name.
        env_kwargs: ``TradingEnv`` kwargs shared by the train and test envs (costs,
            ``window_size``, ``market_kwargs`` ...); ``episode_length`` here applies to training.
        n_episodes, episode_length: evaluation protocol (see the module docstring);
            ``episode_length=None`` is one pass over the whole test range.
        dataset_quality, dataset_steps: the offline learners' training dataset.
        workers: process-pool size (``1``: run in this process).
        torch_threads: torch threads per run (1 is fastest for these small nets and the
            only sane value with several workers on a small machine; forced to 1 then).
        preset: name of the preset it came from (a tag).
    """

    markets: list[str] = dataclasses.field(default_factory=lambda: [DEFAULT_MARKET])
    agents: list[str] = dataclasses.field(default_factory=default_agents)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    train_steps: int | None = None
    agent_kwargs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_episodes: int | None = None
    episode_length: int | None = None
    dataset_quality: str = "mixed"
    dataset_steps: int = 50_000
    workers: int = 1
    torch_threads: int = 1
    preset: str | None = None

    def validate(self) -> ComparisonConfig:
        """Check every field, raising ``ValueError`` naming it; returns ``self``."""
        for field in ("markets", "agents", "seeds"):
            value = getattr(self, field)
            if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
                raise ValueError(f"{field} must be a non-empty list, got {value!r}")
            if len(set(value)) != len(value):
                raise ValueError(f"{field} has duplicates: {list(value)!r}")
        self.markets = [check_market(m) for m in self.markets]
        self.agents = [check_agent(a) for a in self.agents]
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
                raise ValueError(f"seeds must be non-negative integers, got {seed!r}")
        self.seeds = [int(s) for s in self.seeds]
        self.train_steps = _positive_int("train_steps", self.train_steps, optional=True)
        self.n_episodes = _positive_int("n_episodes", self.n_episodes, optional=True)
        self.episode_length = _positive_int("episode_length", self.episode_length, optional=True)
        if self.n_episodes is not None and self.episode_length is None:
            raise ValueError(
                "n_episodes needs episode_length: with episode_length=None every agent is "
                "evaluated in one deterministic pass over the whole test range"
            )
        if not isinstance(self.agent_kwargs, Mapping):
            raise ValueError(f"agent_kwargs must be a dict of dicts, got {self.agent_kwargs!r}")
        for name, kwargs in self.agent_kwargs.items():
            if name not in self.agents:
                raise ValueError(
                    f"agent_kwargs has {name!r}, which is not in agents {list(self.agents)}"
                )
            if not isinstance(kwargs, Mapping):
                raise ValueError(f"agent_kwargs[{name!r}] must be a dict, got {kwargs!r}")
        if not isinstance(self.env_kwargs, Mapping):
            raise ValueError(f"env_kwargs must be a dict, got {self.env_kwargs!r}")
        for key in ("data", "market", "start", "end"):
            if key in self.env_kwargs:
                raise ValueError(
                    f"env_kwargs[{key!r}] is set by the harness (markets and the split); remove it"
                )
        from quantgym.datasets.presets import QUALITIES

        if self.dataset_quality not in QUALITIES:
            raise ValueError(
                f"dataset_quality must be one of {QUALITIES}, got {self.dataset_quality!r}"
            )
        self.dataset_steps = _positive_int("dataset_steps", self.dataset_steps)  # type: ignore[assignment]
        self.workers = _positive_int("workers", self.workers)  # type: ignore[assignment]
        self.torch_threads = _positive_int("torch_threads", self.torch_threads)  # type: ignore[assignment]
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (saved in ``results.json``)."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=repr))

    @property
    def config_id(self) -> str:
        """Short hash of the settings that change results (not ``workers`` or ``preset``)."""
        data = {k: v for k, v in self.to_dict().items() if k not in ("workers", "preset")}
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


#: Named configs for the CLI's ``--preset``.
PRESETS: dict[str, dict[str, Any]] = {
    # `make demo`: the default market, every rule agent and ppo_lstm on a small budget
    # (~3-5 min on 2 CPU cores).
    "demo": {
        "markets": [DEFAULT_MARKET],
        "agents": [*BASELINE_AGENTS, "ppo_lstm"],
        "seeds": [0],
        "train_steps": DEMO_TRAIN_STEPS,
    },
    # Everything: four markets, every registered agent with its default budget, three seeds.
    "full": {
        "markets": ["synthetic:regime", "synthetic:gbm", "sample:googl", "sample:eurusd"],
        "agents": None,  # default_agents() at build time (the registry can grow)
        "seeds": [0, 1, 2],
        "train_steps": None,
    },
}


def preset_config(preset: str = "demo", **overrides: Any) -> ComparisonConfig:
    """The validated :class:`ComparisonConfig` of ``preset`` with ``overrides`` (fields of
    the config; ``None`` values are ignored, so unset CLI flags keep the preset's value)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ComparisonConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown config fields {unknown}; valid fields: {sorted(fields)}")
    values = {k: v for k, v in PRESETS[preset].items() if v is not None}
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.setdefault("preset", preset)
    return ComparisonConfig(**values).validate()


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of the grid: everything :func:`run_one` needs (picklable, JSON-friendly)."""

    market: str
    agent: str
    seed: int = 0
    agent_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_steps: int | None = None
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    n_episodes: int | None = None
    episode_length: int | None = None
    dataset_quality: str = "mixed"
    dataset_steps: int = 50_000
    torch_threads: int = 1
    record_curve: bool = True

    @property
    def run_id(self) -> str:
        return f"{self.market}/{self.agent}/seed{self.seed}"


def expand_grid(config: ComparisonConfig) -> list[RunSpec]:
    """``markets x agents x seeds`` in that order (validates ``config`` first). The equity
    curve is recorded for the first seed only."""
    config.validate()
    threads = 1 if config.workers > 1 else config.torch_threads
    return [
        RunSpec(
            market=market,
            agent=agent,
            seed=seed,
            agent_kwargs=dict(config.agent_kwargs.get(agent, {})),
            train_steps=config.train_steps,
            env_kwargs=dict(config.env_kwargs),
            n_episodes=config.n_episodes,
            episode_length=config.episode_length,
            dataset_quality=config.dataset_quality,
            dataset_steps=config.dataset_steps,
            torch_threads=threads,
            record_curve=seed == config.seeds[0],
        )
        for market in config.markets
        for agent in config.agents
        for seed in config.seeds
    ]


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunResult:
    """Outcome of :func:`run_one`: a result row, or ``skipped`` (the reason) when the agent
    rejected the market; ``curve`` is the first test episode's equity (``record_curve``)."""

    spec: RunSpec
    row: dict[str, Any] | None
    curve: pd.Series | None = None
    skipped: str | None = None


@dataclasses.dataclass(frozen=True)
class _MarketSplit:
    split: ChronologicalSplit
    reference: str
    test_end: pd.Timestamp


# Per-process caches: the split of a market and the reference's test return are computed
# once per process, not once per run.
_SPLITS: dict[str, _MarketSplit] = {}
_REFERENCE_RETURNS: dict[str, float] = {}


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=repr)


def _market_split(market: str, env_kwargs: Mapping[str, Any]) -> _MarketSplit:
    key = _key(market, env_kwargs)
    if key not in _SPLITS:
        probe = gym.make(ENV_ID, data=market, **env_kwargs)
        try:
            data = probe.unwrapped.market  # type: ignore[attr-defined]
        finally:
            probe.close()
        _SPLITS[key] = _MarketSplit(
            split=chronological_split(data, *SPLIT_FRACTIONS),
            reference=reference_for(data),
            test_end=pd.Timestamp(data.date_range[1]),
        )
    return _SPLITS[key]


def _accepts(fn: Any, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _config_fields(cls: type) -> set[str] | None:
    config = getattr(cls, "Config", None)
    if isinstance(config, type) and dataclasses.is_dataclass(config):
        return {f.name for f in dataclasses.fields(config)}
    return None


def _agent_kwargs(cls: type, spec: RunSpec) -> dict[str, Any]:
    """The spec's kwargs plus ``seed`` when the agent takes one (and it was not given)."""
    kwargs = dict(spec.agent_kwargs)
    fields = _config_fields(cls)
    takes_seed = "seed" in fields if fields is not None else _accepts(cls, "seed")
    if takes_seed:
        kwargs.setdefault("seed", spec.seed)
    return kwargs


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch threads when torch is in use (a learner imported it)."""
    if "torch" not in sys.modules:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_online(agent: Any, env: gym.Env, spec: RunSpec) -> None:
    kwargs: dict[str, Any] = {}
    if spec.train_steps is not None:
        kwargs["total_timesteps"] = spec.train_steps
    if _accepts(agent.fit, "progress_bar"):
        kwargs["progress_bar"] = False  # the harness shows one bar over runs
    agent.fit(env, **kwargs)


def _fit_offline(agent: Any, spec: RunSpec) -> None:
    from quantgym.datasets.presets import make_dataset

    dataset = make_dataset(
        market=spec.market,
        quality=spec.dataset_quality,
        n_steps=spec.dataset_steps,
        seed=spec.seed,
        split="train",
        num_envs=min(16, spec.dataset_steps),
        env_kwargs=dict(spec.env_kwargs),
    )
    kwargs = {} if spec.train_steps is None else {"n_steps": spec.train_steps}
    agent.fit(dataset, **kwargs)


def _evaluate(agent: Any, env: gym.Env, starts: list[int] | None, seed: int) -> EvaluationResult:
    if starts is None:
        return evaluate(agent, env, deterministic=True, seed=seed)
    return evaluate(agent, env, deterministic=True, starts=starts, seed=seed)


def _reference_return(spec: RunSpec, name: str, env: gym.Env, starts: list[int] | None) -> float:
    key = _key(spec.market, spec.env_kwargs, spec.episode_length, starts, name)
    if key not in _REFERENCE_RETURNS:
        result = _evaluate(make_agent(name, env=env), env, starts, spec.seed)
        _REFERENCE_RETURNS[key] = result.total_return
    return _REFERENCE_RETURNS[key]


def _score(ret: float, reference: float) -> float:
    try:
        return normalized_score(ret, reference, 0.0)
    except ValueError:  # reference return 0 (or not finite): undefined
        return math.nan


def _trading_costs(result: EvaluationResult) -> float:
    """Mean over episodes of commission + slippage + borrow paid (currency)."""
    totals = [
        float(h[[c for c in ("fees", "slippage_cost", "borrow_cost") if c in h]].to_numpy().sum())
        for h in result.histories
    ]
    return float(np.mean(totals))


class _Rejected(Exception):
    """An env-bound agent refused the market (its ``ValueError``): the run is skipped."""


def _train_agent(
    cls: type, kind: str, spec: RunSpec, split: ChronologicalSplit, test_env: gym.Env
) -> tuple[Any, int | None]:
    """Build the agent of ``spec`` and train it if it learns; returns it and its trained steps."""
    kwargs = _agent_kwargs(cls, spec)
    if kind == "env_bound":
        try:
            return cls(env=test_env, **kwargs), None
        except ValueError as exc:
            raise _Rejected(str(exc)) from None
    agent = cls(**kwargs)
    if kind == "offline":
        _fit_offline(agent, spec)
        return agent, spec.train_steps
    train_env = gym.make(ENV_ID, data=spec.market, **{**spec.env_kwargs, "end": split.train.end})
    try:
        _fit_online(agent, train_env, spec)
    finally:
        train_env.close()
    steps = getattr(agent, "num_timesteps", spec.train_steps)
    return agent, None if steps is None else int(steps)


def run_one(spec: RunSpec) -> RunResult:
    """Train (if it learns) and evaluate one agent on one market's test range; see the module
    docstring for the protocol. Returns the result row (without the config / git tags that
    :func:`run_comparison` adds) or a skipped result when an env-bound agent rejects the market.

    ``train_time_s`` covers building the agent, collecting an offline dataset and ``fit``."""
    cls = agent_class(spec.agent)
    kind = agent_kind(cls)
    market = _market_split(spec.market, spec.env_kwargs)
    split = market.split
    # Same env kwargs as training except the range and the evaluation episode length.
    test_kwargs = {
        **spec.env_kwargs,
        "start": split.test.start,
        "episode_length": spec.episode_length,
    }
    test_env = gym.make(ENV_ID, data=spec.market, **test_kwargs)
    initial_equity = float(test_env.unwrapped.config.initial_equity)  # type: ignore[attr-defined]
    threads = (
        contextlib.nullcontext() if kind == "env_bound" else _torch_threads(spec.torch_threads)
    )
    try:
        starts = None
        if spec.episode_length is not None:
            n_episodes = spec.n_episodes or DEFAULT_N_EPISODES
            starts = episode_starts(test_env, n_episodes, seed=spec.seed)
        with threads:
            t0 = time.perf_counter()
            try:
                agent, trained_steps = _train_agent(cls, kind, spec, split, test_env)
            except _Rejected as exc:
                return RunResult(spec, None, skipped=str(exc))
            train_time = time.perf_counter() - t0
            t0 = time.perf_counter()
            result = _evaluate(agent, test_env, starts, spec.seed)
            eval_time = time.perf_counter() - t0
        if spec.agent == market.reference and not spec.agent_kwargs:
            reference = result.total_return
        else:
            reference = _reference_return(spec, market.reference, test_env, starts)
    finally:
        test_env.close()

    mean = result.mean
    row = {
        "market": spec.market,
        "agent": spec.agent,
        "label": agent_label(spec.agent, cls),
        "seed": spec.seed,
        "kind": kind,
        "uses_future": bool(getattr(cls, "uses_future", False)),
        "score": _score(result.total_return, reference),
        "total_return": result.total_return,
        "annualized_return": mean.get("annualized_return", math.nan),
        "sharpe": mean.get("sharpe", math.nan),
        "max_drawdown": mean.get("max_drawdown", math.nan),
        "turnover": mean.get("turnover", math.nan),
        "n_trades": mean.get("n_trades", math.nan),
        "fees": mean.get("fees_paid", math.nan),
        "costs": _trading_costs(result),
        "reference_agent": market.reference,
        "reference_return": reference,
        "train_steps": trained_steps,
        "n_episodes": result.n_episodes,
        "episode_length": spec.episode_length,
        "train_end": str(split.train.end),
        "test_start": str(split.test.start),
        "test_end": str(market.test_end),
        "train_time_s": train_time,
        "eval_time_s": eval_time,
    }
    curve = None
    if spec.record_curve:  # growth of 1 over the first test episode
        curve = (result.equity_curves[0] / initial_equity).rename(row["label"])
    return RunResult(spec, row, curve=curve)


# --------------------------------------------------------------------------------------------
# The whole grid
# --------------------------------------------------------------------------------------------


def git_revision(path: str | os.PathLike | None = None) -> str:
    """``git rev-parse --short HEAD`` of the repository holding ``path`` (default: the
    quantgym package), or ``"unknown"`` outside a git checkout."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@dataclasses.dataclass
class ComparisonResults:
    """Everything a comparison produced.

    Attributes:
        config: the validated config.
        rows: one dict per run (:data:`RESULT_COLUMNS`), in grid order.
        skipped: ``{"market", "agent", "seed", "reason"}`` of runs whose agent rejected the market.
        curves: ``{market: {label: equity series (growth of 1)}}`` of the first seed.
        git_rev, version, created_at: tags.
        paths: files written by :func:`write_results` / :func:`plot_results`.
    """

    config: ComparisonConfig
    rows: list[dict[str, Any]]
    skipped: list[dict[str, Any]]
    curves: dict[str, dict[str, pd.Series]]
    git_rev: str
    version: str
    created_at: str
    paths: dict[str, Path] = dataclasses.field(default_factory=dict)

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame with :data:`RESULT_COLUMNS`."""
        return pd.DataFrame(self.rows, columns=list(RESULT_COLUMNS))

    def summary(self) -> pd.DataFrame:
        """Mean and std over seeds per market and agent (:func:`summarize`)."""
        return summarize(self.rows)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` payload (NaN written as ``null``)."""
        summary = self.summary().reset_index().to_dict(orient="records") if self.rows else []
        return _json_clean(
            {
                "config": self.config.to_dict(),
                "config_id": self.config.config_id,
                "git_rev": self.git_rev,
                "quantgym_version": self.version,
                "created_at": self.created_at,
                "protocol": {
                    "split": dict(zip(("train", "val", "test"), SPLIT_FRACTIONS, strict=True)),
                    "evaluation": "one deterministic pass over the whole test range"
                    if self.config.episode_length is None
                    else f"{self.config.n_episodes or DEFAULT_N_EPISODES} deterministic "
                    f"episodes of {self.config.episode_length} bars at seeded fixed starts",
                    "score": "normalized_score: cash = 0, reference_agent = 100",
                },
                "rows": self.rows,
                "skipped": self.skipped,
                "summary": summary,
            }
        )


def _json_clean(obj: Any) -> Any:
    """Replace NaN/inf by ``None`` and numpy scalars by Python ones (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): _json_clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _init_worker(threads: int) -> None:
    """Pool initializer: one BLAS/OpenMP thread per worker (set before torch is imported)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def _execute(specs: list[RunSpec], workers: int, progress: bool) -> list[RunResult]:
    from tqdm.auto import tqdm

    results: list[RunResult | None] = [None] * len(specs)
    with tqdm(total=len(specs), desc="runs", unit="run", disable=not progress) as bar:
        if workers == 1:
            for i, spec in enumerate(specs):
                bar.set_postfix_str(spec.run_id, refresh=True)
                results[i] = run_one(spec)
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # spawn: torch and forked BLAS thread pools do not mix.
            pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(1,),
            )
            try:
                # Learners first: the long runs start at once, rule agents fill the gaps.
                order = sorted(range(len(specs)), key=lambda i: specs[i].agent in BASELINE_AGENTS)
                futures = {pool.submit(run_one, specs[i]): i for i in order}
                for future in as_completed(futures):
                    i = futures[future]
                    results[i] = future.result()
                    bar.set_postfix_str(specs[i].run_id, refresh=False)
                    bar.update()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
    return [r for r in results if r is not None]


def run_comparison(
    config: ComparisonConfig,
    *,
    out: str | os.PathLike | None = None,
    progress: bool = True,
    plots: bool = True,
) -> ComparisonResults:
    """Run every :class:`RunSpec` of ``config`` and collect the tagged rows.

    :param out: when given, write ``results.json``, ``results.csv`` and (with matplotlib and
        ``plots``) ``equity_curves.png`` and ``scores.png`` there, atomically.
    :param progress: a tqdm bar over runs (on stderr).
    """
    specs = expand_grid(config)
    outcomes = _execute(specs, config.workers, progress)
    tags = {
        "config_id": config.config_id,
        "git_rev": git_revision(),
        "quantgym_version": quantgym.__version__,
    }
    rows, skipped = [], []
    curves: dict[str, dict[str, pd.Series]] = {}
    for outcome in outcomes:
        spec = outcome.spec
        if outcome.row is None:
            skipped.append(
                {
                    "market": spec.market,
                    "agent": spec.agent,
                    "seed": spec.seed,
                    "reason": outcome.skipped,
                }
            )
            continue
        row = {**outcome.row, **tags}
        rows.append({column: row.get(column) for column in RESULT_COLUMNS})
        if outcome.curve is not None:
            curves.setdefault(spec.market, {})[row["label"]] = outcome.curve
    results = ComparisonResults(
        config=config,
        rows=rows,
        skipped=skipped,
        curves=curves,
        git_rev=tags["git_rev"],
        version=tags["quantgym_version"],
        created_at=pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
    )
    if out is not None:
        write_results(results, out)
        if plots:
            plot_results(results, out)
    return results


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

_SUMMARY_METRICS = (
    "score",
    "total_return",
    "annualized_return",
    "sharpe",
    "max_drawdown",
    "turnover",
    "n_trades",
    "fees",
    "costs",
    "train_time_s",
    "eval_time_s",
)


def summarize(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Mean and std (``ddof=1``; NaN with one seed) of each metric over seeds, indexed by
    ``(market, label)``; markets in first-seen order, agents sorted by mean score (NaN last;
    by mean total return on a market whose reference return is <= 0, where scores flip sign).
    Columns: ``<metric>_mean``, ``<metric>_std``, ``n_seeds``, ``reference_agent``,
    ``reference_return``."""
    if not rows:
        raise ValueError("rows is empty: nothing to summarize")
    frame = pd.DataFrame(list(rows))
    missing = [c for c in ("market", "label", *_SUMMARY_METRICS) if c not in frame]
    if missing:
        raise ValueError(f"rows lack columns {missing}")
    values = frame[list(_SUMMARY_METRICS)].apply(pd.to_numeric, errors="coerce")
    values[["market", "label"]] = frame[["market", "label"]]
    grouped = values.groupby(["market", "label"], sort=False)
    mean = grouped.mean().add_suffix("_mean")
    std = grouped.std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out["n_seeds"] = grouped.size()
    ref = frame.groupby(["market", "label"], sort=False)[["reference_agent", "reference_return"]]
    out["reference_agent"] = ref.first()["reference_agent"]
    out["reference_return"] = ref.mean(numeric_only=True)["reference_return"]
    parts = []
    for market in dict.fromkeys(frame["market"]):
        part = out.loc[[market]]
        # A reference that lost money flips the scores' sign: rank by return there instead.
        key = "score_mean" if part["reference_return"].mean() > 0 else "total_return_mean"
        parts.append(part.sort_values(key, ascending=False, na_position="last"))
    return pd.concat(parts)


_TABLE_COLUMNS = (
    # header, metric, format, show "± std" with several seeds
    ("score", "score", "{:,.1f}", True),
    ("return", "total_return", "{:+,.1%}", True),
    ("ann. return", "annualized_return", "{:+,.1%}", False),
    ("Sharpe", "sharpe", "{:.2f}", True),
    ("max DD", "max_drawdown", "{:.1%}", False),
    ("turnover", "turnover", "{:,.1f}", False),
    ("trades", "n_trades", "{:,.0f}", False),
    ("train s", "train_time_s", "{:.1f}", False),
    ("eval s", "eval_time_s", "{:.1f}", False),
)


def _cell(mean: float, std: float, fmt: str, with_std: bool) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    text = fmt.format(mean)
    if with_std and std is not None and math.isfinite(std):
        text += " ± " + fmt.format(std).lstrip("+")
    return text


def _market_tables(
    results: ComparisonResults,
) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """``(title, headers, rows, notes)`` per market."""
    if not results.rows:
        return []
    summary = results.summary()
    frame = results.frame
    tables = []
    for market in dict.fromkeys(summary.index.get_level_values(0)):
        part = summary.loc[market]
        first = frame[frame["market"] == market].iloc[0]
        ref_name, ref_ret = first["reference_agent"], float(part["reference_return"].mean())
        seeds = int(part["n_seeds"].max())
        title = (
            f"{market}: test {first['test_start'][:10]} .. {first['test_end'][:10]}, "
            f"score = 100 x return / {ref_name}'s ({ref_ret:+.1%}), cash = 0"
            + (f"; mean ± std over {seeds} seeds" if seeds > 1 else "")
        )
        headers = ["agent", *(h for h, _, _, _ in _TABLE_COLUMNS)]
        body = []
        for label, stats in part.iterrows():
            body.append(
                [
                    str(label),
                    *(
                        _cell(stats[f"{m}_mean"], stats[f"{m}_std"], fmt, seeds > 1 and spread)
                        for _, m, fmt, spread in _TABLE_COLUMNS
                    ),
                ]
            )
        refs = (
            frame[frame["market"] == market]
            .groupby("seed", dropna=False)["reference_return"]
            .first()
        )
        notes = _reference_notes(ref_name, refs.to_numpy(dtype=float))
        for item in results.skipped:
            if item["market"] == market and item["seed"] == results.config.seeds[0]:
                notes.append(f"skipped {item['agent']}: {item['reason']}")
        tables.append((title, headers, body, notes))
    return tables


def _reference_notes(name: str, returns: np.ndarray) -> list[str]:
    """Warnings when the score's denominator (the reference return per seed) misleads."""
    losing = int(np.sum(~(returns > 0)))
    if losing == returns.size:
        return [
            f"the reference ({name}) returned {np.mean(returns):+.2%} <= 0: scores are undefined "
            "or sign-flipped on this market; compare returns instead"
        ]
    if losing:
        return [
            f"the reference ({name}) returned <= 0 in {losing} of {returns.size} seeds (min "
            f"{np.min(returns):+.2%}): those seeds' scores are sign-flipped; compare returns"
        ]
    if np.min(returns) < 0.01:
        return [
            f"the reference ({name}) returned only {np.min(returns):+.2%} in a seed: a small "
            "denominator amplifies scores; compare returns too"
        ]
    return []


def _text_row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def format_table(results: ComparisonResults) -> str:
    """Plain-text table per market (agents sorted by score; mean ± std with several seeds)."""
    blocks = []
    for title, headers, body, notes in _market_tables(results):
        widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
        lines = [title, _text_row(headers, widths), _text_row(["-" * w for w in widths], widths)]
        lines += [_text_row(r, widths) for r in body]
        lines += [f"  note: {n}" for n in notes]
        blocks.append("\n".join(lines))
    if not blocks:
        blocks.append("no results (every run was skipped)")
    return "\n\n".join(blocks)


def print_table(results: ComparisonResults, *, file: Any = None) -> None:
    """Print the tables with rich when it is installed, else as :func:`format_table`."""
    file = sys.stdout if file is None else file
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(format_table(results), file=file)
        return
    console = Console(file=file)
    if not console.is_terminal:  # a log file or a pipe: no need to squeeze the table
        console = Console(file=file, width=160)
    tables = _market_tables(results)
    if not tables:
        console.print("no results (every run was skipped)")
    for title, headers, body, notes in tables:
        table = Table(title=title, title_justify="left", show_lines=False)
        for i, header in enumerate(headers):
            table.add_column(header, justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in body:
            table.add_row(*row)
        console.print(table)
        for note in notes:
            console.print(f"  note: {note}", style="dim", highlight=False)


# --------------------------------------------------------------------------------------------
# Files and plots
# --------------------------------------------------------------------------------------------


def write_results(results: ComparisonResults, out: str | os.PathLike) -> dict[str, Path]:
    """Write ``results.json`` (rows, skipped runs, summary, config, tags) and ``results.csv``
    (one row per run, :data:`RESULT_COLUMNS`) into ``out``, atomically."""
    out = Path(out)
    results.paths["json"] = atomic_write_json(out / "results.json", results.to_dict())
    frame = results.frame

    def write_csv(tmp: str) -> None:
        frame.to_csv(tmp, index=False)

    results.paths["csv"] = atomic_write(out / "results.csv", write_csv)
    return {k: results.paths[k] for k in ("json", "csv")}


def _save_figure(fig: Any, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))


def plot_results(results: ComparisonResults, out: str | os.PathLike) -> dict[str, Path]:
    """``equity_curves.png`` (test-range equity, growth of 1, log scale over wide ranges, per
    market, first seed) and ``scores.png`` (normalized score per agent and market, mean ± std over seeds).
    Returns ``{}`` when matplotlib (the ``plot`` extra) is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return {}
    if not results.rows:
        return {}
    out = Path(out)
    written = {}
    markets = list(results.curves)
    if markets:
        fig = Figure(figsize=(11, 4.5 * len(markets)), layout="constrained")
        axes = fig.subplots(len(markets), 1, squeeze=False)[:, 0]
        for ax, market in zip(axes, markets, strict=True):
            what = "test range" if results.config.episode_length is None else "first test episode"
            _equity_axes(
                ax, f"{market}: {what}", results.curves[market], _score_order(results, market)
            )
        written["equity_curves"] = _save_figure(fig, out / "equity_curves.png")

    summary = results.summary()
    score_markets = list(dict.fromkeys(summary.index.get_level_values(0)))
    n_agents = max(len(summary.loc[m]) for m in score_markets)
    fig = Figure(
        figsize=(10, max(2.5, 0.38 * n_agents + 1.2) * len(score_markets)), layout="constrained"
    )
    axes = fig.subplots(len(score_markets), 1, squeeze=False)[:, 0]
    for ax, market in zip(axes, score_markets, strict=True):
        _score_bars(ax, summary.loc[market], market)
    written["scores"] = _save_figure(fig, out / "scores.png")
    results.paths.update(written)
    return written


_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)


def _score_order(results: ComparisonResults, market: str) -> list[str]:
    curves = results.curves.get(market, {})
    ranked = [label for label in results.summary().loc[market].index if label in curves]
    return ranked + [label for label in curves if label not in ranked]


def _equity_axes(ax: Any, title: str, curves: Mapping[str, pd.Series], order: list[str]) -> None:
    """Equity (log scale when it spans ~5x or more); the y range fits the causal agents, so a future-peeking curve far
    above them is clipped and its final value named in the legend."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    honest = [label for label in order if not label.endswith(_FUTURE_TAG)] or order
    values = np.concatenate([curves[label].to_numpy() for label in honest] + [np.ones(1)])
    values = values[np.isfinite(values) & (values > 0)]
    lo, hi = float(values.min()), float(values.max())
    span = max(math.log10(hi / lo), 0.05)
    ylim = (lo / 10 ** (0.06 * span), hi * 10 ** (0.06 * span))
    for i, label in enumerate(order):
        curve = curves[label]
        style: dict[str, Any] = {"lw": 1.4, "color": _COLORS[i % len(_COLORS)]}
        name = label
        if label.endswith(_FUTURE_TAG):
            style = {"lw": 1.0, "ls": "--", "color": "0.45"}
            final = float(curve.iloc[-1])
            if final > ylim[1]:
                multiple = f"{final:,.0f}" if final >= 100 else f"{final:.3g}"
                name = f"{label}: x{multiple} at the end (off scale)"
        ax.plot(curve.index, curve.to_numpy(), label=name, **style)
    log = span >= 0.7  # below ~5x a log axis only hides the ticks
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(*ylim)
    ax.axhline(1.0, color="0.2", lw=0.6)
    scale = "growth of 1, log scale" if log else "growth of 1"
    ax.set_title(f"{title} equity ({scale})", loc="left")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("equity / initial")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def _score_bars(ax: Any, part: pd.DataFrame, market: str) -> None:
    """Horizontal bars, best on top; bars of future-peeking agents beyond the axis are
    clipped and annotated with their value (the oracle would dwarf everything else)."""
    part = part.iloc[::-1]
    labels = list(part.index)
    means = part["score_mean"].to_numpy(dtype=float)
    stds = np.nan_to_num(part["score_std"].to_numpy(dtype=float))
    honest = np.array([not label.endswith(_FUTURE_TAG) for label in labels])
    finite = np.isfinite(means)
    keep = finite & honest if (finite & honest).any() else finite
    lo = min(0.0, float(np.min(means[keep] - stds[keep]))) if keep.any() else 0.0
    hi = max(100.0, float(np.max(means[keep] + stds[keep]))) if keep.any() else 100.0
    pad = 0.12 * (hi - lo)
    xmin, xmax = lo - (pad if lo < 0 else 0.0), hi + pad
    y = np.arange(len(labels))
    colors = [
        "0.6" if not h else ("#2ca02c" if m >= 0 else "#d62728")
        for h, m in zip(honest, means, strict=True)
    ]
    shown = np.clip(np.nan_to_num(means), xmin, xmax)
    ax.barh(y, shown, color=colors, alpha=0.85)
    spread = (stds > 0) & (shown == means)
    if spread.any():  # error bars only where seeds disagree and the bar is not clipped
        ax.errorbar(
            means[spread], y[spread], xerr=stds[spread], fmt="none", ecolor="0.3", capsize=3, lw=1
        )
    step = 0.01 * (xmax - xmin)
    text = {"va": "center", "fontsize": 8}
    for yi, m, s, sd in zip(y, means, shown, stds, strict=True):
        if not math.isfinite(m):
            ax.text(step, yi, "n/a", ha="left", color="0.15", **text)
        elif s != m:  # clipped: the value inside the bar, at its clipped end
            arrow = f"{m:,.1f} ▶" if m > s else f"◀ {m:,.1f}"
            x, ha = (s - step, "right") if m > s else (s + step, "left")
            ax.text(x, yi, arrow, ha=ha, color="white", **text)
        else:  # right of the bar and its error bar (of the zero line for negative scores)
            ax.text(max(s + sd, 0.0) + step, yi, f"{m:,.1f}", ha="left", color="0.15", **text)
    ax.set_yticks(y, labels)
    ax.set_xlim(xmin, xmax)
    ax.axvline(0.0, color="0.2", lw=0.8)
    ax.axvline(100.0, color="0.4", lw=0.8, ls=":")
    ref = part["reference_agent"].iloc[0]
    ax.set_title(f"{market}: normalized score (cash = 0, {ref} = 100)", loc="left")
    ax.grid(True, axis="x", alpha=0.3)
