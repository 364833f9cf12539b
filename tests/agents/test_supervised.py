"""supervised: labels stay inside the train range, chronological early stopping, trading rule."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from quantgym import ENV_ID
from quantgym.agents import load_agent, make_agent
from quantgym.agents.supervised import SupervisedAgent, label_bars
from quantgym.datasets.presets import make_dataset

ENV = {"episode_length": 100, "window_size": 4}
FAST = {"hidden_units": [8], "train_steps": 40, "eval_every": 10, "batch_size": 32}


@pytest.fixture(scope="module")
def dataset():
    return make_dataset("regime", "random", n_steps=1200, seed=0, num_envs=4, env_kwargs=ENV)


@pytest.fixture(scope="module")
def closes(dataset) -> np.ndarray:
    kwargs = {k: v for k, v in dataset.metadata["env_kwargs"].items() if k != "end"}
    return np.asarray(gym.make(ENV_ID, **kwargs).unwrapped.market.close)


@pytest.mark.parametrize("horizon", [1, 5])
def test_label_bars_never_reads_past_last_bar(horizon: int) -> None:
    close = np.array([1.0, 2.0, 1.5, 1.6, 1.0, 3.0, 9.0])
    bars = np.arange(7)
    mask, labels = label_bars(close, bars, horizon, last_bar=4)
    assert mask.tolist() == [t + horizon <= 4 for t in range(7)]
    expected = [int(close[t + horizon] > close[t]) for t in range(7) if t + horizon <= 4]
    assert labels[mask].tolist() == expected
    # prices after the last bar cannot change a label
    poisoned = close.copy()
    poisoned[5:] = -1e9
    np.testing.assert_array_equal(label_bars(poisoned, bars, horizon, 4)[1], labels)


def test_fit_reads_no_price_beyond_the_dataset(dataset, closes) -> None:
    last_bar = int(dataset.infos["bar"].max())
    # prices stop at the dataset's last bar: any label from beyond it would raise IndexError
    agent = SupervisedAgent(**FAST, verbose=False)
    agent.fit(dataset, progress_bar=False, prices=closes[: last_bar + 1])
    bars, _, labels = agent._samples(dataset, closes[: last_bar + 1])
    assert bars.max() + agent.config.horizon <= last_bar
    np.testing.assert_array_equal(
        labels, (closes[bars + agent.config.horizon] > closes[bars]).astype(np.int64)
    )
    # the prices rebuilt from the dataset's env kwargs give the same fit
    rebuilt = SupervisedAgent(**FAST, verbose=False).fit(dataset, progress_bar=False)
    assert rebuilt.validation_metrics == agent.validation_metrics


def test_validation_is_the_last_bars_and_metrics_are_printed(dataset, capsys) -> None:
    agent = SupervisedAgent(**FAST).fit(dataset, progress_bar=False)
    out = capsys.readouterr().out
    assert "precision" in out and "recall" in out and "F1" in out
    m = agent.validation_metrics
    assert 0.0 <= m["f1_up"] <= 1.0 and m["n_val"] > 0 and m["n_train"] > m["n_val"]
    assert m["n_train"] + m["n_val"] < len(np.unique(dataset.infos["bar"]))  # purged + unlabelled


@pytest.mark.parametrize(("p", "expected"), [(0.9, 2), (0.5, 1), (0.1, 0)])
def test_threshold_maps_confidence_to_positions(
    dataset, p: float, expected: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = SupervisedAgent(**FAST, verbose=False, threshold=0.6).fit(dataset, progress_bar=False)
    monkeypatch.setattr(agent, "probability_up", lambda obs: np.full(len(np.atleast_2d(obs)), p))
    actions, _ = agent.predict(dataset.step_observations()[:3])
    assert actions.tolist() == [expected] * 3  # positions (-1, 0, 1)


def test_decisions_read_the_moving_average_of_p_up(
    dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = SupervisedAgent(**FAST, verbose=False, threshold=0.6, action_smoothing=0.5)
    agent.fit(dataset, progress_bar=False)
    ps = iter([0.9, 0.1, 0.1, 0.9, 0.1])  # per-bar P(up) of one env
    monkeypatch.setattr(agent, "probability_up", lambda obs: np.full(1, next(ps)))
    obs, state, positions = dataset.step_observations()[:1], None, []
    for start in (True, False, False, False, True):  # a new episode at the last bar
        action, state = agent.predict(obs, state, np.array([start]))
        positions.append(int(action[0]))
    # averages 0.9, 0.5, 0.3, 0.6, 0.1 (restarted): long, flat, short, long, short
    assert positions == [2, 1, 0, 2, 0]
    np.testing.assert_allclose(state, [[0.1]])
    with pytest.raises(ValueError, match="action_smoothing"):
        SupervisedAgent(action_smoothing=0.0)


def test_save_load_round_trip(dataset, tmp_path: Path) -> None:
    agent = make_agent("supervised", **FAST, verbose=False).fit(dataset, progress_bar=False)
    obs = dataset.step_observations()[:16]
    agent.save(tmp_path / "sup")
    loaded = load_agent(tmp_path / "sup")
    np.testing.assert_allclose(loaded.probability_up(obs), agent.probability_up(obs))
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    assert loaded.predict(obs[0])[0].shape == ()


@pytest.mark.parametrize(
    ("field", "value"), [("horizon", 0), ("threshold", 0.4), ("val_fraction", 1.0)]
)
def test_bad_config_raises(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SupervisedAgent(**{field: value})
