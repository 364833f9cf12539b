"""What the synthetic markets share: the forward filter, the regime chain, the bar builder."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from quantgym.envs.synthetic_base import (
    as_transition,
    build_frame,
    forward_filter,
    resolve_common_params,
    sample_markov_chain,
    stationary_distribution,
    transition_from_durations,
    windowed_forward_filter,
)

__all__: list[str] = []


def test_forward_filter_equals_brute_force_enumeration() -> None:
    """P(state_t | obs_<=t) by summing over every state path of a 2-state chain (6 bars)."""
    rng = np.random.default_rng(0)
    transition = np.array([[0.9, 0.1], [0.3, 0.7]])
    initial = np.array([0.6, 0.4])
    likelihood = rng.uniform(0.1, 2.0, (6, 2))
    posterior = forward_filter(np.log(likelihood), transition, initial)
    for t in range(6):
        weight = np.zeros(2)
        for path in itertools.product((0, 1), repeat=t + 1):
            p = initial[path[0]] * likelihood[0, path[0]]
            for s in range(1, t + 1):
                p *= transition[path[s - 1], path[s]] * likelihood[s, path[s]]
            weight[path[-1]] += p
        np.testing.assert_allclose(posterior[t], weight / weight.sum(), rtol=1e-12)


def test_forward_filter_propagates_the_prior_through_missing_rows() -> None:
    transition = np.array([[0.5, 0.5], [0.0, 1.0]])
    log_emission = np.array([[0.0, -50.0], [np.nan, np.nan]])
    posterior = forward_filter(log_emission, transition, np.array([0.5, 0.5]))
    np.testing.assert_allclose(posterior[1], posterior[0] @ transition, rtol=1e-12)


def test_windowed_forward_filter_is_the_filter_restarted_window_rows_back() -> None:
    rng = np.random.default_rng(3)
    transition = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    initial = stationary_distribution(transition)
    log_emission = np.log(rng.uniform(0.1, 2.0, (300, 3)))
    log_emission[40] = np.nan  # a missing row inside some windows
    full = forward_filter(log_emission, transition, initial)
    np.testing.assert_array_equal(
        windowed_forward_filter(log_emission, transition, initial, 300), full
    )
    windowed = windowed_forward_filter(log_emission, transition, initial, 12)
    np.testing.assert_array_equal(windowed[:12], full[:12])  # windows that reach row 0
    for t in (12, 13, 45, 299):  # the filter run on the window's 12 rows alone
        alone = forward_filter(log_emission[t - 11 : t + 1], transition, initial)[-1]
        np.testing.assert_allclose(windowed[t], alone, rtol=0, atol=1e-12)
    assert not np.allclose(windowed[12:], full[12:])  # it forgot something
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="window"):
            windowed_forward_filter(log_emission, transition, initial, bad)


@pytest.mark.parametrize("durations", [[400.0, 60.0], [10.0, 20.0, 30.0], [5.0]])
def test_transition_from_durations_gives_the_mean_durations(durations: list[float]) -> None:
    transition = transition_from_durations(np.asarray(durations))
    np.testing.assert_allclose(transition.sum(axis=1), 1.0, rtol=1e-12)
    if len(durations) > 1:
        np.testing.assert_allclose(1.0 / (1.0 - np.diag(transition)), durations, rtol=1e-12)
    path = sample_markov_chain(np.random.default_rng(1), 50_000, transition,
                               stationary_distribution(transition))  # fmt: skip
    share = np.bincount(path, minlength=len(durations)) / path.size
    np.testing.assert_allclose(share, np.asarray(durations) / sum(durations), atol=0.05)


def test_one_state_transition_needs_min_states_one() -> None:
    assert as_transition([[1.0]], 1, min_states=1).tolist() == [[1.0]]
    with pytest.raises(ValueError, match="K >= 2"):
        as_transition([[1.0]], None)


def test_build_frame_puts_jumps_in_the_gap_only() -> None:
    n = 400
    params = resolve_common_params(n, {})
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    returns = np.full(n, 0.001)
    jumps = np.zeros(n)
    jumps[[50, 200]] = -0.2
    vol = np.full(n, 0.01)
    eps = np.zeros(n)
    plain = build_frame(rng_a, params, returns, vol, eps)
    crashed = build_frame(rng_b, params, returns + jumps, vol, eps, jumps)
    gap = np.log(crashed["open"].to_numpy()[1:] / crashed["close"].to_numpy()[:-1])
    plain_gap = np.log(plain["open"].to_numpy()[1:] / plain["close"].to_numpy()[:-1])
    np.testing.assert_allclose(gap - plain_gap, jumps[1:], atol=1e-12)
    intraday = np.log(crashed["close"] / crashed["open"]).to_numpy()
    np.testing.assert_allclose(intraday, np.log(plain["close"] / plain["open"]), atol=1e-12)
    assert math.isclose(crashed["close"].iloc[-1] / plain["close"].iloc[-1], math.exp(-0.4))
