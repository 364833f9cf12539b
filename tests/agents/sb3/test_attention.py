"""Temporal self-attention features extractor: reshaping, shapes, attention maps, the agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from quantgym import ENV_ID
from quantgym.agents.base import BaseAgent
from quantgym.agents.sb3 import PPOTransformerAgent
from quantgym.agents.sb3.attention import (
    SinusoidalPositionalEncoding,
    TemporalAttentionExtractor,
)

W, F, A = 8, 3, 5


def make_extractor(**kwargs) -> TemporalAttentionExtractor:
    torch.manual_seed(0)
    space = spaces.Box(-np.inf, np.inf, (W * F + A,), np.float32)
    return TemporalAttentionExtractor(space, W, F, A, **kwargs).eval()


def test_split_reads_market_window_row_major_oldest_first_then_account():
    extractor = make_extractor()
    obs = torch.arange(2 * (W * F + A), dtype=torch.float32).reshape(2, -1)
    window, account = extractor.split(obs)
    assert window.shape == (2, W, F) and account.shape == (2, A)
    # bar t, feature f sits at flat index t * F + f; the account block follows the window
    assert window[1, 2, 1].item() == obs[1, 2 * F + 1].item()
    assert torch.equal(account[0], obs[0, W * F :])


def test_features_dim_is_out_dim_plus_account_and_account_passes_through():
    extractor = make_extractor(out_dim=32)
    assert extractor.features_dim == 32 + A
    obs = torch.randn(4, W * F + A)
    out = extractor(obs)
    assert out.shape == (4, 32 + A)
    assert torch.equal(out[:, 32:], obs[:, W * F :])


def test_newest_bar_skip_passes_the_newest_bar_then_the_account_through():
    extractor = make_extractor(out_dim=32, newest_bar_skip=True)
    assert extractor.features_dim == 32 + F + A
    obs = torch.randn(4, W * F + A)
    out = extractor(obs)
    assert out.shape == (4, 32 + F + A)
    assert torch.equal(out[:, 32 : 32 + F], obs[:, (W - 1) * F : W * F])  # newest bar
    assert torch.equal(out[:, 32 + F :], obs[:, W * F :])
    plain = make_extractor(out_dim=32)
    assert torch.equal(out[:, :32], plain(obs)[:, :32])  # same encoder output, same seed


def test_attention_weights_shape_and_rows_are_distributions():
    extractor = make_extractor(n_layers=2, n_heads=4)
    weights = extractor.attention_weights(torch.randn(3, W * F + A))
    assert weights.shape == (3, 2, 4, W, W)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 4, W))
    assert (weights >= 0).all()


def test_forward_with_and_without_weights_gives_the_same_embedding():
    extractor = make_extractor()
    window, _ = extractor.split(torch.randn(5, W * F + A))
    fast, _ = extractor.encoder(window, need_weights=False)
    slow, maps = extractor.encoder(window, need_weights=True)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
    assert len(maps) == 2


def test_oldest_bar_influences_the_pooled_output_through_attention():
    extractor = make_extractor()
    obs = torch.randn(1, W * F + A)
    changed = obs.clone()
    changed[0, :F] += 1.0  # oldest bar only
    assert not torch.allclose(extractor(obs)[:, :32], extractor(changed)[:, :32])


def test_sinusoidal_encoding_matches_formula():
    pe = SinusoidalPositionalEncoding(d_model=4, max_len=6)
    zeros = torch.zeros(1, 6, 4)
    out = pe(zeros)[0]
    pos = 3
    expected = [
        np.sin(pos),
        np.cos(pos),
        np.sin(pos / 10_000 ** (2 / 4)),
        np.cos(pos / 10_000 ** (2 / 4)),
    ]
    np.testing.assert_allclose(out[pos].numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("window_size", "n_market", "n_account"), [(W + 1, F, A), (W, F + 1, A), (W, F, A - 1)]
)
def test_layout_mismatch_raises_value_error(window_size, n_market, n_account):
    space = spaces.Box(-np.inf, np.inf, (W * F + A,), np.float32)
    with pytest.raises(ValueError, match="observation_space"):
        TemporalAttentionExtractor(space, window_size, n_market, n_account)


def test_d_model_must_divide_by_heads():
    space = spaces.Box(-np.inf, np.inf, (W * F + A,), np.float32)
    with pytest.raises(ValueError, match="d_model"):
        TemporalAttentionExtractor(space, W, F, A, d_model=30, n_heads=4)


def test_transformer_agent_reads_layout_from_env_and_returns_attention(tmp_path):
    env = gym.make(
        ENV_ID,
        market_kwargs={"n_bars": 700},
        window_size=8,
        episode_length=64,
    )
    agent = PPOTransformerAgent(n_envs=2, n_steps=32, batch_size=64, n_epochs=1)
    agent.fit(env, train_steps=64, progress_bar=False)
    base = env.unwrapped
    assert (
        agent.config.window_size,
        agent.config.n_market_features,
        agent.config.n_account_features,
    ) == (
        8,
        base.n_market_features,
        base.n_account_features,
    )
    obs, _ = env.reset(seed=0)
    maps = agent.attention_weights(obs)
    assert maps.shape == (1, 1, 2, 8, 8)  # defaults: 1 layer, 2 heads, recent_bars=8
    np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)
    agent.save(tmp_path / "agent")
    loaded = BaseAgent.load(tmp_path / "agent")
    np.testing.assert_array_equal(loaded.attention_weights(obs), maps)


# -- pooling -------------------------------------------------------------------------------


def test_default_pooling_is_the_newest_position_with_no_new_parameters():
    """``pooling="last"`` (the default) is the encoder as it was before the option: the same
    parameters (no pooling query) and the output ``head(LN(x[:, -1]))`` of the blocks' output."""
    default, last = make_extractor(), make_extractor(pooling="last")
    assert default.encoder.pooling == "last" and default.encoder.pool_query is None
    keys = set(default.state_dict())
    assert not any("pool" in k for k in keys)
    for key, value in default.state_dict().items():
        torch.testing.assert_close(last.state_dict()[key], value, rtol=0, atol=0)
    obs = torch.randn(6, W * F + A)
    window, _ = default.split(obs)
    enc = default.encoder
    x = enc.pos_encoding(enc.input_proj(window))
    for block in enc.blocks:
        x, _ = block(x)
    expected = enc.head(enc.norm(x[:, -1]))
    assert torch.equal(default(obs)[:, :32], expected)
    assert torch.equal(last(obs), default(obs))


@pytest.mark.parametrize("pooling", ["learned", "mean"])
def test_pooling_modes_share_the_initial_encoder_weights_of_the_same_seed(pooling):
    default, other = make_extractor(), make_extractor(pooling=pooling)
    for key, value in default.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key], value, rtol=0, atol=0)
    extra = set(other.state_dict()) - set(default.state_dict())
    assert extra == ({"encoder.pool_query"} if pooling == "learned" else set())


@pytest.mark.parametrize("pooling", ["last", "learned", "mean"])
def test_pooling_weights_shape_and_rows_are_distributions(pooling):
    extractor = make_extractor(pooling=pooling, n_bars=6)
    if extractor.encoder.pool_query is not None:
        with torch.no_grad():
            extractor.encoder.pool_query.normal_()  # away from its uniform start
    obs = torch.randn(5, W * F + A)
    weights = extractor.pooling_weights(obs)
    assert weights.shape == (5, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5))
    assert (weights >= 0).all()
    assert extractor(obs).shape == (5, 32 + A)
    if pooling == "last":
        assert torch.equal(weights, torch.eye(6)[[-1] * 5])
    elif pooling == "mean":
        torch.testing.assert_close(weights, torch.full((5, 6), 1 / 6))
    else:  # a trained query weighs the positions unequally, differently per observation
        assert weights.std(dim=1).min() > 0
        assert not torch.allclose(weights[0], weights[1])


def test_learned_pooling_is_the_weighted_sum_of_the_normalised_positions():
    extractor = make_extractor(pooling="learned")
    with torch.no_grad():
        extractor.encoder.pool_query.normal_()
    obs = torch.randn(4, W * F + A)
    window, _ = extractor.split(obs)
    enc = extractor.encoder
    x, _ = enc.encode(window)
    h = enc.norm(x)  # (B, T, d_model)
    w = torch.softmax(h @ enc.pool_query, dim=-1)  # (B, T)
    torch.testing.assert_close(extractor.pooling_weights(obs), w)
    expected = enc.head((w.unsqueeze(-1) * h).sum(1))
    torch.testing.assert_close(extractor(obs)[:, :32], expected)
    # the query is trained: the loss reaches it
    assert extractor.encoder.pool_query.grad is None
    extractor(obs)[:, :32].sum().backward()
    assert extractor.encoder.pool_query.grad is not None
    assert extractor.encoder.pool_query.grad.abs().sum() > 0


def test_learned_pooling_starts_as_the_mean():
    learned, mean = make_extractor(pooling="learned"), make_extractor(pooling="mean")
    obs = torch.randn(3, W * F + A)
    torch.testing.assert_close(learned(obs), mean(obs))
    torch.testing.assert_close(learned.pooling_weights(obs), torch.full((3, W), 1 / W))


@pytest.mark.parametrize("pooling", ["max", "", None, "LAST"])
def test_bad_pooling_raises_value_error(pooling):
    with pytest.raises(ValueError, match="pooling"):
        make_extractor(pooling=pooling)
    with pytest.raises(ValueError, match="pooling"):
        PPOTransformerAgent(pooling=pooling)


def test_transformer_agent_with_learned_pooling_saves_and_returns_its_pooling_weights(tmp_path):
    env = gym.make(
        ENV_ID,
        data="synthetic:lagged",
        features="returns",
        market_kwargs={"n_bars": 700},
        window_size=8,
        episode_length=64,
    )
    agent = PPOTransformerAgent(
        n_envs=2, n_steps=32, batch_size=64, n_epochs=1, recent_bars=6, pooling="learned"
    )
    agent.fit(env, train_steps=64, progress_bar=False)
    obs = np.stack([env.reset(seed=s)[0] for s in range(3)])
    pool = agent.pooling_weights(obs)
    assert pool.shape == (3, 6)
    np.testing.assert_allclose(pool.sum(-1), 1.0, rtol=1e-5)
    assert agent.attention_weights(obs).shape == (3, 1, 2, 6, 6)
    agent.save(tmp_path / "agent")
    loaded = BaseAgent.load(tmp_path / "agent")
    assert loaded.config.pooling == "learned"
    np.testing.assert_array_equal(loaded.pooling_weights(obs), pool)
    np.testing.assert_array_equal(loaded.predict(obs)[0], agent.predict(obs)[0])
