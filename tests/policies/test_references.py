"""Which policy is the reference / the dataset expert on which market, for both envs."""

from __future__ import annotations

import gymnasium as gym
import pytest

from quantgym import ENV_ID, PORTFOLIO_ENV_ID
from quantgym.policies.references import (
    PORTFOLIO_SAMPLE_MARKETS,
    env_id_for,
    expert_policy_name,
    market_env,
    market_kind,
    reference_policy_name,
)


@pytest.mark.parametrize(
    ("market", "env", "kind", "reference", "expert"),
    [
        (
            "synthetic:factor_regime",
            "portfolio",
            "factor_regime",
            "kelly_filter_expert",
            "regime_seer",
        ),
        ("factor_regime", "portfolio", "factor_regime", "kelly_filter_expert", "regime_seer"),
        ("sample:nyse_o", "portfolio", "real", "ucrp", "bcrp"),
        ("sample:sp500_20", "portfolio", "real", "ucrp", "bcrp"),
        ("synthetic:regime", "trading", "regime", "bayes_filter_expert", "regime_expert"),
        ("synthetic:gbm", "trading", "gbm", "buy_and_hold", "hindsight_oracle"),
        ("sample:googl", "trading", "real", "buy_and_hold", "hindsight_oracle"),
    ],
)
def test_roles_by_market_name(market, env, kind, reference, expert):
    assert market_env(market) == env and market_kind(market) == kind
    assert reference_policy_name(market) == reference
    assert expert_policy_name(market) == expert
    assert env_id_for(market) == (PORTFOLIO_ENV_ID if env == "portfolio" else ENV_ID)


def test_roles_of_loaded_panels():
    synthetic = gym.make(PORTFOLIO_ENV_ID, episode_length=20).unwrapped.panel
    real = gym.make(PORTFOLIO_ENV_ID, data="sample:djia", episode_length=20).unwrapped.panel
    assert market_env(synthetic) == market_env(real) == "portfolio"
    assert reference_policy_name(synthetic) == "kelly_filter_expert"
    assert reference_policy_name(real) == "ucrp"
    trading = gym.make(ENV_ID, episode_length=20).unwrapped.market
    assert market_env(trading) == "trading"


def test_every_bundled_panel_is_a_portfolio_market():
    assert "sample:nyse_o" in PORTFOLIO_SAMPLE_MARKETS and len(PORTFOLIO_SAMPLE_MARKETS) == 7
    assert all(market_env(m) == "portfolio" for m in PORTFOLIO_SAMPLE_MARKETS)
