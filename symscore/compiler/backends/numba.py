"""The numba backend: scalar ``math`` code inside a ``prange`` loop over paths, float64, CPU.

The generated module (``templates/numba_kernel.py.j2``) compiles with ``numba.njit(parallel=True,
cache=True)``; its compiled code is cached beside the module, so a second process starts fast.
Increments come from the counter-based Philox stream of :mod:`~symscore.compiler.runtime` (compiled
by numba inside the kernel, :mod:`~symscore.compiler.philox_numba`), so the paths do not depend on
threads or chunks; the host side is :mod:`~symscore.compiler.host` with :mod:`~symscore.compiler.host_numba`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from sympy.printing.pycode import PythonCodePrinter

from ..._errors import SymscoreError
from ..host_numba import numba_launch
from ..kernel import Kernel
from ..printing import KernelPrinterMixin
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

    def __init__(self, sde, module, path, was_cached):
        super().__init__(sde, module, path, was_cached)
        self.launch = numba_launch(module.simulate_kernel)

    def _increments(self, n, n_steps, dt, seed, path_offset):
        path_index = np.arange(path_offset, path_offset + n, dtype=np.int64)
        return self.module.increments_kernel(np.uint64(seed), path_index, n_steps, self.sde.d, math.sqrt(dt))


BACKEND = register_backend(Backend(
    name="numba", description="CPU, float64, parallel over paths (numba prange)", template="numba_kernel.py.j2",
    printer=NumbaPrinter, kernel=lambda: NumbaKernel, check_options=check_options, source_file=Path(__file__),
))
