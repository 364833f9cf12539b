"""Training speed and decision latency of our ``dt`` against d3rlpy's (``dt_d3rlpy``) and the
compute bound, measured side by side in one run.

    nice -n 5 .venv/bin/python benchmarks/dt_speed.py                 # the default protocol
    .venv/bin/python benchmarks/dt_speed.py --quick                   # a smoke run (~1 min)

Protocol: one ``regime`` ``mixed`` dataset (``--dataset-steps`` steps, train split); both
agents at the same shape (context 20, 3 layers, embedding 128, 1 head, batch 64, dropout
0.1, the same observation columns). A training rate is ``(n - w) / (t_n - t_w)``, with
``t_i`` the end of gradient step ``i`` from a per-step callback of each agent's own training
loop (d3rlpy's ``fit(callback=)``, ours ``fit(callback=)``), so setup (dataset export, model
build, the final validation) is left out. "bare" is a forward + cross entropy +
backward + AdamW step of the same :class:`DecisionTransformer` on one fixed, pre-built
batch, every block on all ``3K`` tokens (``forward_full``): no sampling, masking or
multi-task bookkeeping, the compute bound of the naive transformer. "bare-pruned" is the
same with the forward ``dt`` trains with, which skips (exactly) the work no head reads: the
last action token and, in the last block, the queries and MLP of the return and action
tokens (about a fifth of the FLOPs at 3 layers). Methods are
interleaved over ``--rounds`` rounds and the median rate is reported (the CPU is shared).
Latency: one env, full context, ``predict`` of one observation (median of ``--latency-calls``).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from d3rlpy.logging import NoopAdapterFactory

from quantgym.agents.d3rlpy import quiet_d3rlpy
from quantgym.agents.decision_transformer.model import DecisionTransformer
from quantgym.agents.registry import make_agent
from quantgym.datasets.presets import make_dataset
from quantgym.files import atomic_write_json

__all__ = ["SHAPE", "fit_rate", "bare_rate", "latency_ms", "main"]

SHAPE: dict[str, Any] = {
    "context_length": 20,
    "n_layers": 3,
    "n_heads": 1,
    "d_model": 128,
    "batch_size": 64,
    "dropout": 0.1,
    "learning_rate": 6e-4,
}


def fit_rate(name: str, dataset: Any, n: int, w: int, **fields: Any) -> float:
    """Gradient steps per second of ``name``'s own training loop: the clock runs from the end
    of step ``w`` to the end of step ``n`` (a per-step callback), so setup (dataset export,
    model build) and our final validation are left out; sampling, the loss, the backward
    pass, clipping, the optimiser and any per-step logging are in."""
    stamps: dict[int, float] = {}

    def clock(step: int) -> None:
        if step in (w, n):
            stamps[step] = time.perf_counter()

    agent = make_agent(name, **SHAPE, **fields)
    if name == "dt":
        agent.fit(dataset, train_steps=n, progress_bar=False, callback=clock)
    else:  # d3rlpy: build through our wrapper, then d3rlpy's own fit with its callback
        agent.fit(dataset, train_steps=1, progress_bar=False)
        with quiet_d3rlpy():
            agent.algo.fit(
                agent._export(dataset),
                n_steps=n,
                n_steps_per_epoch=n,
                show_progress=False,
                logger_adapter=NoopAdapterFactory(),
                save_interval=n + 1,
                callback=lambda _algo, _epoch, step: clock(step),
            )
    return (n - w) / (stamps[n] - stamps[w])


def bare_rate(
    state_dim: int, n_actions: int, max_timestep: int, n: int, bf16: bool, pruned: bool = False
) -> float:
    """Steps per second of a bare forward + loss + backward + AdamW step on one fixed batch:
    every block on all ``3K`` tokens (``forward_full``), or with ``pruned`` the forward our
    ``dt`` trains with (no work that no head reads, see ``DecisionTransformer.forward``)."""
    torch.manual_seed(0)
    model = DecisionTransformer(
        state_dim,
        n_actions,
        max_timestep,
        d_model=SHAPE["d_model"],
        n_layers=SHAPE["n_layers"],
        n_heads=SHAPE["n_heads"],
        dropout=SHAPE["dropout"],
    ).train()
    b, k = SHAPE["batch_size"], SHAPE["context_length"]
    states = torch.randn(b, k, state_dim)
    actions = torch.randint(0, n_actions, (b, k))
    rtg = torch.randn(b, k, 1)
    steps = torch.randint(0, max_timestep + 1, (b, k))
    optimizer = torch.optim.AdamW(model.parameters(), lr=SHAPE["learning_rate"])

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if pruned:
                logits = model(states, actions, rtg, steps).action_logits
            else:
                logits = model.forward_full(states, actions, rtg, steps)
        loss = F.cross_entropy(logits.float().reshape(-1, n_actions), actions.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return n / (time.perf_counter() - t0)


def step_flops(state_dim: int, n_actions: int) -> float:
    """Matmul FLOPs of one training step (forward + backward = 3x forward) of the bare model."""
    c, k, b, layers = (
        SHAPE["d_model"],
        SHAPE["context_length"],
        SHAPE["batch_size"],
        SHAPE["n_layers"],
    )
    t = 3 * k
    per_token = layers * (2 * 12 * c * c) + 2 * (state_dim * c + c * n_actions)
    attention = layers * 2 * 2 * t * t * c  # q k^T and att v, per sequence
    return 3.0 * b * (t * per_token + attention)


def latency_ms(agent: Any, observations: np.ndarray, calls: int) -> float:
    """Median milliseconds of one ``predict`` for one env with a full context."""
    state = None
    for obs in observations[: agent.config.context_length + 5]:  # fill the context
        _, state = agent.predict(obs[None], state)
    times = []
    for i in range(calls):
        obs = observations[i % len(observations)][None]
        t0 = time.perf_counter()
        _, state = agent.predict(obs, state, np.zeros(1, np.bool_))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset-steps", type=int, default=20_000)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per fp32 block")
    parser.add_argument("--bf16-steps", type=int, default=6, help="timed steps per bf16 block")
    parser.add_argument("--warmup-steps", type=int, default=2, help="w of the rate (see above)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-calls", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--latency-only", action="store_true", help="only the decision latency (1-step fits)"
    )
    parser.add_argument("--out", default="benchmarks/results/dt_speed.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.dataset_steps, args.steps, args.bf16_steps, args.rounds = 3_000, 4, 2, 1
        args.latency_calls = 50
    torch.set_num_threads(args.threads)
    dataset = make_dataset("regime", "mixed", n_steps=args.dataset_steps, seed=0, split="train")
    probe = make_agent("dt", **SHAPE, train_steps=1)
    probe.fit(dataset, train_steps=1, progress_bar=False)
    state_dim, n_actions = probe.state_dim, int(probe.config.n_actions)
    max_timestep = int(probe.config.max_timestep)
    n, w = args.warmup_steps + args.steps, args.warmup_steps
    nb = args.warmup_steps + args.bf16_steps
    # our dt trains with its heads' default weights; eval_every > n: one final validation
    ours = {"eval_every": 10_000, "seed": 0}
    methods = {
        "dt_d3rlpy fp32": lambda: fit_rate("dt_d3rlpy", dataset, n, w, seed=0),
        "dt fp32": lambda: fit_rate("dt", dataset, n, w, **ours),
        "bare fp32": lambda: bare_rate(state_dim, n_actions, max_timestep, args.steps, False),
        "bare-pruned fp32": lambda: bare_rate(
            state_dim, n_actions, max_timestep, args.steps, False, pruned=True
        ),
    }
    if not args.no_bf16:
        methods["dt bf16"] = lambda: fit_rate("dt", dataset, nb, w, bf16=True, **ours)
        methods["bare bf16"] = lambda: bare_rate(
            state_dim, n_actions, max_timestep, args.bf16_steps, True
        )
    if args.latency_only:
        methods, args.rounds = {}, 0
    rates: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(args.rounds):
        for name, run in methods.items():
            rates[name].append(run())
            print(f"round {r + 1}/{args.rounds} {name}: {rates[name][-1]:.2f} steps/s", flush=True)
    median = {name: statistics.median(v) for name, v in rates.items()}

    observations = dataset.step_observations()[:200]
    d3 = make_agent("dt_d3rlpy", **SHAPE, seed=0)
    d3.fit(dataset, train_steps=1, progress_bar=False)
    latency = {
        "dt": latency_ms(probe, observations, args.latency_calls),
        "dt_d3rlpy": latency_ms(d3, observations, args.latency_calls),
    }

    print(
        f"single-decision latency (1 env, full context, {args.threads} thread(s)): "
        f"dt {latency['dt']:.2f} ms, dt_d3rlpy {latency['dt_d3rlpy']:.2f} ms"
    )
    if args.latency_only:
        return 0
    base = median["dt_d3rlpy fp32"]
    flops = step_flops(state_dim, n_actions)
    print(
        f"\nDT training speed, context 20, 3 layers, d_model 128, 1 head, batch 64; "
        f"{args.threads} torch thread(s), {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}; median of {args.rounds} rounds"
    )
    print(f"{'method':<16}{'steps/s':>10}{'vs d3rlpy':>11}{'vs bare fp32':>14}{'GFLOP/s':>10}")
    for name, value in median.items():
        print(
            f"{name:<16}{value:>10.2f}{value / base:>10.2f}x{value / median['bare fp32']:>13.2f}x"
            f"{value * flops / 1e9:>10.1f}"
        )
    result = {
        "shape": SHAPE,
        "threads": args.threads,
        "dataset_steps": args.dataset_steps,
        "rates": rates,
        "median_steps_per_second": median,
        "ratio_vs_d3rlpy": {k: v / base for k, v in median.items()},
        "step_gflop": flops / 1e9,
        "latency_ms": latency,
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
    }
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
