"""Market data, causal features, execution, accounting, rewards and the trading envs."""

from quantgym.envs.config import ACCOUNT_FEATURES, EnvConfig
from quantgym.envs.layout import EnvLayout
from quantgym.envs.lookahead import LookaheadReport, check_lookahead
from quantgym.envs.market_data import MarketData
from quantgym.envs.portfolio import (
    PanelData,
    PortfolioEnv,
    PortfolioLayout,
    PortfolioVectorEnv,
    load_portfolio_sample,
)
from quantgym.envs.sample_data import SAMPLES, load_sample
from quantgym.envs.slippage import (
    FixedSlippage,
    SpreadSlippage,
    SqrtImpactSlippage,
    VolatilitySlippage,
    make_slippage,
)
from quantgym.envs.trading_env import TradingEnv
from quantgym.envs.vector_env import TradingVectorEnv

__all__ = [
    "ACCOUNT_FEATURES",
    "EnvConfig",
    "EnvLayout",
    "LookaheadReport",
    "check_lookahead",
    "MarketData",
    "SAMPLES",
    "load_sample",
    "TradingEnv",
    "TradingVectorEnv",
    "PanelData",
    "PortfolioEnv",
    "PortfolioLayout",
    "PortfolioVectorEnv",
    "load_portfolio_sample",
    "FixedSlippage",
    "SpreadSlippage",
    "VolatilitySlippage",
    "SqrtImpactSlippage",
    "make_slippage",
    "to_sb3",
]


def to_sb3(vec_env):  # noqa: ANN001, ANN201 - imports stable-baselines3 lazily
    """Wrap a :class:`TradingVectorEnv` or :class:`PortfolioVectorEnv` as a Stable-Baselines3
    ``VecEnv``."""
    from quantgym.envs.sb3_adapter import to_sb3 as _to_sb3

    return _to_sb3(vec_env)
