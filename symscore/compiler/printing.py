"""What every backend's printer shares, over the same IR expressions.

Each backend's printer (in its module under :mod:`symscore.compiler.backends`) subclasses SymPy's
own (``PythonCodePrinter`` for numba's scalar ``math`` code, ``TorchPrinter`` for vectorised
``torch`` code) and takes from :class:`KernelPrinterMixin` only what all need: small integer powers as products, reciprocal functions through the
function the target has, and float literals. Anything a printer cannot print raises
:class:`UnsupportedExpressionError` naming the expression and the backend; nothing falls back
to ``str(expr)``.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.precedence import PRECEDENCE

from .._errors import SymscoreError

__all__ = ["KernelPrinterMixin", "UnsupportedExpressionError", "print_expr"]


class UnsupportedExpressionError(SymscoreError):
    """An expression uses a function the backend's printer does not know."""


# Reciprocal functions that math / torch lack, printed through the function they have.
_RECIPROCALS = {"sech": "cosh", "csch": "sinh", "sec": "cos", "csc": "sin", "cot": "tan", "coth": "tanh"}


class KernelPrinterMixin:
    """What both kernel printers do alike. ``function_module`` is "math" or "torch"."""

    backend: str
    function_module: str

    def _print(self, expr, **kwargs):
        # Constant subexpressions (sqrt(2), pi/4, ...) become float literals: torch functions
        # need tensors, and numba need not call math.sqrt(2.0) on every step.
        if isinstance(expr, sp.Expr) and expr.is_number and not expr.is_Number:
            try:
                value = float(expr)
            except TypeError:
                raise PrintMethodNotImplementedError(f"non-real constant {expr}") from None
            return self._float_literal(value, expr)
        return super()._print(expr, **kwargs)

    def _float_literal(self, value: float, expr) -> str:
        """A float literal; a non-finite value is an error, not the undefined name ``inf``.
        (A negative literal is parenthesised by the parent: SymPy gives it the precedence of Add.)"""
        if value != value or value in (float("inf"), float("-inf")):
            raise PrintMethodNotImplementedError(f"the constant {expr} is not a finite real number")
        return repr(value)

    def _print_Pow(self, expr, **kwargs):
        # Every expansion below is a product or a quotient, which binds more loosely than the power
        # it replaces: it is always parenthesised, so ``a/u**3`` prints as ``a/(u*u*u)``.
        base, exp = expr.as_base_exp()
        if exp.is_Integer and 2 <= exp <= 4:
            # x*x*x is exact and cheaper than a pow call in the hot loop.
            return "(" + "*".join([self.parenthesize(base, PRECEDENCE["Mul"], strict=False)] * int(exp)) + ")"
        if exp.is_Integer and -4 <= exp <= -1:
            return f"(1.0/{self.parenthesize(base ** (-exp), PRECEDENCE['Pow'], strict=False)})"
        return super()._print_Pow(expr)

    def _print_Float(self, expr):
        return self._float_literal(float(expr), expr)

    def _print_Rational(self, expr):
        return self._float_literal(float(expr), expr)

    def _print_Integer(self, expr):
        # Float literals keep numba's type inference on floats (no int/float unification).
        return self._float_literal(float(int(expr)), expr)

    def _print_reciprocal(self, expr, inner):
        return f"(1.0/{self._module_format(f'{self.function_module}.{inner}')}({self._print(expr.args[0])}))"


for _name, _inner in _RECIPROCALS.items():
    setattr(KernelPrinterMixin, f"_print_{_name}", lambda self, expr, _inner=_inner: self._print_reciprocal(expr, _inner))


def print_expr(printer, expr: sp.Expr) -> str:
    """Print ``expr`` or raise an error naming the expression and the backend."""
    try:
        return printer.doprint(expr)
    except PrintMethodNotImplementedError as exc:
        raise UnsupportedExpressionError(
            f"the {printer.backend} backend cannot print {expr}: {str(exc).splitlines()[0]}"
        ) from None
