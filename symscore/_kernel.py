"""Compiled kernels: ``compile(sde)`` -> :class:`Kernel`, ``kernel.simulate(...)`` -> :class:`Paths`.

A kernel runs one Euler-Maruyama pass per path over the grid 0, dt, ..., times[-1] (dt =
times[-1] / n_steps) carrying X and the processes of MATH.md, and assembles the score target at
every record time: the cost is O(n_steps) per path whatever the number of record times.
"""
from __future__ import annotations

import hashlib
import numbers
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._cache import load_or_write_module
from ._codegen import render_source
from ._errors import NonFiniteSimulationError, SimulationInputError, SingularMalliavinMatrixError, SymscoreError
from ._ir import build_ir
from ._sde import SDE
from ._version import __version__

__all__ = ["compile", "Kernel", "Paths"]

BACKENDS = ("numba",)
DTYPES = ("float64",)
#: Relative LDL^T pivot below which C_t counts as numerically singular (float64).
PIVOT_RTOL = 1e-12


@dataclass(frozen=True)
class Paths:
    """Simulated paths at the record times.

    Attributes:
        t: (K,) record times.
        x: (n, K, m) states X_t.
        target: (n, K, m) score targets with E[target | X_t] = grad log p_t(X_t).
    """

    t: np.ndarray
    x: np.ndarray
    target: np.ndarray


def compile(sde: SDE, backend: str = "numba", dtype: str = "float64", device=None, *,
            _force_coupled: bool = False, _first_order_only: bool = False) -> "Kernel":
    """Generate, cache and load the score kernel of ``sde``.

    Args:
        sde: the :class:`~symscore.SDE`.
        backend: ``"numba"`` (CPU, parallel over paths).
        dtype: ``"float64"``.
        device: must be None or ``"cpu"`` for the numba backend.

    The generated module is written to the cache folder (see :func:`symscore.cache_dir`) under a
    hash of the SDE; numba's compiled code is cached beside it, so a second process starts fast.
    """
    if not isinstance(sde, SDE):
        raise SymscoreError(f"sde: expected a symscore.SDE, got {type(sde).__name__}")
    if backend not in BACKENDS:
        raise SymscoreError(f"backend: expected one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    if dtype not in DTYPES:
        raise SymscoreError(f"dtype: the {backend} backend supports {', '.join(map(repr, DTYPES))}, got {dtype!r}")
    if device not in (None, "cpu"):
        raise SymscoreError(f"device: the numba backend runs on the CPU (device=None or 'cpu'), got {device!r}")
    switches = f"force_coupled={_force_coupled},first_order_only={_first_order_only}"
    key_text = "\n".join([sde.fingerprint(), backend, dtype, switches, __version__])
    key = f"{backend}_{sde.name}_{hashlib.sha256(key_text.encode()).hexdigest()[:20]}"
    def make_source() -> str:
        ir = build_ir(sde.derive(), force_coupled=_force_coupled, first_order_only=_first_order_only)
        return render_source(sde, ir, backend, key)

    module, path, cached = load_or_write_module(key, make_source)
    return Kernel(sde, module, Path(path), backend, cached)


class Kernel:
    """A compiled score kernel. Use :meth:`simulate`; ``source`` is the generated module."""

    def __init__(self, sde: SDE, module, path: Path, backend: str, was_cached: bool):
        self.sde, self.module, self.path, self.backend = sde, module, path, backend
        self.was_cached = was_cached

    @property
    def source(self) -> str:
        """The generated module source."""
        return self.path.read_text().partition("\n")[2]

    def __repr__(self) -> str:
        return f"Kernel(sde={self.sde.name!r}, backend={self.backend!r}, path={str(self.path)!r})"

    def simulate(self, x0, times, n_steps, seed: int = 0, dW=None, *, ridge: float = 0.0,
                 on_singular: str = "raise") -> Paths:
        """Simulate paths and their score targets.

        Args:
            x0: (n, m) initial points, one per path.
            times: increasing 1-D record times in (0, T]; the grid runs from 0 to times[-1] in
                n_steps equal steps and every record time must lie on it.
            n_steps: number of Euler steps (>= 1).
            seed: seed of the Brownian increments (ignored when dW is given).
            dW: optional (n, n_steps, d) Brownian increments (each N(0, dt)); makes the run
                fully deterministic.
            ridge: Tikhonov parameter lambda >= 0: C_t is replaced by C_t + lambda I. Zero (exact)
                by default; lambda > 0 biases the target by O(lambda / lambda_min(C_t)) but bounds
                its variance at small t.
            on_singular: ``"raise"`` (default) or ``"warn"`` (warn and return NaN targets) where
                the Malliavin matrix is numerically singular.

        Returns:
            :class:`Paths` with t (K,), x (n, K, m) and target (n, K, m).
        """
        m, d = self.sde.m, self.sde.d
        times, record_steps, dt = _check_times(times, n_steps, self.sde.T)
        x0 = _check_x0(x0, m)
        n = x0.shape[0]
        if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not (0 <= ridge < np.inf):
            raise SimulationInputError(f"ridge: expected a finite number >= 0, got {ridge!r}")
        if on_singular not in ("raise", "warn"):
            raise SimulationInputError(f"on_singular: expected 'raise' or 'warn', got {on_singular!r}")
        if dW is None:
            path_seeds = _path_seeds(seed, n)
            dW = np.zeros((0, 0, 0))
        else:
            dW = _check_dw(dW, (n, n_steps, d))
            path_seeds = np.zeros(n, dtype=np.uint32)
        K = len(times)
        out_x, out_target = np.empty((n, K, m)), np.empty((n, K, m))
        singular = np.zeros((n, K), dtype=np.bool_)
        self.module.simulate_kernel(x0, dt, n_steps, record_steps, dW, path_seeds, float(ridge), PIVOT_RTOL,
                                    out_x, out_target, singular)
        _check_output(times, out_x, out_target, singular, on_singular)
        return Paths(t=times, x=out_x, target=out_target)


# -- input validation -----------------------------------------------------------------------
def _path_seeds(seed, n: int) -> np.ndarray:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise SimulationInputError(f"seed: expected an integer >= 0, got {seed!r}")
    return np.random.SeedSequence(int(seed)).generate_state(n, dtype=np.uint32)


def _check_times(times, n_steps, horizon: float):
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
        raise SimulationInputError(f"n_steps: expected an integer >= 1, got {n_steps!r}")
    n_steps = int(n_steps)
    try:
        times = np.array(times, dtype=np.float64, ndmin=1)
    except (TypeError, ValueError) as exc:
        raise SimulationInputError(f"times: expected a 1-D array of numbers, got {times!r}") from exc
    if times.ndim != 1 or times.size == 0:
        raise SimulationInputError(f"times: expected a non-empty 1-D array, got shape {times.shape}")
    if not np.isfinite(times).all():
        raise SimulationInputError(f"times: expected finite values, got {times}")
    if np.any(np.diff(times) <= 0):
        raise SimulationInputError(f"times: expected strictly increasing record times, got {times}")
    if times[0] <= 0 or times[-1] > horizon * (1 + 1e-12):
        raise SimulationInputError(f"times: every record time must lie in (0, T] = (0, {horizon}], got {times}")
    dt = times[-1] / n_steps
    steps = times / dt
    record_steps = np.rint(steps).astype(np.int64)
    off = np.abs(steps - record_steps) > 1e-9 * np.maximum(1.0, steps)
    if off.any():
        bad = times[off][0]
        k = int(np.floor(bad / dt))
        raise SimulationInputError(
            f"times: record time {bad} is not on the grid of n_steps = {n_steps} steps of dt = {dt:g} "
            f"(nearest grid times {k * dt:g} and {(k + 1) * dt:g}); choose n_steps so that every "
            "time is a multiple of times[-1] / n_steps"
        )
    return times, record_steps, dt


def _check_x0(x0, m: int) -> np.ndarray:
    try:
        x0 = np.ascontiguousarray(x0, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SimulationInputError(f"x0: expected an (n, {m}) array of numbers, got {type(x0).__name__}") from exc
    if x0.ndim != 2 or x0.shape[1] != m or x0.shape[0] < 1:
        raise SimulationInputError(f"x0: expected shape (n, {m}) with n >= 1 (one initial point per path), "
                                   f"got shape {x0.shape}")
    if not np.isfinite(x0).all():
        rows = np.flatnonzero(~np.isfinite(x0).all(axis=1))
        raise SimulationInputError(f"x0: expected finite values, row(s) {rows[:5].tolist()} contain NaN or inf")
    return x0


def _check_dw(dW, shape) -> np.ndarray:
    array = np.asarray(dW)
    if array.dtype.kind != "f":
        raise SimulationInputError(f"dW: expected a floating-point array, got dtype {array.dtype}")
    if array.shape != shape:
        raise SimulationInputError(f"dW: expected shape (n, n_steps, d) = {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise SimulationInputError("dW: expected finite Brownian increments, found NaN or inf")
    return np.ascontiguousarray(array, dtype=np.float64)


def _check_output(times, out_x, out_target, singular, on_singular: str) -> None:
    # an exploded path is the root cause of anything else that is non-finite: report it first
    finite_x = np.isfinite(out_x).all(axis=2)
    if not finite_x.all():
        first = times[np.flatnonzero(~finite_x.all(axis=0))[0]]
        raise NonFiniteSimulationError(
            f"X_t became non-finite on {int((~finite_x).any(axis=1).sum())} path(s) by t = {first}: the Euler "
            "step is too large for this drift (explosion); increase n_steps"
        )
    if singular.any():
        bad_times = times[singular.any(axis=0)]
        message = (
            f"the Malliavin matrix C_t = int_0^t Y^-1 sigma sigma^T Y^-T dr is numerically singular on "
            f"{int(singular.any(axis=1).sum())} of {singular.shape[0]} paths at t = {bad_times.tolist()[:5]}: "
            "sigma(t) vanishes on [0, t], or d < m and the drift does not carry the noise to every "
            "coordinate. Pass ridge > 0 for a Tikhonov-regularised (biased) target."
        )
        if on_singular == "raise":
            raise SingularMalliavinMatrixError(message)
        warnings.warn(message + " Their targets are NaN.", RuntimeWarning, stacklevel=3)
        out_target[singular] = np.nan
    finite_target = np.isfinite(out_target).all(axis=2) | singular
    if not finite_target.all():
        first = times[np.flatnonzero(~finite_target.all(axis=0))[0]]
        raise NonFiniteSimulationError(
            f"the score target became non-finite on {int((~finite_target).any(axis=1).sum())} path(s) at "
            f"t = {first} (overflow in the variation processes); increase n_steps or shorten the horizon"
        )
