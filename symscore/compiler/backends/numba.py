"""The numba backend: scalar ``math`` code inside a ``prange`` loop over paths, float64, CPU.

The generated module (``templates/numba_kernel.py.j2``) compiles with ``numba.njit(parallel=True,
cache=True)``; its compiled code is cached beside the module, so a second process starts fast.
Increments come from the counter-based Philox stream of :mod:`~symscore.compiler.runtime` (compiled
by numba inside the kernel), so the paths do not depend on threads or chunks.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sympy.printing.pycode import PythonCodePrinter

from ..._errors import SymscoreError
from ..kernel import Kernel
from ..printing import KernelPrinterMixin
from ..runtime import TimeGrid, check_dw, check_x0
from .registry import Backend, register_backend

__all__ = ["NumbaPrinter", "NumbaKernel"]


class NumbaPrinter(KernelPrinterMixin, PythonCodePrinter):
    """Scalar Python for ``numba.njit`` (runs inside a loop over paths)."""

    backend, function_module = "numba", "math"
    _default_settings = {**PythonCodePrinter._default_settings, "strict": True, "fully_qualified_modules": True}


def check_options(dtype, device, use_compile) -> dict:
    if dtype != "float64":
        raise SymscoreError(f"dtype: the numba backend supports 'float64', got {dtype!r}")
    if device not in (None, "cpu"):
        raise SymscoreError(f"device: the numba backend runs on the CPU (device=None or 'cpu'), got {device!r}")
    if use_compile:
        raise SymscoreError("compile: torch.compile applies to backend='torch' only")
    return {}


class NumbaKernel(Kernel):
    """Kernel of the numba backend: float64 on the CPU, parallel over paths (``prange``)."""

    backend = "numba"

    def _check_x0(self, x0, m):
        return check_x0(x0, m)

    def _check_dw(self, dW, shape):
        return check_dw(dW, shape)

    def _increments(self, n, n_steps, dt, seed, path_offset):
        path_index = np.arange(path_offset, path_offset + n, dtype=np.int64)
        return self.module.increments_kernel(np.uint64(seed), path_index, n_steps, self.sde.d, math.sqrt(dt))

    def _allocate(self, n, K, m, n_steps):
        return (np.empty((n, K, m)), np.empty((n, K, m)), np.full(n, n_steps + 1, dtype=np.int64),
                np.zeros(n, dtype=np.int64), np.zeros((n, K), dtype=np.bool_), np.zeros((n, K), dtype=np.bool_))

    def _run(self, x0, grid: TimeGrid, dW, seed, first_path, rows, ridge, cond_max, out):
        path_index = np.arange(first_path, first_path + x0.shape[0], dtype=np.int64)
        out_x, out_target, fail_step, fail_kind, illcond, target_finite = out
        # basic slices are views: the module writes into the rows of the outputs
        self.module.run_paths(x0, grid, dW, seed, path_index, ridge, cond_max, out_x[rows], out_target[rows],
                              fail_step[rows], fail_kind[rows], illcond[rows])
        target_finite[rows] = np.isfinite(out_target[rows]).all(axis=2)  # temporaries O(chunk)


BACKEND = register_backend(Backend(
    name="numba", description="CPU, float64, parallel over paths (numba prange)", template="numba_kernel.py.j2",
    printer=NumbaPrinter, kernel=lambda: NumbaKernel, check_options=check_options, source_file=Path(__file__),
))
