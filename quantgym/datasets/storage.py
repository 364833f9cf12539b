"""Observations by reference: a ``TradingEnv`` observation is a pure function of its bar.

A raw ``TradingEnv`` observation at bar ``t`` is the window of causal market features of bars
``t - window_size + 1 .. t`` (row-major ``(window_size, F)``) followed by the account
features. So a dataset recorded from such an env needs, per observation, only the bar index
and the ``n_account_features`` account values; the market's ``(n_bars, F)`` float32 feature
matrix is stored once (:class:`MarketReference`). :class:`ObservationReferences` rebuilds any
set of observation rows with one gather into a preallocated array, bit for bit equal to what
the env returned (the collector verifies that on a sample before choosing this storage).

Per-step infos that are functions of the bar (``bar``, ``timestamp``, ``regime``) are
derived the same way (:meth:`MarketReference.derived_info`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

__all__ = [
    "DERIVED_INFO_KEYS",
    "MarketReference",
    "ObservationReferences",
    "market_reference",
]

DERIVED_INFO_KEYS = ("bar", "timestamp", "regime")
"""Per-step infos a by-reference dataset derives from the bar of the next observation."""

_CHUNK_BYTES = 64 * 2**20  # materialise observations 64 MiB at a time
_MAX_PRECOMPUTED_BYTES = 256 * 2**20  # contiguous window rows up to this size (as the vector env)


@dataclasses.dataclass(frozen=True, eq=False)
class MarketReference:
    """The per-market part of by-reference observations, stored once per dataset.

    Attributes:
        features: ``(n_bars, F)`` float32 causal market features (``MarketData.features32``).
        window_size: bars per observation window.
        n_account_features: account values appended after the window.
        fingerprint: the market data fingerprint (``MarketData.fingerprint``), or ``None``.
        timestamps: ``(n_bars,)`` int64 ns since the epoch, or ``None``.
        regime: ``(n_bars,)`` int64 hidden regime of synthetic markets, or ``None``.
    """

    features: np.ndarray
    window_size: int
    n_account_features: int
    fingerprint: str | None = None
    timestamps: np.ndarray | None = None
    regime: np.ndarray | None = None

    def __post_init__(self) -> None:
        features = np.asarray(self.features)
        if features.ndim != 2 or features.dtype != np.float32:
            raise ValueError(
                f"features must be a (n_bars, F) float32 matrix, got {features.dtype} {features.shape}"
            )
        if not 1 <= int(self.window_size) <= features.shape[0]:
            raise ValueError(
                f"window_size must be in [1, {features.shape[0]}], got {self.window_size!r}"
            )
        if int(self.n_account_features) < 0:
            raise ValueError(f"n_account_features must be >= 0, got {self.n_account_features!r}")
        for name in ("timestamps", "regime"):
            values = getattr(self, name)
            if values is not None and np.shape(values) != (features.shape[0],):
                raise ValueError(
                    f"{name} must have shape ({features.shape[0]},), got {np.shape(values)}"
                )

    @property
    def n_bars(self) -> int:
        """Rows of the feature matrix."""
        return int(self.features.shape[0])

    @property
    def market_dim(self) -> int:
        """Length of the flattened feature window."""
        return int(self.window_size * self.features.shape[1])

    @property
    def observation_dim(self) -> int:
        """Length of one observation: window plus account features."""
        return self.market_dim + int(self.n_account_features)

    @property
    def windows(self) -> np.ndarray:
        """Read-only strided view ``(n_bars - window_size + 1, market_dim)``; row ``t - W + 1``
        is the window of bar ``t`` (no copy)."""
        f = np.ascontiguousarray(self.features)
        return np.lib.stride_tricks.as_strided(
            f,
            shape=(self.n_bars - self.window_size + 1, self.market_dim),
            strides=(f.strides[0], f.strides[1]),
            writeable=False,
        )

    def observation_rows(self) -> np.ndarray | None:
        """``(n_bars - W + 1, observation_dim)`` float32 rows, the window of bar ``t`` at row
        ``t - W + 1`` and zero account columns, so a gather is one ``np.take`` into the output
        (as ``TradingVectorEnv`` does); computed once, ``None`` beyond 256 MiB."""
        cached = self.__dict__.get("_rows")
        if cached is None:
            n_rows = self.n_bars - self.window_size + 1
            if n_rows * self.observation_dim * 4 > _MAX_PRECOMPUTED_BYTES:
                return None
            cached = np.zeros((n_rows, self.observation_dim), dtype=np.float32)
            cached[:, : self.market_dim] = self.windows
            cached.flags.writeable = False
            object.__setattr__(self, "_rows", cached)
        return cached

    def features_sha256(self) -> str:
        """SHA-256 of the feature matrix (the fingerprint covers prices, not features)."""
        return hashlib.sha256(np.ascontiguousarray(self.features).tobytes()).hexdigest()

    def same_as(self, other: MarketReference) -> bool:
        """True when both describe the same observations (same window, account size, features)."""
        return (
            self.window_size == other.window_size
            and self.n_account_features == other.n_account_features
            and self.features.shape == other.features.shape
            and np.array_equal(self.features, other.features)
        )

    def derived_info(self, name: str, bars: np.ndarray) -> np.ndarray:
        """The per-step info ``name`` (``bar``, ``timestamp`` or ``regime``) at ``bars``."""
        bars = np.asarray(bars, dtype=np.int64)
        if name == "bar":
            return bars
        if name == "timestamp" and self.timestamps is not None:
            return np.asarray(self.timestamps, dtype=np.int64)[bars]
        if name == "regime" and self.regime is not None:
            return np.asarray(self.regime, dtype=np.int64)[bars]
        raise ValueError(f"info {name!r} cannot be derived from this market reference")

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store (``features`` and, when known, ``timestamps``/``regime``)."""
        out = {"features": np.ascontiguousarray(self.features)}
        if self.timestamps is not None:
            out["timestamps"] = np.asarray(self.timestamps, dtype=np.int64)
        if self.regime is not None:
            out["regime"] = np.asarray(self.regime, dtype=np.int64)
        return out

    def describe(self) -> dict[str, Any]:
        """JSON description stored next to the arrays."""
        return {
            "window_size": int(self.window_size),
            "n_account_features": int(self.n_account_features),
            "fingerprint": self.fingerprint,
            "n_bars": self.n_bars,
            "n_features": int(self.features.shape[1]),
        }

    @classmethod
    def from_arrays(
        cls, description: dict[str, Any], arrays: dict[str, np.ndarray]
    ) -> MarketReference:
        """Inverse of :meth:`describe` + :meth:`arrays`."""
        return cls(
            features=arrays["features"],
            window_size=int(description["window_size"]),
            n_account_features=int(description["n_account_features"]),
            fingerprint=description.get("fingerprint"),
            timestamps=arrays.get("timestamps"),
            regime=arrays.get("regime"),
        )


def market_reference(env: Any) -> MarketReference | None:
    """The :class:`MarketReference` of a quantgym env (single or vector), else ``None``.

    Only says what the env's *own* observations would be; whether the recorded observations
    are those (no wrapper changed them) is checked on the data by the collector.
    """
    core = getattr(env, "unwrapped", env)
    market = getattr(core, "market", None)
    features = getattr(market, "features32", None)
    window = getattr(core, "window_size", None)
    n_account = getattr(core, "n_account_features", None)
    if not isinstance(features, np.ndarray) or features.ndim != 2:
        return None
    if not isinstance(window, (int, np.integer)) or not isinstance(n_account, (int, np.integer)):
        return None
    timestamps = getattr(market, "timestamps", None)
    if timestamps is not None:
        timestamps = np.asarray(timestamps)
        timestamps = (
            timestamps.astype("datetime64[ns]").view(np.int64)
            if timestamps.dtype.kind == "M"
            else None
        )
    regime = getattr(market, "regime", None)
    if regime is not None:
        regime = np.asarray(regime).astype(np.int64)
    try:
        return MarketReference(
            features=features,
            window_size=int(window),
            n_account_features=int(n_account),
            fingerprint=getattr(market, "fingerprint", None),
            timestamps=timestamps,
            regime=regime,
        )
    except ValueError:
        return None


class ObservationReferences:
    """Observation rows stored as ``(bar, account features)`` against a :class:`MarketReference`.

    Args:
        market: the market whose feature windows the observations hold.
        bars: ``(M,)`` bar index of each observation row.
        account: ``(M, n_account_features)`` float32 account features of each row.
    """

    def __init__(self, market: MarketReference, bars: np.ndarray, account: np.ndarray) -> None:
        bars = np.asarray(bars)
        account = np.asarray(account)
        if bars.ndim != 1 or bars.dtype.kind not in "iu":
            raise ValueError(f"bars must be a 1-D integer array, got {bars.dtype} {bars.shape}")
        if account.shape != (bars.shape[0], market.n_account_features):
            raise ValueError(
                f"account must have shape ({bars.shape[0]}, {market.n_account_features}), "
                f"got {account.shape}"
            )
        if account.dtype != np.float32:
            raise ValueError(f"account must be float32, got {account.dtype}")
        if bars.size and (
            int(bars.min()) < market.window_size - 1 or int(bars.max()) >= market.n_bars
        ):
            raise ValueError(
                f"bars must lie in [{market.window_size - 1}, {market.n_bars - 1}] "
                f"(a full window inside the market), got [{int(bars.min())}, {int(bars.max())}]"
            )
        self.market = market
        self.bars = bars
        self.account = account

    def __len__(self) -> int:
        return int(self.bars.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        """Shape of the materialised observations."""
        return (len(self), self.market.observation_dim)

    @property
    def dtype(self) -> np.dtype:
        """Always float32 (the env's observation dtype)."""
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        """Bytes of the per-row arrays (the market is counted once, by the dataset)."""
        return int(self.bars.nbytes + self.account.nbytes)

    def take(self, rows: np.ndarray | slice, out: np.ndarray | None = None) -> np.ndarray:
        """Observation rows ``rows`` (indices or a slice), gathered into ``out`` (or a new array)."""
        bars = self.bars[rows]
        account = self.account[rows]
        n = int(bars.shape[0])
        if out is None:
            out = np.empty((n, self.market.observation_dim), dtype=np.float32)
        elif out.shape != (n, self.market.observation_dim) or out.dtype != np.float32:
            raise ValueError(
                f"out must be float32 of shape {(n, self.market.observation_dim)}, got "
                f"{out.dtype} {out.shape}"
            )
        m = self.market.market_dim
        window_rows = bars.astype(np.intp, copy=False) - (self.market.window_size - 1)
        table = self.market.observation_rows()
        if table is not None and out.flags.c_contiguous:
            np.take(table, window_rows, axis=0, out=out, mode="clip")  # bars checked at init
        else:  # fancy indexing of the strided view (np.take would copy the whole view first)
            out[:, :m] = self.market.windows[window_rows]
        out[:, m:] = account
        return out

    def materialize(self, progress: bool = False) -> np.ndarray:
        """All rows as one dense ``(M, D)`` float32 array, gathered in 64 MiB chunks."""
        out = np.empty(self.shape, dtype=np.float32)
        chunk = max(1, _CHUNK_BYTES // max(1, 4 * self.market.observation_dim))
        starts = range(0, len(self), chunk)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="observations", unit="chunk", mininterval=0.5)
        for lo in starts:
            hi = min(lo + chunk, len(self))
            self.take(slice(lo, hi), out=out[lo:hi])
        return out

    def subset(self, rows: np.ndarray) -> ObservationReferences:
        """The references of ``rows`` (same market)."""
        return ObservationReferences(self.market, self.bars[rows], self.account[rows])
