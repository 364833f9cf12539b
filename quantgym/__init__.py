"""quantgym: a fast, honest Gymnasium trading environment and RL toolkit.

``import quantgym`` registers ``TradingEnv-v0`` and ``PortfolioEnv-v0`` (each a single env and
a native vector env) and imports neither torch nor Stable-Baselines3. Each env is also registered under the
``quantgym/`` namespace (``quantgym/TradingEnv-v0``), which works even beside Gym-Trading-Env
(whose unversioned ``TradingEnv`` id makes gymnasium refuse a plain ``TradingEnv-v0``).
Code names the env by :data:`ENV_ID`, never by a literal, so it follows the id that worked.
"""

import warnings

from gymnasium.envs.registration import register, registry
from gymnasium.error import RegistrationError

__version__ = "0.1.0"
__all__ = ["__version__", "ENV_ID", "PORTFOLIO_ENV_ID"]


def _register(env_id: str, entry_point: str, vector_entry_point: str) -> str:
    """Register ``env_id`` and ``quantgym/<env_id>``; return the id that ``gym.make`` accepts."""
    namespaced = f"quantgym/{env_id}"
    if namespaced not in registry:
        register(id=namespaced, entry_point=entry_point, vector_entry_point=vector_entry_point)
    if env_id in registry:
        return env_id
    try:
        register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)
    except RegistrationError:
        warnings.warn(
            f"another package registered an unversioned name of {env_id!r} (Gym-Trading-Env "
            f"does for 'TradingEnv'), so gymnasium refuses it; use gym.make({namespaced!r})",
            stacklevel=3,
        )
        return namespaced
    return env_id


#: The id of the single-asset trading env (``gym.make(ENV_ID)``, ``gym.make_vec(ENV_ID, n)``).
ENV_ID = _register(
    "TradingEnv-v0",
    "quantgym.envs.trading_env:TradingEnv",
    "quantgym.envs.vector_env:TradingVectorEnv",
)

#: The id of the multi-asset portfolio env (``gym.make(PORTFOLIO_ENV_ID)``, ``gym.make_vec``).
PORTFOLIO_ENV_ID = _register(
    "PortfolioEnv-v0",
    "quantgym.envs.portfolio.env:PortfolioEnv",
    "quantgym.envs.portfolio.vector_env:PortfolioVectorEnv",
)
