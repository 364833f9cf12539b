"""What an agent reads of the flat ``TradingEnv`` observation: its layout, the newest bars of
the market window, and the last step's log-return reward recovered from two observations.

:class:`ObservationLayout`: the config fields every agent that selects observation columns
shares (``recent_bars``, ``window_size``, ``n_market_features``, ``n_account_features``), filled
from the env (online agents) or from the dataset's recorded env kwargs (offline agents).

``recent_bar_columns``: the columns an agent reads. Two choices matter on ``regime``
(measurements: docs/results.md):

- the account features (current position ...) let behaviour cloning copy the expert's
  previous action instead of reading the market (the copycat problem of imitation learning),
  so the offline agents leave them out by default;
- the newest bar's features (momentum, MACD, RSI ... already summarise the history) stand in
  for the whole window at a fraction of the input width.

``realised_log_return``:

Stateful return-conditioned policies (Decision Transformers) decrement their return-to-go by
the realised reward, but the Agent API (SB3's ``predict(obs, state, episode_start,
deterministic)``) hands them no reward. The default ``TradingEnv`` reward is the log growth
``log(equity_t+1 / equity_t)`` and the observation's account features (the last five columns,
``quantgym.envs.config.ACCOUNT_FEATURES``) determine it:

======================================  =================================================
case (step t -> t+1)                     log growth
======================================  =================================================
target unchanged, position held          ``log((1 + upnl_t+1) / (1 + upnl_t))`` (exact)
target changed to a non-zero position    ``log(1 + upnl_t+1)``: the entry equity is the
                                         equity at t (exact)
target unchanged and flat                0 (cash earns nothing; exact)
target changed to flat                   ``log((1 + dd_t+1) / (1 + dd_t))`` (exact unless
                                         the close set a new equity peak: then a lower bound)
======================================  =================================================

``upnl`` is ``unrealized_pnl`` and ``dd`` is ``drawdown``. With another reward function
(``"differential_sharpe"`` ...) this is the log growth, not the env's reward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from quantgym import ENV_ID
from quantgym.checks import check_optional_positive_int
from quantgym.envs.config import ACCOUNT_FEATURES

__all__ = [
    "ObservationLayout",
    "ColumnSelection",
    "LAYOUT_FIELDS",
    "dataset_layout",
    "episode_start_mask",
    "N_ACCOUNT_FEATURES",
    "POSITION",
    "UNREALIZED_PNL",
    "DRAWDOWN",
    "recent_bar_columns",
    "account_feature_offsets",
    "realised_log_return",
]

N_ACCOUNT_FEATURES = len(ACCOUNT_FEATURES)  # the observation's last columns

# Offsets from the end of the observation (ACCOUNT_FEATURES order, see TradingEnv's docstring).
POSITION = -5
UNREALIZED_PNL = -3
DRAWDOWN = -2


#: The layout fields read from the env or dataset (``recent_bars`` is the agent's choice).
LAYOUT_FIELDS = ("window_size", "n_market_features", "n_account_features")


@dataclasses.dataclass
class ObservationLayout:
    """Config fields on where the parts of the flat observation sit; a base of agent configs.

    - ``recent_bars``: the agent reads the newest ``recent_bars`` rows of the market window
      (``None``: the whole window); each agent config sets its own default;
    - ``window_size``: bars in the env's observation window;
    - ``n_market_features``: market features per bar;
    - ``n_account_features``: account features after the window (position, unrealised PnL ...).

    The last three default to ``None`` and are filled when the agent first sees its env
    (:meth:`fill_layout`) or dataset (:func:`dataset_layout`); they are saved with the
    config, so a loaded agent needs neither.
    """

    recent_bars: int | None = 1
    window_size: int | None = None
    n_market_features: int | None = None
    n_account_features: int | None = None

    def validate_layout(self) -> None:
        """``ValueError`` unless every layout field is a positive integer or ``None``."""
        for name in ("recent_bars", *LAYOUT_FIELDS):
            check_optional_positive_int(name, getattr(self, name))

    def fill_layout(self, read: Callable[[str], Any], source: str = "the env") -> None:
        """Set the unset fields of :data:`LAYOUT_FIELDS` to ``read(name)`` (e.g. an env
        attribute reader); a ``ValueError`` names the first one ``source`` does not expose."""
        for name in LAYOUT_FIELDS:
            if getattr(self, name) is None:
                value = read(name)
                if value is None:
                    raise ValueError(f"{name} is not set and {source} does not expose it")
                setattr(self, name, int(value))

    def reads_whole_observation(self, account: bool | Sequence[str]) -> bool:
        """Whether an agent with these fields and ``account`` (its ``account_features``) reads
        every column (the whole window and every account feature): then it needs no window
        layout, and :meth:`observation_columns` is ``None``."""
        return self.recent_bars is None and account is True

    def observation_columns(
        self, observation_dim: int, account: bool | Sequence[str]
    ) -> np.ndarray | None:
        """Columns of a ``observation_dim`` observation an agent reads: the newest
        ``recent_bars`` rows (+ the account features: all of them when ``account`` is
        ``True``, the named ones when it is a list of names of ``ACCOUNT_FEATURES``); ``None``
        for all of them (whole window and every account feature)."""
        if self.reads_whole_observation(account):
            return None
        if self.window_size is None:
            raise ValueError("window_size must be set to select observation columns")
        return recent_bar_columns(int(observation_dim), self.window_size, self.recent_bars, account)


class ColumnSelection:
    """Agent mixin: the observation columns its network reads, from ``config.observation_dim``
    (set by ``fit``), the config's :class:`ObservationLayout` and ``config.account_features``."""

    name: ClassVar[str]
    config: Any

    @property
    def columns(self) -> np.ndarray | None:
        """Observation columns the network reads (``None``: all of them)."""
        c = self.config
        if c.observation_dim is None:
            raise ValueError(f"{self.name} has no model yet: call fit(dataset) or load(path)")
        return c.observation_columns(c.observation_dim, c.account_features)

    @property
    def input_dim(self) -> int:
        """Width of the network input."""
        columns = self.columns
        return int(self.config.observation_dim) if columns is None else int(columns.size)

    def _select(self, observations: np.ndarray) -> np.ndarray:
        """The columns the network reads of ``(..., obs_dim)`` observations (contiguous)."""
        columns = self.columns
        return observations if columns is None else np.ascontiguousarray(observations[..., columns])


def dataset_layout(dataset: Any) -> dict[str, int | None]:
    """:data:`LAYOUT_FIELDS` of a :class:`~quantgym.datasets.trajectory.TrajectoryDataset`'s
    flat observations: ``window_size`` from the env kwargs its metadata records, the feature
    counts from the observation width (``None`` where the metadata does not say, and for logs
    of another env than ``TradingEnv-v0``, such as ``PortfolioEnv-v0``, whose observations are
    not a window plus account features)."""
    window = (dataset.metadata.get("env_kwargs") or {}).get("window_size")
    env_id = dataset.metadata.get("env_id")
    if window is None or (env_id is not None and env_id != ENV_ID):
        return dict.fromkeys(LAYOUT_FIELDS)
    window = int(window)
    market_dim = int(np.prod(dataset.observation_shape)) - N_ACCOUNT_FEATURES
    n_market = market_dim // window if market_dim > 0 and market_dim % window == 0 else None
    return {
        "window_size": window,
        "n_market_features": n_market,
        "n_account_features": N_ACCOUNT_FEATURES if n_market is not None else None,
    }


def account_feature_offsets(account: bool | Sequence[str]) -> list[int]:
    """Positions (0 = first account column) of the account features an agent reads:
    ``True``: all of them; ``False``: none; a list of names of
    :data:`quantgym.envs.config.ACCOUNT_FEATURES` (e.g. ``["position"]``): those, in the
    env's order. ``ValueError`` names an unknown or repeated name."""
    if isinstance(account, bool | np.bool_):
        return list(range(N_ACCOUNT_FEATURES)) if account else []
    if isinstance(account, str) or not isinstance(account, Sequence):
        raise ValueError(
            f"account_features must be True, False or a list of names from {ACCOUNT_FEATURES}, "
            f"got {account!r}"
        )
    unknown = [name for name in account if name not in ACCOUNT_FEATURES]
    if unknown:
        raise ValueError(f"unknown account_features {unknown}; choose from {ACCOUNT_FEATURES}")
    if len(set(account)) != len(account):
        raise ValueError(f"account_features names a feature twice: {list(account)}")
    return [i for i, name in enumerate(ACCOUNT_FEATURES) if name in account]


def recent_bar_columns(
    observation_dim: int,
    window_size: int,
    recent_bars: int | None,
    account: bool | Sequence[str] = True,
) -> np.ndarray:
    """Column indices of the newest ``recent_bars`` rows of the market window (oldest first),
    followed by the account features ``account`` selects (:func:`account_feature_offsets`);
    ``recent_bars=None`` keeps the whole window."""
    market_dim = observation_dim - N_ACCOUNT_FEATURES
    if window_size < 1 or market_dim < window_size or market_dim % window_size:
        raise ValueError(
            f"observation_dim={observation_dim} does not hold a window of window_size="
            f"{window_size} rows plus {N_ACCOUNT_FEATURES} account features"
        )
    n_features = market_dim // window_size
    bars = window_size if recent_bars is None else int(recent_bars)
    if not 1 <= bars <= window_size:
        raise ValueError(f"recent_bars must be in [1, window_size={window_size}], got {bars}")
    columns = np.arange(market_dim - bars * n_features, market_dim)
    offsets = account_feature_offsets(account)
    if offsets:
        columns = np.concatenate([columns, market_dim + np.asarray(offsets, dtype=np.int64)])
    return columns


def realised_log_return(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Log growth of the step from observations ``previous`` to ``current``.

    Args:
        previous: ``(N, obs_dim)`` observations at t (or ``(obs_dim,)``).
        current: observations at t+1, same shape.

    Returns:
        ``(N,)`` float64 log growth (a 0-d array for 1-D inputs).
    """
    prev = np.asarray(previous, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if prev.shape != cur.shape or prev.ndim not in (1, 2) or prev.shape[-1] < 5:
        raise ValueError(
            f"previous and current must both be (obs_dim,) or (N, obs_dim) with obs_dim >= 5, "
            f"got {prev.shape} and {cur.shape}"
        )
    traded = prev[..., POSITION] != cur[..., POSITION]
    holding = cur[..., POSITION] != 0.0
    upnl_prev, upnl = prev[..., UNREALIZED_PNL], cur[..., UNREALIZED_PNL]
    dd_prev, dd = prev[..., DRAWDOWN], cur[..., DRAWDOWN]
    floor = 1e-12  # a liquidated account (ratio 0) gives a large negative, not -inf
    held = np.log(np.maximum(1.0 + upnl, floor) / np.maximum(1.0 + upnl_prev, floor))
    entered = np.log(np.maximum(1.0 + upnl, floor))
    closed = np.log(np.maximum(1.0 + dd, floor) / np.maximum(1.0 + dd_prev, floor))
    return np.where(holding, np.where(traded, entered, held), np.where(traded, closed, 0.0))


def episode_start_mask(episode_start: np.ndarray | None, n: int) -> np.ndarray:
    """``predict``'s ``episode_start`` for ``n`` envs as a boolean array (all False when
    ``None``); a ``ValueError`` when it has another length."""
    starts = (
        np.zeros(n, np.bool_)
        if episode_start is None
        else np.asarray(episode_start, dtype=np.bool_).reshape(-1)
    )
    if starts.shape[0] != n:
        raise ValueError(f"episode_start has {starts.shape[0]} entries for {n} envs")
    return starts
