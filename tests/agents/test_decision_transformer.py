"""Our Decision Transformer (``dt``): config, model (causality, padding, heads), training,
stateful policy, fine-tuning and checkpoints."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from quantgym.agents import load_agent, make_agent
from quantgym.agents.decision_transformer import (
    DecisionTransformer,
    DecisionTransformerAgent,
    DecisionTransformerConfig,
)
from quantgym.agents.decision_transformer.training import (
    DTBatch,
    compute_loss,
    expectile_loss,
    forward_risk,
    lr_factor,
)
from quantgym.datasets.presets import make_dataset

ENV = {"episode_length": 60, "window_size": 4}
TINY = {"context_length": 4, "n_layers": 2, "d_model": 16, "batch_size": 8, "dropout": 0.0}
OBS_DIM = 4 * 3 + 5  # a window of 4 bars x 3 features + 5 account features


@pytest.fixture(scope="module")
def tiny_dataset():
    return make_dataset("regime", "mixed", n_steps=600, seed=0, num_envs=3, env_kwargs=ENV)


def _model(seed: int = 0, **kwargs) -> DecisionTransformer:
    torch.manual_seed(seed)
    shape = {"d_model": 16, "n_layers": 2, "n_heads": 2, "dropout": 0.0, **kwargs}
    return DecisionTransformer(state_dim=5, n_actions=3, max_timestep=30, **shape).eval()


def _batch(b: int = 4, k: int = 6, seed: int = 0) -> DTBatch:
    g = torch.Generator().manual_seed(seed)
    return DTBatch(
        states=torch.randn(b, k, 5, generator=g),
        actions=torch.randint(0, 3, (b, k), generator=g),
        returns_to_go=torch.randn(b, k, 1, generator=g),
        timesteps=torch.randint(0, 31, (b, k), generator=g),
        mask=torch.ones(b, k),
        size=torch.rand(b, k, generator=g),
        risk=torch.rand(b, k, generator=g),
    )


def _agent(**fields) -> DecisionTransformerAgent:
    config = {
        **TINY,
        "observation_dim": OBS_DIM,
        "window_size": 4,
        "n_actions": 3,
        "positions": [-1.0, 0.0, 1.0],
        "max_timestep": 50,
        "target_return": 1.0,
        **fields,
    }
    return make_agent("dt", **config)


# -- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("context_length", 0),
        ("d_model", 30),  # not divisible by n_heads=4 below
        ("return_conditioning", "lucky"),
        ("rtg_scale", 0.0),
        ("expectile", 1.0),
        ("risk_kind", "var"),
        ("val_fraction", 1.0),
    ],
)
def test_config_rejects_bad_field_by_name(field: str, value) -> None:
    extra = {"n_heads": 4} if field == "d_model" else {}
    with pytest.raises(ValueError, match=field):
        DecisionTransformerConfig(**{field: value, **extra})


def test_config_defaults_json_round_trip_and_registry() -> None:
    config = DecisionTransformerConfig()
    assert (config.context_length, config.n_layers, config.n_heads, config.d_model) == (
        10,
        2,
        1,
        64,
    )
    assert config.batch_size == 64 and config.return_conditioning == "critic"
    assert DecisionTransformerConfig(**json.loads(json.dumps(config.to_dict()))) == config
    agent = make_agent("dt", context_length=7, return_conditioning="target")
    assert isinstance(agent, DecisionTransformerAgent)
    assert agent.config.context_length == 7 and agent.model is None
    with pytest.raises(ValueError, match="n_layers"):
        make_agent("dt", n_layers=-1)


# -- model ------------------------------------------------------------------------------------
def test_causal_mask_later_tokens_do_not_change_earlier_outputs() -> None:
    model, batch = _model(), _batch()
    t = 2
    out = model(batch.states, batch.actions, batch.returns_to_go, batch.timesteps)
    states, actions = batch.states.clone(), batch.actions.clone()
    rtg, steps = batch.returns_to_go.clone(), batch.timesteps.clone()
    states[:, t + 1 :] += 5.0
    rtg[:, t + 1 :] -= 3.0
    actions[:, t:] = (actions[:, t:] + 1) % 3  # a_t comes after s_t: it must not matter either
    steps[:, t + 1 :] = 0
    changed = model(states, actions, rtg, steps)
    for name in ("action_logits", "value", "size", "risk"):
        a, b = getattr(out, name)[:, : t + 1], getattr(changed, name)[:, : t + 1]
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # and the later positions did change (the test can fail)
    assert not torch.allclose(out.action_logits[:, t + 1 :], changed.action_logits[:, t + 1 :])


def test_padding_does_not_change_the_loss() -> None:
    model, batch = _model(), _batch()
    mask = torch.ones(4, 6)
    mask[0, 3:] = 0  # right padding of three windows of different lengths
    mask[1, 1:] = 0
    mask[2, 5:] = 0
    config = DecisionTransformerConfig(value_weight=0.5, size_weight=0.3, risk_weight=0.2)
    padded = batch._replace(mask=mask)
    loss, parts = compute_loss(model, padded, config)
    pad = mask == 0
    garbage = padded._replace(
        states=torch.where(pad[..., None], 99.0, batch.states),
        actions=torch.where(pad, 2, batch.actions),
        returns_to_go=torch.where(pad[..., None], -7.0, batch.returns_to_go),
        timesteps=torch.where(pad, 30, batch.timesteps),
        size=torch.where(pad, 0.9, batch.size),
        risk=torch.where(pad, 5.0, batch.risk),
    )
    loss2, parts2 = compute_loss(model, garbage, config)
    torch.testing.assert_close(loss, loss2, rtol=0, atol=1e-6)
    assert set(parts) == {"action", "value", "size", "risk"}
    # a real step changed does change the loss
    real = padded._replace(actions=torch.where(pad, batch.actions, (batch.actions + 1) % 3))
    assert abs(float(compute_loss(model, real, config)[0].detach()) - float(loss.detach())) > 1e-4


def test_action_logits_at_matches_full_forward() -> None:
    model, batch = _model(), _batch()
    lengths = torch.tensor([1, 3, 6, 4])
    full = model(batch.states, batch.actions, batch.returns_to_go, batch.timesteps)
    expected = full.action_logits[torch.arange(4), lengths - 1]
    fast = model.action_logits_at(
        batch.states, batch.actions, batch.returns_to_go, batch.timesteps, lengths
    )
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n_heads", [1, 2])
def test_pruned_forward_equals_the_full_computation(n_heads: int) -> None:
    model, batch = _model(n_heads=n_heads), _batch()
    x = (batch.states, batch.actions, batch.returns_to_go, batch.timesteps)
    torch.testing.assert_close(
        model(*x).action_logits, model.forward_full(*x), rtol=1e-5, atol=1e-5
    )


def test_heads_ranges_and_attention_weights() -> None:
    model, batch = _model(), _batch()
    with torch.no_grad():
        out = model(batch.states, batch.actions, batch.returns_to_go, batch.timesteps)
    assert out.action_logits.shape == (4, 6, 3) and out.value.shape == (4, 6)
    assert float(out.size.min()) >= 0 and float(out.size.max()) <= 1
    assert float(out.risk.min()) >= 0
    maps = model.attention_weights(
        batch.states, batch.actions, batch.returns_to_go, batch.timesteps
    )
    assert maps.shape == (4, 2, 2, 18, 18)
    torch.testing.assert_close(maps.sum(-1), torch.ones(4, 2, 2, 18))
    assert float(maps.triu(1).abs().max()) == 0.0  # causal: nothing above the diagonal


def test_overfits_one_small_batch() -> None:
    model, batch = _model(), _batch(b=4, k=6)
    model.train()
    config = DecisionTransformerConfig(value_weight=0.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = float(compute_loss(model, batch, config)[0].detach())
    for _ in range(150):
        loss, _ = compute_loss(model, batch, config)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert first > 0.8  # ~log(3) at initialisation
    assert float(loss.detach()) < 0.05


def test_frozen_backbone_gets_no_gradients_and_unfreeze_last() -> None:
    model, batch = _model(), _batch()
    model.freeze_backbone()
    loss, _ = compute_loss(model, batch, DecisionTransformerConfig(size_weight=1.0))
    loss.backward()
    for module in model.backbone_modules():
        assert all(p.grad is None for p in module.parameters())
    assert model.action_head.weight.grad is not None
    model.zero_grad(set_to_none=True)
    model.unfreeze_last(1)
    compute_loss(model, batch, DecisionTransformerConfig())[0].backward()
    assert all(p.grad is not None for p in model.blocks[-1].parameters())
    assert all(p.grad is None for p in model.blocks[0].parameters())
    assert model.embed_state.weight.grad is None
    with pytest.raises(ValueError, match="n must be"):
        model.unfreeze_last(3)


def test_losses_and_schedule_helpers() -> None:
    pred, target = torch.zeros(2), torch.tensor([1.0, -1.0])
    torch.testing.assert_close(expectile_loss(pred, target, 0.8), torch.tensor([0.8, 0.2]))
    assert lr_factor(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_factor(100, 10, 100, 0.1) == pytest.approx(0.1)
    rewards = np.array([0.1, -0.2, -0.1, 0.3, 0.0])
    dd = forward_risk(rewards, np.array([3, 5]), horizon=3, kind="drawdown")
    np.testing.assert_allclose(dd, [0.3, 0.3, 0.1, 0.0, 0.0])
    vol = forward_risk(rewards, np.array([3, 5]), horizon=2, kind="volatility")
    np.testing.assert_allclose(vol, [0.15, 0.05, 0.0, 0.15, 0.0])


# -- agent: fit, predict, state, checkpoints ----------------------------------------------------
def test_fit_is_seeded_and_predicts_batched(tiny_dataset) -> None:
    a = make_agent("dt", **TINY, train_steps=6, eval_every=3, seed=3, value_weight=0.5)
    b = make_agent("dt", **TINY, train_steps=6, eval_every=3, seed=3, value_weight=0.5)
    a.fit(tiny_dataset, progress_bar=False)
    b.fit(tiny_dataset, progress_bar=False)
    assert a.history is not None and a.history.steps == 6 and len(a.history.val_losses) == 2
    for (name, p), q in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(p, q), name
    c = a.config
    assert c.observation_dim == tiny_dataset.observation_shape[0] and c.n_actions == 3
    returns = tiny_dataset.episode_returns()
    assert c.target_return == pytest.approx(np.quantile(returns, 0.9))
    obs = tiny_dataset.step_observations()[:5]
    actions, state = a.predict(obs)
    assert actions.shape == (5,) and actions.dtype == np.int64 and set(actions) <= {0, 1, 2}
    assert a.attention_weights().shape == (5, 2, 1, 12, 12)
    assert a.attention_weights(state).shape == (5, 2, 1, 12, 12)
    single, _ = a.predict(obs[0])
    assert np.ndim(single) == 0


def _obs(position: float, upnl: float, drawdown: float = 0.0) -> np.ndarray:
    obs = np.zeros(OBS_DIM, np.float32)
    obs[-5], obs[-3], obs[-2] = position, upnl, drawdown
    return obs


def test_stateful_policy_decrements_rtg_and_resets() -> None:
    agent = _agent(target_return=1.0, return_conditioning="target")
    obs = np.stack([_obs(1.0, 0.0), _obs(0.0, 0.0)])
    _, state = agent.predict(obs)
    np.testing.assert_allclose(state.returns_to_go[:, 0], [1.0, 1.0])
    # env 0 holds its long position and gains 10 %; env 1 stays flat (reward 0)
    _, state = agent.predict(np.stack([_obs(1.0, 0.1), _obs(0.0, 0.0)]), state, np.zeros(2, bool))
    expected = 1.0 - np.log(1.1)
    np.testing.assert_allclose(state.returns_to_go[:, 1], [expected, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(state.length, [2, 2])
    np.testing.assert_array_equal(state.timesteps[:, :2], [[0, 1], [0, 1]])
    # env 0 starts a new episode: its context and target reset, env 1 keeps going
    _, state = agent.predict(
        np.stack([_obs(0.0, 0.0), _obs(0.0, 0.0)]), state, np.array([1, 0], bool)
    )
    np.testing.assert_array_equal(state.length, [1, 3])
    assert state.returns_to_go[0, 0] == pytest.approx(1.0)
    assert state.timesteps[0, 0] == 0 and state.timesteps[1, 2] == 2
    # the window slides once K steps are held
    for _ in range(5):
        _, state = agent.predict(np.stack([_obs(0.0, 0.0)] * 2), state, np.zeros(2, bool))
    np.testing.assert_array_equal(state.length, [4, 4])
    np.testing.assert_array_equal(state.timesteps[1], [4, 5, 6, 7])


def test_critic_conditioning_uses_the_value_head() -> None:
    agent = _agent(return_conditioning="critic", rtg_scale=2.0)
    obs = np.stack([_obs(0.0, 0.0), _obs(1.0, 0.0)])
    obs[:, :12] = np.random.default_rng(0).normal(size=(2, 12))
    _, state = agent.predict(obs)
    values = agent.value(obs, 0)
    np.testing.assert_allclose(state.returns_to_go[:, 0] * 2.0, values, rtol=1e-5)


def test_save_load_identical_logits_and_config_mismatch(tiny_dataset, tmp_path: Path) -> None:
    agent = make_agent("dt", **TINY, train_steps=3, eval_every=3)
    agent.fit(tiny_dataset, progress_bar=False)
    agent.save(tmp_path / "dt")
    loaded = load_agent(tmp_path / "dt")
    assert isinstance(loaded, DecisionTransformerAgent) and loaded.config == agent.config
    obs = tiny_dataset.step_observations()[:4]
    _, s1 = agent.predict(obs)
    _, s2 = loaded.predict(obs)
    x1, x2 = agent._tensors(s1), loaded._tensors(s2)
    with torch.inference_mode():
        torch.testing.assert_close(agent.model(*x1), loaded.model(*x2), rtol=0, atol=0)
    # a config that does not match the checkpoint is a clear error naming the field
    meta = json.loads((tmp_path / "dt" / "agent.json").read_text())
    meta["config"]["d_model"] = 32
    (tmp_path / "dt" / "agent.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="d_model"):
        load_agent(tmp_path / "dt")
    with pytest.raises(ValueError, match="does not exist"):
        agent._load_state(tmp_path / "missing")


def test_fine_tuning_keeps_the_frozen_backbone(tiny_dataset) -> None:
    agent = make_agent("dt", **TINY, train_steps=3, eval_every=3)
    agent.fit(tiny_dataset, progress_bar=False)
    before = {k: v.clone() for k, v in agent.model.state_dict().items()}
    agent.freeze_backbone()
    agent.config = dataclasses.replace(agent.config, warmup_steps=0)
    agent.fit(tiny_dataset, train_steps=4, progress_bar=False)
    after = agent.model.state_dict()
    assert torch.equal(before["blocks.0.attn.qkv.weight"], after["blocks.0.attn.qkv.weight"])
    assert not torch.equal(before["action_head.weight"], after["action_head.weight"])


def test_fit_rejects_continuous_and_non_datasets() -> None:
    with pytest.raises(ValueError, match="TrajectoryDataset"):
        make_agent("dt").fit(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no model yet"):
        make_agent("dt").predict(np.zeros(OBS_DIM))


def test_window_sampler_chronological_split_and_right_padding() -> None:
    from quantgym.agents.decision_transformer.training import WindowSampler

    n = 20  # two episodes of 10 steps; the second starts 5 bars later
    bars = np.concatenate([np.arange(10), np.arange(5, 15)])
    config = DecisionTransformerConfig(context_length=3, val_fraction=0.2, max_timestep=9)
    sampler = WindowSampler(
        np.arange(n, dtype=np.float32)[:, None],
        np.zeros(n, np.int64),
        np.full(n, 0.1),
        np.array([10, 10]),
        bars,
        [-1.0, 0.0, 1.0],
        config,
    )
    split = 12  # 0 + ceil(15 * 0.8)
    ends = np.array([10] * 10 + [20] * 10)
    for s in sampler.train_starts.numpy():
        assert bars[min(s + 2, ends[s] - 1)] < split
    assert (bars[sampler.val_starts.numpy()] >= split).all()
    assert sampler.val_starts.numel() == 3 and sampler.train_starts.numel() == 10 + 5
    batch = sampler.batch(torch.tensor([8, 12]))
    np.testing.assert_array_equal(batch.mask.numpy(), [[1, 1, 0], [1, 1, 1]])
    np.testing.assert_array_equal(batch.states[..., 0].numpy()[:, :2], [[8, 9], [12, 13]])
    np.testing.assert_allclose(batch.returns_to_go[1, :, 0].numpy(), [0.8, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(batch.timesteps[1].numpy(), [2, 3, 4])


def test_action_input_false_ignores_the_actions() -> None:
    model, batch = _model(action_input=False), _batch()
    x = (batch.states, batch.actions, batch.returns_to_go, batch.timesteps)
    other = (batch.states, (batch.actions + 1) % 3, batch.returns_to_go, batch.timesteps)
    with torch.no_grad():
        torch.testing.assert_close(model(*x).action_logits, model(*other).action_logits)
        assert not torch.allclose(_model()(*x).action_logits, _model()(*other).action_logits)


def test_episode_start_mask_defaults_to_no_start_and_rejects_a_wrong_length():
    from quantgym.agents.observations import episode_start_mask

    assert episode_start_mask(None, 3).tolist() == [False, False, False]
    assert episode_start_mask(np.array([1, 0]), 2).tolist() == [True, False]
    with pytest.raises(ValueError, match="episode_start has 2 entries for 3 envs"):
        episode_start_mask(np.array([True, False]), 3)


def test_dt_decides_from_the_moving_average_of_its_probabilities() -> None:
    """The action is the argmax of the probabilities averaged since the episode's first step
    (weight ``action_smoothing`` on the newest); ``1.0`` is the per-step argmax."""
    rng = np.random.default_rng(0)
    steps = [np.stack([_obs(0.0, 0.0), _obs(0.0, 0.0)]) for _ in range(6)]
    for obs in steps:
        obs[:, :12] = rng.normal(size=(2, 12))
    plain, smoothed = _agent(action_smoothing=1.0), _agent(action_smoothing=0.4)
    smoothed.model.load_state_dict(plain.model.state_dict())
    plain_state = smoothed_state = None
    average = None
    for t, obs in enumerate(steps):
        start = np.array([t == 0, t in (0, 3)])  # env 1 restarts at t = 3
        plain_actions, plain_state = plain.predict(obs, plain_state, start)
        with torch.inference_mode():
            logits = plain.model.action_logits_at(
                *plain._tensors(plain_state), torch.from_numpy(plain_state.length)
            )
        probs = torch.softmax(logits.double(), -1).numpy()
        np.testing.assert_array_equal(plain_actions, probs.argmax(1))
        actions, smoothed_state = smoothed.predict(obs, smoothed_state, start)
        average = probs if average is None else 0.6 * average + 0.4 * probs
        average[start] = probs[start]
        np.testing.assert_allclose(smoothed_state.smoothed, average, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(actions, average.argmax(1))
    with pytest.raises(ValueError, match="action_smoothing"):
        _agent(action_smoothing=2.0)
