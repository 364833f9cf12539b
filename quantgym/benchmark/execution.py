"""Run cells and append their records: serially, in a local process pool, or as Ray tasks.

:func:`run_suite` expands a suite into cells, drops those already in ``results.jsonl`` with
status ``ok`` when ``resume`` is set, runs the rest on the chosen backend and appends each
record as soon as it arrives (:func:`~quantgym.benchmark.records.append_record`: one locked,
fsynced write per line, so Ctrl-C or a crash leaves a valid file and ``--resume`` continues).
A failing cell is an ``error`` record with its traceback; the others still run. A tqdm bar
over cells shows the ETA.

Backends: ``"local"`` (``workers=1``: in this process; ``workers > 1``: a spawn process pool,
one torch/BLAS thread per worker) and ``"ray"`` (``ray.init(address=...)``; without an address a
local instance with ``num_cpus=workers``), which gives the same records since every cell is
seeded by itself.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from quantgym.benchmark.listing import Cell, cells_for
from quantgym.benchmark.records import (
    RESULTS_FILE,
    append_record,
    completed_ids,
    latest_by_cell,
    read_records,
)
from quantgym.benchmark.stress import run_suite_cell
from quantgym.checks import check_choice, check_positive_int

__all__ = ["BACKENDS", "RunSummary", "run_cells", "run_suite"]

BACKENDS = ("local", "ray")
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclasses.dataclass
class RunSummary:
    """What :func:`run_suite` did: the results file, cells run / skipped by resume, the
    agent-market pairs left out (agent refuses the market) and every record now in the file."""

    path: Path
    n_run: int
    n_resumed: int
    not_applicable: list[dict[str, str]]
    records: list[dict[str, Any]]


def _init_worker() -> None:
    """Pool initializer: one BLAS/OpenMP thread per worker (set before torch is imported)."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def _local(cells: Sequence[Cell], workers: int, cache: str | None) -> Iterator[dict[str, Any]]:
    if workers == 1:
        for cell in cells:
            yield run_suite_cell(cell, cache)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: torch and forked BLAS thread pools do not mix.
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
    )
    try:
        futures = [pool.submit(run_suite_cell, cell.to_dict(), cache) for cell in cells]
        for future in as_completed(futures):
            yield future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _ray(
    cells: Sequence[Cell], workers: int, address: str | None, cache: str | None
) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise ValueError("backend 'ray' needs ray: pip install 'quantgym[distributed]'") from None
    started = False
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_suite_cell)
        pending = [task.remote(cell.to_dict(), cache) for cell in cells]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started:
            ray.shutdown()


def run_cells(
    cells: Sequence[Cell],
    path: str | os.PathLike,
    *,
    backend: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Run ``cells`` on ``backend`` and append each record to ``path`` as it arrives; returns
    how many were written. Ctrl-C stops cleanly: records written so far stay valid."""
    check_choice("backend", backend, BACKENDS)
    workers = check_positive_int("workers", workers)
    if ray_address is not None and backend != "ray":
        raise ValueError("ray_address needs backend='ray'")
    import tempfile

    from tqdm.auto import tqdm

    written = 0
    # Offline datasets shared by the cells of this run (a scratch folder, removed at the end).
    with tempfile.TemporaryDirectory(prefix="quantgym-bench-") as cache:
        stream = (
            _ray(cells, workers, ray_address, cache)
            if backend == "ray"
            else _local(cells, workers, cache)
        )
        with tqdm(total=len(cells), desc="cells", unit="cell", disable=not progress) as bar:
            for record in stream:
                append_record(path, record)
                written += 1
                bar.set_postfix_str(f"{record['agent']} {record['market']} seed {record['seed']}")
                bar.update()
                if on_record is not None:
                    on_record(record)
    return written


def run_suite(
    suite: Any,
    out: str | os.PathLike,
    *,
    backend: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> RunSummary:
    """Run every cell of ``suite`` into ``out/results.jsonl``. Without ``resume`` an existing
    results file is replaced (moved to ``results.jsonl.bak``); with it, cells already there
    with status ``ok`` are skipped."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    cells, skipped = cells_for(suite)
    done: set[str] = set()
    if resume:
        done = completed_ids(read_records(path))
    elif path.exists():
        os.replace(path, path.with_name(RESULTS_FILE + ".bak"))
    todo = [c for c in cells if c.cell_id not in done]
    n_run = run_cells(
        todo, path, backend=backend, workers=workers, ray_address=ray_address, progress=progress
    )
    wanted = {c.cell_id for c in cells}
    records = [r for r in latest_by_cell(read_records(path)) if r["cell_id"] in wanted]
    return RunSummary(path, n_run, len(cells) - len(todo), skipped, records)
