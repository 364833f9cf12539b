"""Weights on the simplex: Euclidean projection, projection in a matrix norm, and the
log-optimal (growth-optimal) constant portfolio of a sample of price relatives.

The two optimisation problems go to ``scipy.optimize`` (SLSQP with analytic gradients); only
the Euclidean projection, which has a closed form (sort and threshold), is computed here.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
from scipy import linalg, optimize

__all__ = [
    "check_relatives",
    "simplex_projection",
    "norm_projection",
    "log_optimal_weights",
    "SOLVER_FTOL",
    "single_threaded_blas",
]

#: SLSQP's stopping tolerance on the *mean* log growth (per period); 1e-14 reaches the optimum
#: of every OLPS data set to ~1e-13 relative wealth (tighter only adds iterations).
SOLVER_FTOL = 1e-14


@functools.cache
def _blas_controller() -> object | None:
    try:
        from threadpoolctl import ThreadpoolController  # scikit-learn's dependency
    except ImportError:  # pragma: no cover - always installed with d3rlpy/scikit-learn
        return None
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the block with one BLAS thread. These problems are tiny (N <= ~100): extra BLAS
    threads only add synchronisation, which on a busy machine made SLSQP 30x slower."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):  # type: ignore[attr-defined]
        yield


def check_relatives(x: np.ndarray, name: str = "x") -> np.ndarray:
    """``x`` as a float64 ``(T, N)`` array of price relatives: finite and positive, else
    ``ValueError`` naming ``name`` and the first bad entry."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a (T, N) array of price relatives, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        t, i = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} must hold finite positive price relatives; {name}[{t}, {i}] = {arr[t, i]!r}"
        )
    return arr


def simplex_projection(y: np.ndarray) -> np.ndarray:
    """Euclidean projection of ``y`` (N,) onto the simplex ``{b >= 0, sum b = 1}``.

    Sort-and-threshold (Duchi et al., 2008), with the threshold found exactly as
    universal-portfolios' ``tools.simplex_proj`` finds it (first ``k`` with
    ``(s_1 + ... + s_k - 1) / k >= s_(k+1)``), so OLMAR and PAMR agree with it bit for bit.
    """
    y = np.asarray(y, dtype=np.float64)
    s = np.sort(y)[::-1]
    partial = np.cumsum(s)  # sequential, as the reference's loop
    k = np.arange(1, s.size)
    thresholds = (partial[:-1] - 1.0) / k
    hits = np.flatnonzero(thresholds >= s[1:])
    tmax = thresholds[hits[0]] if hits.size else (partial[-1] - 1.0) / s.size
    return np.maximum(y - tmax, 0.0)


def norm_projection(y: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Projection of ``y`` onto the simplex in the norm of the positive definite ``matrix``:
    ``argmin_b (b - y)' M (b - y)`` with ``b >= 0, sum b = 1`` (ONS's step).

    For a multiplier ``nu`` of ``sum b = 1``, ``b(nu) = argmin_(b >= 0) b'Mb/2 - (My + nu)'b``
    is a non-negative least-squares problem (scipy ``nnls`` on the Cholesky factor) and
    ``sum b(nu)`` increases with ``nu``, piecewise linearly; scipy ``brentq`` finds the ``nu``
    with ``sum b(nu) = 1`` (its secant steps are exact on the final linear piece).
    """
    y = np.asarray(y, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    factor = np.linalg.cholesky(m)  # M = L L'
    q = m @ y

    def weights(nu: float) -> np.ndarray:
        rhs = linalg.solve_triangular(factor, q + nu, lower=True)
        return optimize.nnls(factor.T, rhs)[0]

    def excess(nu: float) -> float:
        return float(weights(nu).sum()) - 1.0

    with single_threaded_blas():
        low = -float(q.max())  # q + nu <= 0: b(nu) = 0
        high = max(abs(low), 1.0)
        while excess(high) < 0.0:
            high *= 2.0
        nu = optimize.brentq(
            excess, low, high, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500
        )
        return _clean(weights(nu), cash=False)


def log_optimal_weights(x: np.ndarray, *, allow_cash: bool = False) -> np.ndarray:
    """The constant portfolio that maximises ``sum_t log(b . x_t)`` over the sample ``x``
    (T, N): the best constant rebalanced portfolio (BCRP) of ``x``.

    ``b`` lies on the simplex; with ``allow_cash`` it may sum to less than 1, the rest in cash
    (relative 1), as universal-portfolios' ``tools.opt_weights`` (used by its BCRP and CORN).
    Solved by SLSQP from the uniform portfolio with the exact gradient.
    """
    x = check_relatives(x)
    n = x.shape[1]
    excess = x - 1.0  # growth of b: 1 + b . (x - 1), which is b . x on the simplex

    def objective(b: np.ndarray) -> float:
        return -float(np.mean(np.log(np.maximum(1.0 + excess @ b, 1e-300))))

    def gradient(b: np.ndarray) -> np.ndarray:
        growth = np.maximum(1.0 + excess @ b, 1e-300)
        return -(excess / growth[:, None]).mean(axis=0)

    if allow_cash:
        constraint = {"type": "ineq", "fun": lambda b: 1.0 - b.sum(), "jac": lambda b: -np.ones(n)}
    else:
        constraint = {"type": "eq", "fun": lambda b: b.sum() - 1.0, "jac": lambda b: np.ones(n)}
    with single_threaded_blas():
        result = optimize.minimize(
            objective,
            np.full(n, 1.0 / n),
            jac=gradient,
            bounds=[(0.0, 1.0)] * n,
            constraints=(constraint,),
            method="SLSQP",
            options={"ftol": SOLVER_FTOL, "maxiter": 1000},
        )
    return _clean(result.x, cash=allow_cash)


def _clean(b: np.ndarray, *, cash: bool) -> np.ndarray:
    """Clip a solver's answer onto the feasible set (SLSQP may overshoot a bound by ~1e-16)."""
    b = np.clip(np.asarray(b, dtype=np.float64), 0.0, 1.0)
    total = b.sum()
    if total <= 0.0:
        return b if cash else np.full(b.size, 1.0 / b.size)
    return b / total if (not cash or total > 1.0) else b
