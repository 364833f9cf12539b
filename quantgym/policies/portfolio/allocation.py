"""Classical allocation on a rolling window of past returns, optimised by skfolio.

=================  ===============================================================================
method             skfolio estimator (defaults otherwise: sample mean and covariance, long only,
                   fully invested)
=================  ===============================================================================
``min_variance``   ``MeanRisk()`` (minimum variance)
``mean_variance``  ``MeanRisk(objective_function=MAXIMIZE_RATIO)`` (maximum Sharpe, risk-free 0);
                   ``objective="utility"``: ``MAXIMIZE_UTILITY`` with ``risk_aversion``. When no
                   asset has a positive mean return the maximum-Sharpe portfolio does not exist
                   and the allocation is cash (all weights 0)
``hrp``            ``HierarchicalRiskParity()`` (Lopez de Prado's hierarchical risk parity)
``risk_parity``    ``RiskBudgeting()`` (equal risk contributions)
=================  ===============================================================================

The window at bar ``r`` holds the simple returns ``x_t - 1`` of bars ``r - lookback + 1 .. r``
(:func:`~quantgym.policies.portfolio.wealth.price_relatives`): only bars ``<= r``. Eligible
assets are tradable at ``r``, listed since bar ``r - lookback`` at least, and not constant over
the window (a zero variance breaks the estimators). One eligible asset gets all the weight;
with none (not yet ``lookback`` bars of history) the tradable assets get equal weights (UCRP).
If the optimiser fails, the eligible assets get equal weights (counted in
:attr:`RollingAllocation.fallbacks`).

skfolio is optional: ``pip install 'quantgym[portfolio]'``. It is imported only when a weight is
computed.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar

import numpy as np

from quantgym.checks import check_choice, check_positive, check_positive_int

__all__ = ["ALLOCATION_METHODS", "require_skfolio", "allocate", "RollingAllocation"]

ALLOCATION_METHODS = ("min_variance", "mean_variance", "hrp", "risk_parity")
OBJECTIVES = ("sharpe", "utility")


def require_skfolio() -> Any:
    """The ``skfolio`` module, or an ``ImportError`` naming the extra that installs it."""
    try:
        import skfolio.optimization  # noqa: F401 - the estimators
    except ImportError as exc:
        raise ImportError(
            "the classical allocation baselines (min_variance, mean_variance, hrp, risk_parity) "
            "need skfolio: pip install 'quantgym[portfolio]'"
        ) from exc
    import skfolio

    return skfolio


def _estimator(method: str, objective: str, risk_aversion: float) -> Any:
    from skfolio.optimization import (
        HierarchicalRiskParity,
        MeanRisk,
        ObjectiveFunction,
        RiskBudgeting,
    )

    if method == "min_variance":
        return MeanRisk()
    if method == "mean_variance":
        if objective == "utility":
            return MeanRisk(
                objective_function=ObjectiveFunction.MAXIMIZE_UTILITY, risk_aversion=risk_aversion
            )
        return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO)
    if method == "hrp":
        return HierarchicalRiskParity()
    return RiskBudgeting()


def allocate(
    method: str, returns: np.ndarray, *, objective: str = "sharpe", risk_aversion: float = 1.0
) -> np.ndarray:
    """Weights ``(n,)`` of ``method`` fitted on ``returns`` ``(L, n)`` (simple returns, each
    column non-constant). Raises skfolio's errors when the optimiser fails."""
    check_choice("method", method, ALLOCATION_METHODS)
    check_choice("objective", objective, OBJECTIVES)
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] < 2 or r.shape[1] < 1 or not np.isfinite(r).all():
        raise ValueError(f"returns must be a finite (L >= 2, n >= 1) array, got shape {r.shape}")
    if r.shape[1] == 1:
        return np.ones(1)
    if method == "mean_variance" and objective == "sharpe" and (r.mean(axis=0) <= 0).all():
        return np.zeros(r.shape[1])  # no portfolio has a positive Sharpe ratio: cash
    require_skfolio()
    model = _estimator(method, objective, float(risk_aversion))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(r)
    w = np.clip(np.asarray(model.weights_, dtype=np.float64), 0.0, None)
    total = w.sum()
    return w / total if total > 1.0 else w


@dataclasses.dataclass
class RollingAllocation:
    """``method`` refitted on the trailing ``lookback`` returns (module docstring).

    ``weights_at(bar)`` gives the weights decided at the close of ``bar`` (N,) from the panel's
    relatives ``(T, N)``, ``tradable`` ``(T, N)`` and each asset's ``first_row`` ``(N,)``;
    results are cached per bar.
    """

    name: ClassVar[str] = "allocation"
    method: str = "min_variance"
    lookback: int = 120
    objective: str = "sharpe"
    risk_aversion: float = 1.0

    def __post_init__(self) -> None:
        check_choice("method", self.method, ALLOCATION_METHODS)
        check_positive_int("lookback", self.lookback, minimum=2)
        check_choice("objective", self.objective, OBJECTIVES)
        check_positive("risk_aversion", self.risk_aversion)
        self.fallbacks = 0
        self._cache: dict[int, np.ndarray] = {}

    def eligible(
        self, relatives: np.ndarray, tradable: np.ndarray, first_row: np.ndarray, bar: int
    ) -> np.ndarray:
        """Assets the fit at ``bar`` may use (bool ``(N,)``)."""
        start = bar - self.lookback + 1
        if start < 1:
            return np.zeros(relatives.shape[1], dtype=bool)
        window = relatives[start : bar + 1]
        moving = np.ptp(window, axis=0) > 0.0
        return tradable[bar] & (first_row <= start - 1) & moving

    def weights_at(
        self, relatives: np.ndarray, tradable: np.ndarray, first_row: np.ndarray, bar: int
    ) -> np.ndarray:
        """Weights decided at the close of ``bar`` from bars ``<= bar`` only."""
        cached = self._cache.get(bar)
        if cached is not None:
            return cached
        n = relatives.shape[1]
        weights = np.zeros(n)
        usable = self.eligible(relatives, tradable, first_row, bar)
        idx = np.flatnonzero(usable)
        if idx.size == 0:
            listed = np.flatnonzero(tradable[bar])
            weights[listed] = 1.0 / max(listed.size, 1)
        elif idx.size == 1:
            weights[idx] = 1.0
        else:
            returns = relatives[bar - self.lookback + 1 : bar + 1, idx] - 1.0
            try:
                weights[idx] = allocate(
                    self.method, returns, objective=self.objective, risk_aversion=self.risk_aversion
                )
            except ImportError:
                raise
            except Exception:  # noqa: BLE001 - any solver failure: equal weights, counted
                self.fallbacks += 1
                weights[idx] = 1.0 / idx.size
        weights.flags.writeable = False
        self._cache[bar] = weights
        return weights
