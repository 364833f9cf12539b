"""The observation layout every agent config shares (``ObservationLayout``), filled from an env
or a dataset, and the columns it selects."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.agents.observations import (
    LAYOUT_FIELDS,
    N_ACCOUNT_FEATURES,
    ObservationLayout,
    dataset_layout,
    recent_bar_columns,
)
from quantgym.datasets.presets import make_dataset

WINDOW = 4


@pytest.fixture(scope="module")
def env():
    return gym.make(ENV_ID, window_size=WINDOW, episode_length=30)


def test_fill_layout_reads_the_envs_layout_and_keeps_set_fields(env) -> None:
    core = env.unwrapped
    layout = ObservationLayout(n_account_features=7)
    layout.fill_layout(lambda name: getattr(core, name, None))
    assert layout.window_size == WINDOW
    assert layout.n_market_features == core.n_market_features
    assert layout.n_account_features == 7  # already set: kept


def test_fill_layout_names_the_field_the_source_lacks() -> None:
    with pytest.raises(ValueError, match="window_size is not set and the dataset"):
        ObservationLayout().fill_layout(lambda name: None, source="the dataset")


@pytest.mark.parametrize("field", ["recent_bars", *LAYOUT_FIELDS])
@pytest.mark.parametrize("value", [0, -2, 1.5, True])
def test_validate_layout_names_a_bad_field(field: str, value) -> None:
    with pytest.raises(ValueError, match=field):
        ObservationLayout(**{field: value}).validate_layout()


def test_observation_columns(env) -> None:
    dim = env.observation_space.shape[0]
    layout = ObservationLayout(recent_bars=2, window_size=WINDOW)
    np.testing.assert_array_equal(
        layout.observation_columns(dim, account=True), recent_bar_columns(dim, WINDOW, 2, True)
    )
    assert ObservationLayout(recent_bars=None).observation_columns(dim, account=True) is None
    whole = ObservationLayout(recent_bars=None, window_size=WINDOW).observation_columns(dim, False)
    np.testing.assert_array_equal(whole, np.arange(dim - N_ACCOUNT_FEATURES))
    with pytest.raises(ValueError, match="window_size must be set"):
        ObservationLayout(recent_bars=1).observation_columns(dim, account=False)


@pytest.mark.parametrize(
    ("recent_bars", "account", "whole"),
    [(None, True, True), (None, False, False), (None, ["position"], False), (2, True, False)],
)
def test_reads_whole_observation_only_without_any_selection(recent_bars, account, whole) -> None:
    layout = ObservationLayout(recent_bars=recent_bars)
    assert layout.reads_whole_observation(account) is whole
    if whole:  # then no window layout is needed to select columns
        assert layout.observation_columns(10, account) is None


def test_dataset_layout_matches_the_env_it_was_collected_on(env) -> None:
    dataset = make_dataset(
        "regime", "random", n_steps=60, seed=0, env_kwargs={"window_size": WINDOW}
    )
    core = env.unwrapped
    assert dataset_layout(dataset) == {
        "window_size": WINDOW,
        "n_market_features": core.n_market_features,
        "n_account_features": core.n_account_features,
    }
    no_window = SimpleNamespace(metadata={"env_kwargs": {}}, observation_shape=(40,))
    assert dataset_layout(no_window) == dict.fromkeys(LAYOUT_FIELDS)
