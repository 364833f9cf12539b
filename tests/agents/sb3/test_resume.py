"""Resuming training (issue 11): ``fit(resume_from=...)`` and ``quantgym train --resume``
continue a run from its last checkpoint with weights, optimizer state, VecNormalize
statistics, step counter and RNG state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

import quantgym  # noqa: F401  (registers TradingEnv-v0)
from quantgym.agents import load_agent
from quantgym.agents.cli import main as cli_main
from quantgym.agents.sb3 import PPOLstmAgent, PPOMlpAgent
from quantgym.agents.sb3.files import latest_checkpoint

ENV_KWARGS = {"market_kwargs": {"n_bars": 400}, "window_size": 4, "episode_length": 40}
# constant lr: ppo_mlp's default linear schedule reaches 0 at the last update of a fit, which
# is the only update left after this resume, so the weights could not change
TINY = {
    "n_envs": 2,
    "n_steps": 16,
    "batch_size": 32,
    "n_epochs": 1,
    "seed": 3,
    "lr_schedule": "constant",
}
ROLLOUT = 32  # n_envs x n_steps: one gradient step per rollout (batch 32, 1 epoch)


class Interrupt(BaseCallback):
    """Stops training with a KeyboardInterrupt once ``at`` env steps are done (a killed run)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise KeyboardInterrupt
        return True


def weights(agent: PPOMlpAgent) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in agent.model.policy.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def run_interrupted(cls, run: Path, **extra) -> None:
    """A run killed at 80 of 96 steps, with a checkpoint every 32 steps."""
    agent = cls(**TINY, **extra)
    with pytest.raises(KeyboardInterrupt):
        agent.fit(
            ENV_KWARGS,
            train_steps=3 * ROLLOUT,
            progress_bar=False,
            checkpoint_every=ROLLOUT,
            checkpoint_dir=run / "checkpoints",
            callback=Interrupt(80),
        )


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    run_interrupted(PPOMlpAgent, run)
    return run


def test_checkpoint_holds_optimizer_vecnormalize_and_step(interrupted):
    checkpoint = latest_checkpoint(interrupted)
    assert checkpoint.name == "step_000000064"  # lost 80 - 64 = 16 < checkpoint_every steps
    agent = load_agent(checkpoint)
    assert agent.num_timesteps == 64
    adam = agent.model.policy.optimizer.state_dict()["state"]
    assert adam and all(int(s["step"]) == 2 for s in adam.values())  # two updates so far
    assert agent.vec_normalize.obs_rms.count > 64  # statistics of 64 observations kept
    state = json.loads((checkpoint / "train_state.json").read_text())
    assert {"torch", "numpy", "python"} <= set(state)


def test_resumed_run_finishes_the_budget_reproducibly(interrupted):
    checkpoint = latest_checkpoint(interrupted)
    start = weights(load_agent(checkpoint))
    runs = []
    for _ in range(2):
        agent = PPOMlpAgent(**TINY)
        agent.fit(train_steps=3 * ROLLOUT, progress_bar=False, resume_from=interrupted)
        assert agent.num_timesteps == 3 * ROLLOUT
        adam = agent.model.policy.optimizer.state_dict()["state"]
        assert all(int(s["step"]) == 3 for s in adam.values())  # continued, not restarted
        runs.append((weights(agent), agent.vec_normalize.obs_rms.mean.copy()))
    assert_same_weights(runs[0][0], runs[1][0])  # same checkpoint, same machine: same result
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    changed = [k for k in start if not torch.equal(start[k], runs[0][0][k])]
    assert changed  # it trained from the checkpoint's weights


@pytest.mark.parametrize(
    ("cls", "extra"),
    [(PPOMlpAgent, {}), (PPOLstmAgent, {}), (PPOMlpAgent, {"obs_noise": 0.5})],
    ids=["ppo_mlp", "ppo_lstm", "ppo_mlp-obs_noise"],
)
def test_resumed_run_equals_the_uninterrupted_run(cls, extra, tmp_path):
    uninterrupted = cls(**TINY, **extra)
    uninterrupted.fit(ENV_KWARGS, train_steps=3 * ROLLOUT, progress_bar=False)
    run_interrupted(cls, tmp_path, **extra)
    resumed = cls(**TINY, **extra)
    resumed.fit(train_steps=3 * ROLLOUT, progress_bar=False, resume_from=tmp_path)
    assert resumed.num_timesteps == uninterrupted.num_timesteps == 3 * ROLLOUT
    assert_same_weights(weights(uninterrupted), weights(resumed))
    np.testing.assert_array_equal(
        uninterrupted.vec_normalize.obs_rms.mean, resumed.vec_normalize.obs_rms.mean
    )
    np.testing.assert_array_equal(
        uninterrupted.vec_normalize.obs_rms.var, resumed.vec_normalize.obs_rms.var
    )


def test_resume_from_final_checkpoint_equals_the_uninterrupted_run(tmp_path):
    agent = PPOMlpAgent(**TINY)
    agent.fit(
        ENV_KWARGS,
        train_steps=2 * ROLLOUT,
        progress_bar=False,
        checkpoint_every=ROLLOUT,
        checkpoint_dir=tmp_path,
    )
    resumed = PPOMlpAgent(**TINY)
    resumed.fit(train_steps=2 * ROLLOUT, progress_bar=False, resume_from=tmp_path)
    assert resumed.num_timesteps == agent.num_timesteps == 2 * ROLLOUT
    assert_same_weights(weights(agent), weights(resumed))
    torch.testing.assert_close(
        agent.model.policy.optimizer.state_dict()["state"],
        resumed.model.policy.optimizer.state_dict()["state"],
        rtol=0,
        atol=0,
    )


def test_cli_train_resume(tmp_path):
    run = tmp_path / "x"
    common = [
        "--window-size",
        "4",
        "--episode-length",
        "40",
        "--n-envs",
        "2",
        "--set",
        "n_steps=16",
        "--set",
        "batch_size=32",
        "--set",
        "n_epochs=1",
        "--no-progress",
    ]
    argv = ["train", "ppo_mlp", "--out", str(run), "--steps", "64", "--checkpoint-every", "32"]
    assert cli_main([*argv, *common]) == 0
    assert latest_checkpoint(run).name == "step_000000064"
    argv = ["train", "ppo_mlp", "--resume", str(run), "--steps", "96", "--checkpoint-every", "32"]
    assert cli_main([*argv, *common]) == 0
    final = load_agent(run)
    assert final.num_timesteps == 96
    assert latest_checkpoint(run).name == "step_000000096"
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.is_dir()) == [
        "step_000000032",
        "step_000000064",
        "step_000000096",
    ]
    with pytest.raises(ValueError, match="no checkpoint"):
        latest_checkpoint(tmp_path / "nothing")
