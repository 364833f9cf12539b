"""benchmarks/portfolio_learning.py's env overrides and portfolio_ceiling.py's classifier inputs."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np

from tests.benchmark.scripts import load_script

learning = load_script("portfolio_learning", "portfolio_learning_under_test")
ceiling = load_script("portfolio_ceiling", "portfolio_ceiling_under_test")


def test_env_set_reaches_the_test_envs():
    """``--env-set window_size=4`` changes the observation every held-out env shows."""
    args = argparse.Namespace(
        n_bars=600, market_seed=0, window=5, env_set=["window_size=4"], train_bars=300, embargo=0
    )
    panel = learning.test_panel(args)
    n, f, c = panel.n_assets, panel.n_features, panel.n_cross_section
    seen = []

    def policy(obs: np.ndarray) -> np.ndarray:
        seen.append(obs.shape)
        return np.zeros((len(obs), n), dtype=np.float32)

    growth = learning.run_windows(policy, args, [400, 450])
    assert seen[0] == (2, n * (4 * f + c + 2) + 1)  # 4 bars of features, weights + cash, mask
    np.testing.assert_allclose(growth, 0.0, atol=1e-12)  # all cash: no growth, no cost
    assert learning.env_overrides(argparse.Namespace(env_set=None)) == {}


def test_env_set_features_build_the_test_panel():
    """``--env-set features=returns`` shapes the held-out panel (a test env cannot take it)."""
    args = argparse.Namespace(
        n_bars=600, market_seed=0, window=5, env_set=["features=returns", "window_size=4"],
        train_bars=300, embargo=0,
    )  # fmt: skip
    assert learning.env_overrides(args, panel=True) == {"features": "returns"}
    assert learning.env_overrides(args) == {"window_size": 4}
    assert learning.test_panel(args).feature_names == ("log_return",)
    growth = learning.run_windows(lambda obs: np.zeros((len(obs), 8), np.float32), args, [400])
    np.testing.assert_allclose(growth, 0.0, atol=1e-12)


def test_summary_inputs_are_the_market_mean_and_the_sector_spread_per_bar():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(10, 4, 3))  # (T, N, F)
    features[0, 0, 0] = np.nan  # read as 0
    panel = SimpleNamespace(
        features=features,
        cross_section=rng.normal(size=(10, 4, 2)),
        market_params={"sectors": [0, 1, 0, 1]},
    )
    out = ceiling.inputs_at(panel, np.array([5, 9]), window=2, kind="summary")
    assert out.shape == (2, 2 * 2 * 3)
    x = np.nan_to_num(features)
    for row, t in zip(out, [5, 9], strict=True):
        by_bar = row.reshape(2, 6)  # oldest bar first, [market mean (3), sector 0 - sector 1 (3)]
        for k, bar in enumerate([t - 1, t]):
            np.testing.assert_allclose(by_bar[k, :3], x[bar].mean(0))
            np.testing.assert_allclose(
                by_bar[k, 3:], x[bar, [0, 2]].mean(0) - x[bar, [1, 3]].mean(0)
            )
    full = ceiling.inputs_at(panel, np.array([5]), window=2, kind="observation")
    np.testing.assert_allclose(
        full[0], np.concatenate([x[4:6].ravel(), panel.cross_section[5].ravel()])
    )
