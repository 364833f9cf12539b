"""Portfolio baselines for ``PortfolioEnv-v0``: online portfolio selection (OLPS), hindsight
bounds, classical allocation on rolling windows, and their env-bound agents; the Bayes-filter
Kelly allocator of the synthetic factor market (the reference) and its privileged regime seer.

Algorithms are pure numpy classes over price relatives (no env needed), each checked against
universal-portfolios' wealth by ``benchmarks/olps_exactness.py``; the agents bind them to an
env and return its action (target weights).
"""

from quantgym.policies.portfolio.agents import (
    PORTFOLIO_AGENTS,
    PORTFOLIO_BOUNDS,
    AllocationAgent,
    AnticorAgent,
    BCRPAgent,
    BestStockAgent,
    CORNAgent,
    EGAgent,
    HRPAgent,
    MeanVarianceAgent,
    MinVarianceAgent,
    OLMARAgent,
    OLPSAgent,
    ONSAgent,
    PAMRAgent,
    RiskParityAgent,
    UBAHAgent,
    UCRPAgent,
)
from quantgym.policies.portfolio.allocation import ALLOCATION_METHODS, RollingAllocation, allocate
from quantgym.policies.portfolio.binding import PortfolioAgent, PortfolioBinding
from quantgym.policies.portfolio.hindsight import BCRP, BestStock
from quantgym.policies.portfolio.kelly import (
    KellyFilterAgent,
    RegimeSeerAgent,
    expected_log_growth,
    kelly_weights,
    simple_return_moments,
)
from quantgym.policies.portfolio.olps import (
    EG,
    OLMAR,
    ONS,
    PAMR,
    UBAH,
    UCRP,
    OLPSAlgorithm,
    OLPSRun,
)
from quantgym.policies.portfolio.pattern import CORN, Anticor
from quantgym.policies.portfolio.simplex import (
    log_optimal_weights,
    norm_projection,
    simplex_projection,
)
from quantgym.policies.portfolio.wealth import (
    olps_wealth,
    price_relatives,
    wealth_path,
)

__all__ = [
    "OLPSAlgorithm",
    "OLPSRun",
    "UBAH",
    "UCRP",
    "EG",
    "ONS",
    "OLMAR",
    "PAMR",
    "Anticor",
    "CORN",
    "BestStock",
    "BCRP",
    "simplex_projection",
    "norm_projection",
    "log_optimal_weights",
    "price_relatives",
    "wealth_path",
    "olps_wealth",
    "ALLOCATION_METHODS",
    "allocate",
    "RollingAllocation",
    "PortfolioBinding",
    "PortfolioAgent",
    "OLPSAgent",
    "UBAHAgent",
    "UCRPAgent",
    "EGAgent",
    "ONSAgent",
    "OLMARAgent",
    "PAMRAgent",
    "AnticorAgent",
    "CORNAgent",
    "BestStockAgent",
    "BCRPAgent",
    "AllocationAgent",
    "MinVarianceAgent",
    "MeanVarianceAgent",
    "HRPAgent",
    "RiskParityAgent",
    "PORTFOLIO_AGENTS",
    "PORTFOLIO_BOUNDS",
    "simple_return_moments",
    "expected_log_growth",
    "kelly_weights",
    "KellyFilterAgent",
    "RegimeSeerAgent",
]
