"""Time-series splits: ordered, disjoint, purged and embargoed; no bar of a test range leaks."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from quantgym import ENV_ID
from quantgym.datasets.splits import (
    DateRange,
    bars_in,
    chronological_split,
    purged_kfold,
    walk_forward,
)

N = 1000


@pytest.fixture(scope="module")
def index() -> pd.DatetimeIndex:
    return pd.date_range("2010-01-01", periods=N, freq="D", name="timestamp")


def positions(index: pd.DatetimeIndex, r: DateRange) -> np.ndarray:
    return bars_in(index, r)


# ---- chronological -------------------------------------------------------------------------


def test_chronological_split_is_ordered_disjoint_and_complete(index: pd.DatetimeIndex) -> None:
    split = chronological_split(index, train=0.7, val=0.15, test=0.15)
    train, val, test = (positions(index, r) for r in split)
    assert (len(train), len(val), len(test)) == (700, 150, 150)
    assert train[-1] + 1 == val[0] and val[-1] + 1 == test[0] and test[-1] == N - 1
    assert split.train.start == index[0] and split.test.end == index[-1]
    assert all(isinstance(t, pd.Timestamp) for r in split for t in r)


def test_chronological_split_embargo_and_no_val(index: pd.DatetimeIndex) -> None:
    split = chronological_split(index, train=0.6, val=0.2, test=0.2, embargo=10)
    train, val, test = (positions(index, r) for r in split)
    assert val[0] - train[-1] == 11 and test[0] - val[-1] == 11
    assert len(train) + len(val) + len(test) + 20 == N
    two = chronological_split(index, train=0.8, val=0.0, test=0.2)
    assert two.val is None
    assert len(positions(index, two.train)) == 800 and len(positions(index, two.test)) == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": 0.7, "val": 0.2, "test": 0.2}, "sum to 1"),
        ({"train": -0.1, "val": 0.6, "test": 0.5}, "train must be in \\[0, 1"),
        ({"train": 1.0, "val": 0.0, "test": 0.0}, "test must be > 0"),
        ({"train": "a", "val": 0.5, "test": 0.5}, "train must be a number"),
        (
            {"train": 0.5, "val": 0.25, "test": 0.25, "embargo": -1},
            "embargo must be an integer >= 0",
        ),
    ],
)
def test_chronological_split_bad_arguments(
    index: pd.DatetimeIndex, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        chronological_split(index[:100], **kwargs)


def test_chronological_split_needs_a_bar_per_part(index: pd.DatetimeIndex) -> None:
    with pytest.raises(ValueError, match="test=0.05 leaves 0 bars of 10"):
        chronological_split(index[:10], train=0.95, val=0.0, test=0.05)
    with pytest.raises(ValueError, match="val=0.1 leaves 0 bars"):
        chronological_split(index[:10], train=0.5, val=0.1, test=0.4, embargo=3)


# ---- walk-forward --------------------------------------------------------------------------


@pytest.mark.parametrize("expanding", [False, True])
def test_walk_forward(index: pd.DatetimeIndex, expanding: bool) -> None:
    folds = walk_forward(
        index, n_folds=4, train_size=300, test_size=100, embargo=5, expanding=expanding
    )
    assert len(folds) == 4
    tests = [positions(index, f.test) for f in folds]
    assert tests[-1][-1] == N - 1  # anchored at the end
    for k, fold in enumerate(folds):
        train, test = positions(index, fold.train), tests[k]
        assert len(test) == 100
        assert test[0] - train[-1] == 6  # embargo of 5 bars
        assert len(train) == (300 + 100 * k if expanding else 300)
        if k:
            assert test[0] == tests[k - 1][-1] + 1  # test windows tile
    fractional = walk_forward(index, n_folds=2, train_size=0.5, test_size=0.1)
    assert len(positions(index, fractional[0].train)) == 500


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_folds": 0, "train_size": 10, "test_size": 10}, "n_folds must be a positive int"),
        ({"n_folds": 10, "train_size": 500, "test_size": 100}, "needs 1500 bars; data has 1000"),
        ({"n_folds": 2, "train_size": 0, "test_size": 10}, "train_size = 0 gives 0 bars"),
        ({"n_folds": 2, "train_size": 1.5, "test_size": 10}, "train_size must be an int"),
    ],
)
def test_walk_forward_bad_arguments(index: pd.DatetimeIndex, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        walk_forward(index, **kwargs)


# ---- purged k-fold -------------------------------------------------------------------------


@pytest.mark.parametrize(("embargo", "label_horizon"), [(0, 1), (20, 1), (7, 3)])
def test_purged_kfold_purges_and_embargoes(
    index: pd.DatetimeIndex, embargo: int, label_horizon: int
) -> None:
    folds = purged_kfold(index, n_folds=5, embargo=embargo, label_horizon=label_horizon)
    all_tests = np.concatenate([positions(index, f.test) for f in folds])
    np.testing.assert_array_equal(all_tests, np.arange(N))  # test folds partition the bars
    for fold in folds:
        test = positions(index, fold.test)
        train = bars_in(index, fold.train)
        lo, hi = test[0], test[-1]
        assert np.intersect1d(train, test).size == 0
        # purging: no training label t..t+h reaches into the test fold
        assert not np.any((train < lo) & (train + label_horizon >= lo))
        # embargo: nothing in the `embargo` bars after the test fold
        assert not np.any((train > hi) & (train <= hi + embargo))
        expected = N - len(test) - min(label_horizon, lo) - min(embargo, N - 1 - hi)
        assert len(train) == expected
    middle = folds[2]
    assert (
        len(middle.train) == 2 and middle.train[0].end < middle.test.start < middle.train[1].start
    )


def test_purged_kfold_bad_arguments(index: pd.DatetimeIndex) -> None:
    with pytest.raises(ValueError, match="n_folds must be an integer >= 2"):
        purged_kfold(index, n_folds=1)
    with pytest.raises(ValueError, match="embargo must be an integer >= 0"):
        purged_kfold(index, n_folds=3, embargo=-2)
    with pytest.raises(ValueError, match="exceeds"):
        purged_kfold(index[:3], n_folds=4)


def test_bars_in_rejects_non_ranges(index: pd.DatetimeIndex) -> None:
    with pytest.raises(ValueError, match="DateRange"):
        bars_in(index, ["2010-01-01"])


# ---- no leak through the env ---------------------------------------------------------------


def run_episode_bars(env: gym.Env, seed: int) -> tuple[int, np.ndarray]:
    """Bar of the reset observation and the ``bar`` info of every step, random actions."""
    _, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    bars, done = [], False
    while not done:
        _, _, terminated, truncated, step_info = env.step(env.action_space.sample())
        bars.append(step_info["bar"])
        done = terminated or truncated
    return int(info["bar"]), np.asarray(bars)


def test_collection_on_train_range_never_reaches_val_or_test() -> None:
    market = gym.make(ENV_ID).unwrapped.market
    split = chronological_split(market, train=0.7, val=0.15, test=0.15, embargo=5)
    first_val = bars_in(market, split.val)[0]
    first_test = bars_in(market, split.test)[0]
    env = gym.make(ENV_ID, end=split.train.end, episode_length=None)
    assert env.unwrapped.market.timestamps[-1] == split.train.end.to_datetime64()
    _, bars = run_episode_bars(env, seed=0)  # runs to the end of the train range
    assert bars.max() == bars_in(market, split.train)[-1]
    assert bars.max() < first_val - 5 and bars.max() < first_test
    sampled = gym.make(ENV_ID, end=split.train.end, episode_length=200)
    for seed in range(3):
        _, bars = run_episode_bars(sampled, seed)
        assert bars.max() < first_val


def test_purged_fold_collection_respects_purge_and_embargo() -> None:
    window_size, embargo = 16, 16
    market = gym.make(ENV_ID, window_size=window_size).unwrapped.market
    fold = purged_kfold(market, n_folds=4, embargo=embargo)[1]
    test = bars_in(market, fold.test)
    before, after = fold.train
    env = gym.make(ENV_ID, window_size=window_size, end=before.end, episode_length=None)
    _, bars = run_episode_bars(env, seed=1)
    assert bars.max() < test[0]  # purged: the last reward is marked before the test fold
    env = gym.make(
        ENV_ID,
        window_size=window_size,
        start=after.start,
        end=after.end,
        episode_length=300,
    )
    for seed in range(2):
        reset_bar, bars = run_episode_bars(env, seed)
        assert bars.min() > test[-1] + embargo
        # the observation window (window_size bars up to the reset bar) holds no test bar
        assert reset_bar - window_size + 1 > test[-1]
