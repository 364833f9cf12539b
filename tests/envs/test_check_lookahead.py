"""check_lookahead: flags leaky user features, passes the built-in ones; the CLI verb."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from quantgym.cli import main
from quantgym.envs import check_lookahead
from quantgym.envs.features import PRICE_FEATURES
from tests.conftest import random_walk_frame

FRAME = random_walk_frame(700, seed=3)


def next_return(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"next_ret": np.log(f["close"]).diff().shift(-1)}, index=f.index)


def centred_mean(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"centred": f["close"] / f["close"].rolling(5, center=True).mean()},
                        index=f.index)  # fmt: skip


def start_labelled_weekly(f: pd.DataFrame) -> pd.DataFrame:
    """Weekly close labelled by the week's first day and broadcast back: sees the week's end."""
    weekly = f["close"].resample("W-MON", label="left", closed="left").last()
    return pd.DataFrame({"weekly": weekly.reindex(f.index, method="ffill")}, index=f.index)


def causal(f: pd.DataFrame) -> pd.DataFrame:
    ret = np.log(f["close"]).diff()
    return pd.DataFrame({"ret": ret, "vol10": ret.rolling(10).std()}, index=f.index)


def recursive(f: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"ema": f["close"] / f["close"].ewm(span=20).mean()}, index=f.index)


@pytest.mark.parametrize(
    ("fn", "name", "max_lag"),
    [(next_return, "next_ret", 1), (centred_mean, "centred", 2), (start_labelled_weekly, "weekly", 7)],
)  # fmt: skip
def test_leaky_callables_are_flagged_at_the_bar_they_leak(fn, name, max_lag):
    report = check_lookahead(FRAME, features=fn, n_cutoffs=8)
    assert not report.passed and set(report.leaks) == {name}
    bar, cutoff = report.leaks[name], report.leak_cutoffs[name]
    assert cutoff - max_lag <= bar <= cutoff
    assert name in report.summary() and "LEAK" in report.summary()


def test_causal_callable_passes():
    report = check_lookahead(FRAME, features=causal, n_cutoffs=8)
    assert report.passed and report.strict_passed
    assert report.leaks == {} and report.start_dependent == ()


def test_recursive_indicator_is_reported_as_start_dependent_not_as_a_leak():
    report = check_lookahead(FRAME, features=recursive, n_cutoffs=4)
    assert report.leaks == {} and report.start_dependent == ("ema",)
    assert report.passed and not report.strict_passed
    assert "START  ema" in report.summary()
    assert report.start_dependence["ema"] > 1e-6 and report.settle_bars["ema"] > 20


def test_every_built_in_feature_has_no_future_leak():
    report = check_lookahead(FRAME, n_cutoffs=8)
    assert set(report.feature_names) == set(PRICE_FEATURES)
    assert report.leaks == {} and report.passed
    # macd_hist's finite EMAs normalise over the lags available near the first bar, so its
    # first ~100 normalised values after the warm-up depend (slightly) on where data starts.
    assert set(report.start_dependent) <= {"macd_hist"}
    assert max(report.start_dependence.values()) < 0.05


def test_cli_check_features_exits_1_on_a_leak_and_0_when_clean(tmp_path, monkeypatch, capsys):
    csv = tmp_path / "prices.csv"
    FRAME.reset_index().to_csv(csv, index=False)
    module = types.ModuleType("user_features_h6")
    module.leaky, module.clean, module.ema = next_return, causal, recursive
    monkeypatch.setitem(sys.modules, "user_features_h6", module)
    assert main(["check-features", "user_features_h6:leaky", "--data", str(csv)]) == 1
    assert "LEAK   next_ret" in capsys.readouterr().out
    assert main(["check-features", "user_features_h6:clean", "--data", str(csv), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    assert main(["check-features", "nomodule", "--data", str(csv)]) == 2
    assert main(["check-features", "user_features_h6:ema", "--data", str(csv)]) == 0
    assert main(["check-features", "user_features_h6:ema", "--data", str(csv), "--strict"]) == 1
    assert "START  ema" in capsys.readouterr().out
    assert main(["check-features", "default", "--data", str(csv)]) == 0  # built-ins pass


@pytest.mark.parametrize(("kwargs", "match"), [({"n_cutoffs": 0}, "n_cutoffs"), ({"tol": -1.0}, "tol"),
                                               ({"starts": [10_000]}, "starts")])  # fmt: skip
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        check_lookahead(FRAME, features=causal, **kwargs)
