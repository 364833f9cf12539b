"""Compatibility shims for third-party quirks.

d3rlpy depends on the legacy ``gym`` package, and Stable-Baselines3 imports it when present;
on import, ``gym`` prints an "unmaintained" notice to stderr that does not concern quantgym
users (everything here runs on gymnasium). ``quiet_legacy_gym()`` imports it once with that
notice swallowed; call it before importing SB3 or d3rlpy.
"""

from __future__ import annotations

import contextlib
import io
import sys

__all__ = ["quiet_legacy_gym"]


def quiet_legacy_gym() -> None:
    """Import legacy ``gym`` (if installed) without its stderr notice."""
    if "gym" in sys.modules:
        return
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            import gym  # noqa: F401
        except Exception:  # noqa: BLE001 - absent or broken legacy gym: nothing to silence
            pass
