"""The triton backend: one fused ``@triton.jit`` kernel per block, the whole time loop inside.

The generated module (``templates/triton_kernel.py.j2``) launches one program per (block of
paths, lane): the carried state lives in registers as vectors over the program's paths, the
increments come from ``tl.philox`` with the counter of symscore's stream (so a seed gives the
increments of the numba and torch kernels, to rounding), and X and the target are written at
record steps only. float64 and float32, on CUDA; without a GPU it runs in Triton's interpreter
(``TRITON_INTERPRET=1``, on the CPU, slow: for tests on small sizes).

Triton's language has exp, log, sqrt, sin, cos, erf and abs; the printer writes the other
functions the parser accepts through accurate helpers of the template (``tanh_``, ``atan_`` and
so on: expm1/log1p forms that keep relative precision near zero, a Cephes rational for atan),
because libdevice calls do not run in the interpreter. The loop form of wide blocks is not
available here (``forms``): compile and emit refuse such a block with an error naming the form.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import sympy as sp
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.pycode import PythonCodePrinter

from ..._errors import SymscoreError
from ..printing import KernelPrinterMixin
from .registry import Backend, register_backend
from .tensor import TensorKernel, check_dtype_device

__all__ = ["TritonPrinter", "TritonKernel", "interpreting"]

# Function -> what the kernel calls: triton.language's own, or a helper of the template.
_FUNCTIONS = {
    "exp": "tl.exp", "log": "tl.log", "sin": "tl.sin", "cos": "tl.cos", "erf": "tl.erf", "Abs": "tl.abs",
    "floor": "tl.floor", "ceiling": "tl.ceil", "tan": "tan_", "tanh": "tanh_", "sinh": "sinh_", "cosh": "cosh_",
    "asinh": "asinh_", "acosh": "acosh_", "atanh": "atanh_", "atan": "atan_", "asin": "asin_", "acos": "acos_",
    "atan2": "atan2_", "Max": "tl.maximum", "Min": "tl.minimum",
}


class TritonPrinter(KernelPrinterMixin, PythonCodePrinter):
    """Element-wise triton.language code: every symbol is a vector over the program's paths."""

    backend, function_module = "triton", "tl"
    _default_settings = {**PythonCodePrinter._default_settings, "strict": True}

    def _print_function_call(self, expr, name):
        return f"{name}({', '.join(self._print(arg) for arg in expr.args)})"

    def _print_reciprocal(self, expr, inner):
        return f"(1.0/{self._print(getattr(sp, inner)(expr.args[0], evaluate=False))})"

    def _print_Pow(self, expr, **kwargs):
        base, exp = expr.as_base_exp()
        if exp.is_Integer and (2 <= abs(exp) <= 4 or exp == -1):
            return super()._print_Pow(expr)  # products, exact (KernelPrinterMixin)
        if exp == sp.S.Half:
            return f"tl.sqrt({self._print(base)})"
        if exp == -sp.S.Half:
            return f"(1.0/tl.sqrt({self._print(base)}))"
        if exp.is_Integer:  # x**n by repeated squaring: exact for any sign of x, like math's pow
            power = _integer_power(self.parenthesize(base, PRECEDENCE["Mul"], strict=False), abs(int(exp)))
            return power if exp > 0 else f"(1.0/{power})"
        # x**a = exp(a log x): NaN for x < 0 where a is not an integer, as math.pow's domain error. Printed
        # through SymPy so that the log of a numeric base is a float literal: triton makes a bare
        # literal argument of tl.log float32.
        return f"tl.exp({self._print(sp.Mul(exp, sp.log(base), evaluate=False))})"

    def _print_Piecewise(self, expr):
        if expr.args[-1].cond != sp.true:
            raise sp.printing.codeprinter.PrintMethodNotImplementedError(f"Piecewise without a default branch: {expr}")
        def branch(value):  # a literal branch of tl.where would be float32: ``zero`` (the kernel's) types it
            return f"(zero + {self._print(value)})" if value.is_number else self._print(value)

        printed = branch(expr.args[-1].expr)
        for value, cond in reversed(expr.args[:-1]):
            printed = f"tl.where({self._print(cond)}, {branch(value)}, {printed})"
        return printed

    def _print_And(self, expr):
        return "(" + " & ".join(f"({self._print(a)})" for a in expr.args) + ")"

    def _print_Or(self, expr):
        return "(" + " | ".join(f"({self._print(a)})" for a in expr.args) + ")"

    def _print_Not(self, expr):
        return f"(~({self._print(expr.args[0])}))"


def _integer_power(base: str, n: int) -> str:
    """``base**n`` (n >= 1) as products of squares."""
    if n == 1:
        return base
    half = _integer_power(base, n // 2)
    square = f"({half}*{half})"
    return square if n % 2 == 0 else f"({square}*{base})"


for _name, _call in _FUNCTIONS.items():
    setattr(TritonPrinter, f"_print_{_name}", lambda self, expr, _call=_call: self._print_function_call(expr, _call))


def interpreting() -> bool:
    """Whether triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def check_options(dtype, device, use_compile) -> dict:
    if not triton_available():
        raise SymscoreError("backend: 'triton' needs the triton package (pip install 'symscore[gpu]')")
    if use_compile:
        raise SymscoreError("compile: torch.compile applies to backend='torch' only (triton kernels are compiled anyway)")
    if device is None:
        device = "cpu" if interpreting() else "cuda"
    dtype, device = check_dtype_device("triton", dtype, device)
    if device.type == "cpu" and not interpreting():
        raise SymscoreError("device: the triton backend runs on 'cuda'; on the CPU only in Triton's interpreter "
                            "(set the environment variable TRITON_INTERPRET=1 before importing symscore's kernels)")
    if device.type == "cuda" and interpreting():
        raise SymscoreError("device: TRITON_INTERPRET=1 runs triton on the CPU: use device='cpu' or unset it")
    return {"dtype": dtype, "device": device}


class TritonKernel(TensorKernel):
    """Kernel of the triton backend: one fused kernel per block; CUDA, or the CPU interpreter."""

    backend = "triton"

    def __init__(self, sde, module, path, was_cached, *, dtype, device):
        super().__init__(sde, module, path, was_cached, dtype=dtype, device=device)
        from ..host_triton import triton_launch

        self.launch = triton_launch(module.BLOCKS)


BACKEND = register_backend(Backend(
    name="triton", description="CUDA (or Triton's CPU interpreter), float64 or float32, one fused kernel per block",
    template="triton_kernel.py.j2", printer=TritonPrinter, kernel=lambda: TritonKernel, check_options=check_options,
    source_file=Path(__file__), forms=("unrolled",),
))
