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

from ._cache import atomic_write, load_or_write_module
from ._codegen import generator_text, render_source, template_text
from ._errors import NonFiniteSimulationError, SimulationInputError, SingularMalliavinMatrixError, SymscoreError
from ._ir import build_ir
from ._sde import SDE
from ._version import __version__

__all__ = ["compile", "emit", "Kernel", "Paths"]

#: Relative LDL^T pivot below which C_t counts as numerically singular (float64).
PIVOT_RTOL = 1e-12
#: The same for float32 kernels (about 100 float32 epsilons).
PIVOT_RTOL_FLOAT32 = 1e-5


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
    return f"{backend}_{sde.name}_{hashlib.sha256(key_text.encode()).hexdigest()[:20]}"


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
                 on_singular: str = "raise", as_numpy: bool = False) -> Paths:
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
            as_numpy: torch backend: return numpy arrays instead of tensors on the device.

        Returns:
            :class:`Paths` with t (K,), x (n, K, m) and target (n, K, m).
        """
        m = self.sde.m
        times, record_steps, dt = _check_times(times, n_steps, self.sde.T)
        x0 = self._check_x0(x0, m)
        n = x0.shape[0]
        if isinstance(ridge, bool) or not isinstance(ridge, numbers.Real) or not (0 <= ridge < np.inf):
            raise SimulationInputError(f"ridge: expected a finite number >= 0, got {ridge!r}")
        if on_singular not in ("raise", "warn"):
            raise SimulationInputError(f"on_singular: expected 'raise' or 'warn', got {on_singular!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise SimulationInputError(f"seed: expected an integer >= 0, got {seed!r}")
        if dW is not None:
            dW = self._check_dw(dW, (n, int(n_steps), self.sde.d))
        out_x, out_target, singular = self._run(x0, dt, int(n_steps), record_steps, dW, int(seed), float(ridge))
        finite_x, finite_target = self._finite_masks(out_x, out_target)
        _check_output(times, finite_x, finite_target, singular, on_singular)
        if singular.any():
            out_target[self._mask(singular)] = np.nan
        return self._paths(times, out_x, out_target, as_numpy)

    def _paths(self, times, out_x, out_target, as_numpy):
        return Paths(t=times, x=out_x, target=out_target)


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

    def _run(self, x0, dt, n_steps, record_steps, dW, seed, ridge):
        n, K, m = x0.shape[0], len(record_steps), self.sde.m
        if dW is None:
            path_seeds, dW = np.random.SeedSequence(seed).generate_state(n, dtype=np.uint32), np.zeros((0, 0, 0))
        else:
            path_seeds = np.zeros(n, dtype=np.uint32)
        out_x, out_target = np.empty((n, K, m)), np.empty((n, K, m))
        singular = np.zeros((n, K), dtype=np.bool_)
        self.module.simulate_kernel(x0, dt, n_steps, record_steps, dW, path_seeds, ridge, PIVOT_RTOL,
                                    out_x, out_target, singular)
        return out_x, out_target, singular

    @staticmethod
    def _finite_masks(out_x, out_target):
        return np.isfinite(out_x).all(axis=2), np.isfinite(out_target).all(axis=2)

    @staticmethod
    def _mask(singular):
        return singular


# -- input validation -----------------------------------------------------------------------
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


def _check_output(times, finite_x, finite_target, singular, on_singular: str) -> None:
    """Raise (or warn) on singular Malliavin matrices and non-finite values; masks are (n, K) numpy."""
    # an exploded path is the root cause of anything else that is non-finite: report it first
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
    finite_target = finite_target | singular
    if not finite_target.all():
        first = times[np.flatnonzero(~finite_target.all(axis=0))[0]]
        raise NonFiniteSimulationError(
            f"the score target became non-finite on {int((~finite_target).any(axis=1).sum())} path(s) at "
            f"t = {first} (overflow in the variation processes); increase n_steps or shorten the horizon"
        )


class TorchKernel(Kernel):
    """Kernel of the torch backend: vectorised over paths, a Python loop over steps; CPU or GPU."""

    backend = "torch"
    DTYPES = ("float64", "float32")

    def __init__(self, sde, module, path, was_cached, *, dtype, device, use_compile):
        super().__init__(sde, module, path, was_cached)
        import torch

        self.torch, self.dtype, self.device = torch, getattr(torch, dtype), device
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

    def _run(self, x0, dt, n_steps, record_steps, dW, seed, ridge):
        torch = self.torch
        n, K, m = x0.shape[0], len(record_steps), self.sde.m
        generator = torch.Generator(device=self.device).manual_seed(seed) if dW is None else None
        out_x = torch.empty((n, K, m), dtype=self.dtype, device=self.device)
        out_target = torch.empty_like(out_x)
        singular = torch.zeros((n, K), dtype=torch.bool, device=self.device)
        rtol = PIVOT_RTOL if self.dtype == torch.float64 else PIVOT_RTOL_FLOAT32
        with torch.no_grad():
            self.module.simulate_kernel(x0, dt, n_steps, record_steps.tolist(), dW, generator, ridge, rtol,
                                        out_x, out_target, singular, blocks=self.blocks)
        return out_x, out_target, singular.cpu().numpy()

    def _finite_masks(self, out_x, out_target):
        torch = self.torch
        return (torch.isfinite(out_x).all(dim=2).cpu().numpy(), torch.isfinite(out_target).all(dim=2).cpu().numpy())

    def _mask(self, singular):
        return self.torch.as_tensor(singular, device=self.device)

    def _paths(self, times, out_x, out_target, as_numpy):
        if as_numpy:
            return Paths(t=times, x=out_x.cpu().numpy(), target=out_target.cpu().numpy())
        return Paths(t=self.torch.as_tensor(times, dtype=self.dtype, device=self.device), x=out_x, target=out_target)


KERNEL_CLASSES = {"numba": NumbaKernel, "torch": TorchKernel}
