"""Argument checks shared by every package: each raises a ``ValueError`` naming the argument.

One small function per rule (as gymnasium's ``env_checker``), so a message reads the same
wherever the rule applies. Data checks (OHLCV frames, panels) live with the data they check
(:mod:`quantgym.envs.validation`).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = [
    "check_positive_int",
    "check_optional_positive_int",
    "check_fraction",
    "check_positive",
    "check_non_negative",
    "check_choice",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """An integer ``>= minimum`` (``minimum=1``: a positive integer), returned as ``int``."""
    if not _is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_optional_positive_int(name: str, value: Any, *, minimum: int = 1) -> int | None:
    """``None``, or what :func:`check_positive_int` accepts."""
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what} or None, got {value!r}")
    return int(value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool | str | bytes):  # float("1.5") would accept a string
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def check_fraction(name: str, value: Any, *, upper: float = 1.0) -> float:
    """A finite number in ``[0, upper]``."""
    number = _number(name, value)
    if number < 0 or number > upper:
        raise ValueError(f"{name} must be in [0, {upper}], got {value}")
    return number


def check_positive(name: str, value: Any) -> float:
    """A finite number ``> 0``."""
    number = _number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def check_non_negative(name: str, value: Any) -> float:
    """A finite number ``>= 0``."""
    number = _number(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return number


def check_choice(name: str, value: Any, choices: Collection[Any]) -> Any:
    """One of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")
    return value
