"""Closed forms for linear SDEs, computed by SymPy where it can integrate them.

For a linear drift b(t, x) = B(t) x + c(t) the first variation does not depend on the path:
when B(t) commutes with B(s) (constant B, scalar B(t) = beta(t) K, diagonal B) it is

    Y_t = exp(int_0^t B),   C_t = int_0^t Y_r^{-1} sigma sigma^T(r) Y_r^{-T} dr,   gamma_t = Y_t C_t Y_t^T,

X_t given X_0 = x_0 is Gaussian with mean Y_t (x_0 + int_0^t Y_r^{-1} c(r) dr) and covariance
gamma_t, and the Malliavin target reduces to -gamma_t^{-1} (X_t - E[X_t | X_0]): the denoising
score matching target. The variance of that target as t -> 0 is set by the order of gamma_t^{-1},
which :func:`small_t_order` reads off SymPy series (VP: O(1/t); sub-VP: O(1/t^2)).

Parameters are kept as symbols (with their sign as an assumption, so that SymPy need not split
into cases); a parameter whose value is 0 is substituted.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["LinearClosedForm", "linear_closed_form", "small_t_order"]


@dataclass(frozen=True)
class LinearClosedForm:
    """Closed-form Gaussian transition of a linear SDE (module docstring).

    Attributes:
        time: the (positive) time symbol used in every expression.
        x0: the initial-point symbols; state: the symbols standing for X_t.
        Y, C, gamma: m x m matrices (first variation, reduced and full Malliavin matrices).
        mean: E[X_t | X_0 = x0] (m x 1).
        target: -gamma^{-1} (X_t - mean), the denoising target (None unless gamma is diagonal:
            written out, the inverse of a full gamma teaches nothing).
        order: n with gamma_t^{-1} = O(t^n) as t -> 0 (None when the series did not settle it).
        leading: the leading term of gamma_t^{-1} (a matrix), or None.
    """

    time: sp.Symbol
    x0: tuple[sp.Symbol, ...]
    state: tuple[sp.Symbol, ...]
    Y: sp.Matrix
    C: sp.Matrix
    gamma: sp.Matrix
    mean: sp.Matrix
    target: sp.Matrix | None
    order: int | None
    leading: sp.Matrix | None


def _signed_params(sde) -> dict:
    """Parameter symbols -> the same names carrying the sign of their value (or 0)."""
    replaced = {}
    for symbol, value in sde.params.items():
        if value == 0:
            replaced[symbol] = sp.S.Zero
        else:
            replaced[symbol] = sp.Symbol(symbol.name, positive=True) if value > 0 else sp.Symbol(symbol.name, negative=True)
    return replaced


def _initial_symbol(x: sp.Symbol) -> sp.Symbol:
    """x_{1} -> x_{1,0}: the symbol of the initial value, named so that it prints in LaTeX."""
    tex = sp.latex(x)
    return sp.Symbol(f"{tex[:-1]},0}}" if tex.endswith("}") and "_{" in tex else f"{tex}_{{0}}")


def _integrate(matrix: sp.Matrix, t: sp.Symbol, r: sp.Symbol) -> sp.Matrix | None:
    """int_0^t matrix(r) dr entrywise, or None where SymPy leaves an Integral."""
    result = matrix.applyfunc(lambda e: sp.integrate(e.subs(t, r), (r, 0, t), conds="none") if e != 0 else e)
    return None if result.has(sp.Integral) else result


def _commutes(B: sp.Matrix, t: sp.Symbol) -> bool:
    s = sp.Dummy("s", positive=True)
    return (B * B.subs(t, s) - B.subs(t, s) * B).applyfunc(sp.simplify).is_zero_matrix is True


def _exp(matrix: sp.Matrix) -> sp.Matrix:
    if matrix.is_diagonal():
        return sp.diag(*[sp.exp(e) for e in matrix.diagonal()])
    return matrix.exp().applyfunc(sp.simplify)


def linear_closed_form(derivation) -> LinearClosedForm | None:
    """The closed form of a linear SDE's transition (module docstring), or None when the drift is
    not linear, B(t) does not commute with itself at other times, or SymPy cannot integrate."""
    if not derivation.is_linear:
        return None
    sde = derivation.sde
    t, r = sp.Symbol(sde.time.name, positive=True), sp.Dummy("r", positive=True)
    values = _signed_params(sde) | {sde.time: t}
    B = derivation.jacobian.xreplace(values)
    c = sde.drift.xreplace(values).xreplace({x: 0 for x in sde.state})
    sigma = sde.diffusion.xreplace(values)
    if not _commutes(B, t):
        return None
    integral_B = _integrate(B, t, r)
    if integral_B is None:
        return None
    Y, Y_inv = _exp(integral_B), _exp(-integral_B)
    C = _integrate((Y_inv * sigma * sigma.T * Y_inv.T).applyfunc(sp.simplify), t, r)
    shift = _integrate(Y_inv * c, t, r)
    if C is None or shift is None:
        return None
    gamma = (Y * C * Y.T).applyfunc(sp.simplify)
    x0 = tuple(_initial_symbol(x) for x in sde.state)
    mean = (Y * (sp.Matrix(x0) + shift)).applyfunc(sp.simplify)
    target = None
    if gamma.is_diagonal():
        target = sp.Matrix([-(x - mu) / g for x, mu, g in zip(sde.state, mean, gamma.diagonal())])
    order, leading = small_t_order(gamma, t)
    return LinearClosedForm(t, x0, tuple(sde.state), Y, C, gamma, mean, target, order, leading)


def _lowest_power(expr: sp.Expr, t: sp.Symbol) -> tuple[sp.Expr, sp.Expr] | None:
    expr = sp.expand(expr)
    if expr == 0:
        return None
    coefficient, exponent = expr.as_leading_term(t).as_coeff_exponent(t)
    return coefficient, exponent


def small_t_order(gamma: sp.Matrix, t: sp.Symbol, terms: int = 8) -> tuple[int | None, sp.Matrix | None]:
    """(n, L): gamma^{-1} = L t^n + higher orders as t -> 0, from truncated series of gamma.

    gamma^{-1} = adj(gamma) / det(gamma), so n = min order of adj(gamma) - order of det(gamma);
    truncating each entry after t^terms leaves the lowest terms of both exact as long as the
    order of det(gamma) stays below ``terms`` (checked; otherwise (None, None)).
    """
    series = gamma.applyfunc(lambda e: sp.series(e, t, 0, terms).removeO())
    det = _lowest_power(series.det(method="berkowitz"), t)
    if det is None or not det[1].is_Integer or det[1] >= terms:
        return None, None
    adjugate = series.adjugate() if gamma.rows > 1 else sp.Matrix([[1]])
    lows = [_lowest_power(e, t) for e in adjugate]
    exponents = [low[1] for low in lows if low is not None]
    if not exponents or not all(e.is_Integer for e in exponents):
        return None, None
    lowest = min(exponents)
    coefficients = [low[0] if low is not None and low[1] == lowest else sp.S.Zero for low in lows]
    leading = sp.Matrix(gamma.rows, gamma.cols, coefficients) / det[0]
    return int(lowest - det[1]), leading.applyfunc(sp.simplify)
