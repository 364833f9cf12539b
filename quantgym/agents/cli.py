"""``quantgym train`` and ``quantgym evaluate``: the agent sub-commands of the console script.

``quantgym.cli`` calls :func:`add_agent_parsers` on its sub-parsers::

    quantgym train ppo_lstm --market regime --steps 200000 --out runs/x
    quantgym evaluate runs/x --data sample:googl

``train`` builds a registered agent (config overrides with ``--set key=value``) and saves it
to ``--out``. Online agents train on ``TradingEnv-v0`` made from the env options; offline
agents (``bc``, ``cql``, ``dt``, ``dt_d3rlpy``, ``supervised``) train on a saved dataset::

    quantgym dataset make --market regime --quality mixed --steps 100000 --out data/mixed
    quantgym train dt --dataset data/mixed.npz --steps 5000 --out runs/dt

and their ``env.json`` records the env kwargs the dataset was collected with, so
``quantgym evaluate runs/dt`` rebuilds that market (``--start``/``--end``/``--data`` pick the
evaluation range).
``quantgym train ... --checkpoint-every N`` writes verified checkpoints to ``OUT/checkpoints``;
``quantgym train ppo_mlp --resume runs/x --steps T`` continues that run up to ``T`` steps.
``evaluate`` loads a saved agent (never unpickling: ``--trust`` is needed for folders
written by plain SB3 or an older quantgym), rebuilds the env it trained on (its saved env kwargs) with
the data/range options replaced, runs :func:`quantgym.evaluation.evaluate` and prints a
metrics table next to cash and the reference policy, with the normalised score;
``--tearsheet out.html`` also writes quantstats' tearsheet of the episodes (joined in time order,
so they must not overlap: the default single pass qualifies) against the reference policy on the
same episodes (:func:`quantgym.tearsheet.evaluation_tearsheet`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any

from quantgym import ENV_ID

__all__ = [
    "add_agent_parsers",
    "add_env_arguments",
    "env_kwargs_from_args",
    "parse_assignments",
    "format_table",
    "run_train",
    "run_train_offline",
    "run_evaluate",
]

TABLE_METRICS = (
    "total_return",
    "annualized_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "turnover",
    "n_trades",
    "fees_paid",
)


def parse_assignments(items: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """``["a=1", "b=[64, 64]", "c=tanh"]`` -> ``{"a": 1, "b": [64, 64], "c": "tanh"}`` (JSON values,
    bare strings otherwise)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"{option} expects key=value, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def add_env_arguments(parser: argparse.ArgumentParser, *, for_eval: bool = False) -> None:
    """Env options shared by ``train`` and ``evaluate``."""
    group = parser.add_argument_group("environment")
    source = group.add_mutually_exclusive_group()
    source.add_argument(
        "--data", help="data source: CSV path, 'sample:googl', 'synthetic:gbm', ..."
    )
    source.add_argument(
        "--market", help="synthetic market kind when no --data (regime, gbm, mean_reversion)"
    )
    group.add_argument("--start", help="first tradable date (inclusive)")
    group.add_argument("--end", help="last date loaded (inclusive)")
    group.add_argument("--window-size", type=int, help="bars in the observation window")
    group.add_argument(
        "--episode-length",
        type=int,
        help="steps per episode"
        + (" (default: one pass over the whole range)" if for_eval else ""),
    )
    group.add_argument(
        "--env-set", action="append", metavar="KEY=VALUE", help="any other TradingEnv kwarg"
    )


def env_kwargs_from_args(
    args: argparse.Namespace, base: dict[str, Any] | None = None
) -> dict[str, Any]:
    """TradingEnv kwargs: ``base`` (e.g. the env a saved agent trained on) updated by the options."""
    kwargs = dict(base or {})
    if args.data is not None:
        kwargs["data"] = args.data
        kwargs.pop("market", None)
        kwargs.pop("market_kwargs", None)
    elif args.market is not None:
        kwargs.pop("data", None)
        kwargs["market"] = args.market
    for key in ("start", "end", "window_size", "episode_length"):
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = value
    kwargs.update(parse_assignments(args.env_set, "--env-set"))
    return kwargs


def add_agent_parsers(subparsers: Any) -> None:
    """Register ``train`` and ``evaluate`` on an ``argparse`` sub-parsers object."""
    train = subparsers.add_parser(
        "train",
        help="train an agent (online on TradingEnv-v0, offline on --dataset) and save it",
        description="Train a registered agent and save it to --out: an online agent (ppo_mlp, "
        "ppo_lstm, ppo_transformer) on TradingEnv-v0, an offline agent (bc, cql, dt, dt_d3rlpy, "
        "supervised) on a saved TrajectoryDataset given with --dataset, or "
        "'package.module:Class'.",
    )
    train.add_argument("agent", help="registered agent name or 'package.module:Class'")
    train.add_argument(
        "--dataset",
        default=None,
        help="saved TrajectoryDataset (offline agents; read with TrajectoryDataset.load)",
    )
    train.add_argument(
        "--steps",
        type=int,
        default=None,
        help="env steps (online) or gradient steps (offline); default: the agent's config",
    )
    train.add_argument(
        "--out", default=None, help="directory to save the trained agent to (default: --resume's)"
    )
    train.add_argument("--seed", type=int, default=None, help="training seed (config.seed)")
    train.add_argument("--n-envs", type=int, default=None, help="parallel envs (config.n_envs)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="agent config override")
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="save every N env steps to OUT/checkpoints (verified, atomic; resume with --resume)",
    )
    train.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="continue the run whose last checkpoint is RUN/checkpoints/latest.json (or the "
        "checkpoint folder RUN): weights, optimizer, VecNormalize, step counter and RNG state; "
        "--steps is the run's total",
    )
    train.add_argument(
        "--tensorboard-log", default=None, help="TensorBoard directory (needs tensorboard)"
    )
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_env_arguments(train)
    train.set_defaults(func=run_train)

    ev = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved agent and print a metrics table",
        description="Load a saved agent, rebuild its env with the given data/range and print metrics "
        "next to cash and the reference policy (BayesFilterExpert on synthetic data, buy-and-hold on real).",
    )
    ev.add_argument("path", help="saved agent directory")
    ev.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes (default: 1 full pass, or 10 with --episode-length)",
    )
    ev.add_argument("--seed", type=int, default=0, help="seed of the episode starts")
    ev.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions instead of the deterministic policy",
    )
    ev.add_argument(
        "--no-reference", action="store_true", help="skip the cash/reference rows and the score"
    )
    ev.add_argument("--json", default=None, help="also write the summaries as JSON to this file")
    ev.add_argument(
        "--tearsheet",
        default=None,
        metavar="HTML",
        help="also write quantstats' tearsheet of the evaluated episodes (disjoint, joined in "
        "time order) against the reference policy on the same episodes "
        "(pip install 'quantgym[tearsheet]')",
    )
    ev.add_argument(
        "--trust",
        action="store_true",
        help="allow a folder written by plain SB3 or an older quantgym that needs unpickling: "
        "a pickle can run any code, so only for files you trust (default: refuse them)",
    )
    add_env_arguments(ev, for_eval=True)
    ev.set_defaults(func=run_evaluate)


def _is_offline(agent: Any) -> bool:
    return bool(getattr(agent, "offline", False))


def _dataset_env_kwargs(dataset: Any) -> dict[str, Any]:
    """The JSON-safe env kwargs a dataset was collected with (an in-memory market is dropped)."""
    from quantgym.agents.env_kwargs import json_safe_kwargs

    kwargs = dict(dataset.metadata.get("env_kwargs") or {})
    if isinstance(kwargs.get("data"), str) and kwargs["data"].startswith("<"):
        kwargs.pop("data")  # e.g. "<MarketData>": evaluate needs --data
    return json_safe_kwargs(kwargs)


def run_train_offline(agent: Any, args: argparse.Namespace) -> int:
    """``quantgym train <offline agent> --dataset PATH``: fit on the dataset and save."""
    from quantgym.datasets.trajectory import TrajectoryDataset
    from quantgym.files import atomic_write_json

    if args.dataset is None:
        raise ValueError(f"agent {args.agent!r} learns offline: pass --dataset PATH")
    if (
        args.n_envs is not None
        or args.checkpoint_every is not None
        or args.tensorboard_log
        or args.resume is not None
    ):
        raise ValueError(
            "--n-envs, --checkpoint-every, --resume and --tensorboard-log are for online agents"
        )
    dataset = TrajectoryDataset.load(args.dataset)
    agent.fit(dataset, train_steps=args.steps, progress_bar=not args.no_progress)
    out = Path(args.out)
    agent.save(out)
    env_kwargs = {**_dataset_env_kwargs(dataset), **env_kwargs_from_args(args)}
    atomic_write_json(
        out / "env.json",
        {"env_kwargs": env_kwargs, "dataset": str(args.dataset), "train_steps": args.steps},
    )
    steps = args.steps if args.steps is not None else getattr(agent.config, "train_steps", "?")
    print(f"saved {agent.name} ({steps} gradient steps on {dataset.n_steps} transitions) to {out}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """``quantgym train``: returns the exit status."""
    from quantgym.agents.registry import make_agent

    if args.out is None:
        if args.resume is None:
            raise ValueError("--out is required (or --resume RUN to continue RUN in place)")
        args.out = args.resume
    config = parse_assignments(args.set)
    if args.seed is not None:
        config["seed"] = args.seed
    agent_cls_offline = _is_offline(_agent_class(args.agent))
    if args.n_envs is not None and not agent_cls_offline:
        config["n_envs"] = args.n_envs
    agent = make_agent(args.agent, **config)
    if _is_offline(agent):
        return run_train_offline(agent, args)
    if args.dataset is not None:
        raise ValueError(f"agent {args.agent!r} learns online; --dataset is for offline agents")
    if (
        not callable(getattr(agent, "fit", None))
        or "train_steps" not in inspect.signature(agent.fit).parameters
    ):
        raise ValueError(
            f"agent {args.agent!r} is not an online learner (no fit(env, train_steps=...))"
        )
    out = Path(args.out)
    resume: dict[str, Any] = {}
    base = None
    if args.resume is not None:
        from quantgym.agents.sb3.agent import ENV_FILE
        from quantgym.agents.sb3.files import latest_checkpoint
        from quantgym.files import read_json

        checkpoint = latest_checkpoint(args.resume)
        if "resume_from" not in inspect.signature(agent.fit).parameters:
            raise ValueError(f"agent {args.agent!r} cannot resume (no fit(resume_from=...))")
        resume["resume_from"] = checkpoint
        if (checkpoint / ENV_FILE).is_file():
            base = read_json(checkpoint / ENV_FILE).get("env_kwargs")
        print(f"resuming from {checkpoint}")
    env_kwargs = env_kwargs_from_args(args, base)
    agent.fit(
        env_kwargs,
        train_steps=args.steps,
        progress_bar=not args.no_progress,
        tensorboard_log=args.tensorboard_log,
        checkpoint_every=args.checkpoint_every,
        checkpoint_dir=out / "checkpoints" if args.checkpoint_every else None,
        **resume,
    )
    agent.save(out)
    print(f"saved {agent.name} ({getattr(agent, 'num_timesteps', '?')} steps) to {out}")
    return 0


def _agent_class(name: str) -> type:
    from quantgym.agents.registry import agent_class

    return agent_class(name)


def _accepts_env(cls: type) -> bool:
    if _is_offline(cls):
        return False  # learned from a dataset: nothing to bind to an env
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return "env" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _load_with_env(path: Path, env: Any, trusted: bool = False) -> Any:
    from quantgym.agents.registry import load_agent
    from quantgym.policies.base import agent_class_from_meta, read_agent_meta

    meta = read_agent_meta(path, trusted=trusted)  # verified before anything is imported
    cls = agent_class_from_meta(meta, path, trusted=trusted)
    if _accepts_env(cls):
        return load_agent(path, env=env, trusted=trusted)
    return load_agent(path, trusted=trusted)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if abs(value) >= 1000 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.4f}"


def format_table(
    rows: dict[str, dict[str, float]], columns: tuple[str, ...] = TABLE_METRICS
) -> str:
    """Plain-text table: one row per agent, one column per metric."""
    header = ["agent", *columns]
    body = [
        [name, *(_fmt(metrics.get(c, float("nan"))) for c in columns)]
        for name, metrics in rows.items()
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """``quantgym evaluate``: returns the exit status."""
    import gymnasium as gym

    import quantgym  # noqa: F401 - registers TradingEnv-v0
    from quantgym.agents.registry import make_agent
    from quantgym.evaluation import evaluate, normalized_score, reference_agent_name
    from quantgym.files import atomic_write_json, read_json

    path = Path(args.path)
    env_file = path / "env.json"
    trained_on = (read_json(env_file).get("env_kwargs") or {}) if env_file.is_file() else {}
    kept = {k: v for k, v in trained_on.items() if k not in ("start", "end", "episode_length")}
    env_kwargs = env_kwargs_from_args(args, kept)
    env_kwargs.setdefault("episode_length", None)
    env = gym.make(ENV_ID, **env_kwargs)
    base: Any = env.unwrapped
    agent = _load_with_env(path, env, trusted=bool(getattr(args, "trust", False)))
    result = evaluate(
        agent, env, deterministic=not args.stochastic, n_episodes=args.episodes, seed=args.seed
    )
    rows = {result.agent: result.mean}
    summaries = {result.agent: result.summary()}
    score_line = None
    ref_name = reference_agent_name(base.market)
    others: dict[str, Any] = {}
    for name in () if args.no_reference else ("flat", ref_name):
        others[name] = evaluate(
            make_agent(name, env=env), env, starts=result.starts, seed=args.seed
        )
        rows[name] = others[name].mean
        summaries[name] = others[name].summary()
    if not args.no_reference:
        try:
            score = normalized_score(result.total_return, summaries[ref_name]["total_return"], 0.0)
            score_line = f"normalized score: {score:.1f} (cash = 0, {ref_name} = 100)"
        except ValueError as exc:
            score_line = f"normalized score: undefined ({exc})"
    market = base.market
    first, last = market.date_range
    print(
        f"{result.agent} on {market.name} [{first.date()} .. {last.date()}], {result.n_episodes} episode(s)"
    )
    print(format_table(rows))
    if score_line:
        print(score_line)
    if args.json:
        atomic_write_json(args.json, {"env_kwargs": env_kwargs, "results": summaries})
    if args.tearsheet:
        _write_tearsheet(args, result, others.get(ref_name), env, ref_name)
    return 0


def _write_tearsheet(
    args: argparse.Namespace, result: Any, reference: Any, env: Any, ref_name: str
) -> None:
    """``evaluate --tearsheet``: the agent's episodes against the reference's on the same ones."""
    from quantgym.agents.registry import make_agent
    from quantgym.evaluation import evaluate
    from quantgym.tearsheet import evaluation_tearsheet

    if reference is None:  # --no-reference skipped it in the table
        reference = evaluate(
            make_agent(ref_name, env=env), env, starts=result.starts, seed=args.seed
        )
    market = env.unwrapped.market
    title = f"{result.agent} vs {ref_name} on {market.name} ({result.n_episodes} episode(s))"
    path = evaluation_tearsheet(
        result, reference, args.tearsheet, title, bars_per_year=market.bars_per_year
    )
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m quantgym.agents.cli``) with just these two commands."""
    parser = argparse.ArgumentParser(prog="quantgym")
    add_agent_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
