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
exact). ``"lagged"`` and ``"crash"``: their exact experts ``LagExpert`` and ``CrashExpert``
(:func:`quantgym.policies.references.expert_policy_name`). Real data (``"sample:googl"``, ``"sample:eurusd"``, a CSV path) and ``"gbm"``, where no
regime exists: ``HindsightOracle(on_deviation="follow")``, the best path in hindsight, which
steers back to its plan after each random step.

``make_dataset(out=path)`` collects the same data shard by shard into a resumable directory
(:mod:`quantgym.datasets.shards`) instead of memory.

``split`` selects the date range with :func:`quantgym.datasets.splits.chronological_split`
of the market's tradable bars (train / val / test = 0.7 / 0.15 / 0.15): the env gets
``start``/``end`` so bars after the split are never loaded.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym

from quantgym import ENV_ID
from quantgym.checks import check_choice, check_positive_int
from quantgym.datasets.metadata import env_metadata
from quantgym.datasets.rollout import rollout
from quantgym.datasets.shards import collect_shards, split_steps
from quantgym.datasets.splits import chronological_split
from quantgym.datasets.trajectory import TrajectoryDataset, concatenate
from quantgym.policies import (
    BayesFilterExpert,
    CrashExpert,
    EpsilonMix,
    HindsightOracle,
    LagExpert,
    RandomAgent,
    RegimeExpert,
)
from quantgym.policies.references import SYNTHETIC_KINDS, expert_policy_name

__all__ = [
    "QUALITIES",
    "SPLITS",
    "SYNTHETIC_MARKET_KWARGS",
    "SYNTHETIC_MARKETS",
    "EXPERT_EPSILON",
    "MEDIUM_EPSILON",
    "make_dataset",
    "make_behavior_policy",
    "preset_env_kwargs",
]

QUALITIES = ("random", "medium", "expert", "mixed")
SPLITS = ("train", "val", "test", "all")
SYNTHETIC_MARKETS = SYNTHETIC_KINDS
EXPERT_EPSILON = 0.05
MEDIUM_EPSILON = 0.5
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)
#: The synthetic series a preset collects on (unless ``env_kwargs`` has ``market_kwargs``):
#: 100,000 bars, so the train split holds 70,000 distinct bars. On the default 10,000-bar
#: series (6,467 tradable train bars) an offline learner fed 50k transitions sees each bar
#: about eight times and fits its noise (measured: docs/offline.md). Business days from 1700
#: keep the series inside pandas' datetime range.
SYNTHETIC_MARKET_KWARGS = {"n_bars": 100_000, "start": "1700-01-01"}
_MIXED_PARTS = ("random", "medium", "expert")


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


def _source(market: str, env_kwargs: dict | None) -> dict[str, Any]:
    """The market source of a preset: :func:`_market_source`, and for a synthetic market
    :data:`SYNTHETIC_MARKET_KWARGS` unless ``env_kwargs`` names its own ``market_kwargs``."""
    source = _market_source(market)
    if source.get("market") is not None and "market_kwargs" not in (env_kwargs or {}):
        source["market_kwargs"] = dict(SYNTHETIC_MARKET_KWARGS)
    return source


def preset_env_kwargs(
    market: str = "regime", split: str = "train", env_kwargs: dict | None = None
) -> dict[str, Any]:
    """Env kwargs of a preset: the market source, ``env_kwargs`` and the split's ``start``/``end``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    kwargs = {**_source(market, env_kwargs), **dict(env_kwargs or {})}
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
    ranges = chronological_split(market_data, *SPLIT_FRACTIONS)
    chosen = getattr(ranges, split)
    # Later envs reuse the loaded market (features computed once); start/end re-slice it.
    kwargs["data"] = market_data
    kwargs.pop("market", None)
    kwargs.pop("market_kwargs", None)
    kwargs["start"], kwargs["end"] = chosen.start, chosen.end
    return kwargs


#: The dataset experts by registered name (``expert_policy_name`` picks one per market).
_EXPERTS = {cls.name: cls for cls in (RegimeExpert, BayesFilterExpert, LagExpert, CrashExpert)}


def _expert(env: Any) -> Any:
    name = expert_policy_name(env.unwrapped.market)
    if name in _EXPERTS:
        return _EXPERTS[name](env=env)
    return HindsightOracle(env=env, on_deviation="follow")


def make_behavior_policy(quality: str, env: Any, seed: int = 0) -> Any:
    """The behaviour policy of ``quality`` (``"random"``, ``"medium"`` or ``"expert"``) on ``env``."""
    if quality == "random":
        return RandomAgent(env=env, seed=seed)
    if quality == "medium":
        return EpsilonMix(_expert(env), MEDIUM_EPSILON, seed=seed, env=env)
    if quality == "expert":
        return EpsilonMix(_expert(env), EXPERT_EPSILON, seed=seed, env=env)
    raise ValueError(f"quality must be one of {QUALITIES[:3]} here, got {quality!r}")


def _quality_parts(quality: str, n_steps: int) -> list[tuple[str, int]]:
    """``(quality, steps)`` of each part: one, or for ``"mixed"`` random/medium/expert thirds."""
    if quality != "mixed":
        return [(quality, n_steps)]
    if n_steps < 3:
        raise ValueError(f"n_steps must be >= 3 for quality='mixed', got {n_steps}")
    thirds = [n_steps // 3] * 3
    thirds[2] += n_steps - sum(thirds)
    return list(zip(_MIXED_PARTS, thirds, strict=True))


def _mixed_in_memory(
    parts: list[TrajectoryDataset], seed: int, preset: dict[str, Any]
) -> TrajectoryDataset:
    meta = dict(parts[0].metadata)
    meta.pop("created_at", None)
    meta.update(
        behavior_policy="mixed",
        policy_params={
            "components": [p.metadata["policy_params"] for p in parts],
            "qualities": list(_MIXED_PARTS),
        },
        seed=seed,
        preset={**preset, "quality": "mixed"},
        components=[p.metadata for p in parts],
        component_episodes=[p.n_episodes for p in parts],
    )
    return concatenate(parts, metadata=meta)


def make_dataset(
    market: str = "regime",
    quality: str = "expert",
    n_steps: int = 100_000,
    seed: int = 0,
    split: str = "train",
    num_envs: int = 16,
    env_kwargs: dict | None = None,
    progress: bool = False,
    *,
    out: str | os.PathLike | None = None,
    shard_steps: int = 1_000_000,
    resume: bool = True,
    mmap: bool = True,
) -> TrajectoryDataset:
    """Collect a preset dataset (see the module docstring for the definitions).

    Args:
        market: a synthetic kind (``"regime"``, ``"gbm"``, ``"mean_reversion"``, ``"lagged"``,
            ``"crash"``; seeded), or real data
            ``"sample:googl"``, ``"sample:eurusd"`` or a CSV path.
        quality: ``"random"``, ``"medium"``, ``"expert"`` or ``"mixed"``.
        n_steps: transitions in the dataset (``"mixed"``: split into thirds).
        seed: seeds the envs (``seed + i`` for env i) and the behaviour policy; the parts of
            ``"mixed"`` add ``k * num_envs`` (k = 0, 1, 2), so their env seeds are disjoint.
        split: ``"train"``, ``"val"``, ``"test"`` (chronological 0.7 / 0.15 / 0.15) or ``"all"``.
        num_envs: vector env width.
        env_kwargs: extra ``TradingEnv`` kwargs (costs, window_size, episode_length ...).
        progress: show a progress bar.
        out: a directory: collect shard by shard into it (memory holds one shard) and return
            the dataset read back from it (``mmap``); an interrupted run resumes to the same
            dataset (``resume=True``). Shard ``j`` of a part adds ``j * len(parts) * num_envs``
            to the part's seed, so the first shard of each part is what the in-memory dataset
            holds and no env seed repeats.
        shard_steps: transitions per shard with ``out``.
        resume: with ``out``, keep the verified shards already there.
        mmap: with ``out``, memory-map the returned dataset.
    """
    check_choice("quality", quality, QUALITIES)
    n_steps = check_positive_int("n_steps", n_steps)
    num_envs = check_positive_int("num_envs", num_envs)
    shard_steps = check_positive_int("shard_steps", shard_steps)
    seed = check_positive_int("seed", seed, minimum=0)
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
    parts = _quality_parts(quality, n_steps)
    env = gym.make_vec(ENV_ID, num_envs=num_envs, **kwargs)
    try:
        env_meta = env_metadata(env)["env_kwargs"]
        env_meta.update(_source(market, env_kwargs))  # the source, not "<MarketData>"
        metas = [{"preset": {**preset, "quality": q}, "env_kwargs": env_meta} for q, _ in parts]
        if out is None:
            datasets = []
            for k, (q, steps) in enumerate(parts):
                part_seed = seed + k * num_envs  # disjoint env seeds across the parts
                policy = make_behavior_policy(q, env, part_seed)
                datasets.append(
                    rollout(
                        env,
                        policy,
                        n_steps=steps,
                        seed=part_seed,
                        progress=progress,
                        metadata=metas[k],
                    )  # fmt: skip
                )
            return datasets[0] if quality != "mixed" else _mixed_in_memory(datasets, seed, preset)
        tasks = [
            {
                "n_steps": shard,
                "seed": seed + (k + len(parts) * j) * num_envs,
                "quality": q,
                "metadata": metas[k],
            }
            for k, (q, steps) in enumerate(parts)
            for j, shard in enumerate(split_steps(steps, shard_steps))
        ]
        plan = {
            "market": market,
            "quality": quality,
            "n_steps": n_steps,
            "seed": seed,
            "split": split,
            "num_envs": num_envs,
            "shard_steps": shard_steps,
            "env_kwargs": _source(market, env_kwargs) | dict(env_kwargs or {}),
        }
        dataset_meta: dict[str, Any] = {
            "seed": seed,
            "preset": {**preset, "quality": quality},
            "collect": plan | {"n_shards": len(tasks)},
        }
        if quality == "mixed":
            dataset_meta["behavior_policy"] = "mixed"
            dataset_meta["policy_params"] = {"qualities": list(_MIXED_PARTS)}
        return collect_shards(
            env,
            out,
            tasks,
            plan,
            lambda task: make_behavior_policy(task["quality"], env, int(task["seed"])),
            progress=progress,
            resume=resume,
            dataset_metadata=dataset_meta,
            mmap=mmap,
        )
    finally:
        env.close()
