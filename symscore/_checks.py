"""Argument checks shared by the training and sampling stages: each names the argument."""
from __future__ import annotations

import math
import numbers

from ._errors import SymscoreError

__all__ = ["positive_int", "positive_float"]


def positive_int(value, name: str, low: int = 1) -> int:
    """``value`` as an int >= ``low`` (bools refused), else a SymscoreError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise SymscoreError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def positive_float(value, name: str, allow_zero: bool = False) -> float:
    """``value`` as a finite float > 0 (>= 0 with ``allow_zero``), else a SymscoreError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or \
            value < 0 or (value == 0 and not allow_zero):
        raise SymscoreError(f"{name}: expected a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)
