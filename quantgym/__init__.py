"""quantgym: a fast, honest Gymnasium trading environment and RL toolkit.

``import quantgym`` registers ``TradingEnv-v0`` (single env and native vector env) and
imports neither torch nor Stable-Baselines3. The same env is also registered as
``quantgym/TradingEnv-v0``, which works even beside Gym-Trading-Env (whose unversioned
``TradingEnv`` id makes gymnasium refuse a plain ``TradingEnv-v0``).
"""

import warnings

from gymnasium.envs.registration import register, registry
from gymnasium.error import RegistrationError

__version__ = "0.1.0"
__all__ = ["__version__", "ENV_ID"]

ENV_ID = "TradingEnv-v0"
_ENTRY_POINT = "quantgym.envs.trading_env:TradingEnv"
_VECTOR_ENTRY_POINT = "quantgym.envs.vector_env:TradingVectorEnv"

if "quantgym/TradingEnv-v0" not in registry:
    register(
        id="quantgym/TradingEnv-v0",
        entry_point=_ENTRY_POINT,
        vector_entry_point=_VECTOR_ENTRY_POINT,
    )
if ENV_ID not in registry:
    try:
        register(id=ENV_ID, entry_point=_ENTRY_POINT, vector_entry_point=_VECTOR_ENTRY_POINT)
    except RegistrationError:
        ENV_ID = "quantgym/TradingEnv-v0"
        warnings.warn(
            "another package registered an unversioned 'TradingEnv' (Gym-Trading-Env does), so "
            "gymnasium refuses 'TradingEnv-v0'; use gym.make('quantgym/TradingEnv-v0') instead",
            stacklevel=2,
        )
