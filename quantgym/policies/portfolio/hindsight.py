"""Hindsight bounds of online portfolio selection: the best stock and the best constant
rebalanced portfolio (BCRP), each chosen with the *whole* series of relatives.

They use the future (``uses_future = True``): list them apart as bounds, never rank them.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from quantgym.policies.portfolio.olps import OLPSAlgorithm
from quantgym.policies.portfolio.simplex import check_relatives, log_optimal_weights

__all__ = ["BestStock", "BCRP"]


@dataclasses.dataclass
class BestStock(OLPSAlgorithm):
    """All wealth in the asset whose price grew most over the series, held throughout."""

    name: ClassVar[str] = "best_stock"
    uses_future: ClassVar[bool] = True

    def weight_path(self, x: np.ndarray) -> np.ndarray:
        x = check_relatives(x)
        best = int(np.argmax(np.log(x).sum(axis=0)))
        path = np.zeros((x.shape[0] + 1, x.shape[1]))
        path[:, best] = 1.0
        return path


@dataclasses.dataclass
class BCRP(OLPSAlgorithm):
    """Best constant rebalanced portfolio in hindsight (Cover, 1991): the simplex weights
    maximising ``sum_t log(b . x_t)`` over the whole series (scipy SLSQP), every period."""

    name: ClassVar[str] = "bcrp"
    uses_future: ClassVar[bool] = True

    def weight_path(self, x: np.ndarray) -> np.ndarray:
        x = check_relatives(x)
        b = log_optimal_weights(x)
        return np.repeat(b[None, :], x.shape[0] + 1, axis=0)
