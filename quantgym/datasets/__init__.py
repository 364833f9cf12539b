"""Offline datasets recorded from the env: collection, storage, splits, exports.

Modules, lowest first: ``storage`` (observations by reference), ``format`` (columns and the
``.npz`` file), ``shard_format`` (the sharded directory), ``metadata``, ``checks``,
``summary``, ``episode``, ``trajectory`` (:class:`TrajectoryDataset`), ``recorder`` and
``rollout`` (the one rollout loop for single and vector envs), ``shards`` (sharded,
resumable collection), ``collect``, ``presets`` (``make_dataset``), and beside them
``splits``, ``export``, ``trades``, ``sequence`` and ``cli``.

``SequenceDataset`` (Decision Transformer windows) needs torch: import it from
``quantgym.datasets.sequence``.
"""

from quantgym.datasets.collect import collect
from quantgym.datasets.episode import Episode
from quantgym.datasets.export import to_d3rlpy, to_minari
from quantgym.datasets.format import FORMAT_VERSION
from quantgym.datasets.metadata import DatasetMetadata, env_metadata
from quantgym.datasets.presets import QUALITIES, make_behavior_policy, make_dataset
from quantgym.datasets.rollout import from_vector_rollout, rollout
from quantgym.datasets.shards import collect_sharded, iter_shards, load_sharded
from quantgym.datasets.splits import (
    ChronologicalSplit,
    DateRange,
    Fold,
    PurgedFold,
    bars_in,
    chronological_split,
    purged_kfold,
    walk_forward,
)
from quantgym.datasets.storage import MarketReference, ObservationReferences
from quantgym.datasets.trades import from_trades
from quantgym.datasets.trajectory import TrajectoryDataset, concatenate

__all__ = [
    "FORMAT_VERSION",
    "MarketReference",
    "ObservationReferences",
    "QUALITIES",
    "ChronologicalSplit",
    "DatasetMetadata",
    "DateRange",
    "Episode",
    "Fold",
    "PurgedFold",
    "TrajectoryDataset",
    "bars_in",
    "chronological_split",
    "collect",
    "collect_sharded",
    "concatenate",
    "env_metadata",
    "from_trades",
    "from_vector_rollout",
    "iter_shards",
    "load_sharded",
    "make_behavior_policy",
    "make_dataset",
    "purged_kfold",
    "rollout",
    "to_d3rlpy",
    "to_minari",
    "walk_forward",
]
