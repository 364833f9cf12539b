"""The portfolio baselines as env-bound agents (``Agent(env=env, **config)``), by registry name.

==================  ============================  ==========================================
name                class                         decision at bar t
==================  ============================  ==========================================
``ubah``            :class:`UBAHAgent`            uniform buy and hold since the origin
``ucrp``            :class:`UCRPAgent`            1/N of the tradable assets
``eg``              :class:`EGAgent`              exponentiated gradient (eta=0.05)
``ons``             :class:`ONSAgent`             online Newton step
``olmar``           :class:`OLMARAgent`           moving-average reversion (window 5, eps 10)
``pamr``            :class:`PAMRAgent`            passive-aggressive reversion (eps 0.5)
``anticor``         :class:`AnticorAgent`         anti-correlation (window 30)
``corn``            :class:`CORNAgent`            correlation-similar windows (window 5, rho 0.1)
``min_variance``    :class:`MinVarianceAgent`     skfolio minimum variance, rolling window
``mean_variance``   :class:`MeanVarianceAgent`    skfolio maximum Sharpe (or utility)
``hrp``             :class:`HRPAgent`             skfolio hierarchical risk parity
``risk_parity``     :class:`RiskParityAgent`      skfolio equal risk contributions
``best_stock``      :class:`BestStockAgent`       bound: the best asset of the episode, held
``bcrp``            :class:`BCRPAgent`            bound: the episode's best constant rebalanced
==================  ============================  ==========================================

The two bounds read the whole episode (``uses_future = True``): list them apart, never rank
them. Every other agent reads bars ``<= t`` only.

OLPS agents run their algorithm from an *origin*: ``origin="episode"`` (default) starts it at
each episode's first bar ``s`` over the relatives ``1, close_(s+1)/close_s, ...`` (as
universal-portfolios would on the episode's prices), so the decision at bar ``t`` is its
``b_(t-s+1)``; ``origin="panel"`` runs one path from the panel's first bar for every episode.
Missing bars count as relative 1; the weight of an asset not tradable at t goes, in proportion,
to the tradable ones. Allocation agents refit every ``rebalance_every`` bars (counted from the
panel's first bar) on the ``lookback`` returns up to the refit bar, and hold those targets.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, cast

import numpy as np

from quantgym.checks import check_positive_int
from quantgym.policies.portfolio.allocation import RollingAllocation
from quantgym.policies.portfolio.binding import PortfolioAgent
from quantgym.policies.portfolio.hindsight import BCRP, BestStock
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
from quantgym.policies.portfolio.wealth import price_relatives

__all__ = [
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
]


def _olps_config(algorithm: type[OLPSAlgorithm]) -> Any:
    """The agent config: the algorithm's parameters (same defaults) plus ``origin``."""
    fields = [(f.name, f.type, f.default) for f in dataclasses.fields(cast(Any, algorithm))]
    return dataclasses.make_dataclass(
        f"{algorithm.__name__}AgentConfig", [*fields, ("origin", str, "episode")]
    )


class OLPSAgent(PortfolioAgent):
    """An OLPS algorithm bound to a portfolio env (module docstring)."""

    algorithm: ClassVar[type[OLPSAlgorithm]]

    def _validate(self) -> None:
        super()._validate()
        names = [f.name for f in dataclasses.fields(cast(Any, self.algorithm))]
        params = {name: getattr(self.config, name) for name in names}
        self._algorithm = self.algorithm(**params)  # checks the parameters
        self._runs: dict[tuple[int, int], OLPSRun] = {}

    def _run(self, origin: int, end: int) -> OLPSRun:
        key = (origin, end)
        run = self._runs.get(key)
        if run is None:
            close = self.binding.panel.close[origin : end + 1]
            run = self._runs[key] = OLPSRun(self._algorithm, price_relatives(close))
        return run

    def target_weights(self, bars: np.ndarray, origins: np.ndarray) -> np.ndarray:
        last = self.binding.panel.last_bar
        if self.config.origin == "panel":
            ends = np.full(bars.shape, last)
        else:
            ends = np.minimum(self.binding.episode_ends(bars.size), last)
        keys = set(zip(origins.tolist(), ends.tolist(), strict=True))
        for stale in set(self._runs) - keys:  # episodes that ended
            del self._runs[stale]
        out = np.empty((bars.size, self.binding.n_assets))
        for i, (t, s, end) in enumerate(
            zip(bars.tolist(), origins.tolist(), ends.tolist(), strict=True)
        ):
            out[i] = self._run(s, end).decision(t - s + 1)
        return out


class UBAHAgent(OLPSAgent):
    """Uniform buy and hold (:class:`~quantgym.policies.portfolio.olps.UBAH`)."""

    name: ClassVar[str] = "ubah"
    algorithm = UBAH
    Config = _olps_config(UBAH)


class UCRPAgent(OLPSAgent):
    """Uniform constant rebalanced portfolio (:class:`~quantgym.policies.portfolio.olps.UCRP`)."""

    name: ClassVar[str] = "ucrp"
    algorithm = UCRP
    Config = _olps_config(UCRP)


class EGAgent(OLPSAgent):
    """Exponentiated gradient (:class:`~quantgym.policies.portfolio.olps.EG`)."""

    name: ClassVar[str] = "eg"
    algorithm = EG
    Config = _olps_config(EG)


class ONSAgent(OLPSAgent):
    """Online Newton step (:class:`~quantgym.policies.portfolio.olps.ONS`)."""

    name: ClassVar[str] = "ons"
    algorithm = ONS
    Config = _olps_config(ONS)


class OLMARAgent(OLPSAgent):
    """Moving-average reversion (:class:`~quantgym.policies.portfolio.olps.OLMAR`)."""

    name: ClassVar[str] = "olmar"
    algorithm = OLMAR
    Config = _olps_config(OLMAR)


class PAMRAgent(OLPSAgent):
    """Passive-aggressive mean reversion (:class:`~quantgym.policies.portfolio.olps.PAMR`)."""

    name: ClassVar[str] = "pamr"
    algorithm = PAMR
    Config = _olps_config(PAMR)


class AnticorAgent(OLPSAgent):
    """Anticor (:class:`~quantgym.policies.portfolio.pattern.Anticor`)."""

    name: ClassVar[str] = "anticor"
    algorithm = Anticor
    Config = _olps_config(Anticor)


class CORNAgent(OLPSAgent):
    """CORN (:class:`~quantgym.policies.portfolio.pattern.CORN`)."""

    name: ClassVar[str] = "corn"
    algorithm = CORN
    Config = _olps_config(CORN)


class BestStockAgent(OLPSAgent):
    """Bound: the asset that grows most over the episode (``origin="panel"``: the panel), held."""

    name: ClassVar[str] = "best_stock"
    uses_future: ClassVar[bool] = True
    algorithm = BestStock
    Config = _olps_config(BestStock)


class BCRPAgent(OLPSAgent):
    """Bound: the best constant rebalanced portfolio of the episode (``origin="panel"``: of the
    panel), every bar."""

    name: ClassVar[str] = "bcrp"
    uses_future: ClassVar[bool] = True
    algorithm = BCRP
    Config = _olps_config(BCRP)


class AllocationAgent(PortfolioAgent):
    """A classical allocation refitted on a rolling window (module docstring)."""

    method: ClassVar[str]

    @dataclasses.dataclass
    class Config:
        lookback: int = 120
        rebalance_every: int = 20

    def _validate(self) -> None:
        check_positive_int("rebalance_every", self.config.rebalance_every)
        extra = {
            k: getattr(self.config, k)
            for k in ("objective", "risk_aversion")
            if hasattr(self.config, k)
        }
        self._allocation = RollingAllocation(self.method, self.config.lookback, **extra)
        panel = self.binding.panel
        self._relatives = price_relatives(panel.close)
        self._tradable = panel.tradable
        self._first_row = panel.first_row

    @property
    def fallbacks(self) -> int:
        """How many refits fell back to equal weights because the optimiser failed."""
        return self._allocation.fallbacks

    def origins(self, bars: np.ndarray, episode_start: Any) -> np.ndarray:
        return np.zeros_like(bars)  # the refit schedule is the panel's

    def target_weights(self, bars: np.ndarray, origins: np.ndarray) -> np.ndarray:
        refit = bars - bars % self.config.rebalance_every  # <= t: only bars up to t are read
        return np.stack(
            [
                self._allocation.weights_at(self._relatives, self._tradable, self._first_row, r)
                for r in refit.tolist()
            ]
        )


class MinVarianceAgent(AllocationAgent):
    """Minimum variance (skfolio ``MeanRisk``) on the trailing ``lookback`` returns."""

    name: ClassVar[str] = "min_variance"
    method = "min_variance"


class MeanVarianceAgent(AllocationAgent):
    """Mean-variance (skfolio ``MeanRisk``): maximum Sharpe, or ``objective="utility"`` with
    ``risk_aversion``, on the trailing ``lookback`` returns."""

    name: ClassVar[str] = "mean_variance"
    method = "mean_variance"

    @dataclasses.dataclass
    class Config:
        lookback: int = 120
        rebalance_every: int = 20
        objective: str = "sharpe"
        risk_aversion: float = 1.0


class HRPAgent(AllocationAgent):
    """Hierarchical risk parity (skfolio ``HierarchicalRiskParity``)."""

    name: ClassVar[str] = "hrp"
    method = "hrp"


class RiskParityAgent(AllocationAgent):
    """Equal risk contributions (skfolio ``RiskBudgeting``)."""

    name: ClassVar[str] = "risk_parity"
    method = "risk_parity"


#: Causal baselines by registry name (role "baseline").
PORTFOLIO_AGENTS: dict[str, type[PortfolioAgent]] = {
    cls.name: cls
    for cls in (
        UBAHAgent,
        UCRPAgent,
        EGAgent,
        ONSAgent,
        OLMARAgent,
        PAMRAgent,
        AnticorAgent,
        CORNAgent,
        MinVarianceAgent,
        MeanVarianceAgent,
        HRPAgent,
        RiskParityAgent,
    )
}
#: Hindsight bounds by registry name (role "future": listed apart, never ranked).
PORTFOLIO_BOUNDS: dict[str, type[PortfolioAgent]] = {
    cls.name: cls for cls in (BestStockAgent, BCRPAgent)
}
