"""What a stress suite asks: the probe levels every agent faces after training once.

A suite with a ``stress:`` mapping (``benchmarks/suites/stress.yaml``) trains each cell's agent
as usual, scores it on the suite's test units (the *base* condition), then re-scores the same
trained agent on the same units under each probe (:mod:`quantgym.benchmark.stress`):

``cost_levels_bp``
    Commission of ``bp / 1e4`` per unit of value traded (each side, no slippage). The agent is
    evaluated as trained (it trained at the suite's ``env_kwargs``); retraining per level is
    ``benchmarks/cost_sweep.py --suite stress`` (one ordinary suite run per level).
``shifts``
    Per market kind, named variants of the synthetic market's parameters, e.g.
    ``{regime: {vol_x1.5: {vols: 0.015}}}``: the agent trained on the default parameters
    trades the same windows of a series drawn with the same seed and the shifted parameters.
    Exact experts read the traded market's parameters, so the reference (100) is the best
    causal policy *of the shifted market*.
``noise_scales``
    Gaussian noise on the observation's market features, in units of each feature's standard
    deviation (:mod:`quantgym.agents.perturbation`).
``adversarial_eps`` / ``adversarial_steps`` / ``adversarial_target``
    A worst-case perturbation of the same features within an L-infinity ball of radius
    ``eps`` feature standard deviations (FGSM for one step, PGD for more), for agents that
    expose differentiable action scores; ``adversarial_target="worst_action"`` (default)
    steers each decision toward the action the agent scores lowest on the clean input,
    ``"untargeted"`` only away from its greedy one (which can *help* an agent that overtrades:
    measured in docs/stress.md).
``worst_fraction``
    The share of windows reported apart as the worst (lowest log return of the market itself).

Agents that decide from the market's prices (rules, experts, the oracle) do not read the
observation: the two perturbation probes leave them unchanged by construction, so their curve
is their base score (the flat reference the learned agents' curves are read against).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from quantgym.checks import (
    check_choice,
    check_fraction,
    check_non_negative,
    check_positive_int,
)

__all__ = ["StressSpec", "PROBES", "DEFAULT_SHIFTS"]

#: The probes, in report order; ``adversarial_worst`` is derived from ``adversarial`` when the
#: tables are built (:func:`quantgym.benchmark.stress_tables.stress_records`), never run.
PROBES = ("cost", "shift", "noise", "adversarial", "adversarial_worst")

#: Shifted parameter sets of the regime and crash markets (defaults: drifts +-0.002, vols 0.01,
#: mean_duration 200; crash_rates (0.002, 0.04), jump_mean -0.04).
DEFAULT_SHIFTS: dict[str, dict[str, dict[str, Any]]] = {
    "regime": {
        "drift_x0.5": {"drifts": [0.001, -0.001, 0.0]},
        "vol_x1.5": {"vols": 0.015},
        "duration_x0.25": {"mean_duration": 50.0},
    },
    "crash": {
        "crash_rate_x2": {"crash_rates": [0.004, 0.08]},
        "jump_x1.5": {"jump_mean": -0.06},
    },
}


def _levels(field: str, value: Any, *, upper: float | None = None) -> tuple[float, ...]:
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ValueError(f"stress.{field} must be a list of numbers, got {value!r}")
    levels = []
    for v in value:
        level = check_non_negative(f"stress.{field}", v)
        if upper is not None and level > upper:
            raise ValueError(f"stress.{field} must be in [0, {upper:g}], got {v!r}")
        levels.append(level)
    if len(set(levels)) != len(levels):
        raise ValueError(f"stress.{field} has duplicates: {list(value)!r}")
    return tuple(sorted(levels))


@dataclasses.dataclass(frozen=True)
class StressSpec:
    """The probes of a stress suite (see the module doc); :meth:`from_mapping` validates."""

    cost_levels_bp: tuple[float, ...] = (0.0, 5.0, 15.0, 30.0, 60.0)
    shifts: Mapping[str, Mapping[str, Mapping[str, Any]]] = dataclasses.field(
        default_factory=lambda: DEFAULT_SHIFTS
    )
    noise_scales: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
    adversarial_eps: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5)
    adversarial_steps: int = 5
    adversarial_target: str = "worst_action"
    worst_fraction: float = 0.1

    @classmethod
    def from_mapping(cls, data: Any) -> StressSpec:
        """From a suite's ``stress:`` mapping (missing keys take the defaults above)."""
        if isinstance(data, StressSpec):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"stress must be a mapping of probe settings, got {data!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"stress: unknown keys {unknown}; valid: {sorted(fields)}")
        values: dict[str, Any] = {}
        if "cost_levels_bp" in data:
            values["cost_levels_bp"] = _levels("cost_levels_bp", data["cost_levels_bp"], upper=500)
        for key in ("noise_scales", "adversarial_eps"):
            if key in data:
                values[key] = tuple(v for v in _levels(key, data[key]) if v > 0)
        if "adversarial_steps" in data:
            values["adversarial_steps"] = check_positive_int(
                "stress.adversarial_steps", data["adversarial_steps"]
            )
        if "adversarial_target" in data:
            from quantgym.agents.perturbation import ADVERSARIAL_TARGETS

            values["adversarial_target"] = check_choice(
                "stress.adversarial_target", data["adversarial_target"], ADVERSARIAL_TARGETS
            )
        if "worst_fraction" in data:
            fraction = check_fraction("stress.worst_fraction", data["worst_fraction"])
            if fraction == 0:
                raise ValueError("stress.worst_fraction must be in (0, 1]")
            values["worst_fraction"] = fraction
        if "shifts" in data:
            values["shifts"] = _check_shifts(data["shifts"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly copy (what a stress cell stores; :meth:`from_mapping` inverts it)."""
        return {
            "cost_levels_bp": list(self.cost_levels_bp),
            "shifts": {k: {n: dict(p) for n, p in v.items()} for k, v in self.shifts.items()},
            "noise_scales": list(self.noise_scales),
            "adversarial_eps": list(self.adversarial_eps),
            "adversarial_steps": self.adversarial_steps,
            "adversarial_target": self.adversarial_target,
            "worst_fraction": self.worst_fraction,
        }

    def shifts_for(self, kind: str) -> dict[str, dict[str, Any]]:
        """The shift variants of a synthetic market kind (none for real data)."""
        return {name: dict(params) for name, params in (self.shifts.get(kind) or {}).items()}

    def n_worst(self, n_units: int) -> int:
        """How many of ``n_units`` windows are the worst ``worst_fraction`` (at least one)."""
        return max(1, math.ceil(self.worst_fraction * n_units - 1e-9))


def _check_shifts(value: Any) -> dict[str, dict[str, dict[str, Any]]]:
    from quantgym.envs.synthetic import SYNTHETIC_KINDS, generate_market

    if not isinstance(value, Mapping):
        raise ValueError(f"stress.shifts must map a market kind to variants, got {value!r}")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, variants in value.items():
        if kind not in SYNTHETIC_KINDS:
            raise ValueError(
                f"stress.shifts: {kind!r} is not a synthetic market kind; valid: "
                f"{', '.join(SYNTHETIC_KINDS)}"
            )
        if not isinstance(variants, Mapping) or not variants:
            raise ValueError(f"stress.shifts[{kind}] must map variant names to parameters")
        out[kind] = {}
        for name, params in variants.items():
            if not isinstance(params, Mapping) or not params:
                raise ValueError(
                    f"stress.shifts[{kind}][{name}] must be a non-empty mapping of the market's "
                    f"parameters, got {params!r}"
                )
            for key in ("n_bars", "seed"):
                if key in params:
                    raise ValueError(f"stress.shifts[{kind}][{name}]: {key} is the harness's")
            try:  # a small series checks the parameter names and values now, not mid-run
                generate_market(kind, n_bars=50, seed=0, **params)
            except ValueError as exc:
                raise ValueError(f"stress.shifts[{kind}][{name}]: {exc}") from None
            out[kind][str(name)] = dict(params)
    return out
