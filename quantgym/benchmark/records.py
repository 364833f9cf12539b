"""Records: one JSON line per cell in ``results.jsonl`` (schema 1).

A record holds the cell's full settings (``cell``), its identity (``cell_id``: the first 16 hex
digits of the SHA-256 of the canonical JSON of ``cell``), per-unit metrics, curve quantiles,
timings and provenance (git revision, library versions, machine, creation time). Records are
appended atomically: one ``write`` of a whole line, flushed and fsynced under an exclusive
file lock, so a crash or Ctrl-C leaves every complete line readable and at most one torn last
line, which :func:`read_records` skips.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from quantgym.files import jsonable
from quantgym.machine import machine_info

__all__ = [
    "SCHEMA",
    "RESULTS_FILE",
    "VOLATILE_KEYS",
    "cell_id",
    "canonical_json",
    "provenance",
    "git_revision",
    "library_versions",
    "json_clean",
    "append_record",
    "read_records",
    "completed_ids",
    "strip_volatile",
    "latest_by_cell",
]

SCHEMA = 1
RESULTS_FILE = "results.jsonl"
#: Record fields that differ between two runs of the same cell (everything else is equal).
VOLATILE_KEYS = ("timing", ("provenance", "created_at"))
_VERSIONED = (
    "quantgym",
    "numpy",
    "torch",
    "gymnasium",
    "stable_baselines3",
    "sb3_contrib",
    "d3rlpy",
)


def json_clean(obj: Any) -> Any:
    """Strict-JSON copy of a record (:func:`quantgym.files.jsonable`: NaN/inf -> ``None``)."""
    return jsonable(obj)


def canonical_json(obj: Any) -> str:
    """Sorted-key, compact, strict JSON of ``obj`` (after :func:`json_clean`)."""
    return json.dumps(json_clean(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def cell_id(cell: Mapping[str, Any]) -> str:
    """16 hex digits: SHA-256 of the canonical JSON of ``cell``."""
    return hashlib.sha256(canonical_json(cell).encode()).hexdigest()[:16]


@functools.cache
def git_revision() -> str:
    """``git rev-parse --short HEAD`` of the checkout holding quantgym (``"unknown"`` outside one),
    with ``+dirty`` when tracked files differ from it."""
    where = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("+dirty" if dirty else "")) if rev else "unknown"


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed versions of quantgym and the libraries that change results (``""`` if absent)."""
    out = {}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            out[name] = ""
    return out


def provenance() -> dict[str, Any]:
    """``{"git_rev", "versions", "machine", "created_at"}`` for a record made now. ``machine``
    names the host, the CPU model and numpy's SIMD paths (:func:`quantgym.machine.machine_info`):
    results are bit-identical on one machine and equal within floating tolerance across them."""
    machine = {"host": platform.node(), "system": platform.system(), **machine_info()}
    return {
        "git_rev": git_revision(),
        "versions": dict(library_versions()),
        "machine": machine,
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def append_record(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append ``record`` as one JSON line: a single ``write`` under an exclusive ``flock``,
    then flush and fsync. Safe across processes appending to the same file."""
    line = (canonical_json(record) + "\n").encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: O_APPEND single writes only
            pass
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete record of ``path`` in file order (``[]`` when it does not exist). A torn
    last line (a crash mid-write) is skipped; a malformed line elsewhere raises ``ValueError``
    naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_bytes().split(b"\n")
    records = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            if number == len(lines):  # no trailing newline: the last write was cut short
                continue
            raise ValueError(f"{path}:{number} is not a JSON record: {exc}") from None
        if not isinstance(record, dict) or "cell_id" not in record:
            raise ValueError(f"{path}:{number} is not a benchmark record (no cell_id)")
        records.append(record)
    return records


def completed_ids(records: Iterable[Mapping[str, Any]]) -> set[str]:
    """``cell_id`` of the records with status ``"ok"`` (what ``--resume`` skips)."""
    return {r["cell_id"] for r in records if r.get("status") == "ok"}


def strip_volatile(record: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``record`` without the fields that change between identical runs (timings and
    ``provenance.created_at``): two runs of one cell on one machine give equal copies."""
    out = json.loads(canonical_json(record))
    out.pop("timing", None)
    out.get("provenance", {}).pop("created_at", None)
    return out


def latest_by_cell(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per ``cell_id``: the last ``ok`` one, else the last one (file order kept)."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in records:
        key = record["cell_id"]
        if key not in chosen or record.get("status") == "ok" or chosen[key].get("status") != "ok":
            chosen[key] = dict(record)
    return list(chosen.values())
