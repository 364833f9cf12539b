"""Schema-valid synthetic benchmark records for tests (no env, no training)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantgym.benchmark.records import cell_id

__all__ = ["make_record", "make_error_record", "make_market_records"]


def make_record(
    agent: str,
    log_growth: Sequence[float],
    *,
    market: str = "synthetic:regime",
    seed: int = 0,
    kind: str = "rule",
    role: str = "causal",
    reference: str = "bayes_filter_expert",
    n_bars: int = 1000,
    bars_per_year: float = 8760.0,
    train_s: float = 0.0,
    n_points: int = 11,
) -> dict[str, Any]:
    """A status-"ok" record whose units have the given log growths (other metrics derived)."""
    g = np.asarray(log_growth, dtype=float)
    units = []
    for i, value in enumerate(g):
        units.append(
            {
                "unit": i,
                "fold": None,
                "start": 10_000 + i * n_bars,
                "end": 10_000 + (i + 1) * n_bars - 1,
                "start_time": "2000-01-01T00:00:00",
                "end_time": "2000-02-01T00:00:00",
                "n_bars": n_bars,
                "log_growth": float(value),
                "total_return": float(np.expm1(value)),
                "sharpe": float(value * 10),
                "sortino": float(value * 15),
                "max_drawdown": float(min(0.9, 0.02 + abs(value) / 2)),
                "turnover": 5.0 + i % 3,
                "costs": 0.001 * (1 + i % 2),
                "n_trades": 3,
            }
        )
    x = np.linspace(0, n_bars - 1, n_points).round().astype(int).tolist()
    frac = np.linspace(0.0, 1.0, n_points)
    centre = float(np.mean(g)) if g.size else 0.0
    spread = float(np.std(g)) if g.size else 0.0
    cell = {
        "suite": "test",
        "market": market,
        "agent": agent,
        "agent_kwargs": {},
        "seed": seed,
        "protocol": "windows",
        "window_bars": n_bars,
        "n_windows": len(units),
    }
    return {
        "schema": 1,
        "cell_id": cell_id(cell),
        "cell": cell,
        "market": market,
        "agent": agent,
        "seed": seed,
        "kind": kind,
        "role": role,
        "reference": reference,
        "status": "ok",
        "error": None,
        "units": units,
        "bars_per_year": bars_per_year,
        "curves": {
            "x": x,
            "log_equity": {
                "q25": (frac * (centre - spread)).tolist(),
                "q50": (frac * centre).tolist(),
                "q75": (frac * (centre + spread)).tolist(),
            },
            "drawdown": {
                "q25": (0.01 * np.sin(frac * 3) ** 2).tolist(),
                "q50": (0.02 * np.sin(frac * 3) ** 2).tolist(),
                "q75": (0.04 * np.sin(frac * 3) ** 2).tolist(),
            },
        },
        "timing": {"train_s": train_s, "eval_s": 0.1},
        "train": {},
        "provenance": {"git_rev": "test", "versions": {}, "machine": "test", "created_at": ""},
    }


def make_error_record(
    agent: str, *, market: str = "synthetic:regime", seed: int = 0, error: str = "boom"
) -> dict[str, Any]:
    """A status-"error" record with a traceback-like message and no units."""
    rec = make_record(agent, [], market=market, seed=seed)
    rec.update(status="error", error=f"RuntimeError: {error}\nTraceback line 2", units=[])
    rec["curves"] = {}
    return rec


AGENTS = (
    # name, kind, role, mean log growth per 1000-bar window
    ("bayes_filter_expert", "expert", "causal", 0.010),
    ("buy_and_hold", "rule", "causal", 0.002),
    ("sma_crossover", "rule", "causal", 0.008),
    ("ppo_lstm", "online", "causal", 0.012),
    ("regime_expert", "expert", "privileged", 0.015),
    ("hindsight_oracle", "oracle", "future", 0.200),
)


def make_market_records(
    market: str = "synthetic:regime",
    *,
    seeds: Sequence[int] = (0, 1),
    n_units: int = 32,
    noise: float = 0.01,
    ref_shift: float = 0.0,
    rng_seed: int = 0,
) -> list[dict[str, Any]]:
    """Records for the agents in :data:`AGENTS` on one market; agents share per-unit noise
    (the market path), so paired comparisons are tight. ``ref_shift`` moves the reference."""
    rng = np.random.default_rng(rng_seed)
    out = []
    for seed in seeds:
        common = rng.normal(0.0, noise, n_units)
        for name, kind, role, mean in AGENTS:
            own = rng.normal(0.0, noise / 4, n_units)
            shift = ref_shift if name == "bayes_filter_expert" else 0.0
            out.append(
                make_record(
                    name,
                    mean + shift + common + own,
                    market=market,
                    seed=seed,
                    kind=kind,
                    role=role,
                    train_s=1.5 if kind == "online" else 0.0,
                )
            )
    return out
