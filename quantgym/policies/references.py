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

``market`` is a ``MarketData`` (its ``market_params["kind"]``) or a market name
(``"regime"``, ``"synthetic:gbm"``, ``"sample:googl"``, a CSV path ...).
"""

from __future__ import annotations

from typing import Any

__all__ = ["market_kind", "reference_policy_name", "expert_policy_name", "SYNTHETIC_KINDS"]

#: Synthetic market kinds (``quantgym.envs.synthetic``); everything else is real data.
SYNTHETIC_KINDS = ("regime", "gbm", "mean_reversion", "lagged", "crash")
#: The exact causal expert of the synthetic markets that have their own.
_MARKET_EXPERTS = {"lagged": "lag_expert", "crash": "crash_expert"}


def market_kind(market: Any) -> str:
    """One of ``SYNTHETIC_KINDS`` or ``"real"``."""
    if isinstance(market, str):
        name = market.removeprefix("synthetic:")
        return name if name in SYNTHETIC_KINDS else "real"
    kind = (getattr(market, "market_params", None) or {}).get("kind")
    return kind if kind in SYNTHETIC_KINDS else "real"


def reference_policy_name(market: Any) -> str:
    """Registered name of the 100-point reference on ``market``."""
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
    if kind == "regime" and getattr(market, "regime", True) is not None:
        return "regime_expert"
    if kind == "mean_reversion":
        return "bayes_filter_expert"
    return _MARKET_EXPERTS.get(kind, "hindsight_oracle")
