"""Execution: resume, failures recorded while the others finish, Ctrl-C, process pool, Ray."""

from __future__ import annotations

import json

import pytest

from quantgym.benchmark.execution import run_cells, run_suite
from quantgym.benchmark.listing import cells_for
from quantgym.benchmark.records import RESULTS_FILE, read_records, strip_volatile
from tests.benchmark.conftest import tiny_suite


class FailingAgent:
    """predict always raises."""

    def __init__(self, **kwargs) -> None:
        pass

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        raise RuntimeError("deliberate failure in predict")


def _by_id(records):
    return {r["cell_id"]: strip_volatile(r) for r in records}


def test_resume_recomputes_only_the_deleted_record(tmp_path) -> None:
    suite = tiny_suite(seeds=[0, 1])
    first = run_suite(suite, tmp_path, progress=False)
    assert first.n_run == 6 and first.n_resumed == 0
    path = tmp_path / RESULTS_FILE
    lines = path.read_text().splitlines()
    dropped = json.loads(lines[2])["cell_id"]
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")
    second = run_suite(suite, tmp_path, resume=True, progress=False)
    assert (second.n_run, second.n_resumed) == (1, 5)
    records = read_records(path)
    assert len(records) == 6 and records[-1]["cell_id"] == dropped
    assert [r["provenance"]["created_at"] for r in records[:5]] == [
        json.loads(line)["provenance"]["created_at"] for line in lines[:2] + lines[3:]
    ]
    assert _by_id(second.records) == _by_id(first.records)
    third = run_suite(suite, tmp_path, progress=False)  # no resume: everything again, old file kept
    assert third.n_run == 6 and (tmp_path / (RESULTS_FILE + ".bak")).is_file()


def test_failing_agent_is_recorded_while_the_others_complete(tmp_path) -> None:
    suite = tiny_suite(agents=["flat", "test_execution:FailingAgent", "buy_and_hold"])
    run = run_suite(suite, tmp_path, progress=False)
    status = {r["agent"]: r["status"] for r in run.records}
    assert status == {"flat": "ok", "test_execution:FailingAgent": "error", "buy_and_hold": "ok"}
    failed = next(r for r in run.records if r["status"] == "error")
    assert "deliberate failure in predict" in failed["error"]
    again = run_suite(suite, tmp_path, resume=True, progress=False)
    assert again.n_run == 1  # resume retries the error cell only


def test_interrupt_leaves_a_valid_file(tmp_path) -> None:
    cells, _ = cells_for(tiny_suite())
    path = tmp_path / RESULTS_FILE

    def stop(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cells(cells, path, progress=False, on_record=stop)
    records = read_records(path)
    assert len(records) == 1 and records[0]["cell_id"] == cells[0].cell_id


def test_process_pool_gives_the_serial_records(tmp_path) -> None:
    suite = tiny_suite(agents=["sma_crossover", "regime_expert"])
    serial = run_suite(suite, tmp_path / "serial", progress=False)
    pooled = run_suite(suite, tmp_path / "pool", workers=2, progress=False)
    assert _by_id(pooled.records) == _by_id(serial.records)


@pytest.mark.parametrize(
    "stress", [None, {"cost_levels_bp": [0, 30], "noise_scales": [], "adversarial_eps": []}]
)
def test_ray_backend_gives_the_local_records(tmp_path, stress) -> None:
    pytest.importorskip("ray")
    suite = tiny_suite(agents=["sma_crossover", "bayes_filter_expert"], stress=stress)
    local = run_suite(suite, tmp_path / "local", progress=False)
    remote = run_suite(suite, tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert len(remote.records) == 2
    assert _by_id(remote.records) == _by_id(local.records)
    if stress is not None:  # the stress cells ran on Ray too: 2 cost levels, 3 regime shifts
        assert all(len(r["stress"]["conditions"]) == 5 for r in remote.records)


def test_bad_backend_and_workers(tmp_path) -> None:
    cells, _ = cells_for(tiny_suite())
    with pytest.raises(ValueError, match="backend must be one of"):
        run_cells(cells, tmp_path / RESULTS_FILE, backend="dask")
    with pytest.raises(ValueError, match="workers must be"):
        run_cells(cells, tmp_path / RESULTS_FILE, workers=0)
    with pytest.raises(ValueError, match="ray_address needs"):
        run_cells(cells, tmp_path / RESULTS_FILE, ray_address="auto")
