"""A corpus of random SDEs for differential and statistical tests.

Drifts mix rational, log, sqrt, atan, trigonometric, hyperbolic and error-function terms, nested
quotients, polynomial terms and products across coordinates, on top of a confining -a x_i; the
diffusion is the identity, lower triangular, time-dependent diagonal, m x (m + 1), or state-dependent
(a diagonal 1 + c f(x_j) with bounded f, and lower entries c g(x_k): the general weight).
"""
from __future__ import annotations

import hashlib

import sympy as sp
from hypothesis import strategies as st

import symscore as ss

t = sp.Symbol("t")

#: Building blocks of random drifts: f(u, v) of two coordinates (u = v for a one-coordinate term).
TERMS = [
    lambda u, v: u / (1 + u**2),
    lambda u, v: 1 / (1 + u**2) ** 2,
    lambda u, v: sp.log(1 + u**2),
    lambda u, v: sp.sqrt(1 + u**2),
    lambda u, v: sp.atan(u - v / 2),
    lambda u, v: sp.sin(u) * sp.cos(v),
    lambda u, v: sp.tanh(u - v),
    lambda u, v: u * v / (1 + u**2 + v**2),
    lambda u, v: u / (1 + v**2 / (1 + u**2)),
    lambda u, v: sp.exp(-(u**2)) * v,
    lambda u, v: u**2 / (1 + u**2) ** 2,
    lambda u, v: sp.erf(u) / (2 + sp.cos(v)),
    lambda u, v: sp.asinh(u) * sp.atan(v),
    lambda u, v: u * v,
    lambda u, v: u**2 - v**3 / 3,
    lambda u, v: (u - v) / (1 + (u - v) ** 2) ** sp.Rational(3, 2),
    lambda u, v: sp.log(2 + sp.sin(u * v)),
    lambda u, v: t * u / (1 + t + u**2),
    lambda u, v: sp.cosh(u / 2) / (1 + sp.cosh(v)),
    lambda u, v: sp.sech(u) ** 2 * sp.sinh(v / 2),
]
SIGMA_KINDS = ["identity", "lower", "time", "rectangular", "state"]
#: Bounded smooth functions for state-dependent diffusion entries (|f| <= 1, so 1 + f / 2 > 0).
SIGMA_TERMS = [sp.tanh, lambda u: 2 * u / (1 + u**2), sp.sin, lambda u: sp.exp(-(u**2)), lambda u: sp.atan(u) / 2]
_COEF = st.integers(-8, 8).map(lambda k: sp.Rational(k, 8))


@st.composite
def random_sdes(draw, max_m=3, min_m=1, coupled=False):
    """A random SDE with m in [min_m, max_m]; ``coupled`` adds a cross-coordinate term to every drift."""
    m = draw(st.integers(min_m, max_m))
    x = sp.symbols(f"x1:{m + 1}")
    drift = []
    for i in range(m):
        expr = -sp.Rational(draw(st.integers(4, 16)), 8) * x[i]
        for n_term in range(draw(st.integers(1, 3))):
            term = TERMS[draw(st.integers(0, len(TERMS) - 1))]
            u, v = x[draw(st.integers(0, m - 1))], x[draw(st.integers(0, m - 1))]
            if coupled and n_term == 0 and m > 1:
                u, v = x[(i + 1) % m], x[i]
            expr += draw(_COEF.filter(lambda c: c != 0)) * term(u, v)
        drift.append(expr)
    kind = draw(st.sampled_from(SIGMA_KINDS))
    if kind == "identity":
        sigma = 1
    elif kind == "lower":
        sigma = sp.Matrix(m, m, lambda i, j: 1 + sp.Rational(i, 4) if i == j else (draw(_COEF) if i > j else 0))
    elif kind == "time":
        sigma = sp.diag(*[(1 + sp.Rational(i, 3)) * sp.sqrt(1 + t) for i in range(m)])
    elif kind == "rectangular":
        sigma = sp.Matrix(m, m + 1, lambda i, j: 1 if i == j else draw(_COEF) / 2)
    else:
        def entry(i, j):
            term = SIGMA_TERMS[draw(st.integers(0, len(SIGMA_TERMS) - 1))]
            u = x[draw(st.integers(0, m - 1))]
            if i == j:
                return 1 + term(u) / 2
            return draw(_COEF) * term(u) / 2 if i > j else 0

        sigma = sp.Matrix(m, m, entry)
    digest = hashlib.sha256(sp.srepr((tuple(drift), sigma)).encode()).hexdigest()[:10]
    return ss.SDE(drift, sigma, list(x), t, name=f"fuzz_{digest}", T=0.5)
