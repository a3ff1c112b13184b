"""The host side of a simulation: the time grid, the input checks and the failure report.

Everything a kernel needs around its loops, on the host, in numpy: used by :class:`~symscore.Kernel`
and rendered verbatim into every emitted module (with :mod:`symscore._errors` and
:mod:`symscore._checks`, whose text precedes it there), so a standalone module and the package
accept the same inputs, with one grid tolerance, and raise the same exception types with the
same messages. Hence this module imports nothing of symscore but those two, and only numpy.

The time grid (docs/math.md, "Discretisation"): ``n_steps`` equal Euler steps of
``dt = times[-1] / n_steps`` from 0; record time t_r is taken after step k_r = t_r / dt, which
must be an integer up to a relative ``GRID_RTOL``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import positive_int
from .._errors import NonFiniteSimulationError, SimulationInputError, SingularMalliavinMatrixError

__all__ = ["TimeGrid", "GRID_RTOL", "check_x0", "check_dw", "check_shape", "check_seed", "FailureReport",
           "ON_FAILURE", "COND_MAX", "HEALTH_BITS", "philox4x32", "philox_normals4", "philox_normal",
           "brownian_increments"]

#: Relative tolerance of "a record time lies on the grid": |t_r / dt - k_r| <= GRID_RTOL max(1, k_r).
GRID_RTOL = 1e-9
#: What ``simulate(on_failure=...)`` accepts.
ON_FAILURE = ("raise", "drop", "keep")
#: Default thresholds on the condition estimate of C_t by dtype.
COND_MAX = {"float64": 1e12, "float32": 1e5}
#: Bits of what a kernel reports as non-finite per path (a non-finite target is found on the host).
HEALTH_BITS = {"X": 1, "Y": 2, "C": 4}


@dataclass(frozen=True)
class TimeGrid:
    """Record times on a uniform grid: ``n_steps`` steps of ``dt`` from 0 to ``times[-1]``.

    Attributes:
        times: (K,) increasing record times in (0, horizon].
        n_steps: the number of Euler steps.
        dt: the step, ``times[-1] / n_steps``.
        record_steps: (K,) int64, record r is taken after step ``record_steps[r]`` (the last is n_steps).
    """

    times: np.ndarray
    n_steps: int
    dt: float
    record_steps: np.ndarray

    @classmethod
    def from_times(cls, times, n_steps, horizon: float, *, end: float | None = None) -> "TimeGrid":
        """Check ``times`` (in (0, horizon]) and ``n_steps`` and build the grid.

        The grid runs from 0 to ``end`` (default ``times[-1]``) in ``n_steps`` steps. Raises
        :class:`SimulationInputError` naming the argument: times not a non-empty increasing 1-D
        array of finite positive numbers, beyond the horizon, or off the grid.
        """
        n_steps = positive_int(n_steps, "n_steps", error=SimulationInputError)
        try:
            times = np.array(times, dtype=np.float64, ndmin=1)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise SimulationInputError(f"times: expected a 1-D array of numbers, got {times!r}") from exc
        if times.ndim != 1 or times.size == 0:
            raise SimulationInputError(f"times: expected a non-empty 1-D array, got shape {times.shape}")
        if not np.isfinite(times).all():
            raise SimulationInputError(f"times: expected finite values, got {times}")
        if np.any(np.diff(times) <= 0):
            raise SimulationInputError(f"times: expected strictly increasing record times, got {times}")
        if times[0] <= 0 or times[-1] > horizon * (1 + 1e-12):
            raise SimulationInputError(f"times: every record time must lie in (0, T] = (0, {horizon}], got {times}")
        dt = float(times[-1] if end is None else end) / n_steps
        steps = times / dt
        record_steps = np.rint(steps).astype(np.int64)
        off = np.abs(steps - record_steps) > GRID_RTOL * np.maximum(1.0, steps)
        if off.any():
            bad = times[off][0]
            k = int(np.floor(bad / dt))
            raise SimulationInputError(
                f"times: record time {bad} is not on the grid of n_steps = {n_steps} steps of dt = {dt:g} "
                f"(nearest grid times {k * dt:g} and {(k + 1) * dt:g}); choose n_steps so that every "
                "time is a multiple of times[-1] / n_steps"
            )
        return cls(times, n_steps, dt, record_steps)

    @property
    def n_records(self) -> int:
        return int(self.times.shape[0])


def check_shape(name: str, shape, expected: str, ok: bool):
    """Raise :class:`SimulationInputError` ``name: expected <expected>, got shape <shape>`` unless ``ok``."""
    if not ok:
        raise SimulationInputError(f"{name}: expected {expected}, got shape {tuple(shape)}")


def check_x0(x0, m: int) -> np.ndarray:
    """``x0`` as a C-contiguous float64 (n, m) array with n >= 1 and finite values, else an error."""
    try:
        x0 = np.ascontiguousarray(x0, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise SimulationInputError(f"x0: expected an (n, {m}) array of numbers, got {type(x0).__name__}") from exc
    check_shape("x0", x0.shape, f"shape (n, {m}) with n >= 1 (one initial point per path)",
                x0.ndim == 2 and x0.shape[1] == m and x0.shape[0] >= 1)
    if not np.isfinite(x0).all():
        rows = np.flatnonzero(~np.isfinite(x0).all(axis=1))
        raise SimulationInputError(f"x0: expected finite values, row(s) {rows[:5].tolist()} contain NaN or inf")
    return x0


def check_dw(dW, shape) -> np.ndarray:
    """``dW`` as a C-contiguous float64 array of ``shape`` = (n, n_steps, d), finite, else an error."""
    array = np.asarray(dW)
    if array.dtype.kind != "f":
        raise SimulationInputError(f"dW: expected a floating-point array, got dtype {array.dtype}")
    check_shape("dW", array.shape, f"shape (n, n_steps, d) = {tuple(shape)}", array.shape == tuple(shape))
    if not np.isfinite(array).all():
        raise SimulationInputError("dW: expected finite Brownian increments, found NaN or inf")
    return np.ascontiguousarray(array, dtype=np.float64)


# ---- counter-based increments ----------------------------------------------------------------
# The Brownian increment of path p (its global index), step k and noise column l under a seed is
# sqrt(dt) z[p, k, l], where one Philox4x32-10 call (Salmon et al. 2011, the generator of Random123,
# cuRAND and triton's tl.philox) gives the normals of four consecutive steps 4j .. 4j + 3:
#     (r0, r1, r2, r3) = Philox4x32-10(counter = (p mod 2^32, p div 2^32, j, l), key = (seed mod 2^32,
#                                      seed div 2^32)),
#     steps 4j, 4j + 1: rho cos(a), rho sin(a) with rho = sqrt(-2 ln((r0 + 1) 2^-32)), a = 2 pi r1 2^-32,
#     steps 4j + 2, 4j + 3: the same from (r2, r3)   (Box-Muller: both outputs are independent N(0, 1)).
# A value depends on (seed, p, k, l) alone: one backend draws the same increments, bit for bit, for
# any thread count, chunk size and number of processes; the Philox words are integers and agree
# everywhere, and the normals of different implementations (numpy here, numba, torch, triton) agree
# to rounding, since their log, cos and sin may differ in the last place.
# (r + 1) 2^-32 lies in (0, 1], so z is finite (|z| <= 6.7).
# The functions below take numpy uint64 arrays or scalars (numba compiles them for its kernels).
_PHILOX_M0, _PHILOX_M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_PHILOX_W0, _PHILOX_W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_LOW32, _SHIFT32 = np.uint64(0xFFFFFFFF), np.uint64(32)
_TWO_PI, _TWO_M32 = 6.283185307179586, 2.3283064365386963e-10  # 2 pi, 2^-32


def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of the counter (c0, c1, c2, c3) under the key (k0, k1): four 32-bit words, each
    held in a uint64 (inputs too)."""
    for _ in range(10):
        p0, p1 = c0 * _PHILOX_M0, c2 * _PHILOX_M1  # 32 x 32 -> 64-bit products: (hi, lo) words
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _LOW32, (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _LOW32
        k0, k1 = (k0 + _PHILOX_W0) & _LOW32, (k1 + _PHILOX_W1) & _LOW32
    return c0, c1, c2, c3


def philox_normals4(seed, path, group, column):
    """The standard normals of steps 4 group .. 4 group + 3 of (seed, path, column) (uint64 values)."""
    r0, r1, r2, r3 = philox4x32(path & _LOW32, path >> _SHIFT32, group, column, seed & _LOW32, seed >> _SHIFT32)
    rho01, angle01 = np.sqrt(-2.0 * np.log((r0 + 1.0) * _TWO_M32)), _TWO_PI * (r1 * _TWO_M32)
    rho23, angle23 = np.sqrt(-2.0 * np.log((r2 + 1.0) * _TWO_M32)), _TWO_PI * (r3 * _TWO_M32)
    return rho01 * np.cos(angle01), rho01 * np.sin(angle01), rho23 * np.cos(angle23), rho23 * np.sin(angle23)


def philox_normal(seed, path, step, column):
    """The standard normal of (seed, path, step, column) (uint64 arrays or scalars that broadcast)."""
    z = philox_normals4(seed, path, step >> np.uint64(2), column)
    phase = step & np.uint64(3)
    return np.where(phase == 0, z[0], np.where(phase == 1, z[1], np.where(phase == 2, z[2], z[3])))


def check_seed(seed) -> int:
    """``seed`` as an int in [0, 2^64) (the Philox key), else :class:`SimulationInputError`."""
    seed = positive_int(seed, "seed", low=0, error=SimulationInputError)
    if seed >= 2**64:
        raise SimulationInputError(f"seed: expected an integer in [0, 2^64), got {seed!r}")
    return seed


def brownian_increments(seed, n_paths, n_steps, d, dt, path_offset=0) -> np.ndarray:
    """The (n_paths, n_steps, d) increments every kernel draws for ``seed`` (paths ``path_offset`` on).

    ``kernel.simulate(x0, times, n_steps, seed)`` equals ``simulate(..., dW=brownian_increments(seed,
    n, n_steps, d, times[-1] / n_steps))`` to rounding, on every backend.
    """
    seed = np.uint64(check_seed(seed))
    paths = np.uint64(path_offset) + np.arange(n_paths, dtype=np.uint64)[:, None, None]
    steps = np.arange(n_steps, dtype=np.uint64)[None, :, None]
    columns = np.arange(d, dtype=np.uint64)[None, None, :]
    return philox_normal(seed, paths, steps, columns) * np.sqrt(dt)


_KINDS = tuple((bit, name) for name, bit in HEALTH_BITS.items())


@dataclass(frozen=True)
class FailureReport:
    """What went wrong on which paths, from the kernel's failure flags (read on the host).

    A kernel reports, per path, the first step after which X, Y/Yi or C stopped being finite (and
    which of them), and per path and record whether C_t + ridge I was singular or ill-conditioned
    (condition estimate >= ``cond_max``); the host adds the records whose target is not finite
    although X, Y and C are sound (overflow of the second variation).

    Attributes:
        grid: the :class:`TimeGrid`.
        fail_step: (n,) first step after which X, Y/Yi or C was not finite (> n_steps: never).
        fail_kind: (n,) bits of what was not finite: 1 X, 2 Y or Yi, 4 C.
        illcond: (n, K) C_t + ridge I singular or with condition estimate >= cond_max.
        target_nonfinite: (n, K) target not finite (whatever the cause).
        cond_max: the threshold used.
    """

    grid: TimeGrid
    fail_step: np.ndarray
    fail_kind: np.ndarray
    illcond: np.ndarray
    target_nonfinite: np.ndarray
    cond_max: float

    @property
    def nonfinite(self) -> np.ndarray:
        """(n, K): records taken at or after the first non-finite step of the path."""
        return self.grid.record_steps[None, :] >= self.fail_step[:, None]

    @property
    def failed(self) -> np.ndarray:
        """(n, K): records whose target must not be used."""
        return self.nonfinite | self.illcond | self.target_nonfinite

    def message(self) -> str:
        """How many paths failed, from when, and what to change."""
        n, times = self.fail_step.shape[0], self.grid.times
        failed = self.failed
        parts = [f"{int(failed.any(axis=1).sum())} of {n} paths failed"]
        remedies = []
        nonfinite_paths = self.nonfinite.any(axis=1)
        if nonfinite_paths.any():
            first = int(self.fail_step[nonfinite_paths].min())
            which = ", ".join(f"{name} on {int((nonfinite_paths & (self.fail_kind & bit > 0)).sum())}"
                              for bit, name in _KINDS if (self.fail_kind[nonfinite_paths] & bit).any())
            parts.append(f"X, Y or C became non-finite on {int(nonfinite_paths.sum())} paths ({which}; Y includes "
                         f"its inverse Yi), first after step {first} (t = {first * self.grid.dt:g})")
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
        per_time = ", ".join(f"t={t:g}: {int(c)}" for t, c in zip(times, failed.sum(axis=0)) if c)
        return "; ".join(parts) + f". Failed paths by record time: {per_time}. To fix: " + "; ".join(remedies) + "."

    def _first_time(self, mask: np.ndarray) -> float:
        return float(self.grid.times[np.flatnonzero(mask.any(axis=0))[0]])

    def raise_error(self):
        """Raise the error of the root cause: non-finite values first, then a singular C."""
        if self.nonfinite.any() or not self.illcond.any():
            raise NonFiniteSimulationError(self.message())
        raise SingularMalliavinMatrixError(self.message())

    def raise_if_failed(self):
        """Raise (see :meth:`raise_error`) when any record failed."""
        if self.failed.any():
            self.raise_error()
