"""Verified, atomic agent folders: the SHA-256 manifest in ``agent.json`` and the folder swap.

Every :class:`~quantgym.policies.base.BaseAgent` folder lists the files it owns in
``agent.json`` under ``"files"`` (``{relative path: {"sha256", "bytes"}}``) together with the
library versions that wrote it. :func:`verify_manifest` checks every listed file (present, same
size, same SHA-256) *before* any weights are read, so a truncated, edited or swapped file gives a
``ValueError`` naming it. :func:`save_folder_atomically` writes a whole agent folder into a
temporary sibling directory and then swaps it in, so a crash mid-save leaves the previous
folder as it was. This module only uses the standard library (``import quantgym`` stays light).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from quantgym.files import file_sha256

__all__ = [
    "MANIFEST_KEY",
    "file_sha256",
    "build_manifest",
    "verify_manifest",
    "library_versions",
    "save_folder_atomically",
]

MANIFEST_KEY = "files"
_LIBRARIES = (
    "quantgym",
    "numpy",
    "torch",
    "gymnasium",
    "stable-baselines3",
    "sb3-contrib",
    "d3rlpy",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries an agent folder can depend on (absent ones skipped)."""
    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def build_manifest(folder: str | os.PathLike, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{relative posix path: {"sha256", "bytes"}}`` of every file under ``folder``
    (recursively, in sorted order) except the top-level names in ``exclude``."""
    folder = Path(folder)
    manifest: dict[str, Any] = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if rel in exclude:
            continue
        manifest[rel] = {"sha256": file_sha256(file), "bytes": file.stat().st_size}
    return manifest


def _safe_relative(folder: Path, rel: str) -> Path:
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise ValueError(f"{folder}: manifest entry {rel!r} is not a path inside the folder")
    return folder.joinpath(*parts)


def verify_manifest(folder: str | os.PathLike, manifest: Any) -> None:
    """Check every file listed in ``manifest`` (see :func:`build_manifest`) under ``folder``.

    Raises ``ValueError`` naming the first missing, truncated/extended or edited file.
    Files in ``folder`` that the manifest does not list are ignored (they are not read).
    """
    folder = Path(folder)
    if not isinstance(manifest, Mapping):
        raise ValueError(f"{folder}: the '{MANIFEST_KEY}' manifest must be a JSON object")
    for rel, entry in manifest.items():
        file = _safe_relative(folder, str(rel))
        if not isinstance(entry, Mapping) or "sha256" not in entry or "bytes" not in entry:
            raise ValueError(f"{file}: malformed manifest entry {entry!r}")
        if not file.is_file():
            raise ValueError(f"{file} is listed in {folder / 'agent.json'} but missing")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise ValueError(
                f"{file} has {size} bytes, the manifest says {entry['bytes']}: "
                "truncated, edited or from another save"
            )
        if file_sha256(file) != entry["sha256"]:
            raise ValueError(
                f"{file} does not match its SHA-256 in the manifest: edited or from another save"
            )


def save_folder_atomically(
    target: str | os.PathLike,
    write: Callable[[Path], None],
    *,
    owned: Callable[[Path], set[str]] | None = None,
) -> Path:
    """Call ``write(tmp_dir)`` on a temporary sibling of ``target``, then swap it in.

    Until the swap ``target`` is untouched, so an exception or a killed process mid-write
    leaves the previous folder intact (the temporary ``.<name>.*.tmp`` sibling is removed on
    an exception; a killed process can leave it behind, never a half-written ``target``).
    Entries of an existing ``target`` that the new save did not write and that
    ``owned(old_target)`` (the names the previous save owned) does not list, e.g. a run's
    ``checkpoints/`` folder, are moved into the new folder.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not target.exists():
        os.replace(tmp, target)
        return target
    previous_owned = owned(target) if owned is not None else set()
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    os.rmdir(old)
    os.replace(target, old)  # from here until the next line only `old` holds the previous save
    os.replace(tmp, target)
    for entry in old.iterdir():
        if entry.name not in previous_owned and not (target / entry.name).exists():
            os.replace(entry, target / entry.name)
    shutil.rmtree(old, ignore_errors=True)
    return target
