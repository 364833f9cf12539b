"""OLPS algorithms that learn from patterns in past windows of relatives: Anticor (lagged
cross-correlation) and CORN (correlation-similar windows). Same step convention as
:mod:`quantgym.policies.portfolio.olps`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from quantgym.checks import check_positive_int
from quantgym.policies.portfolio.olps import OLPSAlgorithm
from quantgym.policies.portfolio.simplex import log_optimal_weights

__all__ = ["Anticor", "CORN", "lagged_correlation", "window_correlations"]


def lagged_correlation(older: np.ndarray, recent: np.ndarray) -> np.ndarray:
    """``M[i, j] = corr(older[:, i], recent[:, j])`` of two ``(w, N)`` windows; NaN where
    either column is constant (its correlation is undefined)."""
    a = older - older.mean(axis=0)
    b = recent - recent.mean(axis=0)
    sa = np.sqrt((a * a).mean(axis=0))
    sb = np.sqrt((b * b).mean(axis=0))
    cov = a.T @ b / older.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sa, sb)
    corr[(sa == 0)[:, None] | (sb == 0)[None, :]] = np.nan
    return corr


@dataclasses.dataclass
class Anticor(OLPSAlgorithm):
    """Anticor (Borodin, El-Yaniv & Gogan, 2004): move wealth from recent winners to the
    stocks their earlier returns anticipate.

    Over the last two windows of ``window`` relatives (``LX1`` earlier, ``LX2`` latest) with
    ``mu`` the mean of ``LX2``: stock ``i`` claims on ``j`` when ``mu_i > mu_j`` and
    ``M[i, j] > 0``, by ``M[i, j]`` plus ``|M[h, h]|`` for each of ``h = i, j`` with negative
    autocorrelation; ``b_i`` is shared out over ``i``'s claims in proportion. Undefined
    correlations (a constant column) claim nothing.

    ``paper=False`` (default) is universal-portfolios' convention, ``M[i, j] =
    corr(LX2_i, LX1_j)`` over plain relatives; ``paper=True`` the paper's ``M[i, j] =
    corr(LX1_i, LX2_j)`` over log relatives.
    """

    name: ClassVar[str] = "anticor"
    window: int = 30
    paper: bool = False

    def __post_init__(self) -> None:
        check_positive_int("window", self.window, minimum=2)

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        w = self.window
        if history.shape[0] < 2 * w:
            return last_b
        series = np.log(history[-2 * w :]) if self.paper else history[-2 * w :]
        older, recent = series[:w], series[w:]
        corr = (
            lagged_correlation(older, recent)
            if self.paper
            else lagged_correlation(recent, older)  # corr(LX2_i, LX1_j)
        )
        mu = recent.mean(axis=0)
        auto = np.diag(corr)
        bonus = np.where(auto < 0, -auto, 0.0)  # NaN < 0 is False: no bonus
        with np.errstate(invalid="ignore"):
            claims = (mu[:, None] > mu[None, :]) & (corr > 0)
        np.fill_diagonal(claims, False)
        claim = np.where(claims, corr + bonus[:, None] + bonus[None, :], 0.0)
        total = claim.sum(axis=1)
        share = np.divide(claim, total[:, None], out=np.zeros_like(claim), where=total[:, None] > 0)
        transfer = last_b[:, None] * share  # transfer[i, j]: from i to j
        return last_b + transfer.sum(axis=0) - transfer.sum(axis=1)


def window_correlations(history: np.ndarray, window: int) -> np.ndarray:
    """Correlation of the latest ``window`` relatives (flattened ``(window * N,)``) with the
    window ending at each earlier period ``i = window - 1 .. t - 1`` (``(t - window + 1,)``,
    NaN where a window is constant)."""
    n_assets = history.shape[1]
    flat = np.lib.stride_tricks.sliding_window_view(history, window, axis=0)  # (k, N, w)
    flat = flat.reshape(flat.shape[0], n_assets * window)
    centred = flat - flat.mean(axis=1, keepdims=True)
    norms = np.sqrt((centred * centred).sum(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = centred[:-1] @ centred[-1] / (norms[:-1] * norms[-1])
    corr[(norms[:-1] == 0) | (norms[-1] == 0)] = np.nan
    return corr


@dataclasses.dataclass
class CORN(OLPSAlgorithm):
    """Correlation-driven nonparametric learning (Li, Hoi & Gopalkrishnan, 2011).

    After ``window`` relatives, the periods that followed every past window whose
    correlation with the latest window is at least ``rho`` form a sample; the next weights
    are that sample's log-optimal constant portfolio (uniform if the sample is empty).
    ``allow_cash=True`` (default, universal-portfolios' ``opt_weights``) lets that portfolio
    hold cash; ``False`` keeps it on the simplex as in the paper.
    """

    name: ClassVar[str] = "corn"
    window: int = 5
    rho: float = 0.1
    allow_cash: bool = True

    def __post_init__(self) -> None:
        check_positive_int("window", self.window, minimum=2)
        if not -1.0 <= float(self.rho) <= 1.0:
            raise ValueError(f"rho must be in [-1, 1], got {self.rho!r}")

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        t = history.shape[0] - 1
        if t < self.window:
            return last_b
        corr = window_correlations(history, self.window)
        with np.errstate(invalid="ignore"):
            ends = np.flatnonzero(corr >= self.rho) + self.window - 1
        if ends.size == 0:
            return np.full(x.size, 1.0 / x.size)
        return log_optimal_weights(history[ends + 1], allow_cash=self.allow_cash)
