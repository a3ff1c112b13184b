"""Printers: one SymPy code printer per backend, over the same IR expressions.

The numba printer writes scalar ``math.*`` code (it runs inside a loop over paths). Anything it
cannot print raises :class:`UnsupportedExpressionError` naming the expression and the backend;
nothing falls back to ``str(expr)``.
"""
from __future__ import annotations

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.pycode import PythonCodePrinter

from ._errors import SymscoreError

__all__ = ["NumbaPrinter", "UnsupportedExpressionError", "print_expr"]


class UnsupportedExpressionError(SymscoreError):
    """An expression uses a function the backend's printer does not know."""


# Reciprocal functions that ``math`` lacks, printed through the function it has.
_RECIPROCALS = {"sech": "cosh", "csch": "sinh", "sec": "cos", "csc": "sin", "cot": "tan", "coth": "tanh"}


class NumbaPrinter(PythonCodePrinter):
    """Scalar Python for ``numba.njit``: ``math`` functions, small integer powers as products."""

    backend = "numba"
    _default_settings = {**PythonCodePrinter._default_settings, "strict": True, "fully_qualified_modules": True}

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp.is_Integer and 2 <= exp <= 4:
            # x*x*x is exact and avoids a pow call in the hot loop.
            factor = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Mul"], strict=False)
            return "*".join([factor] * int(exp))
        if exp.is_Integer and -4 <= exp <= -2:
            return f"1.0/({self._print(base ** (-exp))})"
        return super()._print_Pow(expr, rational=rational)

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Rational(self, expr):
        return repr(float(expr))

    def _print_Integer(self, expr):
        # Floats keep numba's type inference on float64 (no int/float unification in loops).
        return f"{int(expr)}.0"


def _print_reciprocal(name, inner):
    def method(self, expr):
        return f"(1.0/{self._module_format('math.' + inner)}({self._print(expr.args[0])}))"

    method.__name__ = f"_print_{name}"
    return method


for _name, _inner in _RECIPROCALS.items():
    setattr(NumbaPrinter, f"_print_{_name}", _print_reciprocal(_name, _inner))


def print_expr(printer, expr: sp.Expr) -> str:
    """Print ``expr`` or raise an error naming the expression and the backend."""
    try:
        return printer.doprint(expr)
    except PrintMethodNotImplementedError as exc:
        raise UnsupportedExpressionError(
            f"the {printer.backend} backend cannot print {expr}: {str(exc).splitlines()[0]}"
        ) from None
