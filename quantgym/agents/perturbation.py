"""Input perturbation of agents: Gaussian noise on the observation, and a worst-case (FGSM /
PGD) perturbation within an epsilon ball for agents whose action scores are differentiable.

What is perturbed
    The **market features** of the flat observation only (``TradingEnv``: the
    ``window_size x n_market_features`` window; ``PortfolioEnv``: ``windows`` and
    ``cross_section``). The account features (``TradingEnv``: position, unrealised PnL,
    drawdown, time in position ...; ``PortfolioEnv``: current weights and the tradable mask)
    are the agent's own state, not market input: a corrupted or adversarial data feed cannot
    change what the account holds, and perturbing them would measure whether the agent trusts
    its own bookkeeping, a different question. They get scale 0 and never move.

In what units
    Per observation dimension, the standard deviation of that dimension over a sample of clean
    observations (:func:`observation_scale`). A noise scale or epsilon of ``0.1`` then means
    "a tenth of the feature's typical variation" for every feature alike, whatever its units
    (a return of ~1e-2, an RSI of ~1e1). A dimension that is constant over the sample gets
    scale 0. The sample comes from :func:`sample_observations`: a uniformly random policy from
    uniformly drawn start bars of the env it is given. Market features do not depend on the
    actions, so the policy does not matter for them; pass the env of the range the agent
    trained on, so that the scale is measured where the agent learned (not on the test range
    it is scored on).

Noise (:class:`NoisyObservationAgent`)
    ``observation + scale * obs_scale * N(0, 1)``, drawn from the wrapper's own seeded
    generator at each ``predict`` call.

Worst case (:class:`AdversarialObservationAgent`)
    For each ``predict`` call, a perturbation ``delta`` with ``|delta_i| <= epsilon *
    obs_scale_i`` (an L-infinity ball measured in the per-dimension scale) chosen by signed
    gradient steps with projection (FGSM: one step of the full radius; PGD: ``steps`` steps of
    ``2.5 * epsilon / steps`` radii, optionally from a uniform random start; Madry et al.
    2018), then the wrapped agent's ``predict`` once on ``observation + delta`` with the
    incoming ``state``: a recurrent agent's state is the one it would have had on the
    perturbed rollout, and only the current observation is perturbed (the gradient does not
    reach into the past). The objective, from the agent's clean action scores:

    - discrete actions (``"logits"``, or ``"q_values"`` read as the logits of a Boltzmann
      policy): raise the cross entropy against the clean greedy action ``a*``. The gradient
      is taken of ``sum_a q_a z_a - z_a*`` with ``q`` the softmax over the other actions: the
      cross entropy's gradient divided by the positive ``1 - p(a*)``, which leaves the signed
      steps unchanged and does not vanish when the softmax saturates;
    - continuous actions (``"mean"``): raise ``|mean(obs + delta) - mean(obs)|^2``. Its
      gradient is zero at ``delta = 0``, so a step from there follows the gradient of
      ``u . mean`` instead, ``u`` a seeded random unit vector per observation (for a 1-D
      action: up or down, equally damaging to first order).

    PGD returns, per observation, the iterate (after a step) with the largest margin
    ``max_{a != a*} z_a - z_a*`` (discrete; positive when the greedy action changed) or
    squared distance (continuous); FGSM returns its one step.

The hook
    An agent is differentiable (:func:`is_differentiable`) when it has
    ``action_scores(observation, state=None, episode_start=None) -> torch.Tensor``: scores
    ``(N, A)`` (``(N, action_dim)`` for a mean) of raw ``(N, D)`` float32 observations,
    differentiable with respect to them, computed with ``state`` as ``predict`` would use it
    (not advanced), and an ``action_scores_kind`` of ``"logits"``, ``"q_values"`` or
    ``"mean"``. The SB3 agents (``ppo_mlp``, ``ppo_lstm``, ``ppo_transformer``, ``ppo_eiie``,
    ``ppo_cross_attention``), the d3rlpy agents (``bc``, ``filtered_bc``, ``cql``,
    ``dt_d3rlpy``), ``dt`` and ``supervised`` implement it. Rule agents and experts read
    prices from the env, not the observation: perturbing the observation leaves them unchanged
    (their curve is the flat reference), and they have no hook.

Env-bound agents
    Rules, experts and the oracle (:class:`~quantgym.policies.binding.EnvBoundAgent`) and the
    portfolio baselines (:class:`~quantgym.policies.portfolio.binding.PortfolioAgent`) read
    prices and the account from their env and use the observation only to check that it is the
    env's current one (:func:`reads_observation` is False). The noise wrapper hands them the
    clean observation: a perturbed one could not change their action, only trip that check.

torch is imported only when an adversarial perturbation is computed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from quantgym.checks import check_choice, check_non_negative, check_positive_int
from quantgym.envs.unwrap import iter_env_layers
from quantgym.policies.binding import EnvBoundAgent
from quantgym.policies.portfolio.binding import PortfolioAgent

if TYPE_CHECKING:
    import torch

__all__ = [
    "ACTION_SCORE_KINDS",
    "ADVERSARIAL_TARGETS",
    "DifferentiableAgent",
    "is_differentiable",
    "reads_observation",
    "market_feature_mask",
    "sample_observations",
    "observation_scale",
    "NoisyObservationAgent",
    "AdversarialObservationAgent",
]

#: What ``action_scores`` returns: discrete logits, discrete Q-values, or a continuous mean.
ACTION_SCORE_KINDS = ("logits", "q_values", "mean")
#: PGD's step, in radii of the ball, over all its steps (Madry et al.'s 2.5 * epsilon / steps).
PGD_STEP_FACTOR = 2.5
#: What the worst-case perturbation aims at (:class:`AdversarialObservationAgent`'s ``target``).
ADVERSARIAL_TARGETS = ("untargeted", "worst_action")


@runtime_checkable
class DifferentiableAgent(Protocol):
    """An agent with the differentiable hook (module docstring, "The hook")."""

    action_scores_kind: str | None

    def action_scores(
        self, observation: torch.Tensor, state: Any = None, episode_start: Any = None
    ) -> torch.Tensor: ...


def is_differentiable(agent: Any) -> bool:
    """Whether ``agent`` has the differentiable hook and it applies to its action space."""
    return (
        callable(getattr(agent, "action_scores", None))
        and getattr(agent, "action_scores_kind", None) in ACTION_SCORE_KINDS
    )


def reads_observation(agent: Any) -> bool:
    """False for env-bound agents (module docstring, "Env-bound agents"), which act on their
    env's current bar whatever the observation says; True for every other agent."""
    return not isinstance(agent, EnvBoundAgent | PortfolioAgent)


# -- where the market features are, and their scale --------------------------------------
def _layout(env_or_layout: Any) -> Any:
    for obj in iter_env_layers(env_or_layout):
        candidate = getattr(obj, "layout", obj)
        if hasattr(candidate, "obs_dim") and (
            hasattr(candidate, "market_dim") or hasattr(candidate, "slices")
        ):
            return candidate
    raise ValueError(
        "env_or_layout must be a TradingEnv / PortfolioEnv (single, vector, wrapped or behind "
        f"the SB3 adapter) or its layout; got {type(env_or_layout).__name__}"
    )


def market_feature_mask(env_or_layout: Any) -> np.ndarray:
    """``(obs_dim,)`` bool: True on the observation's market features, False on the account
    features (``TradingEnv``: everything after the window; ``PortfolioEnv``: ``weights`` and
    ``mask``). Accepts an env (any wrapping) or its ``layout``."""
    layout = _layout(env_or_layout)
    mask = np.zeros(int(layout.obs_dim), dtype=bool)
    if hasattr(layout, "market_dim"):
        mask[: int(layout.market_dim)] = True
    else:
        for part in ("windows", "cross_section"):
            mask[layout.slices[part]] = True
    return mask


def sample_observations(env: Any, n: int, seed: int = 0, episode_steps: int = 64) -> np.ndarray:
    """``(n, obs_dim)`` float32 observations of a single env under a uniformly random policy.

    Episodes of at most ``episode_steps`` steps start at bars drawn uniformly from the env's
    tradable range (``options["start"]``), so the sample covers the whole range even when the
    env's episodes always start at its first bar. Seeded by ``seed`` (env, start bars and
    actions). Market features do not depend on the actions; the account features do, but
    :func:`observation_scale` gives them scale 0 anyway.
    """
    n = check_positive_int("n", n)
    episode_steps = check_positive_int("episode_steps", episode_steps)
    if hasattr(env, "num_envs"):
        raise ValueError("sample_observations needs a single env (gym.make), not a vector env")
    layout = _layout(env)
    source = getattr(layout, "market", None) or getattr(layout, "panel", None)
    first = getattr(layout, "first_bar", None)
    last = getattr(source, "last_bar", None)
    rng = np.random.default_rng(seed)
    env.action_space.seed(int(rng.integers(2**31)))
    out: list[np.ndarray] = []
    reset_seed: int | None = int(seed)
    while len(out) < n:
        options = (
            None if first is None or last is None else {"start": int(rng.integers(first, last))}
        )
        obs, _ = env.reset(seed=reset_seed, options=options)
        reset_seed = None  # seed the env's generator once; later episodes continue it
        out.append(np.asarray(obs, dtype=np.float32).reshape(-1))
        for _ in range(episode_steps - 1):
            if len(out) >= n:
                break
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            out.append(np.asarray(obs, dtype=np.float32).reshape(-1))
            if terminated or truncated:
                break
    return np.stack(out[:n])


def observation_scale(env_or_layout: Any, observations: np.ndarray) -> np.ndarray:
    """``(obs_dim,)`` float64 per-dimension scale of perturbations: the standard deviation of
    each market feature over ``observations`` (``(n, obs_dim)``, ``n >= 2``, finite; e.g. from
    :func:`sample_observations` on the train range); 0 on the account features
    (:func:`market_feature_mask`) and on dimensions constant over the sample."""
    mask = market_feature_mask(env_or_layout)
    obs = np.asarray(observations, dtype=np.float64)
    if obs.ndim != 2 or obs.shape[1] != mask.size or obs.shape[0] < 2:
        raise ValueError(
            f"observations must have shape (n, {mask.size}) with n >= 2, got {obs.shape}"
        )
    if not np.isfinite(obs).all():
        raise ValueError("observations must be finite (NaN/inf found)")
    constant = obs.max(axis=0) == obs.min(axis=0)
    std = obs.std(axis=0)
    return np.where(mask & ~constant, std, 0.0)


# -- wrappers -----------------------------------------------------------------------------
def _check_obs_scale(obs_scale: Any) -> np.ndarray:
    scale = np.asarray(obs_scale, dtype=np.float64)
    if scale.ndim != 1 or scale.size == 0:
        raise ValueError(f"obs_scale must be a non-empty 1-D array, got shape {scale.shape}")
    if not (np.isfinite(scale).all() and (scale >= 0).all()):
        raise ValueError("obs_scale must be finite and >= 0 in every dimension")
    return scale


class _ObservationWrapper:
    """An agent whose observations are changed before its ``predict``; every other attribute
    is the wrapped agent's."""

    def __init__(self, agent: Any, obs_scale: Any, seed: int) -> None:
        if agent is None or not callable(getattr(agent, "predict", None)):
            raise ValueError(f"agent must have a predict(...) method, got {agent!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.agent = agent
        self.obs_scale = _check_obs_scale(obs_scale)
        self.seed = int(seed)

    def __getattr__(self, name: str) -> Any:
        agent = self.__dict__.get("agent")
        if agent is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(agent, name)

    def _batch(self, observation: Any) -> tuple[np.ndarray, bool]:
        obs = np.asarray(observation, dtype=np.float32)
        d = self.obs_scale.size
        if obs.ndim not in (1, 2) or obs.shape[-1] != d:
            raise ValueError(
                f"observation must have shape ({d},) or (N, {d}) to match obs_scale, "
                f"got {obs.shape}"
            )
        return np.atleast_2d(obs), obs.ndim == 2

    def _delegate(
        self, perturbed: np.ndarray, batched: bool, state: Any, episode_start: Any, det: bool
    ) -> tuple[Any, Any]:
        return self.agent.predict(
            perturbed if batched else perturbed[0],
            state=state,
            episode_start=episode_start,
            deterministic=det,
        )


class NoisyObservationAgent(_ObservationWrapper):
    """``agent`` fed ``observation + scale * obs_scale * N(0, 1)`` (module docstring); an
    env-bound agent (:func:`reads_observation` False) is fed the clean observation.

    Args:
        agent: any agent (``predict(obs, state, episode_start, deterministic)``).
        scale: noise standard deviation in units of ``obs_scale`` (finite, ``>= 0``).
        obs_scale: ``(obs_dim,)`` per-dimension scale (:func:`observation_scale`); 0 leaves a
            dimension untouched.
        seed: seeds the wrapper's own ``numpy`` generator (one draw per observation entry
            per ``predict`` call).
    """

    def __init__(self, agent: Any, scale: float, obs_scale: Any, seed: int = 0) -> None:
        super().__init__(agent, obs_scale, seed)
        self.scale = check_non_negative("scale", scale)
        self._rng = np.random.default_rng(self.seed)
        #: False for an env-bound agent: it is fed the clean observation (module docstring).
        self.perturbs = reads_observation(agent)

    def noise(self, n: int) -> np.ndarray:
        """``(n, obs_dim)`` float32 noise for the next ``n`` observations (advances the
        generator)."""
        z = self._rng.standard_normal((n, self.obs_scale.size))
        return (z * (self.scale * self.obs_scale)).astype(np.float32)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """The wrapped agent's ``predict`` on the noisy observation(s) ``(D,)`` or ``(N, D)``."""
        obs, batched = self._batch(observation)
        if not self.perturbs:
            return self._delegate(obs, batched, state, episode_start, deterministic)
        noisy = obs + self.noise(obs.shape[0])
        return self._delegate(noisy, batched, state, episode_start, deterministic)


class AdversarialObservationAgent(_ObservationWrapper):
    """``agent`` fed its worst-case observation within the ``epsilon`` ball (module docstring).

    Args:
        agent: a differentiable agent (:func:`is_differentiable`); otherwise ``ValueError``.
        epsilon: radius in units of ``obs_scale`` (finite, ``>= 0``).
        obs_scale: ``(obs_dim,)`` per-dimension scale (:func:`observation_scale`); dimensions
            at 0 never move.
        steps: 1 is FGSM; more is PGD with steps of ``2.5 * epsilon / steps``.
        random_start: PGD (``steps > 1``) starts from a uniform point of the ball instead of
            the observation; FGSM ignores it.
        seed: seeds the random start and the continuous first-step direction.
        target: ``"untargeted"`` (default) moves the scores away from the clean greedy action;
            ``"worst_action"`` (discrete actions) steers them toward the action the agent
            itself scores lowest on the clean input (its least preferred: for a trading agent
            that is long, usually short), the targeted attack of Pattanaik et al. (2018).
            The first only asks the agent to change its mind, and changing to a neighbouring
            action (long to flat) can even help an agent that overtrades; the second asks
            for the action the agent believes worst, which is what a worst case of the
            *returns* needs. Continuous actions ignore it (distance from the clean mean).
    """

    def __init__(
        self,
        agent: Any,
        epsilon: float,
        obs_scale: Any,
        steps: int = 1,
        random_start: bool = False,
        seed: int = 0,
        target: str = "untargeted",
    ) -> None:
        super().__init__(agent, obs_scale, seed)
        self.target = check_choice("target", target, ADVERSARIAL_TARGETS)
        if not is_differentiable(agent):
            name = getattr(agent, "name", None) or type(agent).__name__
            raise ValueError(
                f"agent {name!r} is not differentiable: it has no action_scores hook for its "
                "action space (see quantgym.agents.perturbation)"
            )
        self.epsilon = check_non_negative("epsilon", epsilon)
        self.steps = check_positive_int("steps", steps)
        self.random_start = bool(random_start)
        self._generator: Any = None

    def _torch_generator(self) -> Any:
        import torch

        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return self._generator

    def perturbation(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None
    ) -> np.ndarray:
        """The perturbation ``delta`` (same shape as ``observation``, float32) the next
        ``predict`` call with these arguments adds (advances the seeded generator when it
        draws)."""
        obs, batched = self._batch(observation)
        delta = self._delta(obs, state, episode_start)
        return delta if batched else delta[0]

    def _delta(self, obs: np.ndarray, state: Any, episode_start: Any) -> np.ndarray:
        bound_np = (self.epsilon * self.obs_scale).astype(np.float32)
        if not bound_np.any():
            return np.zeros_like(obs)
        import torch

        agent, kind = self.agent, self.agent.action_scores_kind
        discrete = kind != "mean"
        x = torch.from_numpy(obs)
        bound = torch.from_numpy(bound_np)  # (D,)
        generator = self._torch_generator()

        def scores(delta: torch.Tensor) -> torch.Tensor:
            return agent.action_scores(x + delta, state, episode_start).flatten(1)  # (N, A)

        with torch.no_grad():
            clean = scores(torch.zeros_like(x))
        if discrete and clean.shape[1] < 2:
            return np.zeros_like(obs)  # one action: nothing to change
        toward = discrete and self.target == "worst_action"
        # Discrete: the action pushed away from (the clean greedy one) or pulled toward (the
        # clean least preferred one); continuous: the clean mean.
        if discrete:
            target = clean.argmin(dim=1) if toward else clean.argmax(dim=1)  # (N,)
        else:
            target = clean  # (N, A)
        sign = -1.0 if toward else 1.0
        rows = torch.arange(x.shape[0])

        def objective(out: torch.Tensor) -> torch.Tensor:  # (N,), larger = more adversarial
            if discrete:  # the margin of the best other action over the target (negated
                others = out.clone()  # toward: the target's margin over the best other)
                others[rows, target] = -math.inf
                return (sign * (others.max(dim=1).values - out[rows, target])).double()
            return ((out - target) ** 2).sum(dim=1).double()

        def ascent_weights(out: torch.Tensor) -> torch.Tensor:  # d(surrogate)/d(scores)
            if discrete:
                masked = out.detach().clone()
                masked[rows, target] = -math.inf
                weights = torch.softmax(masked, dim=1)
                weights[rows, target] = -1.0
                return sign * weights
            return 2.0 * (out.detach() - target)

        if self.random_start and self.steps > 1:
            delta = (torch.rand(x.shape, generator=generator) * 2.0 - 1.0) * bound
        else:
            delta = torch.zeros_like(x)
        step = bound if self.steps == 1 else bound * (PGD_STEP_FACTOR / self.steps)
        direction = None
        if not discrete and not delta.any():  # zero gradient at the clean point: project on u
            u = torch.randn(clean.shape, generator=generator, dtype=clean.dtype)
            direction = u / u.norm(dim=1, keepdim=True).clamp_min(1e-12)
        best = delta.clone()
        best_value = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
        for k in range(self.steps):
            d = delta.clone().requires_grad_(True)
            with torch.enable_grad():
                out = scores(d)
                weights = direction if k == 0 and direction is not None else ascent_weights(out)
                (grad,) = torch.autograd.grad(
                    out, d, grad_outputs=weights.to(out), allow_unused=True
                )
            if grad is None:  # the scores do not read the observation at all
                grad = torch.zeros_like(d)
            if k > 0:  # the iterate this gradient was taken at (after a step)
                value = objective(out.detach())
                better = value > best_value
                best[better], best_value[better] = d.detach()[better], value[better]
            delta = torch.maximum(torch.minimum(delta + step * grad.sign(), bound), -bound)
        if self.steps == 1:
            return delta.numpy()
        with torch.no_grad():
            value = objective(scores(delta))
        better = value > best_value
        best[better] = delta[better]
        return best.numpy()

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """The wrapped agent's ``predict`` on ``observation + delta`` (:meth:`perturbation`),
        with the incoming ``state`` and ``episode_start``."""
        obs, batched = self._batch(observation)
        perturbed = obs + self._delta(obs, state, episode_start)
        return self._delegate(perturbed, batched, state, episode_start, deterministic)
