"""Which policy plays which role on which market, decided here once.

- the **reference** (normalized score 100): ``bayes_filter_expert`` on the synthetic markets
  with an edge (``regime``, ``mean_reversion``: the best causal policy is known),
  ``lag_expert`` on ``lagged`` and ``crash_expert`` on ``crash`` (their exact experts), and
  ``buy_and_hold`` on ``gbm`` (no edge: the filter stays flat and returns 0) and on real data;
- the **expert** that generates the ``medium``/``expert`` offline datasets: ``regime_expert``
  on ``regime`` (it sees the hidden regime), ``bayes_filter_expert`` on ``mean_reversion``
  (the OU expectation is exact), ``lag_expert`` / ``crash_expert`` on ``lagged`` / ``crash``,
  and the ``hindsight_oracle`` (following its plan after a
  deviation) on ``gbm`` and real data, where no causal expert exists.

``PortfolioEnv-v0`` markets (:func:`market_env` is ``"portfolio"``): the reference is
``kelly_filter_expert`` on the synthetic ``factor_regime`` market (the Bayes-filter Kelly
allocator, the best causal policy there) and ``ucrp`` on real panels (a policy that does not
beat the uniform constant rebalanced portfolio after costs has learned nothing); the dataset
expert is ``regime_seer`` (it sees the hidden regime) on ``factor_regime`` and the ``bcrp``
hindsight bound on real panels.

``market`` is a ``MarketData`` / ``PanelData`` (its ``market_params["kind"]``) or a market name
(``"regime"``, ``"synthetic:gbm"``, ``"synthetic:factor_regime"``, ``"sample:googl"``,
``"sample:nyse_o"``, a CSV path ...).
"""

from __future__ import annotations

from typing import Any

from quantgym import ENV_ID, PORTFOLIO_ENV_ID
from quantgym.envs.portfolio.samples import PORTFOLIO_SAMPLES

__all__ = [
    "market_base",
    "market_kind",
    "market_env",
    "env_id_for",
    "reference_policy_name",
    "expert_policy_name",
    "SYNTHETIC_KINDS",
    "PORTFOLIO_SYNTHETIC_KINDS",
    "PORTFOLIO_SAMPLE_MARKETS",
]

#: Synthetic market kinds of ``TradingEnv-v0`` (``quantgym.envs.synthetic``).
SYNTHETIC_KINDS = ("regime", "gbm", "mean_reversion", "lagged", "crash")
#: Synthetic market kinds of ``PortfolioEnv-v0`` (``quantgym.envs.portfolio.factor_market``).
PORTFOLIO_SYNTHETIC_KINDS = ("factor_regime",)
#: The bundled multi-asset samples, as market names.
PORTFOLIO_SAMPLE_MARKETS = tuple(f"sample:{name}" for name in PORTFOLIO_SAMPLES)
#: The exact causal expert of the synthetic markets that have their own.
_MARKET_EXPERTS = {"lagged": "lag_expert", "crash": "crash_expert"}
_ALL_SYNTHETIC = SYNTHETIC_KINDS + PORTFOLIO_SYNTHETIC_KINDS


def market_base(market: str) -> str:
    """The market a *variant* is drawn from: ``"synthetic:regime@hourly"`` ->
    ``"synthetic:regime"`` (a benchmark suite's named market with its own generator
    parameters, :class:`quantgym.benchmark.Suite`'s ``market_params``); other names unchanged."""
    base, sep, _ = market.partition("@")
    return base if sep and base.removeprefix("synthetic:") in _ALL_SYNTHETIC else market


def market_kind(market: Any) -> str:
    """One of ``SYNTHETIC_KINDS``, ``PORTFOLIO_SYNTHETIC_KINDS`` or ``"real"`` (a variant
    ``"synthetic:KIND@LABEL"`` is of its base's kind)."""
    if isinstance(market, str):
        name = market_base(market).removeprefix("synthetic:")
        return name if name in _ALL_SYNTHETIC else "real"
    kind = (getattr(market, "market_params", None) or {}).get("kind")
    return kind if kind in _ALL_SYNTHETIC else "real"


def market_env(market: Any) -> str:
    """``"portfolio"`` for a ``PortfolioEnv-v0`` market (the factor market, a bundled
    multi-asset sample, a ``PanelData``), else ``"trading"``."""
    if market_kind(market) in PORTFOLIO_SYNTHETIC_KINDS:
        return "portfolio"
    if isinstance(market, str):
        return "portfolio" if market in PORTFOLIO_SAMPLE_MARKETS else "trading"
    return "portfolio" if hasattr(market, "assets") and hasattr(market, "tradable") else "trading"


def env_id_for(market: Any) -> str:
    """The registered env id that trades ``market``."""
    return PORTFOLIO_ENV_ID if market_env(market) == "portfolio" else ENV_ID


def reference_policy_name(market: Any) -> str:
    """Registered name of the 100-point reference on ``market``."""
    if market_env(market) == "portfolio":
        return "kelly_filter_expert" if market_kind(market) == "factor_regime" else "ucrp"
    if market_kind(market) in _MARKET_EXPERTS:
        return _MARKET_EXPERTS[market_kind(market)]
    return (
        "bayes_filter_expert"
        if market_kind(market) in ("regime", "mean_reversion")
        else "buy_and_hold"
    )


def expert_policy_name(market: Any) -> str:
    """Registered name of the dataset expert on ``market`` (the oracle where no causal one exists)."""
    kind = market_kind(market)
    if market_env(market) == "portfolio":
        return "regime_seer" if kind == "factor_regime" else "bcrp"
    if kind == "regime" and getattr(market, "regime", True) is not None:
        return "regime_expert"
    if kind == "mean_reversion":
        return "bayes_filter_expert"
    return _MARKET_EXPERTS.get(kind, "hindsight_oracle")
