"""The env kwargs saved next to an agent (``env.json``), from which ``quantgym evaluate`` and
a resumed ``fit`` rebuild its env: only the entries that survive a JSON round trip."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["json_safe_kwargs"]


def json_safe_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``kwargs`` that survive a JSON round trip unchanged (tuples, which come
    back as lists, included); an in-memory ``data=DataFrame`` or a callable is dropped."""
    safe = {}
    for key, value in kwargs.items():
        try:
            if json.loads(json.dumps(value)) == value or isinstance(value, tuple):
                safe[key] = value
        except (TypeError, ValueError):
            continue
    return safe
