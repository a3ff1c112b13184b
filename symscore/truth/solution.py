"""The one interface of every truth: the law p_t of an SDE's state at a few times.

A :class:`Solution` answers ``density(x, t)``, ``score(x, t)`` and ``sample(n, t, seed)`` at each
of its times, whatever computed it: the closed form of a linear SDE from a Gaussian mixture
(:func:`symscore.truth.linear_mixture`, exact) or a Fokker-Planck solution on a grid
(:func:`symscore.truth.fokker_planck`, with its mass and an error estimate from grid refinement).
The reports (:func:`symscore.truth.score_error`, :func:`symscore.truth.target_bias`) use only this.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._errors import SymscoreError

__all__ = ["Solution", "check_times"]


def check_times(times, sde, name: str = "times") -> np.ndarray:
    """``times`` as an increasing 1-D float64 array in [0, sde.T], else an error naming ``name``."""
    array = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
        raise SymscoreError(f"{name}: expected a non-empty 1-D array of finite times, got {times!r}")
    if np.any(np.diff(array) <= 0) or array[0] < 0 or array[-1] > sde.T * (1 + 1e-12):
        raise SymscoreError(f"{name}: expected increasing times in [0, T = {sde.T:g}], got {array.tolist()}")
    return array


class Solution:
    """p_t at the times ``times`` (subclasses fill in the per-time methods).

    Attributes:
        sde: the SDE; ``m`` its dimension.
        times: (K,) the times at which the law is known.
        kind: ``"closed form"`` or ``"Fokker-Planck"``.
        mass: (K,) total probability at each time (1 for a closed form; for a grid, what stayed in
            the box).
        error_estimate: (K,) the p_t-weighted relative L2 error of ``score`` at each time, estimated
            (0 for a closed form; for a grid, against the solution on a coarser grid).
    """

    kind = "solution"

    def __init__(self, sde, times):
        self.sde, self.m = sde, sde.m
        self.times = check_times(times, sde)
        self.mass = np.ones(self.times.size)
        self.error_estimate = np.zeros(self.times.size)

    def time_index(self, t) -> int:
        """The index of ``t`` among ``times`` (an error naming ``t`` if it is not one of them)."""
        if isinstance(t, bool) or not isinstance(t, numbers.Real):
            raise SymscoreError(f"t: expected one of the solution's times {self.times.tolist()}, got {t!r}")
        k = int(np.argmin(np.abs(self.times - float(t))))
        if abs(self.times[k] - float(t)) > 1e-9 * max(1.0, abs(float(t))):
            raise SymscoreError(f"t: expected one of the solution's times {self.times.tolist()}, got {t!r}")
        return k

    def density(self, x, t) -> np.ndarray:
        """p_t(x), shape (n,), for x of shape (n, m)."""
        raise NotImplementedError

    def score(self, x, t) -> np.ndarray:
        """grad log p_t(x), shape (n, m), for x of shape (n, m)."""
        raise NotImplementedError

    def sample(self, n: int, t, seed: int = 0) -> np.ndarray:
        """n draws from p_t, shape (n, m)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sde={self.sde.name!r}, kind={self.kind!r}, times={self.times.tolist()})"
