"""The torch backend: vectorised ``torch`` code over (paths, lanes), a Python loop over steps; CPU or GPU.

The generated module (``templates/torch_kernel.py.j2``) holds one ``init``/``step``/``weight``/
``health`` function per block over a named-tuple state, stepped by :mod:`~symscore.compiler.torch_loop`;
``compile=True`` wraps step and weight in ``torch.compile``. Increments come from the counter-based
Philox stream (:mod:`~symscore.compiler.philox_torch`: the numba kernel's values to rounding),
drawn on the device.
torch itself is imported on first use (SymPy's ``TorchPrinter`` module imports it too).
"""
from __future__ import annotations

import functools
from pathlib import Path

from ..printing import KernelPrinterMixin
from .registry import Backend, register_backend
from .tensor import TensorKernel, check_dtype_device

__all__ = ["torch_kernel_printer", "TorchKernel"]

DTYPES = ("float64", "float32")


@functools.cache
def torch_kernel_printer() -> type:
    """The torch printer class, built on first use: SymPy's TorchPrinter module imports torch."""
    from sympy.printing.pytorch import TorchPrinter

    class TorchKernelPrinter(KernelPrinterMixin, TorchPrinter):
        """Vectorised torch: every symbol is a tensor over paths (and lanes); Piecewise -> torch.where."""

        backend, function_module = "torch", "torch"
        _default_settings = {**TorchPrinter._default_settings, "strict": True}

        def _print_atan2(self, expr):
            # torch.atan2 takes tensors only: a constant argument becomes a tensor like the other one
            y, x = expr.args
            py, px = self._print(y), self._print(x)
            if y.is_number:
                py = f"torch.full_like({px}, {py})"
            elif x.is_number:
                px = f"torch.full_like({py}, {px})"
            return f"torch.atan2({py}, {px})"

    return TorchKernelPrinter


def check_options(dtype, device, use_compile) -> dict:
    dtype, device = check_dtype_device("torch", dtype, device, DTYPES)
    return {"dtype": dtype, "device": device, "use_compile": bool(use_compile)}


class TorchKernel(TensorKernel):
    """Kernel of the torch backend: vectorised over paths, a Python loop over steps; CPU or GPU."""

    backend = "torch"
    rerun_failed = False  # the loop tests every step: fail_step is already the first failing one

    def __init__(self, sde, module, path, was_cached, *, dtype, device, use_compile):
        super().__init__(sde, module, path, was_cached, dtype=dtype, device=device)
        self.blocks = module.BLOCKS
        if use_compile:
            self.blocks = [block._replace(step=self.torch.compile(block.step), weight=self.torch.compile(block.weight))
                           for block in module.BLOCKS]
        from ..torch_loop import torch_launch

        self.launch = torch_launch(self.blocks)


BACKEND = register_backend(Backend(
    name="torch", description="CPU or CUDA, float64 or float32, vectorised over paths (torch)",
    template="torch_kernel.py.j2", printer=lambda: torch_kernel_printer()(), kernel=lambda: TorchKernel,
    check_options=check_options, source_file=Path(__file__),
))
