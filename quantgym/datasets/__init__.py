"""Offline datasets recorded from the env: collection, storage, splits, exports.

``SequenceDataset`` (Decision Transformer windows) needs torch: import it from
``quantgym.datasets.sequence``.
"""

from quantgym.datasets.collect import collect, env_metadata
from quantgym.datasets.export import to_d3rlpy, to_minari
from quantgym.datasets.presets import QUALITIES, make_behavior_policy, make_dataset
from quantgym.datasets.shards import (
    collect_sharded,
    iter_shards,
    load_sharded,
    make_sharded_dataset,
)
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
from quantgym.datasets.trajectory import (
    FORMAT_VERSION,
    DatasetMetadata,
    Episode,
    TrajectoryDataset,
    concatenate,
)

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
    "iter_shards",
    "load_sharded",
    "make_behavior_policy",
    "make_dataset",
    "make_sharded_dataset",
    "purged_kfold",
    "to_d3rlpy",
    "to_minari",
    "walk_forward",
]
