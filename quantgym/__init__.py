"""quantgym: a fast, honest Gymnasium trading environment and RL toolkit.

``import quantgym`` registers ``TradingEnv-v0`` (single env and native vector env) and
imports neither torch nor Stable-Baselines3.
"""

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"
__all__ = ["__version__"]

if "TradingEnv-v0" not in registry:
    register(
        id="TradingEnv-v0",
        entry_point="quantgym.envs.trading_env:TradingEnv",
        vector_entry_point="quantgym.envs.vector_env:TradingVectorEnv",
        disable_env_checker=False,
    )
