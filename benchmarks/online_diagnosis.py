"""Why does an online agent win or lose? Train it once with the harness's window protocol and
print held-out *and* in-sample scores, trades per window, the action mix, the policy entropy and
how decided the policy is where it switches position.

    .venv/bin/python benchmarks/online_diagnosis.py ppo_mlp
    .venv/bin/python benchmarks/online_diagnosis.py ppo_mlp --set recent_bars=null gamma=0.99
    .venv/bin/python benchmarks/online_diagnosis.py ppo_transformer --steps 50000 --seed 1
    .venv/bin/python benchmarks/online_diagnosis.py ppo_lstm --env-kwargs '{"features": "returns"}'
    .venv/bin/python benchmarks/online_diagnosis.py ppo_mlp --market synthetic:regime@weak \
        --market-params '{"drifts": [0.0012, -0.0012, 0.0]}'

Protocol (as ``benchmarks/compare.py``): one long seeded synthetic series; the agent trains on
its first 20,000 bars; held-out = 64 disjoint 1,000-bar windows after a 200-bar embargo;
in-sample = 19 disjoint 1,000-bar windows inside the train range (same length, so a gap between
the two scores is overfitting, not window length). Score = 100 x mean log growth /
``bayes_filter_expert``'s on the same windows, paired-bootstrap 95% CI
(:func:`quantgym.benchmark.statistics.bootstrap_ci`); ``sma_crossover`` alongside. The action mix
and the mean entropy of the policy's action distribution are read on the first 8 held-out
windows, with ``switch_margin``: the gap between the two most likely actions' probabilities
at the bars where the greedy action switches, beside the gap elsewhere (small gaps at the
switches: the policy flips between near-tied actions, i.e. on noise). One JSON line per run is printed and appended to ``--log``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["diagnose", "diagnosis_suite", "main", "switch_margins"]

REFERENCES = ("bayes_filter_expert", "sma_crossover")
IN_SAMPLE_WINDOWS = 19


def _growth(equities: Sequence[np.ndarray]) -> np.ndarray:
    from quantgym.benchmark.scoring import log_growth

    return np.array([log_growth(e) for e in equities])


def _score(g: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from quantgym.benchmark.statistics import bootstrap_ci, normalized_score

    lo, hi = bootstrap_ci(normalized_score, g, ref, n_resamples=1000)
    return {
        "score": round(float(normalized_score(g, ref)), 1),
        "lo": round(lo, 1),
        "hi": round(hi, 1),
    }


def switch_margins(actions: np.ndarray, gaps: np.ndarray) -> dict[str, float | None]:
    """How decided a policy is where it switches: ``actions`` and ``gaps`` are ``(bars,
    windows)`` greedy actions and the gap between the two most likely actions' probabilities;
    a switch is a bar whose action differs from the previous bar's in the same window. Returns
    the median gap at the switches and elsewhere, and the fraction of switches with a gap below
    0.2 (``None`` without a switch)."""
    switch = np.zeros(actions.shape, dtype=bool)
    switch[1:] = actions[1:] != actions[:-1]
    at = gaps[switch]
    return {
        "median_at_switches": round(float(np.median(at)), 3) if at.size else None,
        "median_elsewhere": round(float(np.median(gaps[~switch])), 3),
        "switches_below_0.2": round(float(np.mean(at < 0.2)), 3) if at.size else None,
    }


def diagnosis_suite(
    agent_name: str,
    *,
    seed: int = 0,
    market: str = "synthetic:regime",
    market_params: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> Any:
    """The protocol of one diagnosis as a validated :class:`quantgym.benchmark.suite.Suite`
    (a ``ValueError`` names a bad agent, market, variant parameter or env kwarg):
    ``market_params`` are a variant's generator kwargs (``market`` is then
    ``synthetic:<kind>@<label>``), ``env_kwargs`` are ``TradingEnv-v0`` kwargs of every env
    (e.g. ``{"features": "returns"}``)."""
    from quantgym.benchmark.suite import Suite

    return Suite(
        name="diagnosis",
        markets=[market],
        market_params={market: market_params} if market_params is not None else {},
        agents=[agent_name],
        seeds=[seed],
        window_bars=1000,
        n_windows=64,
        train_bars=20_000,
        embargo_bars=200,
        env_kwargs=env_kwargs if env_kwargs is not None else {},
    ).validate()


def diagnose(
    agent_name: str,
    agent_kwargs: dict[str, Any],
    *,
    steps: int | None = None,
    suite: Any = None,
) -> dict[str, Any]:
    """Train ``agent_name`` and return its held-out / in-sample diagnosis (see module doc) on
    the market, seed and env kwargs of ``suite`` (:func:`diagnosis_suite`; ``None``: its
    defaults, seed 0 of ``synthetic:regime``)."""
    import gymnasium as gym
    import torch

    from quantgym import ENV_ID
    from quantgym.benchmark import Cell, RangeResult, train_and_score
    from quantgym.benchmark.protocol import TestUnit, bar_timestamp, build_market, plan_for
    from quantgym.benchmark.scoring import evaluate_units
    from quantgym.benchmark.training import seed_everything

    if suite is None:
        suite = diagnosis_suite(agent_name)
    market, seed, bars = suite.markets[0], suite.seeds[0], suite.window_bars
    market_params = suite.market_params.get(market)

    def cell(agent: str, kwargs: dict[str, Any], budget: int | None) -> Cell:
        return Cell(
            suite=suite.name,
            market=market,
            agent=agent,
            seed=seed,
            protocol="windows",
            agent_kwargs=kwargs,
            train_steps=budget,
            window_bars=suite.window_bars,
            n_windows=suite.n_windows,
            train_bars=suite.train_bars,
            embargo_bars=suite.embargo_bars,
            market_params=market_params,
            env_kwargs=suite.env_kwargs,
        )

    main_cell = cell(agent_name, agent_kwargs, steps)
    data, first_bar = build_market(main_cell)
    plan = plan_for(main_cell, data, first_bar)
    train = plan.trains[0]
    in_sample = [
        TestUnit(k, None, train.start + k * (bars + 1), train.start + k * (bars + 1) + bars, train)
        for k in range(IN_SAMPLE_WINDOWS)
    ]

    def run(c: Cell) -> tuple[RangeResult, dict[str, Any]]:
        """Train (if it learns) and score ``c`` on the test windows, then on the in-sample ones."""
        result = train_and_score(c, data, train, plan.units)
        scored = {
            "test": (result.equities, result.metrics),
            "in_sample": evaluate_units(result.make_agent, c, data, in_sample),
        }
        return result, scored

    refs: dict[str, dict[str, tuple[np.ndarray, float]]] = {}
    for name in REFERENCES:
        _, scored = run(cell(name, {}, None))
        refs[name] = {
            label: (_growth(eqs), float(np.mean([m["n_trades"] for m in ms])))
            for label, (eqs, ms) in scored.items()
        }

    seed_everything(seed, True)
    result, scored = run(main_cell)
    agent = result.agent
    out: dict[str, Any] = {
        "agent": agent_name,
        "kwargs": agent_kwargs,
        "steps": result.train_steps,
        "seed": seed,
        "market": market,
        "market_params": market_params,
        "env_kwargs": suite.env_kwargs,
        "train_cpu_s": round(result.train_cpu_s, 1),
        "train_wall_s": round(result.train_s, 1),
    }
    for label, (eqs, ms) in scored.items():
        g_ref, ref_trades = refs["bayes_filter_expert"][label]
        out[label] = {
            **_score(_growth(eqs), g_ref),
            "sma_crossover": _score(refs["sma_crossover"][label][0], g_ref)["score"],
            "n_trades": round(float(np.mean([m["n_trades"] for m in ms])), 1),
            "turnover": round(float(np.mean([m["turnover"] for m in ms])), 1),
            "reference_n_trades": round(ref_trades, 1),
        }
    units = plan.units[:8]
    vec = gym.make_vec(
        ENV_ID,
        num_envs=len(units),
        data=data,
        end=bar_timestamp(data, units[-1].end),
        **suite.env_kwargs,
        episode_length=bars,
    )
    obs, _ = vec.reset(seed=seed, options={"start": [u.start for u in units]})
    actions, entropies, margins = [], [], []
    recurrent = getattr(agent, "recurrent", False)
    state, start = None, np.ones(len(units), dtype=bool)
    for _ in range(bars):
        action, state = agent.predict(obs, state=state, episode_start=start)
        start = np.zeros(len(units), dtype=bool)
        if not recurrent:
            with torch.no_grad():
                dist = agent.model.policy.get_distribution(
                    torch.as_tensor(agent.normalize_observation(obs))
                )
            entropies.append(float(dist.entropy().mean()))
            top2 = torch.topk(dist.distribution.probs, 2, dim=-1).values
            margins.append((top2[:, 0] - top2[:, 1]).numpy())
        actions.append(np.asarray(action))
        obs, *_ = vec.step(action)
    vec.close()
    acts = np.stack(actions)  # (bars, n_windows)
    n_actions = int(agent.model.action_space.n)
    out["action_mix"] = [round(float(np.mean(acts == k)), 3) for k in range(n_actions)]
    out["entropy"] = round(float(np.mean(entropies)), 3) if entropies else None
    if margins:
        out["switch_margin"] = switch_margins(acts, np.stack(margins))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("agent", help="a registered online agent, e.g. ppo_mlp")
    parser.add_argument("--steps", type=int, help="training budget (default: the agent's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--market", default="synthetic:regime")
    parser.add_argument(
        "--market-params",
        type=json.loads,
        help="a variant's generator kwargs as JSON, e.g. --market synthetic:regime@weak "
        "--market-params '{\"drifts\": [0.0012, -0.0012, 0.0]}'",
    )
    parser.add_argument(
        "--env-kwargs",
        type=json.loads,
        help='TradingEnv-v0 kwargs of every env as JSON, e.g. \'{"features": "returns"}\'',
    )
    parser.add_argument("--set", nargs="*", default=[], help="config KEY=JSON_VALUE")
    parser.add_argument("--log", type=Path, help="append the JSON line to this file")
    args = parser.parse_args(argv)
    kwargs: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    try:
        suite = diagnosis_suite(
            args.agent,
            seed=args.seed,
            market=args.market,
            market_params=args.market_params,
            env_kwargs=args.env_kwargs,
        )
    except ValueError as exc:
        parser.error(str(exc))
    result = diagnose(args.agent, kwargs, steps=args.steps, suite=suite)
    line = json.dumps(result)
    print(line)
    if args.log is not None:
        with open(args.log, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
