"""D4RL-style dataset presets: one call builds a random / medium / expert / mixed dataset.

================  =========================================================================
quality           behaviour policy
================  =========================================================================
``"random"``      ``RandomAgent``: uniformly random actions
``"medium"``      ``EpsilonMix(expert, epsilon=0.5)``: the expert, half of the steps random
``"expert"``      ``EpsilonMix(expert, epsilon=0.05)``: the expert with 5 % random steps
``"mixed"``       the union of random, medium and expert episodes, one third of the steps each
================  =========================================================================

The expert depends on the market. Synthetic ``"regime"``: ``RegimeExpert`` (it sees the
hidden regime). Synthetic ``"mean_reversion"``: ``BayesFilterExpert`` (the OU expectation is
exact). Real data (``"sample:googl"``, ``"sample:eurusd"``, a CSV path) and ``"gbm"``, where no
regime exists: ``HindsightOracle(on_deviation="follow")``, the best path in hindsight, which
steers back to its plan after each random step.

``split`` selects the date range with :func:`quantgym.datasets.splits.chronological_split`
of the market's tradable bars (train / val / test = 0.7 / 0.15 / 0.15): the env gets
``start``/``end`` so bars after the split are never loaded.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from quantgym import ENV_ID
from quantgym.datasets.collect import collect
from quantgym.datasets.trajectory import TrajectoryDataset, concatenate

__all__ = [
    "QUALITIES",
    "SPLITS",
    "SYNTHETIC_MARKETS",
    "EXPERT_EPSILON",
    "MEDIUM_EPSILON",
    "make_dataset",
    "make_behavior_policy",
    "preset_env_kwargs",
]

QUALITIES = ("random", "medium", "expert", "mixed")
SPLITS = ("train", "val", "test", "all")
SYNTHETIC_MARKETS = ("regime", "gbm", "mean_reversion")
EXPERT_EPSILON = 0.05
MEDIUM_EPSILON = 0.5
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


def _market_source(market: str) -> dict[str, Any]:
    if not isinstance(market, str):
        raise ValueError(
            f"market must be a string such as 'regime' or 'sample:googl', got {market!r}"
        )
    name = market[len("synthetic:") :] if market.startswith("synthetic:") else market
    if name in SYNTHETIC_MARKETS:
        return {"data": None, "market": name}
    if market.startswith("sample:") or market.endswith((".csv", ".csv.gz")):
        return {"data": market}
    raise ValueError(
        f"unknown market {market!r}; use one of {SYNTHETIC_MARKETS}, 'sample:googl', "
        "'sample:eurusd' or a CSV path"
    )


def preset_env_kwargs(
    market: str = "regime", split: str = "train", env_kwargs: dict | None = None
) -> dict[str, Any]:
    """Env kwargs of a preset: the market source, ``env_kwargs`` and the split's ``start``/``end``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kwargs = {**_market_source(market), **dict(env_kwargs or {})}
    if split == "all":
        return kwargs
    for key in ("start", "end"):
        if kwargs.get(key) is not None:
            raise ValueError(f"env_kwargs[{key!r}] conflicts with split={split!r}; use split='all'")
    probe = gym.make(ENV_ID, **kwargs)
    try:
        core: Any = probe.unwrapped
        market_data = core.market
    finally:
        probe.close()
    from quantgym.datasets.splits import chronological_split

    ranges = chronological_split(market_data, *SPLIT_FRACTIONS)
    chosen = getattr(ranges, split)
    # Later envs reuse the loaded market (features computed once); start/end re-slice it.
    kwargs["data"] = market_data
    kwargs.pop("market", None)
    kwargs.pop("market_kwargs", None)
    kwargs["start"], kwargs["end"] = chosen.start, chosen.end
    return kwargs


def _expert(env: Any) -> Any:
    from quantgym.policies import BayesFilterExpert, HindsightOracle, RegimeExpert
    from quantgym.policies.references import expert_policy_name

    name = expert_policy_name(env.unwrapped.market)
    if name == "regime_expert":
        return RegimeExpert(env=env)
    if name == "bayes_filter_expert":
        return BayesFilterExpert(env=env)
    return HindsightOracle(env=env, on_deviation="follow")


def make_behavior_policy(quality: str, env: Any, seed: int = 0) -> Any:
    """The behaviour policy of ``quality`` (``"random"``, ``"medium"`` or ``"expert"``) on ``env``."""
    from quantgym.policies import EpsilonMix, RandomAgent

    if quality == "random":
        return RandomAgent(env=env, seed=seed)
    if quality == "medium":
        return EpsilonMix(_expert(env), MEDIUM_EPSILON, seed=seed, env=env)
    if quality == "expert":
        return EpsilonMix(_expert(env), EXPERT_EPSILON, seed=seed, env=env)
    raise ValueError(f"quality must be one of {QUALITIES[:3]} here, got {quality!r}")


def _check_positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _collect_quality(
    quality: str, kwargs: dict, n_steps: int, seed: int, num_envs: int, progress: bool, preset: dict
) -> TrajectoryDataset:
    env = gym.make_vec(ENV_ID, num_envs=num_envs, **kwargs)
    try:
        policy = make_behavior_policy(quality, env, seed)
        from quantgym.datasets.collect import env_metadata

        env_meta = env_metadata(env)["env_kwargs"]
        env_meta.update(_market_source(preset["market"]))  # the source, not "<MarketData>"
        meta = {"preset": {**preset, "quality": quality}, "env_kwargs": env_meta}
        return collect(env, policy, n_steps=n_steps, seed=seed, progress=progress, metadata=meta)
    finally:
        env.close()


def make_dataset(
    market: str = "regime",
    quality: str = "expert",
    n_steps: int = 100_000,
    seed: int = 0,
    split: str = "train",
    num_envs: int = 16,
    env_kwargs: dict | None = None,
    progress: bool = False,
) -> TrajectoryDataset:
    """Collect a preset dataset (see the module docstring for the definitions).

    Args:
        market: ``"regime"``, ``"gbm"``, ``"mean_reversion"`` (synthetic, seeded), or real data
            ``"sample:googl"``, ``"sample:eurusd"`` or a CSV path.
        quality: ``"random"``, ``"medium"``, ``"expert"`` or ``"mixed"``.
        n_steps: transitions in the dataset (``"mixed"``: split into thirds).
        seed: seeds the envs (``seed + i`` for env i) and the behaviour policy.
        split: ``"train"``, ``"val"``, ``"test"`` (chronological 0.7 / 0.15 / 0.15) or ``"all"``.
        num_envs: vector env width.
        env_kwargs: extra ``TradingEnv`` kwargs (costs, window_size, episode_length ...).
        progress: show a progress bar.
    """
    if quality not in QUALITIES:
        raise ValueError(f"quality must be one of {QUALITIES}, got {quality!r}")
    n_steps = _check_positive("n_steps", n_steps)
    num_envs = _check_positive("num_envs", num_envs)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    kwargs = preset_env_kwargs(market, split, env_kwargs)
    preset = {
        "market": market,
        "split": split,
        "split_range": [str(kwargs.get("start")), str(kwargs.get("end"))]
        if split != "all"
        else None,
        "expert_epsilon": EXPERT_EPSILON,
        "medium_epsilon": MEDIUM_EPSILON,
    }
    if quality != "mixed":
        return _collect_quality(quality, kwargs, n_steps, int(seed), num_envs, progress, preset)
    if n_steps < 3:
        raise ValueError(f"n_steps must be >= 3 for quality='mixed', got {n_steps}")
    thirds = [n_steps // 3] * 3
    thirds[2] += n_steps - sum(thirds)
    parts = [
        # Offset the seeds so the three parts use disjoint env seeds.
        _collect_quality(q, kwargs, size, int(seed) + k * num_envs, num_envs, progress, preset)
        for k, (q, size) in enumerate(zip(("random", "medium", "expert"), thirds, strict=True))
    ]
    meta = dict(parts[0].metadata)
    meta.pop("created_at", None)
    meta.update(
        behavior_policy="mixed",
        policy_params={
            "components": [p.metadata["policy_params"] for p in parts],
            "qualities": ["random", "medium", "expert"],
        },
        seed=int(seed),
        preset={**preset, "quality": "mixed"},
        components=[p.metadata for p in parts],
        component_episodes=[p.n_episodes for p in parts],
    )
    return concatenate(parts, metadata=meta)
