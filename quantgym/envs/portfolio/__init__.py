"""Multi-asset portfolio envs: panel data, the factor/regime market, ``PortfolioEnv`` and
``PortfolioVectorEnv`` (one layout, one transition, two steppers).

Modules, lowest first: ``samples``, ``factor_market``, ``panel_validation``, ``panel_io``,
``cross_section``, ``panel`` (market data); ``actions``, ``config``, ``layout``, ``transition``
(the env set-up and the one step both envs run, on :mod:`quantgym.envs.accounting`);
``env``, ``vector_env``, ``render``.
"""

from quantgym.envs.portfolio.config import PortfolioConfig
from quantgym.envs.portfolio.env import PortfolioEnv
from quantgym.envs.portfolio.factor_market import (
    FactorMarket,
    generate_factor_market,
    predictive_moments,
    regime_filter,
    regime_filter_update,
    regime_log_likelihoods,
    windowed_regime_filter,
)
from quantgym.envs.portfolio.layout import PortfolioLayout
from quantgym.envs.portfolio.panel import PanelData
from quantgym.envs.portfolio.samples import PORTFOLIO_SAMPLES, load_portfolio_sample
from quantgym.envs.portfolio.vector_env import PortfolioVectorEnv

__all__ = [
    "PortfolioConfig",
    "PortfolioEnv",
    "PortfolioVectorEnv",
    "PortfolioLayout",
    "PanelData",
    "FactorMarket",
    "generate_factor_market",
    "regime_log_likelihoods",
    "regime_filter_update",
    "regime_filter",
    "windowed_regime_filter",
    "predictive_moments",
    "PORTFOLIO_SAMPLES",
    "load_portfolio_sample",
]
