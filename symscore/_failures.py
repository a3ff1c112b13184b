"""What went wrong on which paths: the kernels' failure flags, read on the host.

A kernel reports, per path, the first step after which X, Y/Yi or C stopped being finite (and
which of them), and per path and record time whether the Malliavin matrix C_t + ridge I was
singular or ill-conditioned (its condition estimate reached ``cond_max``). The host adds the
records whose target is not finite although X, Y and C are sound (overflow of the second
variation). :class:`FailureReport` turns these flags into the (n, K) mask of failed records and
into one message that says how many paths, from when, and what to change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._errors import NonFiniteSimulationError, SingularMalliavinMatrixError
from ._ir import HEALTH_BITS

__all__ = ["FailureReport", "ON_FAILURE", "COND_MAX"]

#: What ``simulate(on_failure=...)`` accepts.
ON_FAILURE = ("raise", "drop", "keep")
#: Default thresholds on the condition estimate of C_t by dtype (1 / the old relative-pivot rule).
COND_MAX = {"float64": 1e12, "float32": 1e5}

_KINDS = tuple((bit, name) for name, bit in HEALTH_BITS.items())


@dataclass(frozen=True)
class FailureReport:
    """Failure flags of one simulation.

    Attributes:
        times: (K,) record times; record_steps: (K,) their step numbers; dt: the step.
        fail_step: (n,) first step after which X, Y/Yi or C was not finite (> n_steps: never).
        fail_kind: (n,) bits of what was not finite: 1 X, 2 Y or Yi, 4 C.
        illcond: (n, K) C_t + ridge I singular or with condition estimate >= cond_max.
        target_nonfinite: (n, K) target not finite (whatever the cause).
        cond_max: the threshold used.
    """

    times: np.ndarray
    record_steps: np.ndarray
    dt: float
    fail_step: np.ndarray
    fail_kind: np.ndarray
    illcond: np.ndarray
    target_nonfinite: np.ndarray
    cond_max: float

    @property
    def nonfinite(self) -> np.ndarray:
        """(n, K): records taken at or after the first non-finite step of the path."""
        return self.record_steps[None, :] >= self.fail_step[:, None]

    @property
    def failed(self) -> np.ndarray:
        """(n, K): records whose target must not be used."""
        return self.nonfinite | self.illcond | self.target_nonfinite

    def message(self) -> str:
        n = self.fail_step.shape[0]
        failed = self.failed
        parts = [f"{int(failed.any(axis=1).sum())} of {n} paths failed"]
        remedies = []
        nonfinite_paths = self.nonfinite.any(axis=1)
        if nonfinite_paths.any():
            first = int(self.fail_step[nonfinite_paths].min())
            which = ", ".join(f"{name} on {int((nonfinite_paths & (self.fail_kind & bit > 0)).sum())}"
                              for bit, name in _KINDS if (self.fail_kind[nonfinite_paths] & bit).any())
            parts.append(f"X, Y or C became non-finite on {int(nonfinite_paths.sum())} paths ({which}; Y includes "
                         f"its inverse Yi), first after step {first} (t = {first * self.dt:g})")
            remedies.append("increase n_steps (a smaller Euler step) or shorten the horizon: the drift explodes "
                            "at this step size")
        ill = self.illcond & ~self.nonfinite
        if ill.any():
            parts.append(f"the Malliavin matrix C_t (+ ridge I) is singular or ill-conditioned (condition estimate "
                         f">= {self.cond_max:g}) on {int(ill.any(axis=1).sum())} paths, first at "
                         f"t = {self._first_time(ill):g}")
            remedies.append("record only later times (a t_min: C_t -> 0 as t -> 0), check that the noise reaches "
                            "every coordinate, or pass ridge > 0 (a Tikhonov-regularised, biased target)")
        other = self.target_nonfinite & ~self.nonfinite & ~self.illcond
        if other.any():
            parts.append(f"the target is not finite although X, Y and C are on {int(other.any(axis=1).sum())} "
                         f"paths, first at t = {self._first_time(other):g} (overflow of the second variation)")
            remedies.append("increase n_steps or shorten the horizon")
        per_time = ", ".join(f"t={t:g}: {int(c)}" for t, c in zip(self.times, failed.sum(axis=0)) if c)
        return "; ".join(parts) + f". Failed paths by record time: {per_time}. To fix: " + "; ".join(remedies) + "."

    def _first_time(self, mask: np.ndarray) -> float:
        return float(self.times[np.flatnonzero(mask.any(axis=0))[0]])

    def raise_error(self):
        """Raise the error of the root cause: non-finite values first, then a singular C."""
        if self.nonfinite.any() or not self.illcond.any():
            raise NonFiniteSimulationError(self.message())
        raise SingularMalliavinMatrixError(self.message())
