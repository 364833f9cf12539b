"""vector_setup: what both native vector envs share (config, metadata, seeds, starts)."""

from __future__ import annotations

import numpy as np
import pytest

from quantgym.envs import EnvConfig
from quantgym.envs.vector_setup import account_rngs, account_starts, vector_config


def test_vector_config_maps_max_episode_steps_and_names_the_env_in_errors() -> None:
    config = vector_config(EnvConfig, "TradingVectorEnv", 2, None, 7, {"window_size": 4})
    assert config.episode_length == 7 and config.window_size == 4
    with pytest.raises(ValueError, match="TradingVectorEnv: .*bogus"):
        vector_config(EnvConfig, "TradingVectorEnv", 2, None, None, {"bogus": 1})
    with pytest.raises(ValueError, match="TradingVectorEnv renders 'ansi' only"):
        vector_config(EnvConfig, "TradingVectorEnv", 2, None, None, {"render_mode": "rgb_array"})
    with pytest.raises(ValueError, match="num_envs must be a positive integer"):
        vector_config(EnvConfig, "TradingVectorEnv", 0, None, None, {})


def test_account_rngs_seed_account_i_like_a_single_env_with_seed_plus_i() -> None:
    rngs = account_rngs(5, 3)
    from gymnasium.utils import seeding

    expected = [seeding.np_random(5 + i)[0].random() for i in range(3)]
    assert [r.random() for r in rngs] == expected
    assert len(account_rngs([1, None], 2)) == 2
    with pytest.raises(ValueError, match="needs 3 seeds, got 2"):
        account_rngs([1, 2], 3)


def test_account_starts_broadcast_one_start_or_take_one_each() -> None:
    assert account_starts(None, 2) is None and account_starts({"start": None}, 2) is None
    assert account_starts({"start": 40}, 3) == [40, 40, 40]
    assert account_starts({"start": np.array([1, 2])}, 2) == [1, 2]
    with pytest.raises(ValueError, match="one start or 2 starts, got 3"):
        account_starts({"start": [1, 2, 3]}, 2)
