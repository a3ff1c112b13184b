"""Whittle-Matern noise on the sphere and the forward SDE of a field in coefficient space.

The Whittle-Matern covariance operator Q = (kappa^2 - Laplacian)^(-alpha) is diagonal in the
spherical harmonics, with eigenvalue

    C_l = (kappa^2 + l (l + 1))^(-alpha)

on every harmonic of degree l (the Laplacian's eigenvalue there is -l (l + 1)). Q is trace class,
sum_l (2 l + 1) C_l < infinity, for alpha > 1: its Gaussian field has finite variance at a point.

The forward process of a field X is the Ornstein-Uhlenbeck process driven by a Q-Wiener process,
dX = -X dt + sqrt(2) dW^Q, whose stationary law is N(0, Q). In the coefficient basis it is
(L + 1)^2 independent scalar SDEs,

    dX_lm = (-X_lm + f(X_lm)) dt + sqrt(2 C_l) dB_lm,

with an optional per-coefficient drift f. :func:`whittle_matern_sde` returns it as an ordinary
:class:`symscore.SDE`: its coefficients differ only in the noise scale sqrt(2 C_l), so the compiler
runs one 1-D recursion over all of them with the scale loaded per coefficient (lane constants, see
:mod:`symscore.compiler.ir`), and L = 32 (m = 1089) compiles in seconds.
"""
from __future__ import annotations

import numbers

import numpy as np
import sympy as sp

from .._checks import positive_int
from .._errors import SDESpecError
from ..spec.sde import SDE
from .harmonics import coefficient_index

__all__ = ["whittle_matern_spectrum", "whittle_matern_sde", "coefficient_symbols", "X", "TIME"]

#: The symbols of a per-coefficient drift: one coefficient's value x and the time t.
X, TIME = sp.symbols("x t")


def _positive(value, name: str, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (low < float(value) < np.inf):
        raise SDESpecError(f"{name}: expected a finite number > {low:g}, got {value!r}")
    return float(value)


def whittle_matern_spectrum(L: int, kappa: float = 4.0, alpha: float = 2.0) -> np.ndarray:
    """C_l = (kappa^2 + l (l + 1))^(-alpha) for l = 0..L (alpha > 1: Q is trace class)."""
    L = positive_int(L, "L", low=0)
    kappa, alpha = _positive(kappa, "kappa"), _positive(alpha, "alpha", low=1.0)
    degrees = np.arange(L + 1, dtype=np.float64)
    return (kappa**2 + degrees * (degrees + 1)) ** (-alpha)


def coefficient_symbols(L: int) -> list[sp.Symbol]:
    """The state symbols a_l_m of the (L + 1)^2 coefficients, in the order of
    :class:`~symscore.fields.SphericalHarmonics` (a negative order m is written n|m|: a_2_n1)."""
    names = [f"a_{l}_{m}".replace("-", "n") for l in range(L + 1) for m in range(-l, l + 1)]
    assert [coefficient_index(l, m) for l in range(L + 1) for m in range(-l, l + 1)] == list(range(len(names)))
    return list(sp.symbols(names))


def whittle_matern_sde(L: int, kappa: float = 4.0, alpha: float = 2.0, drift=None, T: float = 3.0,
                       name: str | None = None) -> SDE:
    """The forward SDE dX_lm = (-X_lm + f(X_lm)) dt + sqrt(2 C_l) dB_lm of a field up to degree L.

    Args:
        L: the largest degree; the state has m = (L + 1)^2 coefficients.
        kappa, alpha: the Whittle-Matern parameters of Q (alpha > 1); 1 / kappa is about the
            correlation length in radians (the default 4: about 15 degrees).
        drift: an optional per-coefficient drift f, a SymPy expression in the symbols
            ``symscore.fields.X`` (the coefficient, named x) and ``symscore.fields.TIME`` (t), for
            example ``-X**3``; None (default) leaves the Ornstein-Uhlenbeck process.
        T: the horizon. By T = 3 the data's share of X_T is e^-3 = 5%, so the Gaussian prior of
            the samplers is close to the law of X_T even for non-Gaussian data.
        name: the SDE's name (default ``whittle_matern_L<L>``).
    """
    L = positive_int(L, "L")
    spectrum = whittle_matern_spectrum(L, kappa, alpha)
    state, t = coefficient_symbols(L), sp.Symbol("t")
    if drift is None:
        extra = sp.S.Zero
    else:
        try:
            extra = sp.sympify(drift, strict=True)
        except (sp.SympifyError, TypeError) as exc:
            raise SDESpecError(f"drift: expected a SymPy expression in x and t, got {drift!r}") from exc
        unknown = sorted(str(s) for s in extra.free_symbols - {X, TIME})
        if unknown:
            raise SDESpecError(f"drift: expected an expression in symscore.fields.X (x) and TIME (t) only, "
                               f"got the symbol(s) {', '.join(unknown)}")
    drifts = [-a + extra.xreplace({X: a, TIME: t}) for a in state]
    scales = [sp.Float(float(np.sqrt(2.0 * spectrum[l]))) for l in range(L + 1) for _ in range(2 * l + 1)]
    return SDE(drifts, sp.diag(*scales), state, t, name=name or f"whittle_matern_L{L}", T=T)
