"""Portfolio rendering: the ansi line and the stacked-area + equity image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from quantgym.envs.portfolio.render import PALETTE, render_portfolio_ansi, render_portfolio_rgb


def test_ansi_line_lists_the_largest_weights():
    line = render_portfolio_ansi(pd.Timestamp("2020-03-02"), 812, 10_523.1, 10_000.0, ("A", "B", "C"),
                                 np.array([0.3, -0.5, 0.0]), 1.2, 1.2)  # fmt: skip
    assert (
        line
        == "2020-03-02 | bar 812 | equity 10,523.10 (+5.23%) | cash 120% | B -50%, A +30% | costs 1.20"
    )


def test_image_stacks_long_weights_up_and_short_weights_down():
    weights = np.column_stack([np.full(10, 0.5), np.full(10, -0.5)])
    image = render_portfolio_rgb(weights, np.linspace(1, 2, 11), width=100, height=120)
    assert image.shape == (120, 100, 3) and image.dtype == np.uint8
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert tuple(PALETTE[0]) in colours and tuple(PALETTE[1]) in colours
    column = image[:, 50]
    rows_a = np.flatnonzero((column == PALETTE[0]).all(axis=1))
    rows_b = np.flatnonzero((column == PALETTE[1]).all(axis=1))
    assert rows_a.max() < rows_b.min()  # long above the zero line, short below it


def test_empty_and_bad_inputs():
    blank = render_portfolio_rgb(np.zeros((0, 3)), np.zeros(0), width=64, height=64)
    assert (blank == 255).all()
    with pytest.raises(ValueError, match="width and height"):
        render_portfolio_rgb(np.zeros((2, 2)), np.ones(3), width=8)
    with pytest.raises(ValueError, match=r"weights must be \(T, N\)"):
        render_portfolio_rgb(np.zeros(3), np.ones(3))
