"""Dataset checks: one rule each, a ValueError naming the array and the first bad item."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.datasets import checks
from quantgym.datasets.format import FORMAT_VERSION
from quantgym.datasets.storage import MarketReference, ObservationReferences


def test_flags_accept_zero_one_numbers():
    flags = checks.check_flags("terminations", np.array([0, 1, 0]), 3)
    assert flags.dtype == np.bool_ and flags.tolist() == [False, True, False]
    with pytest.raises(ValueError, match="terminations must be boolean"):
        checks.check_flags("terminations", np.array([0, 2, 0]), 3)
    with pytest.raises(ValueError, match="truncations must have shape \\(4,\\)"):
        checks.check_flags("truncations", np.zeros(3, bool), 4)


def test_episode_lengths():
    assert checks.check_episode_lengths([3, 1]).dtype == np.int64
    with pytest.raises(ValueError, match="episode_lengths\\[1\\] = 0"):
        checks.check_episode_lengths([3, 0])
    with pytest.raises(ValueError, match="must be integers"):
        checks.check_episode_lengths([1.5])
    with pytest.raises(ValueError, match="at least one episode"):
        checks.check_episode_lengths([])


def test_boundaries_name_the_step_and_episode():
    ends = np.array([2, 5])
    done = np.zeros(5, bool)
    done[[1, 4]] = True
    checks.check_boundaries(done, np.zeros(5, bool), ends)  # exactly on the last steps
    early = done.copy()
    early[3] = True
    with pytest.raises(ValueError, match="step 3 \\(episode 1\\)"):
        checks.check_boundaries(early, np.zeros(5, bool), ends)
    with pytest.raises(ValueError, match="episode 1 ends at step 4 without"):
        checks.check_boundaries(np.array([0, 1, 0, 0, 0], bool), np.zeros(5, bool), ends)


def test_info_names_and_datetimes():
    stamps = checks.check_info(
        "timestamp", np.array(["2020-01-01", "2020-01-02"], "datetime64[D]"), 2
    )
    assert stamps.dtype == np.dtype("datetime64[ns]")
    with pytest.raises(ValueError, match="info name '2x'"):
        checks.check_info("2x", np.zeros(2), 2)


def test_derived_infos_need_references():
    market = MarketReference(np.zeros((10, 2), np.float32), window_size=3, n_account_features=1)
    refs = ObservationReferences(market, np.array([2, 3]), np.zeros((2, 1), np.float32))
    assert checks.check_derived_infos(["bar"], refs, None) == ("bar",)
    with pytest.raises(ValueError, match="needs observations by reference"):
        checks.check_derived_infos(["bar"], np.zeros((2, 7)), None)
    with pytest.raises(ValueError, match="'bar' must be one of"):
        checks.check_derived_infos(["bar"], refs, {"bar": np.zeros(1)})
    with pytest.raises(ValueError, match="cannot be derived"):
        checks.check_derived_infos(["timestamp"], refs, None)  # this market has no timestamps


def test_action_spaces():
    assert checks.infer_action_space(np.array([0, 4])) == {"type": "discrete", "n": 5}
    box = checks.infer_action_space(np.array([[0.5], [-2.0]], np.float32))
    assert box == {"type": "continuous", "shape": [1], "low": -2.0, "high": 1.0}
    with pytest.raises(ValueError, match="actions\\[1\\] = 3 is outside Discrete\\(3\\)"):
        checks.check_action_space({"type": "discrete", "n": 3}, np.array([0, 3]))
    with pytest.raises(ValueError, match="does not match actions shape"):
        checks.check_action_space(box, np.zeros((2, 2), np.float32))


def test_metadata_defaults():
    meta = checks.check_metadata({"seed": np.int64(3)}, np.array([0, 1]))
    assert meta["seed"] == 3 and meta["format_version"] == FORMAT_VERSION
    assert meta["action_space"] == {"type": "discrete", "n": 2} and meta["created_at"]
    with pytest.raises(ValueError, match="format_version"):
        checks.check_metadata({"format_version": FORMAT_VERSION + 1}, np.array([0]))


def test_episode_index_and_selection():
    assert checks.check_episode_index(-1, 3) == 2
    with pytest.raises(ValueError, match="out of range"):
        checks.check_episode_index(3, 3)
    with pytest.raises(ValueError, match="must be an int"):
        checks.check_episode_index(True, 3)
    assert checks.check_episode_selection([True, False, True], 3).tolist() == [0, 2]
    assert checks.check_episode_selection([-1, 0], 3).tolist() == [2, 0]
    with pytest.raises(ValueError, match="out of range"):
        checks.check_episode_selection([5], 3)
    with pytest.raises(ValueError, match="boolean or integer"):
        checks.check_episode_selection([0.5], 3)
