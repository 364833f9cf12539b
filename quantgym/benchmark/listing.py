"""A suite's cells, and what the agent of each cell is.

:func:`cells_for` expands a validated ``Suite`` into :class:`Cell` s (markets x agents x seeds,
in that order) and the agent-market pairs it leaves out (:func:`not_applicable`: an env-bound
agent that refuses the market, e.g. ``regime_expert`` off the regime market or a portfolio
baseline on a ``TradingEnv`` market; a learner written for the other env, see
:func:`agent_env_ids`).

Every agent class is classified once, here: :func:`agent_kind` (oracle, expert, rule, offline,
online, custom), :func:`agent_role` (future, privileged, causal), :func:`agent_learns` (what it
trains on, if anything). :func:`agent_init_kwargs` and :func:`agent_factory` build a cell's
agent the same way for training (:mod:`~quantgym.benchmark.training`) and scoring
(:mod:`~quantgym.benchmark.scoring`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym

from quantgym import ENV_ID, PORTFOLIO_ENV_ID
from quantgym.benchmark.records import cell_id
from quantgym.policies.references import env_id_for, market_env, market_kind

__all__ = [
    "Cell",
    "accepts_keyword",
    "is_env_bound",
    "agent_kind",
    "agent_role",
    "agent_learns",
    "agent_env_ids",
    "PORTFOLIO_LEARNERS",
    "agent_init_kwargs",
    "agent_factory",
    "not_applicable",
    "cells_for",
]


@dataclasses.dataclass(frozen=True)
class Cell:
    """Everything that changes one record (its canonical JSON is hashed into ``cell_id``).

    Protocol fields that do not apply (window settings on real data, fold settings and dataset
    settings where unused) are ``None``.
    """

    suite: str
    market: str
    agent: str
    seed: int
    protocol: str
    agent_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_steps: int | None = None
    window_bars: int | None = None
    n_windows: int | None = None
    train_bars: int | None = None
    embargo_bars: int | None = None
    n_folds: int | None = None
    fold_train: float | None = None
    fold_test: float | None = None
    dataset_quality: str | None = None
    dataset_steps: int | None = None
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    curve_points: int = 200
    stress: Mapping[str, Any] | None = None
    market_params: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict copy (what a record stores under ``cell``); ``stress`` and
        ``market_params`` (a market variant's generator parameters) only when set, so the ids
        of cells of ordinary suites do not depend on the fields."""
        out = dataclasses.asdict(self)
        out["agent_kwargs"] = dict(self.agent_kwargs)
        out["env_kwargs"] = dict(self.env_kwargs)
        for optional in ("stress", "market_params"):
            if getattr(self, optional) is None:
                del out[optional]
        return out

    @property
    def cell_id(self) -> str:
        """16 hex digits identifying the cell (:func:`~quantgym.benchmark.records.cell_id`)."""
        return cell_id(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))


# --------------------------------------------------------------------------------------------
# Agents: kind, role, what they learn from, how they are built
# --------------------------------------------------------------------------------------------


def accepts_keyword(fn: Any, name: str) -> bool:
    """Whether ``fn`` (a function or class) takes the keyword ``name`` (or any, via ``**``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


#: Learners written for ``PortfolioEnv-v0`` that do not declare ``env_ids`` themselves.
PORTFOLIO_LEARNERS = ("ppo_eiie", "ppo_cross_attention")
#: Modules of quantgym's exact experts (kind ``"expert"``).
_EXPERT_MODULES = ("quantgym.policies.experts", "quantgym.policies.portfolio.kelly")


def is_env_bound(cls: type) -> bool:
    """Whether ``cls`` is one of quantgym's env-bound policies (built on the env it trades):
    the ``TradingEnv`` rules and experts and the portfolio baselines."""
    from quantgym.policies.binding import EnvBoundAgent
    from quantgym.policies.portfolio.binding import PortfolioAgent

    return issubclass(cls, (EnvBoundAgent, PortfolioAgent))


def agent_env_ids(cls: type, name: str = "") -> tuple[str, ...]:
    """The env ids a *learner* trains and acts on: its ``env_ids`` class attribute when it
    declares one, ``PortfolioEnv-v0`` for the names in :data:`PORTFOLIO_LEARNERS`, else
    ``TradingEnv-v0``. (Env-bound agents are asked by building them on the market instead.)"""
    declared = getattr(cls, "env_ids", None)
    if declared:
        return tuple(str(e).removeprefix("quantgym/") for e in declared)
    if name in PORTFOLIO_LEARNERS or getattr(cls, "name", None) in PORTFOLIO_LEARNERS:
        return (PORTFOLIO_ENV_ID.removeprefix("quantgym/"),)
    return (ENV_ID.removeprefix("quantgym/"),)


def agent_kind(cls: type) -> str:
    """``"oracle"`` (uses the future), ``"expert"``, ``"rule"`` (quantgym's env-bound policies),
    ``"offline"`` (``offline = True``), ``"online"`` (has ``fit``) or ``"custom"``."""
    if getattr(cls, "uses_future", False):
        return "oracle"
    module = cls.__module__
    if module.startswith(_EXPERT_MODULES):
        return "expert"
    if module.startswith("quantgym.policies") and is_env_bound(cls):
        return "rule"
    if module.startswith("quantgym.") and getattr(cls, "offline", False):
        return "offline"
    if module.startswith("quantgym.") and callable(getattr(cls, "fit", None)):
        return "online"
    return "custom"


def agent_role(cls: type) -> str:
    """``"future"`` (``uses_future``), ``"privileged"`` (reads hidden state) or ``"causal"``."""
    if getattr(cls, "uses_future", False):
        return "future"
    if getattr(cls, "privileged", False):
        return "privileged"
    return "causal"


def agent_learns(cls: type) -> str | None:
    """What ``cls`` trains on: ``"offline"`` (a dataset), ``"online"`` (an env, it has ``fit``)
    or ``None`` (no ``fit``: nothing to train)."""
    if getattr(cls, "offline", False):
        return "offline"
    if callable(getattr(cls, "fit", None)):
        return "online"
    return None


def agent_init_kwargs(cls: type, cell: Cell) -> dict[str, Any]:
    """The cell's agent kwargs plus ``seed=cell.seed`` when the agent takes one and it was not
    given."""
    kwargs = dict(cell.agent_kwargs)
    config = getattr(cls, "Config", None)
    if isinstance(config, type) and dataclasses.is_dataclass(config):
        takes_seed = "seed" in {f.name for f in dataclasses.fields(config)}
    else:
        takes_seed = accepts_keyword(cls, "seed")
    if takes_seed:
        kwargs.setdefault("seed", cell.seed)
    return kwargs


def agent_factory(cls: type, cell: Cell) -> Callable[[Any], Any]:
    """``make(env) -> agent``: a fresh, untrained agent of the cell for each evaluation env
    (env-bound agents, and agents that take ``env``, bind to it)."""
    kwargs = agent_init_kwargs(cls, cell)
    takes_env = is_env_bound(cls) or accepts_keyword(cls, "env")
    return lambda env: cls(env=env, **kwargs) if takes_env else cls(**kwargs)


@functools.cache
def _probe_env(market: str) -> Any:
    """A small env of ``market``'s kind (synthetic) or on its data (real), of its env id."""
    kind = market_kind(market)
    env_id = env_id_for(market)
    if kind == "real":
        return gym.make(env_id, data=market, episode_length=None)
    return gym.make(
        env_id, market=kind, market_kwargs={"n_bars": 600, "seed": 0}, episode_length=None
    )


def not_applicable(agent: str, market: str) -> str | None:
    """Why ``agent`` does not run on ``market``: an env-bound agent's ``ValueError`` when built on
    it (e.g. ``regime_expert`` off the regime market), or a learner written for the other env
    (:func:`agent_env_ids`); ``None`` when it applies."""
    from quantgym.agents import agent_class

    cls = agent_class(agent)
    if not is_env_bound(cls):
        wanted = env_id_for(market).removeprefix("quantgym/")
        if wanted not in agent_env_ids(cls, agent):
            return f"a learner for {', '.join(agent_env_ids(cls, agent))}; {market} is a {wanted} market"
        return None
    try:
        cls(env=_probe_env(market))
    except ValueError as exc:
        return str(exc)
    return None


def cells_for(suite: Any) -> tuple[list[Cell], list[dict[str, str]]]:
    """Expand a validated ``Suite`` into cells (markets x agents x seeds, in that order) and the
    ``{"market", "agent", "reason"}`` of the pairs skipped because the agent refuses the market."""
    from quantgym.agents import agent_class

    cells, skipped = [], []
    for market in suite.markets:
        synthetic = market_kind(market) != "real"
        for spec in suite.agents:
            if not spec.runs_on(market):
                continue
            reason = not_applicable(spec.name, market)
            if reason is not None:
                skipped.append({"market": market, "agent": spec.name, "reason": reason})
                continue
            learns = agent_learns(agent_class(spec.name))
            own = spec.steps_for(market)
            steps = own if own is not None else suite.train_steps
            for seed in suite.seeds:
                cells.append(
                    Cell(
                        suite=suite.name,
                        market=market,
                        agent=spec.name,
                        seed=seed,
                        protocol="windows" if synthetic else "walk_forward",
                        agent_kwargs=dict(spec.kwargs),
                        train_steps=steps if learns else None,
                        window_bars=suite.window_bars if synthetic else None,
                        n_windows=suite.n_windows if synthetic else None,
                        train_bars=suite.train_bars if synthetic else None,
                        embargo_bars=suite.embargo_bars if synthetic else suite.fold_embargo_bars,
                        n_folds=None if synthetic else suite.n_folds,
                        fold_train=None if synthetic else suite.fold_train,
                        fold_test=None if synthetic else suite.fold_test,
                        dataset_quality=suite.dataset_quality if learns == "offline" else None,
                        dataset_steps=suite.dataset_steps if learns == "offline" else None,
                        env_kwargs=dict(
                            suite.portfolio_env_kwargs
                            if market_env(market) == "portfolio"
                            else suite.env_kwargs
                        ),
                        curve_points=suite.curve_points,
                        stress=suite.stress,
                        market_params=suite.market_params.get(market),
                    )
                )
    return cells, skipped
