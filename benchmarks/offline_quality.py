"""Offline-RL quality on ``regime``, D4RL style: every offline agent trained on each preset
dataset, scored on held-out windows of an independent regime series.

    nice -n 10 .venv/bin/python benchmarks/offline_quality.py              # the full table
    .venv/bin/python benchmarks/offline_quality.py --quick                 # a smoke run (~1 min)
    .venv/bin/python benchmarks/offline_quality.py --agents bc cql --datasets random mixed
    .venv/bin/python benchmarks/offline_quality.py --combine a.json b.json --out all.json  # join runs

Protocol:

- datasets: ``make_dataset("regime", quality, n_steps=--dataset-steps, seed=seed,
  split="train")`` for quality in ``random`` / ``medium`` / ``expert`` / ``mixed``, one per
  seed (the default regime market; its train range only);
- test: ``--windows`` disjoint ``--window-bars``-bar windows of an independent regime series
  (``market_kwargs={"seed": TEST_SEED, "n_bars": ...}``, same generating parameters), all
  traded at once in one ``TradingVectorEnv`` (costs: the env defaults);
- per window the log growth ``g`` (sum of log-return rewards); normalized score =
  ``100 * mean(g_agent) / mean(g_reference)`` over the (seed, window) units, cash = 0 and
  ``bayes_filter_expert`` = 100; 95 % CI by a paired bootstrap over windows stratified by
  seed (:mod:`quantgym.benchmark.statistics` when installed, else the same resampling here);
- rows: ``bc``, ``filtered_bc`` (BC on the best episodes), ``cql``, ``bcq``, ``dt_d3rlpy``,
  ``dt`` conditioned on a target (``"target"``) and by its critic (``"critic"``; the same
  trained model), ``qdt`` (``dt`` on returns-to-go relabelled by a ``cql`` critic),
  ``supervised``;
- conditioning (on ``mixed``): the DT's realised test log growth per window for low / median /
  high targets (10th / 50th / 90th percentile of the dataset's episode returns) and for the
  critic, with the spread and mean max drawdown of the windows; plot in ``--plot``.

Every agent trains at its ``make_agent`` defaults (``BUDGETS`` only adds the seed), so the
table is what a user gets; ``benchmarks/offline_learning_curves.py`` measured where those
defaults sit on each learning curve. Results go to ``--out`` (JSON) and the table is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from quantgym import ENV_ID
from quantgym.agents import make_agent
from quantgym.datasets.presets import QUALITIES, make_dataset
from quantgym.evaluation import reference_agent_name
from quantgym.files import atomic_write, atomic_write_json

__all__ = [
    "BUDGETS",
    "TEST_SEED",
    "WindowResult",
    "HeldOut",
    "held_out_windows",
    "test_env_kwargs",
    "window_starts",
    "run_windows",
    "score_with_ci",
    "main",
]

TEST_SEED = 10_007  # the test series' generator seed (the train market uses the default)
MARKET = "regime"
WARMUP_BARS = 400  # bars before the first window: the causal features' normalisation window

# Every row trains at its ``make_agent`` defaults: the table is what a user gets. (The DT rows
# share one trained model, conditioned on a target or on its critic.)
BUDGETS: dict[str, dict[str, Any]] = {
    name: {} for name in ("bc", "filtered_bc", "cql", "bcq", "dt_d3rlpy", "dt", "qdt", "supervised")
}
QUICK_BUDGETS: dict[str, dict[str, Any]] = {
    "bc": {"train_steps": 50, "batch_size": 64, "hidden_units": [32]},
    "filtered_bc": {"train_steps": 50, "batch_size": 64, "hidden_units": [32]},
    "cql": {"train_steps": 50, "batch_size": 64},
    "bcq": {"train_steps": 50, "batch_size": 64},
    "dt_d3rlpy": {"train_steps": 5, "context_length": 4, "n_layers": 1, "d_model": 16},
    "dt": {"train_steps": 5, "context_length": 4, "n_layers": 1, "d_model": 16},
    "qdt": {
        "train_steps": 5,
        "context_length": 4,
        "n_layers": 1,
        "d_model": 16,
        "critic": {"train_steps": 50, "batch_size": 64},
    },
    "supervised": {"train_steps": 100},
}
ROWS = (
    "bc",
    "filtered_bc",
    "cql",
    "bcq",
    "dt_d3rlpy",
    "dt (target)",
    "dt (critic)",
    "qdt",
    "supervised",
)


# -- test windows ---------------------------------------------------------------------------
def test_env_kwargs(n_windows: int, window_bars: int, seed: int = TEST_SEED) -> dict[str, Any]:
    """Env kwargs of the independent test series (or of another series of the same
    generating parameters, by ``seed``), long enough for the windows."""
    n_bars = WARMUP_BARS + n_windows * window_bars + 2
    # Business days from 1700: a 130,000-bar series stays inside pandas' datetime range.
    return {
        "market": MARKET,
        "market_kwargs": {"seed": seed, "n_bars": n_bars, "start": "1700-01-01"},
        "episode_length": window_bars,
    }


def window_starts(first_bar: int, n_windows: int, window_bars: int) -> list[int]:
    """Disjoint windows: window ``i`` trades bars ``first + i * L .. first + (i + 1) * L``."""
    return [first_bar + i * window_bars for i in range(n_windows)]


@dataclasses.dataclass
class WindowResult:
    """Per-window log growth and max drawdown (of log equity) of one agent run."""

    log_growth: np.ndarray  # (W,)
    max_drawdown: np.ndarray  # (W,) >= 0, in log units
    seconds: float


def run_windows(
    make_policy: Callable[[Any], Any], env_kwargs: dict[str, Any], starts: list[int]
) -> WindowResult:
    """Trade every window at once in one vector env; ``make_policy(vec_env)`` builds the agent
    (env-bound baselines bind to the vector env). Deterministic actions."""
    n = len(starts)
    env = gym.make_vec(ENV_ID, num_envs=n, **env_kwargs)
    try:
        policy = make_policy(env)
        obs, _ = env.reset(seed=0, options={"start": starts})
        state, start = None, np.ones(n, np.bool_)
        log_equity, peak, mdd = np.zeros(n), np.zeros(n), np.zeros(n)
        done = np.zeros(n, np.bool_)
        t0 = time.perf_counter()
        while not done.all():
            action, state = policy.predict(obs, state, episode_start=start, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            log_equity += np.where(done, 0.0, reward)
            peak = np.maximum(peak, log_equity)
            mdd = np.maximum(mdd, peak - log_equity)
            done |= terminated | truncated
            start = np.zeros(n, np.bool_)
        return WindowResult(log_equity, mdd, time.perf_counter() - t0)
    finally:
        env.close()


@dataclasses.dataclass
class HeldOut:
    """The test windows every offline benchmark script trades, and the reference's results."""

    env_kwargs: dict[str, Any]
    starts: list[int]
    reference_name: str
    reference: WindowResult


def held_out_windows(n_windows: int, window_bars: int, seed: int = TEST_SEED) -> HeldOut:
    """``n_windows`` disjoint windows of the independent test series (``seed``: another
    series, e.g. for validation), after the features' warm-up, traded once by the market's
    reference agent."""
    env_kwargs = test_env_kwargs(n_windows, window_bars, seed)
    probe = gym.make(ENV_ID, **env_kwargs)
    first_bar = max(int(probe.unwrapped.first_bar), WARMUP_BARS)
    reference_name = reference_agent_name(probe.unwrapped.market)
    probe.close()
    starts = window_starts(first_bar, n_windows, window_bars)
    reference = run_windows(lambda env: make_agent(reference_name, env=env), env_kwargs, starts)
    return HeldOut(env_kwargs, starts, reference_name, reference)


# -- statistics -----------------------------------------------------------------------------
def _bootstrap_ratio(
    agent: np.ndarray, reference: np.ndarray, n_resamples: int = 2_000, seed: int = 0
) -> tuple[float, float, float]:
    """``100 * mean(agent) / mean(reference)`` with a 95 % percentile CI; ``agent`` is
    ``(S, W)`` (seeds x windows), ``reference`` ``(W,)``; windows resampled within each seed,
    paired with the reference's same windows."""
    s, w = agent.shape
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, w, size=(n_resamples, s, w))
    num = np.take_along_axis(np.broadcast_to(agent, (n_resamples, s, w)), idx, 2).mean((1, 2))
    den = reference[idx].mean((1, 2))
    ratios = 100.0 * num / den
    low, high = np.percentile(ratios, [2.5, 97.5])
    return 100.0 * agent.mean() / reference.mean(), float(low), float(high)


def score_with_ci(agent: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """Normalized score and 95 % CI (see the module docstring)."""
    agent = np.atleast_2d(np.asarray(agent, dtype=np.float64))
    reference = np.asarray(reference, dtype=np.float64)
    if reference.mean() <= 0:
        raise ValueError(f"the reference's mean log growth is {reference.mean():.4g} <= 0")
    try:  # the harness's statistics, when present
        from quantgym.benchmark import statistics as stats

        fn = getattr(stats, "normalized_score_ci", None)
        if fn is not None:
            est = fn(agent, np.broadcast_to(reference, agent.shape))
            return float(est.value), float(est.low), float(est.high)
    except ImportError:
        pass
    return _bootstrap_ratio(agent, reference)


def print_table(table: dict[str, dict[str, Any]], datasets: list[str]) -> None:
    """Print the rows x datasets table of scores with their CIs."""
    header = f"{'agent':<13}" + "".join(f"{q:>22}" for q in datasets)
    lines = [header, "-" * len(header)]
    for row in [r for r in ROWS if r in table]:
        cells = []
        for q in datasets:
            c = table[row].get(q)
            cells.append(f"{c['score']:6.1f} [{c['ci'][0]:6.1f},{c['ci'][1]:6.1f}]" if c else "-")
        lines.append(f"{row:<13}" + "".join(f"{c:>22}" for c in cells))
    print("\nnormalized score (cash = 0, bayes_filter_expert = 100), 95% paired-bootstrap CI")
    print("\n".join(lines))


def combine(paths: list[str], out: str) -> dict[str, Any]:
    """One results file from runs of this script on different datasets or agents (same
    protocol otherwise), e.g. ``--datasets random``, ``--datasets mixed`` and ``--datasets
    expert`` run side by side on two cores, or the committed table and a re-run of some agents.
    A later file's cells (and DT conditioning study) replace an earlier one's. ``ValueError``
    if their windows or seeds differ, or an agent both ran has other budgets."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    first = runs[0]
    same = ("starts", "seeds", "windows", "window_bars", "dataset_steps", "reference")
    budgets: dict[str, Any] = {}
    for path, run in zip(paths, runs, strict=True):
        clash = [k for k, v in run["budgets"].items() if budgets.get(k, v) != v]
        if any(run["protocol"][k] != first["protocol"][k] for k in same) or clash:
            raise ValueError(f"{path} used another protocol or other budgets than {paths[0]}")
        budgets.update(run["budgets"])
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        for row, cells in run["table"].items():
            table.setdefault(row, {}).update(cells)
    conditioning = next(
        (r["conditioning"] for r in reversed(runs) if len(r["conditioning"]) > 1), {}
    )
    cpu: dict[str, list[float]] = {}
    for run in runs:
        for name, seconds in run["train_cpu_seconds"].items():
            cpu.setdefault(name, []).append(seconds)
    result = {
        **first,
        "budgets": budgets,
        "table": table,
        "conditioning": conditioning,
        "train_cpu_seconds": {k: float(np.mean(v)) for k, v in cpu.items()},
        "elapsed_seconds": float(sum(r["elapsed_seconds"] for r in runs)),
        "combined_from": [  # the datasets of each run joined, through earlier combines
            d for r in runs for d in r.get("combined_from") or [r["protocol"].get("datasets")]
        ],
    }
    atomic_write_json(out, result)
    datasets = [q for q in QUALITIES if any(q in cells for cells in table.values())]
    print_table(table, datasets)
    print(f"\nwrote {out}")
    return result


# -- one cell -------------------------------------------------------------------------------
def _fixed(agent: Any) -> Callable[[Any], Any]:
    return lambda _env: agent


def _with_conditioning(agent: Any, mode: str, target: float | None = None) -> Any:
    """The DT set to ``mode`` (``"target"`` with ``target``, or ``"critic"``; ``dt_d3rlpy``
    only has targets)."""
    fields: dict[str, Any] = {}
    if hasattr(agent.config, "return_conditioning"):
        fields["return_conditioning"] = mode
    elif mode != "target":
        raise ValueError(f"{agent.name} has no {mode!r} conditioning")
    if target is not None:
        fields["target_return"] = float(target)
    agent.config = dataclasses.replace(agent.config, **fields)
    return agent


def _conditioning_runs(
    agent: Any, returns: np.ndarray, env_kwargs: dict[str, Any], starts: list[int]
) -> dict[str, tuple[float, WindowResult]]:
    """Realised test windows for low / median / high targets (and the critic, for ``dt``)."""
    levels = {
        "low (p10)": float(np.quantile(returns, 0.1)),
        "median": float(np.quantile(returns, 0.5)),
        "high (p90)": float(np.quantile(returns, 0.9)),
    }
    out = {
        label: (
            value,
            run_windows(_fixed(_with_conditioning(agent, "target", value)), env_kwargs, starts),
        )
        for label, value in levels.items()
    }
    if hasattr(agent.config, "return_conditioning"):
        out["critic"] = (
            float("nan"),
            run_windows(_fixed(_with_conditioning(agent, "critic")), env_kwargs, starts),
        )
    return out


def train_cell(
    quality: str, seed: int, budgets: dict[str, dict[str, Any]], dataset_steps: int, agents: list
) -> tuple[dict[str, Any], Any]:
    """Collect the dataset and train every agent on it; returns ``({name: agent}, dataset)``."""
    dataset = make_dataset(MARKET, quality, n_steps=dataset_steps, seed=seed, split="train")
    trained: dict[str, Any] = {}
    for name in agents:
        config = {**budgets[name], "seed": seed}
        if name == "supervised":
            config["verbose"] = False
        agent = make_agent(name, **config)
        t0 = time.process_time()
        agent.fit(dataset, progress_bar=False)
        trained[name] = (agent, time.process_time() - t0)
    return trained, dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=128)
    parser.add_argument("--window-bars", type=int, default=1_000)
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--datasets", nargs="+", default=list(QUALITIES))
    parser.add_argument("--agents", nargs="+", default=list(BUDGETS))
    parser.add_argument("--quick", action="store_true", help="tiny budgets and 8 short windows")
    parser.add_argument("--out", default="benchmarks/results/offline_quality.json")
    parser.add_argument("--plot", default="docs/dt_conditioning.png")
    parser.add_argument(
        "--skip-conditioning", action="store_true", help="no conditioning study on mixed"
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        default=[],
        help="results JSON of earlier runs of this script (same protocol) whose rows join the table",
    )
    parser.add_argument(
        "--combine",
        nargs="+",
        default=[],
        help="only combine results JSON of runs on different datasets into --out (no training)",
    )
    args = parser.parse_args(argv)
    if args.combine:
        combine(args.combine, args.out)
        return 0
    torch.set_num_threads(1)
    budgets = QUICK_BUDGETS if args.quick else BUDGETS
    if args.quick:
        args.windows, args.window_bars, args.dataset_steps = 8, 200, 3_000
        args.seeds = min(args.seeds, 2)
    for name in args.agents:
        if name not in budgets:
            raise SystemExit(f"unknown agent {name!r}; choose from {list(budgets)}")
    t_start = time.perf_counter()

    held_out = held_out_windows(args.windows, args.window_bars)
    env_kwargs, starts = held_out.env_kwargs, held_out.starts
    reference_name, reference = held_out.reference_name, held_out.reference
    print(
        f"test: {args.windows} windows x {args.window_bars} bars of regime seed {TEST_SEED}; "
        f"{reference_name} mean log growth {reference.log_growth.mean():.4f} per window"
    )

    conditioning_agent = "dt" if "dt" in args.agents else "dt_d3rlpy"
    growth: dict[tuple[str, str], list[np.ndarray]] = {}
    merged_conditioning: dict[str, Any] = {}
    train_seconds: dict[str, list[float]] = {}
    conditioning: dict[str, list[WindowResult]] = {}
    targets_used: dict[str, list[float]] = {}
    for quality in args.datasets:
        for seed in range(args.seeds):
            trained, dataset = train_cell(
                quality, seed, budgets, args.dataset_steps, list(args.agents)
            )
            returns = np.asarray(dataset.episode_returns(), dtype=np.float64)
            target = float(np.quantile(returns, 0.9))  # the "dt (target)" row's target
            for name, (agent, seconds) in trained.items():
                train_seconds.setdefault(name, []).append(seconds)
                if name == "dt":
                    for row, mode, tgt in (
                        ("dt (target)", "target", target),
                        ("dt (critic)", "critic", None),
                    ):
                        agent = _with_conditioning(agent, mode, tgt)
                        result = run_windows(_fixed(agent), env_kwargs, starts)
                        growth.setdefault((row, quality), []).append(result.log_growth)
                else:
                    result = run_windows(_fixed(agent), env_kwargs, starts)
                    growth.setdefault((name, quality), []).append(result.log_growth)
                if quality == "mixed" and name == conditioning_agent and not args.skip_conditioning:
                    for label, (value, run) in _conditioning_runs(
                        agent, returns, env_kwargs, starts
                    ).items():
                        conditioning.setdefault(label, []).append(run)
                        targets_used.setdefault(label, []).append(value)
            print(
                f"  {quality} seed {seed} done ({time.perf_counter() - t_start:.0f} s)", flush=True
            )

    # -- table ----------------------------------------------------------------------------
    ref = reference.log_growth
    table: dict[str, dict[str, Any]] = {}
    for (row, quality), runs in growth.items():
        value, low, high = score_with_ci(np.stack(runs), ref)
        table.setdefault(row, {})[quality] = {
            "score": value,
            "ci": [low, high],
            "mean_log_growth": float(np.mean(runs)),
            "seeds": [float(100 * r.mean() / ref.mean()) for r in runs],
        }
    for path in args.merge:
        earlier = json.loads(Path(path).read_text())
        if earlier["protocol"]["starts"] != starts or earlier["protocol"]["seeds"] != args.seeds:
            raise SystemExit(f"{path} used another protocol (windows or seeds); cannot merge")
        for row, cells in earlier["table"].items():
            table.setdefault(row, {}).update(
                {q: c for q, c in cells.items() if q not in table.get(row, {})}
            )
        for key, seconds in earlier.get("train_cpu_seconds", {}).items():
            train_seconds.setdefault(key, [seconds])
        if not conditioning and earlier.get("conditioning"):
            merged_conditioning = earlier["conditioning"]
    print_table(table, args.datasets)

    cond_out: dict[str, Any] = {}
    if not conditioning and merged_conditioning:
        cond_out = {k: v for k, v in merged_conditioning.items() if k != "agent"}
        conditioning_agent = merged_conditioning.get("agent", conditioning_agent)
    if conditioning:
        print(f"\n{conditioning_agent} conditioning on mixed (test log growth per window)")
        print(
            f"{'conditioning':<12} {'target':>8} {'realised':>9} {'95% CI':>18} {'std':>7} {'max DD':>7}"
        )
        for label, results in conditioning.items():
            g = np.stack([r.log_growth for r in results])
            mdd = np.stack([r.max_drawdown for r in results])
            low, high = _bootstrap_mean_ci(g)
            tgt = float(np.mean(targets_used[label]))
            cond_out[label] = {
                "target": tgt if math.isfinite(tgt) else None,  # None: the critic (valid JSON)
                "realised_mean": float(g.mean()),
                "ci": [low, high],
                "std": float(g.std(ddof=1)),
                "mean_max_drawdown": float(mdd.mean()),
                "score": float(100 * g.mean() / ref.mean()),
            }
            print(
                f"{label:<12} {tgt:8.3f} {g.mean():9.4f} [{low:7.4f},{high:7.4f}] "
                f"{g.std(ddof=1):7.4f} {mdd.mean():7.4f}"
            )
        _plot_conditioning(cond_out, float(ref.mean()), args.plot, conditioning_agent)

    elapsed = time.perf_counter() - t_start
    result = {
        "protocol": {
            "market": MARKET,
            "test_env_kwargs": env_kwargs,
            "starts": starts,
            "windows": args.windows,
            "window_bars": args.window_bars,
            "seeds": args.seeds,
            "dataset_steps": args.dataset_steps,
            "datasets": list(args.datasets),
            "reference": reference_name,
            "reference_mean_log_growth": float(ref.mean()),
        },
        "budgets": {k: budgets[k] for k in args.agents},
        "table": table,
        "conditioning": {"agent": conditioning_agent, **cond_out},
        "train_cpu_seconds": {k: float(np.mean(v)) for k, v in train_seconds.items()},
        "elapsed_seconds": elapsed,
    }
    atomic_write_json(args.out, result)
    print(f"\nwrote {args.out} ({elapsed / 60:.1f} min)")
    return 0


def _bootstrap_mean_ci(g: np.ndarray, n_resamples: int = 2_000) -> tuple[float, float]:
    s, w = g.shape
    idx = np.random.default_rng(0).integers(0, w, size=(n_resamples, s, w))
    means = np.take_along_axis(np.broadcast_to(g, (n_resamples, s, w)), idx, 2).mean((1, 2))
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _plot_conditioning(cond: dict[str, Any], reference: float, path: str, agent: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    targets = [(k, v) for k, v in cond.items() if v["target"] is not None]
    xs = [v["target"] for _, v in targets]
    ys = [v["realised_mean"] for _, v in targets]
    err = [[v["realised_mean"] - v["ci"][0] for _, v in targets],
           [v["ci"][1] - v["realised_mean"] for _, v in targets]]  # fmt: skip
    ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, label=f"{agent}, target conditioning")
    for (label, _), x, y in zip(targets, xs, ys, strict=True):
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(6, -12), fontsize=8)
    lo, hi = min(xs + ys + [0.0]), max(xs + ys + [reference])
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls=":", label="realised = target")
    if "critic" in cond:
        c = cond["critic"]
        ax.axhspan(c["ci"][0], c["ci"][1], color="tab:green", alpha=0.15)
        ax.axhline(
            c["realised_mean"], color="tab:green", lw=1.2, label=f"{agent}, critic conditioning"
        )
    ax.axhline(reference, color="black", lw=1.0, ls="--", label="bayes_filter_expert")
    ax.axhline(0.0, color="grey", lw=0.6)
    ax.set_xlabel("conditioning return-to-go (dataset episode log return)")
    ax.set_ylabel("realised test log growth per 1,000-bar window")
    ax.set_title("Return conditioning on regime / mixed (95% CI)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()

    def _write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=120)

    atomic_write(path, _write)
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    raise SystemExit(main())
