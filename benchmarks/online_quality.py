"""Learning curves of the online agents: held-out score with its 95% CI against the training
budget (env steps) and against training wall-clock, one line per agent (or named variant).

    .venv/bin/python benchmarks/online_quality.py                     # regime, seed 0, 3 agents
    .venv/bin/python benchmarks/online_quality.py --agents ppo_mlp --budgets 25000 50000 100000
    .venv/bin/python benchmarks/online_quality.py --seeds 0 1 --market gbm --no-plot
    .venv/bin/python benchmarks/online_quality.py --seeds 0 1 2 --workers 2   # the README's
    .venv/bin/python benchmarks/online_quality.py --market lagged --seeds 0 1 2 \
        --env-kwargs '{"features": "returns"}' --budgets 100000 200000 400000 \
        --variant 'mlp_newest=ppo_mlp:{"recent_bars": 1}' \
        --variant 'mlp_window=ppo_mlp:{"recent_bars": null}' --variant lstm=ppo_lstm \
        --variant attn_last=ppo_transformer \
        --variant 'attn_learned=ppo_transformer:{"pooling": "learned"}' \
        --out benchmarks/results/online_quality_lagged --plot docs/learning_curves_lagged.png

Protocol: the harness's (:mod:`quantgym.benchmark.protocol`) window protocol. For each seed one
long synthetic series; every learner trains from scratch with its *default* hyperparameters
(plus a variant's kwargs) on the first ``--train-bars`` bars, once per budget (a budget is a
separate run, so linear learning-rate schedules anneal over that budget, as a user's
``fit(env, budget)`` would), and trades the ``--n-windows`` disjoint held-out 1,000-bar windows
after the embargo. ``--env-kwargs`` (a JSON object of ``TradingEnv-v0`` kwargs, e.g.
``{"features": "returns", "window_size": 32}``) applies to every cell, training and held-out
envs alike. Scores come from :func:`quantgym.benchmark.statistics.summarize`: 100 x mean log
growth / the market's reference's (:func:`quantgym.policies.references.reference_policy_name`:
``bayes_filter_expert`` on ``regime``, ``lag_expert`` on ``lagged`` ...; cash = 0) with
paired-bootstrap 95% CIs over the (seed, window) keys. The reference, ``sma_crossover`` and
``buy_and_hold`` (those that apply to the market, :func:`reference_agents`) run once per seed
and are drawn as horizontal lines. Wall-clock is the harness's ``timing.train_s`` (one torch
thread per cell), so the second panel compares the encoders at equal CPU time.

Learners: ``--agents NAME ...`` (each line labelled by the agent's name, default kwargs) and/or
``--variant LABEL=AGENT[:JSON]`` (repeatable; the JSON object is the agent's config kwargs, the
line is labelled ``LABEL``; cells of one agent with other kwargs have other cell ids). What the
encoders read of the flat observation (``window_size`` x features market window, oldest row
first, then the account features), at their defaults:

- ``ppo_mlp`` (``recent_bars=1``, ``account_features=["position"]``): the newest window row
  plus the position (:class:`~quantgym.agents.sb3.extractors.RecentBarsExtractor`);
  ``ppo_mlp:{"recent_bars": null}``: every window row plus the position (``{"recent_bars": n}``
  the newest ``n`` rows; add ``"account_features": true`` for all five account features);
- ``ppo_lstm`` (``recent_bars=1``): the newest row each step; its memory carries the past;
- ``ppo_transformer`` (``recent_bars=8``): self-attention over the newest 8 rows, pooled at the
  newest position (``{"pooling": "learned"}``: a learned-query attention pooling over all
  8 positions), plus the newest row's raw features and the account features;
  ``{"recent_bars": null}`` attends over the whole window.

Budgets: ``--budgets`` applies to every learner; without it each agent's
:data:`DEFAULT_BUDGETS` plus its default ``train_steps``; ``--budget-for LABEL=STEPS,...``
gives one learner its own list. ``--paired A B`` (``LABEL@STEPS`` or a reference agent,
repeatable) prints ``A - B`` on the same keys with its paired-bootstrap CI and P(A beats B)
(:func:`paired_differences`), also written to ``--out/paired.csv``.

Every cell is one record in ``--out/results.jsonl`` (resumable with ``--resume``); the curve
table goes to ``--out/curves.csv`` and the plot to ``--plot`` (default
``docs/learning_curves.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from quantgym.files import atomic_write

__all__ = [
    "DEFAULT_AGENTS",
    "DEFAULT_BUDGETS",
    "default_budgets",
    "REFERENCE_AGENTS",
    "Variant",
    "parse_variant",
    "parse_env_kwargs",
    "parse_budget_for",
    "parse_pair_side",
    "paired_differences",
    "reference_agents",
    "describe_run",
    "curve_cells",
    "curve_table",
    "plot_curves",
    "main",
]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_AGENTS = ("ppo_mlp", "ppo_transformer", "ppo_lstm")
#: Budgets (env steps) below each agent's default; :func:`default_budgets` appends the default
#: (its ``Config.train_steps``, read from the agent so the two cannot drift apart).
DEFAULT_BUDGETS: Mapping[str, tuple[int, ...]] = {
    "ppo_mlp": (25_000, 50_000, 100_000),
    "ppo_transformer": (50_000, 100_000, 200_000),
    "ppo_lstm": (100_000, 200_000, 400_000),
}
#: Non-learning agents run next to the learners on ``regime`` (the score's reference and the
#: horizontal lines); other markets: :func:`reference_agents`.
REFERENCE_AGENTS = ("bayes_filter_expert", "sma_crossover", "buy_and_hold")
#: Rules drawn next to every market's reference where they apply.
BASELINE_RULES = ("sma_crossover", "buy_and_hold")
#: Config keys a variant may not set: the budget and the seed come from the cell.
CELL_KEYS = ("train_steps", "seed")
CURVE_COLUMNS = (
    "label",
    "agent",
    "agent_kwargs",
    "budget",
    "steps",
    "train_s",
    "score",
    "score_lo",
    "score_hi",
    "turnover",
    "n_units",
)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A learner on the curves: ``label`` (its line), the registered ``agent`` and the config
    kwargs it is built with (``{}``: the defaults)."""

    label: str
    agent: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, spec: str | Variant) -> Variant:
        """``spec`` itself, or a plain agent name as the variant labelled by that name."""
        if isinstance(spec, Variant):
            return spec
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"agents: expected an agent name or a Variant, got {spec!r}")
        return cls(label=spec, agent=spec)

    def key(self) -> tuple[str, str]:
        """``(agent, canonical JSON of kwargs)``: equal for cells built from this variant."""
        return self.agent, json.dumps(dict(self.kwargs), sort_keys=True)


def _json_object(raw: str, what: str) -> dict[str, Any]:
    """``raw`` parsed as a JSON object; otherwise a ``ValueError`` starting with ``what``."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} are not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {raw!r}")
    return value


def parse_variant(text: str) -> Variant:
    """``"LABEL=AGENT[:JSON]"`` -> :class:`Variant`, e.g. ``'mlp_window=ppo_mlp:{"recent_bars":
    null}'``. The agent must be registered and learn online; the JSON must be an object whose
    keys are fields of the agent's config (not ``train_steps`` or ``seed``: the cell's)."""
    from quantgym.agents.registry import agent_class
    from quantgym.benchmark.listing import agent_learns

    label, sep, rest = text.partition("=")
    label, rest = label.strip(), rest.strip()
    if not sep or not label or not rest:
        raise ValueError(f"--variant {text!r}: expected LABEL=AGENT[:JSON_KWARGS]")
    # the kwargs start at the first ":{" (an agent may be a "package.module:Class" path)
    start = re.search(r":\s*\{", rest)
    agent = (rest if start is None else rest[: start.start()]).strip()
    kwargs: Any = {}
    if start is not None:
        kwargs = _json_object(rest[start.start() + 1 :], f"--variant {text!r}: kwargs")
    try:
        cls = agent_class(agent)
    except ValueError as exc:
        raise ValueError(f"--variant {text!r}: {exc}") from None
    if agent_learns(cls) != "online":
        raise ValueError(f"--variant {text!r}: {agent} is not an online learner")
    fixed = sorted(set(kwargs) & set(CELL_KEYS))
    if fixed:
        raise ValueError(f"--variant {text!r}: {fixed} come from --budgets/--seeds")
    config = getattr(cls, "Config", None)
    if isinstance(config, type) and dataclasses.is_dataclass(config):
        unknown = sorted(set(kwargs) - {f.name for f in dataclasses.fields(config)})
        if unknown:
            raise ValueError(f"--variant {text!r}: {agent} has no config fields {unknown}")
    cls(**kwargs)  # the agent's own checks (ValueError), before any cell runs
    return Variant(label=label, agent=agent, kwargs=kwargs)


def parse_env_kwargs(text: str | None) -> dict[str, Any]:
    """A JSON object of ``TradingEnv-v0`` kwargs for every cell (``None``/empty: ``{}``);
    keys the protocol sets (:data:`quantgym.benchmark.suite.PROTOCOL_ENV_KEYS`) are a
    ``ValueError``."""
    from quantgym.benchmark.suite import PROTOCOL_ENV_KEYS

    if not text:
        return {}
    kwargs = _json_object(text, "--env-kwargs")
    reserved = sorted(set(kwargs) & set(PROTOCOL_ENV_KEYS))
    if reserved:
        raise ValueError(f"--env-kwargs: {reserved} are set by the harness's protocol")
    return kwargs


def reference_agents(market: str) -> tuple[str, ...]:
    """The non-learning agents of ``market``'s curves: its reference
    (:func:`~quantgym.policies.references.reference_policy_name`) first, then
    :data:`BASELINE_RULES` that apply to it (:func:`~quantgym.benchmark.listing.not_applicable`)."""
    from quantgym.benchmark.listing import not_applicable
    from quantgym.benchmark.suite import normalize_market
    from quantgym.policies.references import reference_policy_name

    market = normalize_market(market)
    out = [reference_policy_name(market)]
    out += [a for a in BASELINE_RULES if a not in out and not_applicable(a, market) is None]
    return tuple(out)


def _variants(agents: Sequence[str | Variant]) -> list[Variant]:
    variants = [Variant.of(a) for a in agents]
    labels = [v.label for v in variants]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"agents: labels used twice: {dupes}")
    keys = [v.key() for v in variants]
    same = sorted({v.label for v in variants if keys.count(v.key()) > 1})
    if same:
        raise ValueError(f"agents: variants {same} are the same agent with the same kwargs")
    return variants


def curve_cells(
    market: str,
    agents: Sequence[str | Variant],
    budgets: Mapping[str, Sequence[int]],
    seeds: Sequence[int],
    *,
    n_windows: int = 64,
    window_bars: int = 1000,
    train_bars: int = 20_000,
    embargo_bars: int = 200,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[Any]:
    """The harness cells of a learning curve: the reference agents
    (:func:`reference_agents`) once per seed, each learner once per (budget, seed).

    ``agents`` are agent names or :class:`Variant` s; ``budgets`` is keyed by label (an agent
    name for a plain name); ``env_kwargs`` go to every cell."""
    from quantgym.benchmark import Cell
    from quantgym.benchmark.suite import normalize_market

    market = normalize_market(market)
    variants = _variants(agents)
    env_kwargs = parse_env_kwargs(json.dumps(dict(env_kwargs or {})))
    common: dict[str, Any] = {
        "suite": "online_quality",
        "market": market,
        "protocol": "windows",
        "window_bars": window_bars,
        "n_windows": n_windows,
        "train_bars": train_bars,
        "embargo_bars": embargo_bars,
        "env_kwargs": env_kwargs,
    }
    refs = reference_agents(market)
    clash = sorted({v.label for v in variants} & set(refs))
    if clash:
        raise ValueError(f"agents: labels {clash} are reference agents of {market}")
    cells = [Cell(agent=a, seed=s, **common) for s in seeds for a in refs]
    for v in variants:
        if v.label not in budgets:
            raise ValueError(f"budgets: no budget list for agent {v.label!r}")
        for budget in budgets[v.label]:
            if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
                raise ValueError(
                    f"budgets: {v.label} budget must be a positive int, got {budget!r}"
                )
            cells += [
                Cell(
                    agent=v.agent, seed=s, train_steps=budget, agent_kwargs=dict(v.kwargs), **common
                )
                for s in seeds
            ]
    return cells


def _labeller(variants: Sequence[str | Variant]) -> Any:
    """``record -> label``: the :class:`Variant` label of its agent and kwargs; without one,
    the agent's name (with its kwargs as JSON when it has any)."""
    labels = {v.key(): v.label for v in _variants(variants)}

    def label_of(rec: Mapping[str, Any]) -> str:
        kwargs = dict(rec["cell"].get("agent_kwargs") or {})
        found = labels.get(Variant(rec["agent"], rec["agent"], kwargs).key())
        if found is not None:
            return found
        return (
            rec["agent"] if not kwargs else f"{rec['agent']}:{json.dumps(kwargs, sort_keys=True)}"
        )

    return label_of


def parse_pair_side(text: str) -> tuple[str, int | None]:
    """``"LABEL@STEPS"`` (a learner at a budget) or ``"AGENT"`` (a reference agent)."""
    label, sep, budget = text.partition("@")
    if not label or (sep and not budget.isdigit()):
        raise ValueError(f"--paired {text!r}: expected LABEL@STEPS or a reference agent")
    return label, (int(budget) if sep else None)


def paired_differences(
    records: Sequence[Mapping[str, Any]],
    pairs: Sequence[tuple[str, str]],
    variants: Sequence[str | Variant] = (),
    n_resamples: int = 2000,
) -> pd.DataFrame:
    """For each pair ``(A, B)`` (:func:`parse_pair_side` specs): ``100 x (mean log growth of A
    - B's) / the reference's`` over the (seed, window) keys all three share, its paired-bootstrap
    95% CI (the same keys resampled for A, B and the reference), and the share of keys where A
    grows more (ties 1/2). The reference is the first reference agent's records
    (:func:`reference_agents` of the records' market)."""
    import numpy as np

    from quantgym.benchmark.statistics import bootstrap_ci

    label_of = _labeller(variants)
    growth: dict[tuple[str, int | None], dict[tuple[int, int], float]] = {}
    for rec in records:
        if rec.get("status") != "ok":
            continue
        budget = rec["cell"].get("train_steps")
        side = (label_of(rec), None if budget is None else int(budget))
        for unit in rec["units"]:
            growth.setdefault(side, {})[(rec["seed"], unit["unit"])] = float(unit["log_growth"])
    if not records:
        raise ValueError("paired: no records")
    reference = (reference_agents(records[0]["market"])[0], None)
    rows = []
    for a_text, b_text in pairs:
        a, b = parse_pair_side(a_text), parse_pair_side(b_text)
        missing = [t for t, side in ((a_text, a), (b_text, b)) if side not in growth]
        if missing or reference not in growth:
            raise ValueError(f"paired: no records for {missing or [reference[0]]}")
        keys = sorted(set(growth[a]) & set(growth[b]) & set(growth[reference]))
        ga, gb, gr = (np.array([growth[s][k] for k in keys]) for s in (a, b, reference))

        def stat(x: Any, y: Any, r: Any, axis: int = -1) -> Any:
            return 100.0 * (x.mean(axis) - y.mean(axis)) / r.mean(axis)

        lo, hi = bootstrap_ci(stat, ga, gb, gr, n_resamples=n_resamples)
        wins = float(np.mean((ga > gb) + 0.5 * (ga == gb)))
        rows.append(
            {
                "a": a_text,
                "b": b_text,
                "diff": float(stat(ga, gb, gr)),
                "diff_lo": lo,
                "diff_hi": hi,
                "p_a_beats_b": wins,
                "n_units": len(keys),
            }
        )
    return pd.DataFrame(rows)


def curve_table(
    records: Sequence[Mapping[str, Any]],
    n_resamples: int = 1000,
    variants: Sequence[str | Variant] = (),
) -> pd.DataFrame:
    """One row per (learner, budget) plus one per reference agent (``budget`` NaN): score and CI
    from :func:`~quantgym.benchmark.statistics.summarize`, mean train steps and seconds.

    A learner's record (one with ``train_steps``) is labelled by the :class:`Variant` of
    ``variants`` with its agent and ``agent_kwargs``; without one, by its agent name (with its
    kwargs as JSON when it has any)."""
    from quantgym.benchmark.statistics import summarize

    label_of = _labeller(variants)
    refs = [r for r in records if r["cell"].get("train_steps") is None]
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for rec in records:
        budget = rec["cell"].get("train_steps")
        if budget is not None:
            groups.setdefault((label_of(rec), int(budget)), []).append(rec)
    rows = []
    summary = summarize(refs, n_resamples=n_resamples)
    for _, row in summary.iterrows():
        rows.append({**{k: row[k] for k in ("agent", "score", "score_lo", "score_hi")}})
        rows[-1].update(label=row["agent"], agent_kwargs="{}")
        rows[-1].update(budget=math.nan, steps=math.nan, train_s=math.nan)
        rows[-1].update(turnover=row["turnover"], n_units=row["n_units"])
    for (label, budget), recs in sorted(groups.items()):
        ok = [r for r in recs if r.get("status") == "ok"]
        if not ok:
            continue
        tag = f"{label}@{budget}"
        part = summarize([*refs, *({**r, "agent": tag} for r in ok)], n_resamples=n_resamples)
        row = part[part["agent"] == tag].iloc[0]
        steps = [r["train"].get("steps") for r in ok if isinstance(r["train"].get("steps"), int)]
        rows.append(
            {
                "label": label,
                "agent": ok[0]["agent"],
                "agent_kwargs": json.dumps(
                    dict(ok[0]["cell"].get("agent_kwargs") or {}), sort_keys=True
                ),
                "budget": budget,
                "steps": sum(steps) / len(steps) if steps else math.nan,
                "train_s": sum(r["timing"]["train_s"] for r in ok) / len(ok),
                "score": row["score"],
                "score_lo": row["score_lo"],
                "score_hi": row["score_hi"],
                "turnover": row["turnover"],
                "n_units": row["n_units"],
            }
        )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))


def plot_curves(
    table: pd.DataFrame, path: str | os.PathLike, title: str = "", reference: str | None = None
) -> Path:
    """Two panels (score vs env steps, score vs training seconds), one line per learner label
    with its 95% CI band; the reference agents as horizontal lines; the y axis names
    ``reference`` (default: the first reference row). Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    learners = table[table["budget"].notna()]
    refs = table[table["budget"].isna()]
    for ax, x, xlabel in (
        (axes[0], "steps", "training env steps"),
        (axes[1], "train_s", "training wall-clock (s, one torch thread)"),
    ):
        for label, part in learners.groupby("label", sort=False):
            part = part.sort_values(x)
            (line,) = ax.plot(part[x], part["score"], marker="o", label=str(label))
            ax.fill_between(
                part[x], part["score_lo"], part["score_hi"], color=line.get_color(), alpha=0.2
            )
        for style, (_, ref) in zip(("--", ":", "-."), refs.iterrows(), strict=False):
            ax.axhline(ref["score"], color="grey", linestyle=style, linewidth=1, label=ref["agent"])
        ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if reference is None:
        reference = str(refs["agent"].iloc[0]) if len(refs) else "reference"
    axes[0].set_ylabel(f"held-out score ({reference} = 100, cash = 0)")
    axes[1].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def parse_budget_for(text: str) -> tuple[str, tuple[int, ...]]:
    """``"LABEL=B1,B2,..."`` -> ``(LABEL, (B1, B2, ...))``: one learner's own budget list."""
    label, sep, rest = text.partition("=")
    label = label.strip()
    try:
        budgets = tuple(int(b) for b in rest.split(","))
    except ValueError:
        budgets = ()
    if not sep or not label or not budgets or min(budgets) < 1:
        raise ValueError(f"--budget-for {text!r}: expected LABEL=STEPS[,STEPS...] (positive ints)")
    return label, budgets


def _budgets(
    variants: Sequence[Variant],
    given: Sequence[int] | None,
    per_label: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, tuple[int, ...]]:
    """Each variant's budget list: its ``per_label`` entry, else ``given`` (``--budgets``), else
    its agent's :func:`default_budgets`."""
    per_label = dict(per_label or {})
    unknown = sorted(set(per_label) - {v.label for v in variants})
    if unknown:
        raise ValueError(f"--budget-for: no learner labelled {unknown}")
    rest = [v for v in variants if v.label not in per_label]
    out = {label: tuple(b) for label, b in per_label.items()}
    if given:
        return {**out, **{v.label: tuple(given) for v in rest}}
    missing = sorted({v.agent for v in rest if v.agent not in DEFAULT_BUDGETS})
    if missing:
        raise ValueError(f"--budgets is required for agents without default budgets: {missing}")
    defaults = default_budgets(sorted({v.agent for v in rest}))
    return {**out, **{v.label: defaults[v.agent] for v in rest}}


def default_budgets(agents: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """:data:`DEFAULT_BUDGETS` of each agent plus its default budget (``train_steps``)."""
    from quantgym.agents.registry import agent_class

    out = {}
    for agent in agents:
        cls: Any = agent_class(agent)
        default = int(cls.Config().train_steps)
        out[agent] = tuple(sorted({*DEFAULT_BUDGETS[agent], default}))
    return out


def describe_run(market: str, env_kwargs: Mapping[str, Any]) -> str:
    """``"synthetic:lagged, env {"features": "returns"}"``: the market and its env kwargs, as
    the plot's title states them."""
    env = json.dumps(dict(env_kwargs), sort_keys=True) if env_kwargs else "default env"
    return f"{market}, {env}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--market", default="regime", help="synthetic market (default regime)")
    parser.add_argument(
        "--agents",
        nargs="+",
        help=f"learners by name, default kwargs (default {' '.join(DEFAULT_AGENTS)} unless "
        "--variant is given)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=AGENT[:JSON]",
        help="a learner with config kwargs, its line labelled LABEL (repeatable)",
    )
    parser.add_argument(
        "--env-kwargs", default="", metavar="JSON", help="TradingEnv-v0 kwargs of every cell"
    )
    parser.add_argument("--budgets", nargs="+", type=int, help="env steps, for every agent")
    parser.add_argument(
        "--budget-for",
        action="append",
        default=[],
        metavar="LABEL=STEPS[,STEPS...]",
        help="one learner's own budgets, instead of --budgets (repeatable)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--n-windows", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/online_quality")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs/learning_curves.png")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--resume", action="store_true", help="skip cells already in --out")
    parser.add_argument(
        "--paired",
        nargs=2,
        action="append",
        default=[],
        metavar=("A", "B"),
        help="print A - B on the same keys with its paired CI (LABEL@STEPS or a reference "
        "agent; repeatable); written to --out/paired.csv",
    )
    parser.add_argument("--workers", type=int, default=1, help="cells run in parallel processes")
    args = parser.parse_args(argv)

    from quantgym.benchmark import RESULTS_FILE, read_records, run_cells
    from quantgym.benchmark.records import completed_ids, latest_by_cell

    try:
        env_kwargs = parse_env_kwargs(args.env_kwargs)
        names = args.agents if args.agents or args.variant else list(DEFAULT_AGENTS)
        variants = _variants([*(names or []), *(parse_variant(v) for v in args.variant)])
        per_label = dict(parse_budget_for(b) for b in args.budget_for)
        for side in (side for pair in args.paired for side in pair):
            parse_pair_side(side)
        budgets = _budgets(variants, args.budgets, per_label)
        cells = curve_cells(
            args.market,
            variants,
            budgets,
            args.seeds,
            n_windows=args.n_windows,
            env_kwargs=env_kwargs,
        )
    except ValueError as exc:
        parser.error(str(exc))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / RESULTS_FILE
    done = completed_ids(read_records(path)) if args.resume and path.exists() else set()
    if not args.resume and path.exists():
        os.replace(path, path.with_name(RESULTS_FILE + ".bak"))
    run_cells([c for c in cells if c.cell_id not in done], path, workers=args.workers)
    wanted = {c.cell_id for c in cells}
    records = [r for r in latest_by_cell(read_records(path)) if r["cell_id"] in wanted]
    failed = [r for r in records if r.get("status") != "ok"]
    for rec in failed:
        print(f"FAILED {rec['agent']} seed {rec['seed']}:\n{rec.get('error')}", file=sys.stderr)
    table = curve_table(records, variants=variants)

    def write_csv(tmp: str) -> None:
        table.to_csv(tmp, index=False, float_format="%.4g")

    atomic_write(args.out / "curves.csv", write_csv)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        shown = table.drop(columns=["agent_kwargs"])
        print(table_header(cells[0].market, env_kwargs))
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        if args.paired:
            try:
                paired = paired_differences(records, args.paired, variants)
            except ValueError as exc:
                parser.error(str(exc))
            atomic_write(
                args.out / "paired.csv",
                lambda tmp: paired.to_csv(tmp, index=False, float_format="%.4g"),
            )
            print("paired differences (score points, 95% paired-bootstrap CI):")
            print(paired.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if not args.no_plot:
        title = (
            f"{describe_run(cells[0].market, env_kwargs)}; seeds {args.seeds}, "
            f"{args.n_windows} held-out windows each"
        )
        reference = reference_agents(cells[0].market)[0]
        print(f"plot: {plot_curves(table, args.plot, title, reference=reference)}")
    return 1 if failed else 0


def table_header(market: str, env_kwargs: Mapping[str, Any]) -> str:
    """The line printed above the curve table: market, env kwargs and the reference."""
    reference = reference_agents(market)[0]
    return f"{describe_run(market, env_kwargs)}; score: {reference} = 100, cash = 0"


if __name__ == "__main__":
    raise SystemExit(main())
