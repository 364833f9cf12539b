"""Behaviour policies: rule baselines, privileged experts, the hindsight oracle and epsilon
mixtures. They sit below ``datasets`` (which records trajectories with them) and ``agents``
(which registers them by name), and import only from ``envs``.

Every agent here is *env-bound*: it is built with ``env=`` (a ``TradingEnv``, wrapped or not,
a ``TradingVectorEnv`` or its SB3 adapter) to learn the action mapping, the raw market and
the current bar(s) (``env.unwrapped.bar`` / ``vec_env.bars``). Per-bar signals are computed
once, vectorised, at construction, so ``predict`` is a table lookup plus a few numpy ops on
the batch. Each agent decides a *desired position* (fraction of equity) and maps it to the
nearest action of the env: the index of the closest entry of ``positions`` (discrete) or
``desired / max_leverage`` clipped to ``[-1, 1]`` (continuous).

=====================  ==================================================================
agent                  desired position at bar t
=====================  ==================================================================
``RandomAgent``        a uniformly random action (seeded)
``FlatAgent``          0
``BuyAndHoldAgent``    +1
``SMACrossoverAgent``  +1 if SMA_fast(close)_t > SMA_slow(close)_t, -1 if below
``MeanReversionAgent`` Bollinger: -1 above the upper band, +1 below the lower band,
                       flat once the close crosses back over the mean
``RegimeExpert``       sign of the next-bar drift implied by the *true* regime of bar t,
                       with a no-trade band (privileged: synthetic ``regime`` markets only)
``BayesFilterExpert``  sign of the Bayes-optimal forecast of the next-bar drift given the
                       closes up to t (HMM forward filter / OU expectation) with a band
``LagExpert``          sign of the exact forecast on the ``lagged`` market (a shock ``lag``
                       bars back reverses) beyond a band, flat otherwise
``CrashExpert``        Kelly over the position grid on the exact crash-regime filter of
                       the ``crash`` market, with a band
``HindsightOracle``    the best path in hindsight (exact dynamic programme over the
                       position grid with the env's exact costs); ``uses_future = True``
``EpsilonMix``         any policy, with probability epsilon a uniformly random action
=====================  ==================================================================

All agents except ``HindsightOracle`` are causal: the decision at bar t only reads bars
``<= t``. The banded experts read the current target position from the observation (account
feature 0, at index ``window_size * n_market_features``) so they are right even after an
exploration step moved the account off their own path.
"""

from quantgym.policies.base import AGENT_FILE, Agent, BaseAgent, import_object
from quantgym.policies.binding import EnvBinding, EnvBoundAgent
from quantgym.policies.experts import BayesFilterExpert, CrashExpert, LagExpert, RegimeExpert
from quantgym.policies.mix import EpsilonMix, describe_policy
from quantgym.policies.oracle import HindsightOracle, OraclePlan, hindsight_plan
from quantgym.policies.rules import (
    BuyAndHoldAgent,
    FlatAgent,
    MeanReversionAgent,
    RandomAgent,
    SMACrossoverAgent,
)

__all__ = [
    "AGENT_FILE",
    "Agent",
    "BaseAgent",
    "import_object",
    "EnvBinding",
    "EnvBoundAgent",
    "RandomAgent",
    "FlatAgent",
    "BuyAndHoldAgent",
    "SMACrossoverAgent",
    "MeanReversionAgent",
    "RegimeExpert",
    "BayesFilterExpert",
    "LagExpert",
    "CrashExpert",
    "HindsightOracle",
    "OraclePlan",
    "hindsight_plan",
    "EpsilonMix",
    "describe_policy",
]
