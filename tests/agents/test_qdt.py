"""``qdt``: returns-to-go relabelled with a critic (hand-computed), and the agent around it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("d3rlpy")

from quantgym.agents import load_agent, make_agent  # noqa: E402
from quantgym.agents.decision_transformer.relabel import relabelled_returns_to_go  # noqa: E402
from quantgym.datasets.presets import make_dataset  # noqa: E402

TINY = {"context_length": 4, "n_layers": 1, "d_model": 16, "batch_size": 8, "dropout": 0.0}
CRITIC = {"train_steps": 20, "batch_size": 32, "hidden_units": [8]}


def test_relabelled_returns_take_the_better_of_realised_and_critic() -> None:
    # two episodes: [1, -5, 2] and [3, 4]; V(s_{t+1}) per step (an episode's last is unread)
    rewards = np.array([1.0, -5.0, 2.0, 3.0, 4.0])
    next_values = np.array([0.5, 10.0, 99.0, -1.0, 99.0])
    got = relabelled_returns_to_go(rewards, [3, 2], next_values, gamma=0.5)
    # episode 1, backwards: R2 = 2; R1 = -5 + 0.5 * max(2, 10) = 0; R0 = 1 + 0.5 * max(0, 0.5)
    # episode 2: R4 = 4; R3 = 3 + 0.5 * max(4, -1) = 5
    np.testing.assert_allclose(got, [1.25, 0.0, 2.0, 5.0, 4.0], rtol=0, atol=1e-15)
    # a critic that never beats the realised returns leaves them unchanged
    realised = relabelled_returns_to_go(rewards, [3, 2], np.full(5, -1e9), gamma=1.0)
    np.testing.assert_allclose(realised, [-2.0, -3.0, 2.0, 7.0, 4.0], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("lengths", "values", "match"),
    [
        ([3, 3], np.zeros(5), "episode_lengths"),
        ([5], np.zeros(4), "next_values has 4"),
        ([5], np.array([0.0, np.nan, 0.0, 0.0, 0.0]), "NaN"),
    ],
)
def test_relabel_rejects_bad_input(lengths, values, match) -> None:
    with pytest.raises(ValueError, match=match):
        relabelled_returns_to_go(np.zeros(5), lengths, values)


def test_qdt_trains_on_the_critics_relabelled_returns(tmp_path: Path, monkeypatch) -> None:
    from quantgym.agents.d3rlpy.cql import CQLAgent
    from quantgym.agents.decision_transformer import training

    dataset = make_dataset(
        "regime", "random", n_steps=400, seed=0, num_envs=2, env_kwargs={"episode_length": 50}
    )
    seen = {}
    original = training.WindowSampler.__init__

    def spy(self, *args, returns_to_go=None, **kwargs):
        seen["rtg"] = np.asarray(returns_to_go)
        original(self, *args, returns_to_go=returns_to_go, **kwargs)

    monkeypatch.setattr(training.WindowSampler, "__init__", spy)
    agent = make_agent("qdt", **TINY, train_steps=3, eval_every=3, critic=CRITIC)
    agent.fit(dataset, progress_bar=False)
    critic = CQLAgent(seed=0, **CRITIC).fit(dataset, progress_bar=False)  # the same seed
    values = critic.state_values(dataset.step_observations())
    expected = relabelled_returns_to_go(
        dataset.rewards, dataset.episode_lengths, np.append(values[1:], 0.0), 1.0
    )
    np.testing.assert_allclose(seen["rtg"], expected, rtol=1e-6, atol=1e-9)
    assert (seen["rtg"] >= dataset.returns_to_go(1.0) - 1e-9).all()
    assert (seen["rtg"] > dataset.returns_to_go(1.0) + 1e-9).any()
    agent.save(tmp_path / "qdt")
    loaded = load_agent(tmp_path / "qdt")
    assert loaded.name == "qdt" and loaded.config.critic == CRITIC
    obs = dataset.step_observations()[:4]
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
    with pytest.raises(ValueError, match="critic"):
        make_agent("qdt", critic=["train_steps"])
