"""Compiled kernels: ``compile(sde)`` -> :class:`Kernel`, ``kernel.simulate(...)`` -> :class:`Paths`.

A kernel runs one Euler-Maruyama pass per path over the grid 0, dt, ..., times[-1] (dt =
times[-1] / n_steps) carrying X and the processes of MATH.md, and assembles the score target at
every record time: the cost is O(n_steps) per path whatever the number of record times.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._cache import atomic_write, load_or_write_module
from ._checks import number_at_least, positive_int
from ._codegen import generator_text, render_source, template_text
from ._errors import SimulationInputError, SymscoreError
from ._failures import COND_MAX, ON_FAILURE, FailureReport
from ._ir import build_ir
from ._sde import SDE
from ._version import __version__

__all__ = ["compile", "emit", "Kernel", "Paths"]


@dataclass(frozen=True)
class Paths:
    """Simulated paths at the record times.

    Attributes:
        t: (K,) record times.
        x: (n, K, m) states X_t.
        target: (n, K, m) score targets with E[target | X_t] = grad log p_t(X_t).
        failed: (n, K) bool, True where a record failed (non-finite X, Y or C, an ill-conditioned
            Malliavin matrix, a non-finite target); those records hold NaN. All False unless
            ``simulate(on_failure="keep")`` kept such paths.
    """

    t: np.ndarray
    x: np.ndarray
    target: np.ndarray
    failed: np.ndarray | None = None


def compile(sde: SDE, backend: str = "numba", dtype: str = "float64", device=None, *, compile: bool = False,
            _force_coupled: bool = False, _first_order_only: bool = False) -> "Kernel":
    """Generate, cache and load the score kernel of ``sde``.

    Args:
        sde: the :class:`~symscore.SDE`.
        backend: ``"numba"`` (CPU, parallel over paths) or ``"torch"`` (vectorised over paths, CPU or GPU).
        dtype: ``"float64"`` (default) or, for torch, ``"float32"`` (relative error of the target
            against float64 measured at median 3e-7, 99th percentile 2e-5; see the README).
        device: numba: None or ``"cpu"``; torch: None (CPU), ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        compile: torch only, wrap the generated step and weight functions in ``torch.compile``
            (needs a C++ compiler; tens of seconds the first time). Off by default.

    Both backends print the same intermediate representation. The generated module is written to
    the cache folder (:func:`symscore.cache_dir`) under a hash of the SDE; numba's compiled code is
    cached beside it, so a second process starts fast.
    """
    kernel_class = _kernel_class(sde, backend)
    options = kernel_class.check_options(dtype, device, compile)
    module, path, cached = load_backend_module(sde, backend, force_coupled=_force_coupled,
                                               first_order_only=_first_order_only)
    return kernel_class(sde, module, Path(path), cached, **options)


def _kernel_class(sde, backend: str) -> type:
    """Validate the (sde, backend) pair shared by compile and emit; the backend's kernel class."""
    if not isinstance(sde, SDE):
        raise SymscoreError(f"sde: expected a symscore.SDE, got {type(sde).__name__}")
    if backend not in KERNEL_CLASSES:
        raise SymscoreError(f"backend: expected one of {', '.join(map(repr, KERNEL_CLASSES))}, got {backend!r}")
    return KERNEL_CLASSES[backend]


def module_key(sde: SDE, backend: str, **switches) -> str:
    """Cache key of the generated module: backend, SDE name and a hash of everything that shapes the
    source (the SDE, the switches, the version, the templates and the code generator itself)."""
    key_text = "\n".join([sde.fingerprint(), backend, repr(sorted(switches.items())), __version__,
                          template_text(backend), generator_text()])
    return f"{backend}_{sde.slug}_{hashlib.sha256(key_text.encode()).hexdigest()[:20]}"


def generate_source(sde: SDE, backend: str, *, force_coupled: bool = False, first_order_only: bool = False) -> str:
    """The module source of ``sde`` for ``backend`` (deterministic: the same SDE gives the same bytes)."""
    key = module_key(sde, backend, force_coupled=force_coupled, first_order_only=first_order_only)
    ir = build_ir(sde.derive(), force_coupled=force_coupled, first_order_only=first_order_only)
    return render_source(sde, ir, backend, key)


def emit(sde: SDE, backend: str = "numba", path=None) -> str:
    """The standalone kernel module of ``sde`` as source text; written to ``path`` if given.

    The module imports only numpy + numba (``backend="numba"``) or torch (``"torch"``) and exposes
    ``simulate(x0, times, n_steps, seed=0, dW=None, ridge=0.0)`` -> ``(times, x, target)`` with the
    meaning of :meth:`Kernel.simulate`. Its docstring carries the SDE, the symscore version and the
    hash; the same SDE gives byte-identical source. An existing file at ``path`` is replaced
    atomically (never left half-written).
    """
    _kernel_class(sde, backend)
    source = generate_source(sde, backend)
    if path is not None:
        target = Path(path)
        if target.is_dir():
            raise SymscoreError(f"path: expected a file name, got the folder {str(target)!r}")
        atomic_write(target, source)
    return source


def load_backend_module(sde: SDE, backend: str, **switches):
    key = module_key(sde, backend, **switches)
    return load_or_write_module(key, lambda: generate_source(sde, backend, **switches))


class Kernel:
    """A compiled score kernel. Use :meth:`simulate`; ``source`` is the generated module."""

    backend = ""

    def __init__(self, sde: SDE, module, path: Path, was_cached: bool):
        self.sde, self.module, self.path, self.was_cached = sde, module, path, was_cached

    @classmethod
    def check_options(cls, dtype, device, use_compile) -> dict:
        raise NotImplementedError

    @property
    def source(self) -> str:
        """The generated module source."""
        return self.path.read_text().partition("\n")[2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sde={self.sde.name!r}, backend={self.backend!r}, path={str(self.path)!r})"

    def simulate(self, x0, times, n_steps, seed: int = 0, dW=None, *, ridge: float = 0.0,
                 on_failure: str = "raise", cond_max: float | None = None, chunk_size: int | None = None,
                 as_numpy: bool = False, on_singular: str | None = None) -> Paths:
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
            on_failure: what to do with paths whose X, Y or C become non-finite, whose Malliavin
                matrix is singular or ill-conditioned, or whose target is not finite:
                ``"raise"`` (default) raises an error saying how many paths failed, when, and what
                to change; ``"drop"`` returns the other paths with a warning giving the count;
                ``"keep"`` returns every path with a warning, NaN in the failed records and the
                mask in ``paths.failed``.
            cond_max: threshold on the condition estimate kappa = m sum_a C_aa (C^-1)_aa of the
                Malliavin matrix per component (between the 2-norm condition number of the
                Jacobi-scaled C and m^2 times it); default 1e12 (float64), 1e5 (float32).
            chunk_size: simulate this many paths at a time (default: all), so that the memory
                beyond the returned arrays is O(chunk_size). numba: the same seed gives the same
                paths whatever the chunk size (per-path streams). torch: the seeded stream depends
                on the chunk size (its generator runs through the chunks in turn); with dW given
                the result is independent of it.
            as_numpy: torch backend: return numpy arrays instead of tensors on the device.
            on_singular: deprecated, use ``on_failure`` (``"warn"`` means ``"keep"``).

        Returns:
            :class:`Paths` with t (K,), x (n, K, m), target (n, K, m) and failed (n, K).
        """
        m = self.sde.m
        times, record_steps, dt, n_steps = _check_times(times, n_steps, self.sde.T)
        x0 = self._check_x0(x0, m)
        n = x0.shape[0]
        if on_singular is not None:
            warnings.warn("simulate(on_singular=...) is deprecated: use on_failure='raise' | 'drop' | 'keep'",
                          DeprecationWarning, stacklevel=2)
            if on_singular not in ("raise", "warn"):
                raise SimulationInputError(f"on_singular: expected 'raise' or 'warn', got {on_singular!r}")
            on_failure = {"raise": "raise", "warn": "keep"}[on_singular]
        ridge = number_at_least(ridge, "ridge", 0.0, error=SimulationInputError)
        if on_failure not in ON_FAILURE:
            raise SimulationInputError(f"on_failure: expected one of {', '.join(map(repr, ON_FAILURE))}, "
                                       f"got {on_failure!r}")
        cond_max = number_at_least(COND_MAX[self.dtype_name] if cond_max is None else cond_max, "cond_max", 1.0,
                                   error=SimulationInputError)
        seed = positive_int(seed, "seed", low=0, error=SimulationInputError)
        chunk_size = n if chunk_size is None else positive_int(chunk_size, "chunk_size", error=SimulationInputError)
        if dW is not None:
            dW = self._check_dw(dW, (n, n_steps, self.sde.d))
        out = self._allocate(n, len(times), m, n_steps)
        streams = self._streams(seed, n, dW)
        for start in range(0, n, chunk_size):
            rows = slice(start, min(n, start + chunk_size))
            self._run(x0[rows], dt, n_steps, record_steps, None if dW is None else dW[rows], streams, rows,
                      ridge, cond_max, out)
        out_x, out_target, fail_step, fail_kind, illcond, target_finite = out
        report = FailureReport(times, record_steps, dt, self._host(fail_step), self._host(fail_kind),
                               self._host(illcond), ~self._host(target_finite), cond_max)
        return self._apply_failure_policy(report, on_failure, times, out_x, out_target, as_numpy)

    def _apply_failure_policy(self, report: FailureReport, on_failure: str, times, out_x, out_target, as_numpy):
        """raise, drop the failed paths, or keep them with NaN in their failed records (both with a warning)."""
        failed = report.failed
        if failed.any():
            if on_failure == "raise":
                report.raise_error()
            keep_rows = ~failed.any(axis=1)
            if on_failure == "drop":
                if not keep_rows.any():
                    report.raise_error()
                warnings.warn(f"dropped {int((~keep_rows).sum())} of {len(keep_rows)} paths: {report.message()}",
                              RuntimeWarning, stacklevel=3)
                index = self._index(np.flatnonzero(keep_rows))
                out_x, out_target = out_x[index], out_target[index]
                failed = np.zeros((int(keep_rows.sum()), failed.shape[1]), dtype=bool)
            else:
                warnings.warn(f"kept failed paths, their failed records are NaN (see paths.failed): "
                              f"{report.message()}", RuntimeWarning, stacklevel=3)
                mask = self._index(failed)
                out_x[mask] = np.nan
                out_target[mask] = np.nan
        return self._paths(times, out_x, out_target, failed, as_numpy)

    # -- backend hooks --------------------------------------------------------------------------
    dtype_name = "float64"

    def _allocate(self, n, K, m, n_steps):
        """(out_x, out_target, fail_step, fail_kind, illcond, target_finite) for n paths and K records."""
        raise NotImplementedError

    def _streams(self, seed, n, dW):
        """The source of increments shared by every chunk (ignored where dW is given)."""
        raise NotImplementedError

    def _run(self, x0, dt, n_steps, record_steps, dW, streams, rows, ridge, cond_max, out):
        """Simulate the paths ``rows`` (a slice) into the slices ``rows`` of ``out``."""
        raise NotImplementedError

    @staticmethod
    def _host(array) -> np.ndarray:
        return np.asarray(array)

    @staticmethod
    def _index(mask_or_rows):
        return mask_or_rows

    def _paths(self, times, out_x, out_target, failed, as_numpy):
        return Paths(t=times, x=out_x, target=out_target, failed=failed)


class NumbaKernel(Kernel):
    """Kernel of the numba backend: float64 on the CPU, parallel over paths (``prange``)."""

    backend = "numba"

    @classmethod
    def check_options(cls, dtype, device, use_compile) -> dict:
        if dtype != "float64":
            raise SymscoreError(f"dtype: the numba backend supports 'float64', got {dtype!r}")
        if device not in (None, "cpu"):
            raise SymscoreError(f"device: the numba backend runs on the CPU (device=None or 'cpu'), got {device!r}")
        if use_compile:
            raise SymscoreError("compile: torch.compile applies to backend='torch' only")
        return {}

    @staticmethod
    def _check_x0(x0, m):
        return _check_x0(x0, m)

    @staticmethod
    def _check_dw(dW, shape):
        return _check_dw(dW, shape)

    def _allocate(self, n, K, m, n_steps):
        return (np.empty((n, K, m)), np.empty((n, K, m)), np.full(n, n_steps + 1, dtype=np.int64),
                np.zeros(n, dtype=np.int64), np.zeros((n, K), dtype=np.bool_), np.zeros((n, K), dtype=np.bool_))

    def _streams(self, seed, n, dW):
        # one seed per path: the increments of path p do not depend on chunks or threads
        return np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32) if dW is None else None

    def _run(self, x0, dt, n_steps, record_steps, dW, streams, rows, ridge, cond_max, out):
        if dW is None:
            path_seeds, dW = streams[rows], np.zeros((0, 0, 0))
        else:
            path_seeds = np.zeros(x0.shape[0], dtype=np.uint32)
        out_x, out_target, fail_step, fail_kind, illcond, target_finite = out
        kernel = self.module.simulate_kernel
        kernel(x0, dt, n_steps, record_steps, dW, path_seeds, ridge, cond_max, out_x[rows], out_target[rows],
               fail_step[rows], fail_kind[rows], illcond[rows], False)
        target_finite[rows] = np.isfinite(out_target[rows]).all(axis=2)  # temporaries O(chunk)
        failed = np.flatnonzero(fail_step[rows] <= n_steps)
        if failed.size:
            # found at a record step: re-run those paths alone, testing every step, for the first
            # failing step and what failed there (same increments: per-path seeds or dW rows)
            K, m = out_x.shape[1:]
            step, kind = np.full(failed.size, n_steps + 1, dtype=np.int64), np.zeros(failed.size, dtype=np.int64)
            kernel(x0[failed], dt, n_steps, record_steps, dW if dW.shape[0] == 0 else dW[failed], path_seeds[failed],
                   ridge, cond_max, np.empty((failed.size, K, m)), np.empty((failed.size, K, m)), step, kind,
                   np.zeros((failed.size, K), dtype=np.bool_), True)
            fail_step[rows][failed], fail_kind[rows][failed] = step, kind


# -- input validation -----------------------------------------------------------------------
def _check_times(times, n_steps, horizon: float):
    n_steps = positive_int(n_steps, "n_steps", error=SimulationInputError)
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
    return times, record_steps, dt, n_steps


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


class TorchKernel(Kernel):
    """Kernel of the torch backend: vectorised over paths, a Python loop over steps; CPU or GPU."""

    backend = "torch"
    DTYPES = ("float64", "float32")

    def __init__(self, sde, module, path, was_cached, *, dtype, device, use_compile):
        super().__init__(sde, module, path, was_cached)
        import torch

        self.torch, self.dtype, self.device, self.dtype_name = torch, getattr(torch, dtype), device, dtype
        self.blocks = module.BLOCKS
        if use_compile:
            self.blocks = [(init, torch.compile(step), torch.compile(weight), lanes, noise)
                           for init, step, weight, lanes, noise in module.BLOCKS]

    @classmethod
    def check_options(cls, dtype, device, use_compile) -> dict:
        import torch

        if dtype not in cls.DTYPES:
            raise SymscoreError(f"dtype: the torch backend supports 'float64' or 'float32', got {dtype!r}")
        try:
            device = torch.device("cpu" if device is None else device)
        except (RuntimeError, TypeError) as exc:
            raise SymscoreError(f"device: expected 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SymscoreError(f"device: {device} was requested but torch.cuda.is_available() is False "
                                "(no GPU, or a CPU-only torch build)")
        if device.type not in ("cpu", "cuda"):
            raise SymscoreError(f"device: expected 'cpu' or 'cuda', got {device}")
        return {"dtype": dtype, "device": device, "use_compile": bool(use_compile)}

    def _check_x0(self, x0, m):
        torch = self.torch
        if isinstance(x0, torch.Tensor):
            if x0.ndim != 2 or x0.shape[1] != m or x0.shape[0] < 1:
                raise SimulationInputError(f"x0: expected shape (n, {m}) with n >= 1, got shape {tuple(x0.shape)}")
            if not bool(torch.isfinite(x0).all()):
                raise SimulationInputError("x0: expected finite values, found NaN or inf")
            return x0.to(self.device, self.dtype)
        return torch.as_tensor(_check_x0(x0, m), dtype=self.dtype, device=self.device)

    def _check_dw(self, dW, shape):
        torch = self.torch
        if isinstance(dW, torch.Tensor):
            if not dW.dtype.is_floating_point:
                raise SimulationInputError(f"dW: expected a floating-point tensor, got dtype {dW.dtype}")
            if tuple(dW.shape) != shape:
                raise SimulationInputError(f"dW: expected shape (n, n_steps, d) = {shape}, got {tuple(dW.shape)}")
            if not bool(torch.isfinite(dW).all()):
                raise SimulationInputError("dW: expected finite Brownian increments, found NaN or inf")
            return dW.to(self.device, self.dtype)
        return torch.as_tensor(_check_dw(dW, shape), dtype=self.dtype, device=self.device)

    def _allocate(self, n, K, m, n_steps):
        torch, device = self.torch, self.device
        out_x = torch.empty((n, K, m), dtype=self.dtype, device=device)
        return (out_x, torch.empty_like(out_x), torch.full((n,), n_steps + 1, dtype=torch.long, device=device),
                torch.zeros((n,), dtype=torch.long, device=device), torch.zeros((n, K), dtype=torch.bool, device=device),
                torch.zeros((n, K), dtype=torch.bool, device=device))

    def _streams(self, seed, n, dW):
        # one generator, drawn from chunk after chunk: the stream depends on the chunk size
        return self.torch.Generator(device=self.device).manual_seed(seed) if dW is None else None

    def _run(self, x0, dt, n_steps, record_steps, dW, streams, rows, ridge, cond_max, out):
        out_x, out_target, fail_step, fail_kind, illcond, target_finite = out
        with self.torch.no_grad():
            self.module.simulate_kernel(x0, dt, n_steps, record_steps.tolist(), dW, streams, ridge, cond_max,
                                        out_x[rows], out_target[rows], fail_step[rows], fail_kind[rows],
                                        illcond[rows], blocks=self.blocks)
            target_finite[rows] = self.torch.isfinite(out_target[rows]).all(dim=2)  # temporaries O(chunk)

    @staticmethod
    def _host(array) -> np.ndarray:
        return array.cpu().numpy() if hasattr(array, "cpu") else np.asarray(array)

    def _index(self, mask_or_rows):
        return self.torch.as_tensor(mask_or_rows, device=self.device)

    def _paths(self, times, out_x, out_target, failed, as_numpy):
        if as_numpy:
            return Paths(t=times, x=out_x.cpu().numpy(), target=out_target.cpu().numpy(), failed=failed)
        return Paths(t=self.torch.as_tensor(times, dtype=self.dtype, device=self.device), x=out_x, target=out_target,
                     failed=failed)


KERNEL_CLASSES = {"numba": NumbaKernel, "torch": TorchKernel}
