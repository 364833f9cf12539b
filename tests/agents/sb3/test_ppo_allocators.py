"""``ppo_eiie`` and ``ppo_cross_attention``: equivariance, the weight mapping, the Agent API
(fit, predict, safe save/load, resume, CLI) on ``PortfolioEnv-v0``."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from quantgym import PORTFOLIO_ENV_ID
from quantgym.agents import load_agent, make_agent
from quantgym.agents.cli import main as cli_main
from quantgym.agents.sb3.allocation import AllocationHeads, AssetTokenExtractor, split_assets
from quantgym.agents.sb3.files import latest_checkpoint

NAMES = ["ppo_eiie", "ppo_cross_attention"]
ENV_KWARGS = {"market_kwargs": {"n_bars": 600}, "window_size": 4, "episode_length": 40}
TINY = {"n_envs": 2, "n_steps": 32, "batch_size": 32, "n_epochs": 1}
EQUIVARIANCE_ATOL = 1e-6  # float32 sums in a different order


@pytest.fixture(scope="module", params=NAMES)
def trained(request):
    agent = make_agent(request.param, **TINY)
    agent.fit(dict(ENV_KWARGS), train_steps=64, progress_bar=False)
    return agent


def observations(n: int = 5, seed: int = 0, **extra) -> tuple[np.ndarray, object]:
    env = gym.make(PORTFOLIO_ENV_ID, **{**ENV_KWARGS, **extra})
    obs, _ = env.reset(seed=seed)
    out = [obs]
    rng = np.random.default_rng(seed)
    for _ in range(n - 1):
        obs, *_ = env.step(rng.dirichlet(np.ones(env.action_space.shape[0] + 1))[:-1])
        out.append(obs)
    return np.stack(out), env.unwrapped.layout


def permute_assets(obs: np.ndarray, layout, perm: np.ndarray) -> np.ndarray:
    """The same observations with asset i moved to slot ``perm``-inverse (asset ``perm[k]``
    now sits in slot k); cash stays last."""
    parts = layout.split(obs.copy())
    out = np.empty_like(obs)
    s = layout.slices
    b = obs.shape[0]
    out[:, s["windows"]] = parts["windows"][:, perm].reshape(b, -1)
    out[:, s["cross_section"]] = parts["cross_section"][:, perm].reshape(b, -1)
    out[:, s["weights"]] = np.concatenate([parts["weights"][:, perm], parts["weights"][:, -1:]], 1)
    out[:, s["mask"]] = parts["mask"][:, perm]
    return out


def test_permuting_the_assets_permutes_the_action(trained):
    obs, layout = observations()
    perm = np.random.default_rng(1).permutation(layout.shapes["mask"][0])
    action, _ = trained.predict(obs)
    permuted, _ = trained.predict(permute_assets(obs, layout, perm))
    np.testing.assert_allclose(permuted, action[:, perm], rtol=0, atol=EQUIVARIANCE_ATOL)
    assert not np.allclose(action, action[:, ::-1], atol=1e-4)  # the test would see a swap


def test_deterministic_action_moves_toward_the_softmax_of_the_scores(trained):
    obs, layout = observations()
    scores = trained.scores(obs)
    target = np.exp(scores - scores.max(1, keepdims=True))
    target = (target / target.sum(1, keepdims=True))[:, :-1]
    rate = float(trained.model.policy.mlp_extractor.rate)
    assert 0.015 < rate < 0.06  # learned from rebalance_rate=0.03 in a few updates
    current = layout.split(obs)["weights"][:, :-1]
    action, _ = trained.predict(obs)
    np.testing.assert_allclose(action, current + rate * (target - current), rtol=0, atol=1e-6)
    assert np.all(action.sum(1) <= 1 + 1e-6)  # the env keeps the rest in cash, no rescaling


def test_rebalance_rate_one_trades_straight_to_the_target():
    agent = make_agent("ppo_eiie", rebalance_rate=1.0, **TINY)
    agent.fit(dict(ENV_KWARGS), train_steps=64, progress_bar=False)
    obs, _ = observations()
    scores = agent.scores(obs)
    target = np.exp(scores - scores.max(1, keepdims=True))
    target /= target.sum(1, keepdims=True)
    np.testing.assert_allclose(agent.predict(obs)[0], target[:, :-1], rtol=0, atol=1e-6)


def test_untradable_assets_get_exactly_zero_weight(trained):
    obs, layout = observations()
    obs[:, layout.slices["mask"].start + 2] = 0.0
    action, _ = trained.predict(obs)
    assert np.all(action[:, 2] == 0.0)
    assert np.all(action[:, [0, 1, 3]] > 0)
    assert np.any(layout.split(obs)["weights"][:, 2] > 0)  # it held some: not zero by chance


@torch.no_grad()
def test_scores_can_concentrate_the_allocation():
    """Unbounded scores reach a single asset or all cash (unlike a softmax of actions in [-1, 1])."""
    heads = AllocationHeads(n_assets=3, d_model=4, hidden=8)
    heads.score = torch.nn.Linear(4, 1)  # score = 30 x the token's first entry
    heads.score.weight.copy_(torch.tensor([[30.0, 0.0, 0.0, 0.0]]))
    heads.score.bias.zero_()
    heads.cash_score[-1].weight.zero_()
    heads.cash_score[-1].bias.zero_()

    def weights(tokens: torch.Tensor) -> np.ndarray:
        # tokens, mask, current weights, cash weight
        features = torch.cat([tokens.flatten(1), torch.ones(1, 3), torch.zeros(1, 4)], 1)
        return heads.forward_actor(features).numpy()

    tokens = torch.zeros(1, 3, 4)
    np.testing.assert_allclose(weights(tokens), [[0.25] * 3], atol=1e-7)  # cash has the rest
    heads.cash_score[-1].bias.fill_(30.0)
    assert weights(tokens).sum() < 1e-12  # all cash
    heads.cash_score[-1].bias.fill_(0.0)
    tokens[0, 1, 0] = 1.0  # asset 1 stands out
    assert weights(tokens)[0, 1] > 1 - 1e-6  # float32: e**-30 is below its resolution


@torch.no_grad()
def test_catch_up_closes_a_large_gap_at_once_and_leaves_a_small_one_to_the_rate():
    heads = AllocationHeads(n_assets=3, d_model=4, hidden=8, rebalance_rate=0.05,
                            catch_up_distance=0.5)  # fmt: skip
    tokens = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    current = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.3, 0.3]])  # all cash; 90% invested
    cash = 1.0 - current.sum(1, keepdim=True)
    features = torch.cat([tokens.flatten(1), torch.ones(2, 3), current, cash], 1)
    target = heads.target(features)
    gap = (target - current).abs().sum(1, keepdim=True) + (
        (1 - target.sum(1, keepdim=True)) - cash
    ).abs()
    rate = float(heads.rate)
    expected_rate = rate + (1 - rate) * torch.relu(1 - 0.5 / gap)
    np.testing.assert_allclose(heads.forward_actor(features).numpy(),
                               (current + expected_rate * (target - current)).numpy(),
                               rtol=0, atol=1e-7)  # fmt: skip
    # from all cash the gap is 2x the invested target: the step ends 0.5 (L1) from the target
    after = heads.forward_actor(features)[0]
    left = (target[0] - after).abs().sum() + (target[0].sum() - after.sum()).abs()
    assert gap[0, 0] > 0.5 and abs(float(left) - 0.5 * (1 - rate)) < 1e-6
    heads.catch_up_distance = 10.0  # every gap is small: the rate alone
    np.testing.assert_allclose(heads.forward_actor(features).numpy(),
                               (current + rate * (target - current)).numpy(), rtol=0, atol=1e-7)  # fmt: skip


def test_split_assets_reads_the_layout():
    obs, layout = observations(n=2)
    n, w, f = layout.shapes["windows"]
    c = layout.shapes["cross_section"][1]
    inputs, mask, cash = split_assets(torch.from_numpy(obs), n, w, f, c, recent_bars=2)
    parts = layout.split(obs)
    np.testing.assert_array_equal(inputs[:, :, : 2 * f].numpy().reshape(2, n, 2, f),
                                  parts["windows"][:, :, -2:])  # fmt: skip
    np.testing.assert_array_equal(inputs[:, :, 2 * f : 2 * f + c].numpy(), parts["cross_section"])
    np.testing.assert_array_equal(inputs[:, :, -2].numpy(), parts["weights"][:, :n])
    np.testing.assert_array_equal(mask.numpy(), parts["mask"] > 0.5)
    np.testing.assert_array_equal(cash.numpy()[:, 0], parts["weights"][:, n])


def test_extractor_rejects_a_layout_that_does_not_fit():
    with pytest.raises(ValueError, match="needs a"):
        AssetTokenExtractor(spaces.Box(-1, 1, (10,)), 3, 4, 2, 1)
    with pytest.raises(ValueError, match="recent_bars"):
        AssetTokenExtractor(spaces.Box(-1, 1, (3 * (8 + 1 + 2) + 1,)), 3, 4, 2, 1, recent_bars=5)


def test_cross_attention_maps_are_row_stochastic_and_skip_untradable():
    agent = make_agent("ppo_cross_attention", **TINY)
    agent.fit(dict(ENV_KWARGS), train_steps=64, progress_bar=False)
    obs, layout = observations(n=3)
    obs[:, layout.slices["mask"].start + 1] = 0.0
    maps = agent.attention_weights(obs)
    n = layout.shapes["mask"][0]
    assert maps.shape == (3, 1, 2, n, n)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-6)
    assert np.all(maps[..., 1] == 0.0)


def test_save_load_gives_identical_actions(trained, tmp_path):
    obs, _ = observations()
    trained.save(tmp_path / "a")
    loaded = load_agent(tmp_path / "a")
    assert type(loaded) is type(trained)
    np.testing.assert_array_equal(loaded.predict(obs)[0], trained.predict(obs)[0])
    assert loaded.config.n_assets == 8 and loaded.config.window_size == 4


def test_fast_predict_equals_sb3_predict(trained):
    obs, _ = observations()
    ours, _ = trained.predict(obs)
    theirs, _ = trained.model.predict(obs, deterministic=True)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-7)


def test_fits_on_a_single_env_and_the_vector_env():
    for env in (
        gym.make(PORTFOLIO_ENV_ID, **ENV_KWARGS),
        gym.make_vec(PORTFOLIO_ENV_ID, num_envs=2, **ENV_KWARGS),
    ):
        agent = make_agent("ppo_eiie", **TINY).fit(env, train_steps=64, progress_bar=False)
        assert agent.num_timesteps == 64
        assert agent.env_kwargs["window_size"] == 4


def test_bad_config_raises_value_error():
    with pytest.raises(ValueError, match="divisible"):
        make_agent("ppo_cross_attention", d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="n_attention_layers"):
        make_agent("ppo_eiie", n_attention_layers=-1)
    with pytest.raises(ValueError, match="rebalance_rate"):
        make_agent("ppo_eiie", rebalance_rate=0.0)
    agent = make_agent("ppo_eiie", **TINY)
    with pytest.raises(ValueError, match="needs a PortfolioEnv"):
        agent.fit({"data": None} and gym.make("TradingEnv-v0", episode_length=40), train_steps=64,
                  progress_bar=False)  # fmt: skip


def test_cli_train_and_resume(tmp_path):
    run = tmp_path / "x"
    common = ["--window-size", "4", "--episode-length", "40", "--n-envs", "2", "--no-progress",
              "--env-set", 'market_kwargs={"n_bars": 600}', "--set", "n_steps=16", "--set",
              "batch_size=32", "--set", "n_epochs=1"]  # fmt: skip
    argv = ["train", "ppo_eiie", "--out", str(run), "--steps", "32", "--checkpoint-every", "32"]
    assert cli_main([*argv, *common]) == 0
    argv = ["train", "ppo_eiie", "--resume", str(run), "--steps", "64"]
    assert cli_main([*argv, *common]) == 0
    final = load_agent(run)
    assert final.num_timesteps == 64
    assert latest_checkpoint(run / "checkpoints").name == "step_000000032"
    obs, _ = observations()
    assert final.predict(obs)[0].shape == (5, 8)


# Known answer: 2 assets in 2 sectors and 3 long regimes (mean 250 bars): asset 0 leads
# (+0.3%/bar vs -0.3%/bar), asset 1 leads, or both fall (-0.4%/bar, cash is right). The
# growth-optimal weights are all in the leader, or all cash in the fall.
KNOWN_ANSWER_MARKET = {
    "n_bars": 6000, "seed": 1, "n_assets": 2, "n_sectors": 2,
    "regime_names": ("a_leads", "b_leads", "bear"), "mean_duration": 250.0,
    "market_drift": (0.0, 0.0, -0.004), "sector_drifts": (0.003, -0.003, -0.003, 0.003, 0, 0),
    "market_vol": (0.002, 0.002, 0.004), "sector_vol": (0.004, 0.004, 0.002),
    "idio_vol": (0.002, 0.002, 0.002),
}  # fmt: skip


@pytest.mark.slow
def test_eiie_learns_the_known_answer_allocation():
    """Trained on bars < 4,000 (30k steps, ~10 s), on held-out bars 4,100+ the policy's target
    (the softmax of its scores) puts >= 0.9 in the leading asset and <= 0.2 in the assets
    during the fall (the initial allocation is 1/3 each and cash), 30+ bars after each regime
    switch; the weights it holds, which move a fraction ``rebalance_rate`` of the way each bar,
    do the same 100+ bars after a switch."""
    torch.set_num_threads(1)
    env = gym.make(PORTFOLIO_ENV_ID, market_kwargs=KNOWN_ANSWER_MARKET, episode_length=None)
    train_end = str(env.unwrapped.panel.timestamps[4000])
    agent = make_agent("ppo_eiie", seed=0)
    agent.fit(
        {"market_kwargs": KNOWN_ANSWER_MARKET, "end": train_end},
        train_steps=30_000,
        progress_bar=False,
    )
    obs, info = env.reset(seed=0, options={"start": 4100})
    regime, since, rows = info["regime"], 0, []
    done = False
    while not done:
        scores = agent.scores(obs)[0]
        target = np.exp(scores - scores.max())
        target = target[:-1] / target.sum()
        obs, _, terminated, truncated, info = env.step(agent.predict(obs)[0])
        done = terminated or truncated
        since = since + 1 if info["regime"] == regime else 0
        regime = info["regime"]
        held = info["weights"]
        if regime == 2:  # the fall: what is invested
            rows.append((regime, since, target.sum(), held.sum()))
        else:  # a rotation: what is in the leader
            rows.append((regime, since, target[regime], held[regime]))
    table = np.asarray(rows)
    lead, fall = table[:, 0] < 2, table[:, 0] == 2
    settled, late = table[:, 1] > 30, table[:, 1] > 100
    assert (lead & late).sum() > 300 and (fall & late).sum() > 300  # every regime is visited
    assert table[lead & settled, 2].mean() >= 0.9
    assert table[fall & settled, 2].mean() <= 0.2
    assert table[lead & late, 3].mean() >= 0.9
    assert table[fall & late, 3].mean() <= 0.2


def test_bad_catch_up_and_window_channels_raise_value_error():
    with pytest.raises(ValueError, match="catch_up_distance"):
        make_agent("ppo_eiie", catch_up_distance=-0.1)
    with pytest.raises(ValueError, match="window_channels"):
        make_agent("ppo_eiie", window_channels=-1)
