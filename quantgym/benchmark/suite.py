"""Benchmark suites: which markets, agents, seeds and budgets, and the protocol settings.

A :class:`Suite` is a dataclass loadable from YAML (``benchmarks/suites/<name>.yaml``, found by
name, or any path): ``load_suite("smoke")``. :meth:`Suite.with_overrides` applies the CLI's
``--markets --agents --seeds --train-steps``. Every field is validated with a ``ValueError``
naming it.

YAML keys are the fields of :class:`Suite`; ``agents`` entries are a registered name, a
``"package.module:Class"`` path, ``"all"`` (every registered agent that imports, wrappers
excluded) or a mapping ``{name: ..., kwargs: {...}, train_steps: N, markets: [...],
optional: true}`` (``optional``: dropped with a warning when the agent is not registered or does
not import, so a suite can name learners that are still being written).

Markets of both envs may share a suite: ``TradingEnv-v0`` markets (``synthetic:regime`` ...,
``sample:googl``, CSV paths) get ``env_kwargs``; ``PortfolioEnv-v0`` markets
(``synthetic:factor_regime``, the bundled multi-asset samples ``sample:nyse_o`` ...
``sample:sp500_20``) get ``portfolio_env_kwargs``. An agent runs only on the markets of its env.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from quantgym.benchmark.stress_spec import StressSpec
from quantgym.checks import check_fraction, check_optional_positive_int, check_positive_int
from quantgym.policies.references import (
    PORTFOLIO_SAMPLE_MARKETS,
    PORTFOLIO_SYNTHETIC_KINDS,
    SYNTHETIC_KINDS,
    market_env,
    market_kind,
)

__all__ = [
    "AgentSpec",
    "Suite",
    "SUITES_DIR",
    "WRAPPER_AGENTS",
    "SAMPLE_MARKETS",
    "ALL_SYNTHETIC_KINDS",
    "load_suite",
    "list_suites",
    "normalize_market",
    "PROTOCOL_ENV_KEYS",
    "available_agents",
]

#: Where ``load_suite(name)`` looks for ``<name>.yaml``.
SUITES_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "suites"
#: Registered agents that wrap another policy and cannot be benchmarked by name alone.
WRAPPER_AGENTS = ("epsilon_mix",)
#: Bundled real-data samples: single-asset (``quantgym.envs.sample_data``) and multi-asset
#: (``quantgym.envs.portfolio.samples``, traded by ``PortfolioEnv-v0``).
SAMPLE_MARKETS = ("sample:googl", "sample:eurusd", *PORTFOLIO_SAMPLE_MARKETS)
#: Synthetic kinds of both envs.
ALL_SYNTHETIC_KINDS = SYNTHETIC_KINDS + PORTFOLIO_SYNTHETIC_KINDS


def normalize_market(market: Any) -> str:
    """``"regime"`` -> ``"synthetic:regime"``; a variant ``"regime@hourly"`` ->
    ``"synthetic:regime@hourly"`` (``LABEL``: letters, digits, ``_``, ``-``; its generator
    parameters are the suite's ``market_params``); samples and existing CSV paths as given;
    anything else raises ``ValueError`` listing the valid markets."""
    if isinstance(market, str):
        name, sep, label = market.removeprefix("synthetic:").partition("@")
        if sep and name in SYNTHETIC_KINDS:
            if not re.fullmatch(r"[A-Za-z0-9_-]+", label):
                raise ValueError(
                    f"markets: variant {market!r}: the label after '@' must be letters, "
                    "digits, '_' or '-'"
                )
            return f"synthetic:{name}@{label}"
        if not sep and name in ALL_SYNTHETIC_KINDS:
            return f"synthetic:{name}"
        if market in SAMPLE_MARKETS:
            return market
        if market.endswith((".csv", ".csv.gz")) and os.path.isfile(market):
            return market
    valid = [f"synthetic:{k}" for k in ALL_SYNTHETIC_KINDS] + list(SAMPLE_MARKETS)
    raise ValueError(
        f"markets: unknown market {market!r}; valid: {', '.join(valid)}, a variant "
        "synthetic:KIND@LABEL of a TradingEnv-v0 kind, or an OHLCV .csv path"
    )


def available_agents() -> list[str]:
    """Registered agents whose class imports (offline agents appear once their module exists),
    wrappers excluded."""
    from quantgym.agents.registry import agent_class, list_agents

    names = []
    for name in list_agents():
        if name in WRAPPER_AGENTS:
            continue
        try:
            agent_class(name)
        except ValueError as exc:
            warnings.warn(f"agent {name!r} is registered but does not import: {exc}", stacklevel=2)
            continue
        names.append(name)
    return names


def _check_open_fraction(field: str, value: Any) -> float:
    """A fraction strictly inside (0, 1) (a fold of no or of all bars is meaningless)."""
    fraction = check_fraction(field, value)
    if fraction in (0.0, 1.0):
        raise ValueError(f"{field} must be a fraction in (0, 1), got {value!r}")
    return fraction


@dataclasses.dataclass
class AgentSpec:
    """One agent of a suite: registered name or ``"package.module:Class"``, constructor kwargs,
    its training budget, the markets it runs on (``None``: all of the suite's) and whether it
    is ``optional`` (dropped with a warning when it is not registered or does not import).

    ``train_steps`` is an int, or a mapping from a market name or kind (``"regime"``, ``"gbm"``,
    ``"mean_reversion"``, ``"real"``) or ``"default"`` to an int (walk-forward cells train once
    per fold, so real data often gets a smaller budget); ``None`` or a market the mapping
    lacks: the suite's ``train_steps``, else the agent's own default.
    """

    name: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    train_steps: int | dict[str, int] | None = None
    markets: list[str] | None = None
    optional: bool = False

    def runs_on(self, market: str) -> bool:
        """Whether this agent runs on ``market`` (``markets=None``: every market of the suite)."""
        return self.markets is None or market in self.markets

    def steps_for(self, market: str) -> int | None:
        """This agent's budget on ``market`` (``None``: not set here)."""
        if not isinstance(self.train_steps, Mapping):
            return self.train_steps
        from quantgym.policies.references import market_kind

        for key in (market, market.removeprefix("synthetic:"), market_kind(market), "default"):
            if key in self.train_steps:
                return int(self.train_steps[key])
        return None

    @classmethod
    def parse(cls, value: Any) -> AgentSpec:
        """From a name or a ``{name, kwargs, train_steps}`` mapping."""
        if isinstance(value, AgentSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"name", "kwargs", "train_steps", "markets", "optional"}
            if unknown or "name" not in value:
                raise ValueError(
                    f"agents: entry {dict(value)!r} needs 'name' and only 'kwargs', "
                    "'train_steps', 'markets', 'optional'"
                )
            optional = value.get("optional", False)
            if not isinstance(optional, bool):
                raise ValueError(f"agents[{value['name']}].optional must be true or false")
            return cls(
                str(value["name"]),
                dict(value.get("kwargs") or {}),
                value.get("train_steps"),
                value.get("markets"),
                optional,
            )
        raise ValueError(f"agents: entry must be a name or a mapping, got {value!r}")

    def validate(self) -> AgentSpec:
        from quantgym.agents.registry import agent_class

        if self.name in WRAPPER_AGENTS:
            raise ValueError(f"agents: {self.name!r} wraps another policy; benchmark the policy")
        agent_class(self.name)  # ValueError naming the agent when unknown / not importable
        if not isinstance(self.kwargs, Mapping):
            raise ValueError(f"agents[{self.name}].kwargs must be a mapping, got {self.kwargs!r}")
        if self.markets is not None:
            if isinstance(self.markets, str) or not isinstance(self.markets, Sequence):
                raise ValueError(
                    f"agents[{self.name}].markets must be a list, got {self.markets!r}"
                )
            self.markets = [normalize_market(m) for m in self.markets]
        field = f"agents[{self.name}].train_steps"
        if isinstance(self.train_steps, Mapping):
            valid = {*ALL_SYNTHETIC_KINDS, "real", "default"}
            for key, steps in self.train_steps.items():
                if key not in valid:
                    normalize_market(key)  # ValueError unless a market name
                check_positive_int(f"{field}[{key}]", steps)
            self.train_steps = dict(self.train_steps)
        else:
            self.train_steps = check_optional_positive_int(field, self.train_steps)
        return self


@dataclasses.dataclass
class Suite:
    """A benchmark: the grid ``markets x agents x seeds`` and the protocol every cell shares.

    Attributes:
        name: tag written into every record (``cell.suite``) and the default output folder.
        markets: ``synthetic:<kind>``, ``sample:<name>``, CSV paths, or variants
            ``synthetic:<kind>@<label>`` of a ``TradingEnv-v0`` synthetic kind.
        market_params: each variant's generator parameters (``{"synthetic:regime@hourly":
            {"freq": "h", "mean_duration": 50}}``: the kind's ``generate_market`` kwargs, not
            ``n_bars`` or ``seed``, which the protocol sets); every variant in ``markets``
            needs an entry and every entry a variant in ``markets``. A variant is its own
            market in the report, with its base kind's reference.
        agents: :class:`AgentSpec` s (``"all"`` expands to :func:`available_agents`).
        seeds: one cell per seed; on synthetic markets the series itself depends on the seed.
        train_steps: learners' budget for agents without their own (``None``: their default).
        window_bars, n_windows, train_bars, embargo_bars: synthetic protocol (see ``protocol``).
        n_folds, fold_train, fold_test, fold_embargo_bars: walk-forward on real data (fractions
            of the tradable bars for the first train window and each test fold).
        env_kwargs: ``TradingEnv`` kwargs of every env (costs, ``window_size`` ...).
        portfolio_env_kwargs: ``PortfolioEnv`` kwargs of every env on a portfolio market.
        dataset_quality, dataset_steps: offline learners' training data (collected on the
            cell's train range only).
        curve_points: points of the stored equity/drawdown quantile curves.
        stress: the probes of a stress suite
            (:class:`~quantgym.benchmark.stress_spec.StressSpec`; ``None``: an ordinary suite).
    """

    name: str = "custom"
    markets: list[str] = dataclasses.field(default_factory=lambda: ["synthetic:regime"])
    market_params: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    agents: list[AgentSpec] = dataclasses.field(default_factory=list)
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    train_steps: int | None = None
    window_bars: int = 1000
    n_windows: int = 64
    train_bars: int = 20_000
    embargo_bars: int = 200
    n_folds: int = 5
    fold_train: float = 0.45
    fold_test: float = 0.1
    fold_embargo_bars: int = 20
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    portfolio_env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset_quality: str = "mixed"
    dataset_steps: int = 50_000
    curve_points: int = 200
    stress: dict[str, Any] | None = None

    def validate(self) -> Suite:
        """Check and normalise every field (``ValueError`` naming it); returns ``self``."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for field in ("markets", "agents", "seeds"):
            value = getattr(self, field)
            if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
                raise ValueError(f"{field} must be a list, got {value!r}")
            if not value:
                raise ValueError(f"{field} must not be empty")
        self.markets = list(dict.fromkeys(normalize_market(m) for m in self.markets))
        self.market_params = _check_market_params(self.markets, self.market_params)
        specs: list[AgentSpec] = []
        explicit: set[str] = set()
        for entry in self.agents:
            if entry == "all":
                specs += [AgentSpec(n) for n in available_agents()]
                continue
            spec = AgentSpec.parse(entry)
            if spec.name in explicit:  # one configuration per name: records are keyed by it
                raise ValueError(
                    f"agents: {spec.name!r} is listed twice; a suite runs one configuration of "
                    "each agent (compare two with separate suites, or benchmarks/online_quality.py "
                    "--variant)"
                )
            explicit.add(spec.name)
            specs.append(spec)
        seen: dict[str, AgentSpec] = {}
        for spec in specs:  # an explicit entry after "all" replaces the plain one
            try:
                seen[spec.name] = spec.validate()
            except ValueError as exc:
                if not spec.optional:
                    raise
                warnings.warn(f"optional agent {spec.name!r} left out: {exc}", stacklevel=2)
        if not seen:
            raise ValueError("agents: no agent left (every optional agent is unavailable)")
        self.agents = list(seen.values())
        for seed in self.seeds:
            check_positive_int("seeds", seed, minimum=0)
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds has duplicates: {self.seeds!r}")
        self.seeds = [int(s) for s in self.seeds]
        self.train_steps = check_optional_positive_int("train_steps", self.train_steps)
        for field, minimum in (
            ("window_bars", 2),
            ("n_windows", 1),
            ("train_bars", 1),
            ("embargo_bars", 0),
            ("n_folds", 1),
            ("fold_embargo_bars", 0),
            ("dataset_steps", 3),
            ("curve_points", 2),
        ):
            setattr(self, field, check_positive_int(field, getattr(self, field), minimum=minimum))
        self.fold_train = _check_open_fraction("fold_train", self.fold_train)
        self.fold_test = _check_open_fraction("fold_test", self.fold_test)
        if self.fold_train + self.n_folds * self.fold_test > 1.0:
            raise ValueError(
                f"fold_train + n_folds * fold_test = {self.fold_train + self.n_folds * self.fold_test:g}"
                " > 1: the walk-forward folds do not fit in the data"
            )
        for field in ("env_kwargs", "portfolio_env_kwargs"):
            kwargs = getattr(self, field)
            if not isinstance(kwargs, Mapping):
                raise ValueError(f"{field} must be a mapping, got {kwargs!r}")
            for key in PROTOCOL_ENV_KEYS:
                if key in kwargs:
                    raise ValueError(
                        f"{field}[{key!r}] is set by the harness's protocol; remove it"
                    )
            setattr(self, field, dict(kwargs))
        if self.stress is not None:
            self.stress = StressSpec.from_mapping(self.stress).to_dict()
            portfolio = [m for m in self.markets if market_env(m) == "portfolio"]
            if portfolio:
                raise ValueError(
                    f"stress suites trade TradingEnv-v0 markets; remove {portfolio} (the "
                    "portfolio env's cost sweep is benchmarks/cost_sweep.py)"
                )
        from quantgym.datasets.presets import QUALITIES

        if self.dataset_quality not in QUALITIES:
            raise ValueError(
                f"dataset_quality must be one of {QUALITIES}, got {self.dataset_quality!r}"
            )
        return self

    def with_overrides(
        self,
        *,
        markets: Sequence[str] | None = None,
        agents: Sequence[Any] | None = None,
        seeds: Sequence[int] | None = None,
        train_steps: int | None = None,
    ) -> Suite:
        """Copy with the given fields replaced (``None`` keeps the suite's); ``train_steps``
        replaces every agent's own budget too. Validated."""
        new = dataclasses.replace(self)
        if markets is not None:
            new.markets = list(markets)
            kept = {normalize_market(m) for m in markets}
            new.market_params = {k: v for k, v in self.market_params.items() if k in kept}
        if agents is not None:
            own = {a.name: a for a in self.agents}
            new.agents = [
                own.get(a) or AgentSpec(a) if isinstance(a, str) else AgentSpec.parse(a)
                for a in agents
            ]
        if seeds is not None:
            new.seeds = list(seeds)
        if train_steps is not None:
            new.train_steps = train_steps
            new.agents = [
                dataclasses.replace(AgentSpec.parse(a), train_steps=None) for a in new.agents
            ]
        return new.validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (round-trips through :meth:`from_dict`)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "suite") -> Suite:
        """Build and validate from a mapping (unknown keys raise ``ValueError`` naming ``source``)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: a suite must be a mapping, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"{source}: unknown suite fields {unknown}; valid: {sorted(fields)}")
        values = dict(data)
        values["agents"] = list(values.get("agents") or [])
        return cls(**values).validate()


#: Env kwargs the harness's protocol sets itself (the market, its range, the episode).
PROTOCOL_ENV_KEYS = ("data", "market", "start", "end", "episode_length", "market_kwargs")
#: Generator kwargs a variant may not set: the protocol's (series length and seed per cell).
PROTOCOL_MARKET_KEYS = ("n_bars", "seed")


def _check_market_params(markets: Sequence[str], params: Any) -> dict[str, dict[str, Any]]:
    """``market_params`` normalised (keys as :func:`normalize_market`), with one entry per
    variant of ``markets`` and none for other markets; each entry generates a small market
    (the generator's own ``ValueError`` names a bad parameter)."""
    from quantgym.envs.synthetic import generate_market

    if not isinstance(params, Mapping):
        raise ValueError(f"market_params must be a mapping, got {params!r}")
    out: dict[str, dict[str, Any]] = {}
    for key, value in params.items():
        market = normalize_market(key)
        if "@" not in market:
            raise ValueError(
                f"market_params[{key!r}]: only variants (synthetic:KIND@LABEL) take parameters"
            )
        if market not in markets:
            raise ValueError(f"market_params[{key!r}]: {market} is not in markets")
        if not isinstance(value, Mapping) or not value:
            raise ValueError(f"market_params[{key!r}] must be a non-empty mapping, got {value!r}")
        reserved = sorted(set(value) & set(PROTOCOL_MARKET_KEYS))
        if reserved:
            raise ValueError(f"market_params[{key!r}]: {reserved} are set by the protocol")
        try:
            generate_market(market_kind(market), n_bars=300, seed=0, **dict(value))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"market_params[{key!r}]: {exc}") from None
        out[market] = dict(value)
    missing = [m for m in markets if "@" in m and m not in out]
    if missing:
        raise ValueError(f"markets: variants {missing} have no market_params entry")
    return out


def list_suites() -> list[str]:
    """Names of the suites in :data:`SUITES_DIR`."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """Load ``benchmarks/suites/<name>.yaml`` or a YAML file path; the suite's ``name``
    defaults to the file's stem."""
    import yaml

    path = Path(name_or_path)
    if not path.suffix and not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(
            f"suite {str(name_or_path)!r} is neither a YAML file nor one of {list_suites()}"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: invalid YAML: {exc}") from None
    if isinstance(data, Mapping):
        data = {"name": path.stem, **data}
    return Suite.from_dict(data, source=str(path))
