"""benchmarks/online_diagnosis.py: the switch-margin statistic and the variant-market options."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmark.scripts import load_script

diagnosis = load_script("online_diagnosis", "online_diagnosis_under_test")


def test_switch_margins_reads_the_gap_at_the_bars_where_the_action_changes():
    # two windows (columns); window 0 switches at bars 2 and 3, window 1 at bar 1
    actions = np.array([[0, 2], [0, 0], [2, 0], [1, 0]])
    gaps = np.array([[0.9, 0.8], [0.7, 0.05], [0.1, 0.6], [0.3, 0.5]])
    out = diagnosis.switch_margins(actions, gaps)
    assert out["median_at_switches"] == pytest.approx(0.1)  # gaps 0.05, 0.1, 0.3
    assert out["median_elsewhere"] == pytest.approx(0.7)  # 0.9, 0.8, 0.7, 0.6, 0.5
    assert out["switches_below_0.2"] == pytest.approx(2 / 3, abs=1e-3)  # rounded to 3 places


def test_switch_margins_without_a_switch():
    out = diagnosis.switch_margins(np.zeros((5, 2), dtype=int), np.full((5, 2), 0.4))
    assert out["median_at_switches"] is None and out["switches_below_0.2"] is None
    assert out["median_elsewhere"] == pytest.approx(0.4)


def test_market_params_and_env_kwargs_reach_diagnose(monkeypatch):
    """``--market-params`` and ``--env-kwargs`` are parsed as JSON and reach diagnose in its
    validated protocol suite."""
    seen = {}

    def fake(agent, kwargs, **options):
        seen.update(options, agent=agent, kwargs=kwargs)
        return {"ok": True}

    monkeypatch.setattr(diagnosis, "diagnose", fake)
    diagnosis.main(
        [
            "ppo_mlp",
            "--market",
            "synthetic:regime@weak",
            "--market-params",
            '{"drifts": [0.0012, -0.0012, 0.0]}',
            "--env-kwargs",
            '{"features": "returns"}',
            "--set",
            "gamma=0.99",
        ]
    )
    suite = seen["suite"]
    assert suite.markets == ["synthetic:regime@weak"]
    assert suite.market_params == {"synthetic:regime@weak": {"drifts": [0.0012, -0.0012, 0.0]}}
    assert suite.env_kwargs == {"features": "returns"}
    assert seen["kwargs"] == {"gamma": 0.99}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env-kwargs", "[1]"], "env_kwargs must be a mapping"),
        (["--env-kwargs", '{"market": "gbm"}'], "set by the harness's protocol"),
        (["--market-params", '{"drifts": [0.001, -0.001, 0.0]}'], "only variants"),
        (["--market", "synthetic:regime@weak"], "no market_params entry"),
        (["--market", "nowhere"], "nowhere"),
    ],
)
def test_bad_protocol_input_is_a_usage_error_naming_it(monkeypatch, capsys, args, message):
    monkeypatch.setattr(diagnosis, "diagnose", lambda *a, **k: pytest.fail("must not train"))
    with pytest.raises(SystemExit) as exit_info:
        diagnosis.main(["ppo_mlp", *args])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
