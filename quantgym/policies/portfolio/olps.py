"""Online portfolio selection (OLPS): each algorithm a small class whose
``step(x, last_b, history)`` returns the next weights, as in universal-portfolios.

Conventions (those of universal-portfolios, so that wealth matches it exactly):

- ``x`` is a ``(T, N)`` series of price relatives ``x_t = close_t / close_(t-1)``; row 0 is the
  relative *into* the first bar, 1 when the series starts from prices (:func:`price_relatives`).
  The price index ``p_t = x_0 x_1 ... x_t`` (so ``p_0 = 1`` from prices).
- ``b_t`` (N,) are the weights held over period ``t``, earning ``b_t . x_t + (1 - sum b_t)``
  (cash, if any, earns 1). ``b_0 = init_weights(N)``; after seeing ``x_t`` the algorithm
  decides ``b_(t+1) = step(x_t, b_t, x[:t+1])``: it never reads a relative after ``t``.
  ``last_b`` is the algorithm's own previous decision (not the portfolio after drift).
- :meth:`OLPSAlgorithm.weight_path` returns all ``T + 1`` decisions ``b_0 .. b_T``.

=========  =====================================================================  =============
class      decision after seeing ``x_t``                                          defaults
=========  =====================================================================  =============
``UBAH``   buy and hold from equal weights: ``b_t * x_t / (b_t . x_t)``             --
``UCRP``   ``1 / N`` every period                                                   --
``EG``     ``b_t * exp(eta * x_t / (b_t . x_t))``, normalised (Helmbold et al.)     eta=0.05
``ONS``    Online Newton Step (Agarwal et al.): projection of                       delta=1/8,
           ``delta A^-1 c`` onto the simplex in the ``A`` norm, mixed with 1/N       beta=1, eta=0
``OLMAR``  moving-average reversion (Li & Hoi): predict ``x~ = SMA_w(p) / p_t``,    window=5,
           move ``b`` to reach ``b . x~ >= eps`` at least distance, project          eps=10
``PAMR``   passive-aggressive reversion (Li et al.): move ``b`` until               eps=0.5,
           ``b . x_t <= eps``, variants 0 / 1 (cap ``C``) / 2 (``1/(2C)`` ridge)     C=500, variant=0
=========  =====================================================================  =============

Anticor and CORN are in :mod:`quantgym.policies.portfolio.pattern`; the hindsight bounds in
:mod:`quantgym.policies.portfolio.hindsight`.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import numpy as np

from quantgym.checks import check_choice, check_non_negative, check_positive, check_positive_int
from quantgym.policies.portfolio.simplex import (
    check_relatives,
    norm_projection,
    simplex_projection,
    single_threaded_blas,
)

__all__ = ["OLPSAlgorithm", "OLPSRun", "UBAH", "UCRP", "EG", "ONS", "OLMAR", "PAMR"]


class OLPSAlgorithm:
    """Base of every OLPS algorithm (a dataclass of its parameters).

    Subclasses implement :meth:`step` (and :meth:`reset` for internal state); ``min_history``
    periods keep the initial weights before the first step. Hindsight bounds override
    :meth:`weight_path` and set ``uses_future = True``.
    """

    name: ClassVar[str] = "olps"
    uses_future: ClassVar[bool] = False
    min_history: ClassVar[int] = 0

    def init_weights(self, n_assets: int) -> np.ndarray:
        """Weights ``b_0`` held over the first period: uniform."""
        return np.full(n_assets, 1.0 / n_assets)

    def reset(self, n_assets: int) -> None:
        """Clear internal state before a run over ``n_assets`` assets."""

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Weights for the next period, given the latest relatives ``x`` (N,), the weights
        ``last_b`` (N,) held over them and every relative so far ``history`` (t+1, N)."""
        raise NotImplementedError

    def weight_path(self, x: np.ndarray) -> np.ndarray:
        """All decisions over the relatives ``x`` (T, N): ``(T + 1, N)``, row ``t`` held over
        period ``t`` (row ``T`` is the decision after the last relative)."""
        run = OLPSRun(self, x)
        return run.decision_path(run.n_periods)

    def weights(self, x: np.ndarray) -> np.ndarray:
        """Weights held over each period of ``x`` (T, N): ``weight_path(x)[:-1]``."""
        return self.weight_path(x)[:-1]

    def params(self) -> dict[str, Any]:
        """The algorithm's parameters (JSON-able)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


class OLPSRun:
    """One run of an algorithm over the relatives ``x`` (T, N), stepped only as far as asked:
    ``decision(k)`` is ``b_k``, decided after ``x[:k]`` (an env-bound agent asks for one bar at
    a time). The run owns a copy of the algorithm, so runs never share state. A hindsight
    algorithm (``uses_future``) computes its whole path at once from all of ``x``.
    """

    def __init__(self, algorithm: OLPSAlgorithm, x: np.ndarray) -> None:
        self.x = check_relatives(x)
        self.n_periods, n_assets = self.x.shape
        self.algorithm = copy.deepcopy(algorithm)
        if algorithm.uses_future:
            self._path = np.asarray(algorithm.weight_path(self.x), dtype=np.float64)
            self._done = self.n_periods
            return
        self.algorithm.reset(n_assets)
        self._path = np.empty((self.n_periods + 1, n_assets))
        self._path[0] = np.asarray(self.algorithm.init_weights(n_assets), dtype=np.float64)
        self._done = 0  # decisions b_1 .. b_done are in the path

    def decision_path(self, k: int) -> np.ndarray:
        """Decisions ``b_0 .. b_k`` (a read-only view ``(k + 1, N)``), stepping as needed."""
        if not 0 <= k <= self.n_periods:
            raise ValueError(f"k must be in [0, {self.n_periods}], got {k}")
        if k > self._done:
            algorithm, x, path = self.algorithm, self.x, self._path
            with single_threaded_blas():
                for t in range(self._done, k):
                    b = path[t].copy()  # a step may not write into the path
                    if t >= algorithm.min_history:
                        b = np.asarray(algorithm.step(x[t], b, x[: t + 1]), dtype=np.float64)
                    path[t + 1] = b
            self._done = k
        view = self._path[: k + 1]
        view.flags.writeable = False
        return view

    def decision(self, k: int) -> np.ndarray:
        """``b_k`` (N,): the weights decided after seeing ``x[:k]``, held over period ``k``."""
        return self.decision_path(k)[k]


@dataclasses.dataclass
class UBAH(OLPSAlgorithm):
    """Uniform buy and hold: equal weights at the start, never rebalanced (weights drift
    with prices: ``b_(t+1) = b_t * x_t / (b_t . x_t)``)."""

    name: ClassVar[str] = "ubah"

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        grown = last_b * x
        return grown / grown.sum()


@dataclasses.dataclass
class UCRP(OLPSAlgorithm):
    """Uniform constant rebalanced portfolio: ``1 / N`` in every asset, every period."""

    name: ClassVar[str] = "ucrp"

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        return np.full(x.size, 1.0 / x.size)


@dataclasses.dataclass
class EG(OLPSAlgorithm):
    """Exponentiated gradient (Helmbold et al., 1998): ``b_(t+1) proportional to
    b_t * exp(eta * x_t / (b_t . x_t))``; ``eta`` is the learning rate."""

    name: ClassVar[str] = "eg"
    eta: float = 0.05

    def __post_init__(self) -> None:
        check_non_negative("eta", self.eta)

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        b = last_b * np.exp(self.eta * x / np.dot(x, last_b))
        return b / b.sum()


@dataclasses.dataclass
class ONS(OLPSAlgorithm):
    """Online Newton step (Agarwal, Hazan, Kale & Schapire, 2006).

    With the gradient ``g_t = x_t / (b_t . x_t)``: ``A += g g'`` (``A_0 = I``),
    ``c += (1 + 1/beta) g``; the next weights are the projection of ``delta A^-1 c`` onto the
    simplex in the ``A`` norm (scipy SLSQP), mixed with ``eta`` of the uniform portfolio.
    """

    name: ClassVar[str] = "ons"
    delta: float = 0.125
    beta: float = 1.0
    eta: float = 0.0

    def __post_init__(self) -> None:
        check_positive("delta", self.delta)
        check_positive("beta", self.beta)
        if not 0.0 <= float(self.eta) <= 1.0:
            raise ValueError(f"eta must be in [0, 1], got {self.eta!r}")

    def reset(self, n_assets: int) -> None:
        self._a = np.eye(n_assets)
        self._c = np.zeros(n_assets)

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        grad = x / np.dot(last_b, x)
        self._a += np.outer(grad, grad)
        self._c += (1.0 + 1.0 / self.beta) * grad
        target = self.delta * np.linalg.solve(self._a, self._c)
        b = norm_projection(target, self._a)
        return b * (1.0 - self.eta) + self.eta / x.size


@dataclasses.dataclass
class OLMAR(OLPSAlgorithm):
    """On-line moving average reversion, OLMAR-1 (Li & Hoi, 2012).

    Predicted relative ``x~ = SMA_w(p)_t / p_t`` (the mean of the last ``window`` prices over
    the last price); the new weights are the simplex projection of
    ``b + lam (x~ - mean(x~))`` with ``lam = max(0, (eps - b . x~) / ||x~ - mean(x~)||^2)``.
    While fewer than ``window + 1`` relatives exist, ``x~ = p_t / p_0`` (universal-portfolios'
    convention); the first step comes after the second relative (``min_history = 1``).
    """

    name: ClassVar[str] = "olmar"
    min_history: ClassVar[int] = 1
    window: int = 5
    eps: float = 10.0

    def __post_init__(self) -> None:
        check_positive_int("window", self.window, minimum=2)
        if check_positive("eps", self.eps) < 1.0:
            raise ValueError(f"eps must be >= 1, got {self.eps!r}")

    def predict(self, history: np.ndarray) -> np.ndarray:
        """Predicted next relative ``x~`` (N,) from the relatives so far (t+1, N)."""
        if history.shape[0] < self.window + 1:
            return np.prod(history, axis=0)
        # p_(t-k) / p_t = 1 / (x_t x_(t-1) ... x_(t-k+1)), k = 1 .. window-1
        back = np.cumprod(history[: -self.window : -1], axis=0)
        return (1.0 + (1.0 / back).sum(axis=0)) / self.window

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        x_pred = self.predict(history)
        excess = x_pred - np.mean(x_pred)
        denominator = float((excess * excess).sum())
        # at or below rounding level (every asset predicted alike) ``excess`` has no direction:
        # divided into lam it blew the weights to ~1e17, past the projection's precision
        rounding = x_pred.size * (4 * np.finfo(np.float64).eps * float(np.max(np.abs(x_pred)))) ** 2
        lam = (
            max(0.0, (self.eps - np.dot(last_b, x_pred)) / denominator)
            if denominator > rounding
            else 0.0
        )
        return simplex_projection(last_b + lam * excess)


@dataclasses.dataclass
class PAMR(OLPSAlgorithm):
    """Passive-aggressive mean reversion (Li, Zhao, Hoi & Gopalkrishnan, 2012).

    With the loss ``l = max(0, b . x_t - eps)`` and ``d = x_t - mean(x_t)``: ``lam = l / |d|^2``
    (variant 0, PAMR), ``min(C, l / |d|^2)`` (1, PAMR-1) or ``l / (|d|^2 + 1/(2C))`` (2, PAMR-2),
    capped at 1e5; the new weights are the simplex projection of ``b - lam d``.
    """

    name: ClassVar[str] = "pamr"
    eps: float = 0.5
    C: float = 500.0  # the paper's name for the aggressiveness cap
    variant: int = 0

    def __post_init__(self) -> None:
        check_non_negative("eps", self.eps)
        check_positive("C", self.C)
        check_choice("variant", self.variant, (0, 1, 2))

    def step(self, x: np.ndarray, last_b: np.ndarray, history: np.ndarray) -> np.ndarray:
        deviation = x - np.mean(x)
        loss = max(0.0, np.dot(last_b, x) - self.eps)
        norm2 = np.linalg.norm(deviation) ** 2
        if self.variant == 2:
            lam = loss / (norm2 + 0.5 / self.C)
        elif norm2 == 0.0:
            lam = 0.0  # every asset moved alike: no direction to move in
        else:
            lam = loss / norm2 if self.variant == 0 else min(self.C, loss / norm2)
        lam = min(100000.0, lam)  # universal-portfolios' guard against numerical blow-up
        return simplex_projection(last_b - lam * deviation)
