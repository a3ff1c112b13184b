"""Argument checks shared by every entry point (simulation, training, sampling): each names the
argument, and raises the caller's error class (a :class:`SymscoreError` subclass)."""
from __future__ import annotations

import math
import numbers

from ._errors import SymscoreError

__all__ = ["positive_int", "positive_float", "number_at_least"]


def positive_int(value, name: str, low: int = 1, *, error: type = SymscoreError) -> int:
    """``value`` as an int >= ``low`` (bools refused), else ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise error(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def number_at_least(value, name: str, low: float, *, strict: bool = False, error: type = SymscoreError) -> float:
    """``value`` as a finite float >= ``low`` (> ``low`` when ``strict``), else ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or \
            value < low or (value == low and strict):
        raise error(f"{name}: expected a finite number {'>' if strict else '>='} {low:g}, got {value!r}")
    return float(value)


def positive_float(value, name: str, allow_zero: bool = False, *, error: type = SymscoreError) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``), else ``error`` naming ``name``."""
    return number_at_least(value, name, 0.0, strict=not allow_zero, error=error)
