"""Actions to target weights: long-only, softmax with cash, long-short limits, bad actions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantgym.envs.portfolio.actions import (
    check_actions,
    long_only_weights,
    long_short_weights,
    make_action_space,
    softmax_weights,
)

ALL = np.ones(3, dtype=bool)


def test_long_only_keeps_raw_weights_and_scales_only_above_one():
    np.testing.assert_array_equal(
        long_only_weights(np.array([0.2, 0.0, 0.3]), ALL), [0.2, 0.0, 0.3]
    )
    np.testing.assert_allclose(long_only_weights(np.array([1.0, 1.0, 0.0]), ALL), [0.5, 0.5, 0.0])
    masked = long_only_weights(np.array([0.6, 0.6, 0.6]), np.array([True, False, True]))
    np.testing.assert_allclose(masked, [0.5, 0.0, 0.5])  # masked first, then scaled
    np.testing.assert_array_equal(
        long_only_weights(np.zeros(3), ALL), 0.0
    )  # all cash is expressible


def test_softmax_of_zero_logits_is_uniform_which_is_why_it_is_not_the_default():
    w = softmax_weights(np.zeros(4), ALL, 0.1)  # 3 assets + cash
    np.testing.assert_allclose(w, 0.25)
    w = softmax_weights(np.array([1.0, -1.0, -1.0, -1.0]), np.array([True, True, False]), 0.1)
    assert w[2] == 0.0 and w[0] > 0.999 and 1.0 - w.sum() > 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=3, max_size=3), st.floats(0.1, 3.0), st.floats(0.1, 3.0))
def test_long_short_respects_gross_and_net_limits_proportionally(raw, max_gross, max_net):
    max_net = min(max_net, max_gross)
    a = np.array(raw)
    w = long_short_weights(a, ALL, max_gross, max_net)
    assert np.abs(w).sum() <= max_gross * (1 + 1e-12) and abs(w.sum()) <= max_net * (1 + 1e-12)
    nonzero = np.abs(a) > 1e-300  # (a subnormal weight times the scale underflows to 0)
    if nonzero.any():  # one common scale factor: the direction is kept
        ratio = w[nonzero] / a[nonzero]
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
        assert 0.0 <= ratio[0] <= 1.0


def test_batched_mapping_equals_row_by_row():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (5, 3))
    mask = rng.random((5, 3)) < 0.7
    batch = long_short_weights(a, mask, 1.2, 0.5)
    for i in range(5):
        np.testing.assert_array_equal(batch[i], long_short_weights(a[i], mask[i], 1.2, 0.5))


def test_spaces_and_checks():
    assert make_action_space(3, "long_only", None).shape == (3,)
    assert make_action_space(3, "long_only", "softmax").shape == (4,)
    space = make_action_space(3, "long_short", None)
    assert float(space.low[0]) == -1.0
    np.testing.assert_array_equal(check_actions([0.5, -0.5, 0.0], space), [0.5, -0.5, 0.0])
    assert check_actions(np.zeros(6), space, batch=2).shape == (2, 3)  # flat batch accepted
    with pytest.raises(ValueError, match=r"must have shape \(3,\)"):
        check_actions([0.1, 0.2], space)
    with pytest.raises(ValueError, match="outside the space"):
        check_actions([0.1, 2.0, 0.0], space)
    with pytest.raises(ValueError, match="negative weight in long-only mode"):
        check_actions([0.1, -0.01, 0.0], make_action_space(3, "long_only", None))
