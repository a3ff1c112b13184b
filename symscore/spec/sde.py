"""The SDE specification: drift b(t, x) and diffusion sigma(t, x) in SymPy.

    dX_t = b(t, X_t) dt + sigma(t) dB_t,   X_t in R^m,  B a d-dimensional Brownian motion.

An :class:`SDE` only holds and validates the symbolic data; everything derived from it
(Jacobian, Hessian, variation equations) lives in :mod:`symscore.symbolic.derivation`.
"""
from __future__ import annotations

import hashlib
import numbers
import re
from collections.abc import Mapping, Sequence

import sympy as sp

from .._errors import SDESpecError

__all__ = ["SDE"]


def _sympify(value, what: str) -> sp.Expr:
    if isinstance(value, str):
        # sympify on text calls eval; text specs go through a whitelisting parser instead.
        raise SDESpecError(f"{what}: expected a SymPy expression, got the string {value!r}")
    try:
        return sp.sympify(value, strict=True)
    except (sp.SympifyError, TypeError) as exc:
        raise SDESpecError(f"{what}: expected a SymPy expression or number, got {value!r}") from exc


def _as_state(state) -> tuple[sp.Symbol, ...]:
    if isinstance(state, sp.Symbol) or not isinstance(state, Sequence | sp.MatrixBase):
        raise SDESpecError(f"state: expected a list of SymPy Symbols, got {state!r}")
    symbols = tuple(state)
    if not symbols:
        raise SDESpecError("state: expected at least one state symbol, got an empty list")
    for s in symbols:
        if not isinstance(s, sp.Symbol):
            raise SDESpecError(f"state: every entry must be a SymPy Symbol, got {s!r} ({type(s).__name__})")
    if len(set(symbols)) != len(symbols):
        dup = sorted({str(s) for s in symbols if symbols.count(s) > 1})
        raise SDESpecError(f"state: symbols must be distinct, repeated: {', '.join(dup)}")
    return symbols


def _as_params(params) -> dict[sp.Symbol, sp.Float | sp.Integer | sp.Rational]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise SDESpecError(f"params: expected a dict name -> number, got {type(params).__name__}")
    bound = {}
    for key, value in params.items():
        symbol = sp.Symbol(key) if isinstance(key, str) else key
        if not isinstance(symbol, sp.Symbol):
            raise SDESpecError(f"params: keys must be names or Symbols, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real | sp.Number):
            raise SDESpecError(f"params[{str(symbol)!r}]: expected a real number, got {value!r}")
        number = sp.nsimplify(value) if isinstance(value, int | sp.Integer | sp.Rational) else sp.Float(value)
        if not number.is_finite:
            raise SDESpecError(f"params[{str(symbol)!r}]: expected a finite number, got {value!r}")
        bound[symbol] = number
    return bound


def _matrix_srepr(matrix: sp.MatrixBase) -> str:
    """``sp.srepr(matrix)`` of a dense matrix, printing each distinct entry once (a diagonal
    1089 x 1089 diffusion is 1.2 million zeros, which srepr prints one by one in seconds)."""
    printed: dict[sp.Expr, str] = {}

    def entry(value):
        if value not in printed:
            printed[value] = sp.srepr(value)
        return printed[value]

    rows = ", ".join("[" + ", ".join(entry(value) for value in row) + "]" for row in matrix.tolist())
    return f"{type(matrix).__name__}([{rows}])"


class SDE:
    """A forward SDE  dX = b(t, X) dt + sigma(t) dB  written in SymPy.

    Args:
        drift: m expressions b_i(t, x), one per state symbol.
        diffusion: an m x d SymPy Matrix (or nested list) sigma(t), or a scalar s meaning s * I_m.
            It may depend on the state (Ito; the general weight of docs/math.md, "State-dependent
            diffusion"), then it must be twice differentiable in the state.
        state: the m distinct state Symbols x_1..x_m.
        time: the time Symbol t.
        params: numeric values of the remaining symbols, ``{"theta": 1.5}`` or ``{theta: 1.5}``.
        name: a short name (used in generated file headers; any text: generated code shows it
            escaped, and file names use :attr:`slug`).
        T: the time horizon; record times of a simulation lie in (0, T].

    Every free symbol of drift and diffusion must be a state symbol, the time symbol or a key
    of ``params``. Invalid input raises :class:`symscore.SDESpecError` naming the argument.
    """

    def __init__(self, drift, diffusion, state, time, params=None, name: str = "sde", T: float = 1.0):
        self.state = _as_state(state)
        if not isinstance(time, sp.Symbol):
            raise SDESpecError(f"time: expected a SymPy Symbol, got {time!r}")
        if time in self.state:
            raise SDESpecError(f"time: the time symbol {time} is also a state symbol")
        self.time = time
        self.params = _as_params(params)
        clash = sorted(str(s) for s in self.params if s in self.state or s == time)
        if clash:
            raise SDESpecError(f"params: {', '.join(clash)} is a state or time symbol, not a parameter")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise SDESpecError(f"name: expected a non-empty string of at most 200 characters such as 'benes2d', "
                               f"got {name!r}")
        self.name = name
        if isinstance(T, bool) or not isinstance(T, numbers.Real) or not (0 < float(T) < float("inf")):
            raise SDESpecError(f"T: expected a positive finite time horizon, got {T!r}")
        self.T = float(T)
        self.drift = self._check_drift(drift)
        self.diffusion = self._check_diffusion(diffusion)
        self._check_symbols()

    # -- validation -----------------------------------------------------------------------
    def _check_drift(self, drift) -> sp.Matrix:
        if isinstance(drift, sp.MatrixBase):
            entries = list(drift)
        elif isinstance(drift, Sequence) and not isinstance(drift, str):
            entries = list(drift)
        else:
            raise SDESpecError(f"drift: expected a list of {len(self.state)} expressions, got {drift!r}")
        if len(entries) != len(self.state):
            raise SDESpecError(
                f"drift: expected {len(self.state)} expressions (one per state symbol), got {len(entries)}"
            )
        return sp.Matrix([_sympify(e, f"drift[{i}]") for i, e in enumerate(entries)])

    def _check_diffusion(self, diffusion) -> sp.Matrix:
        m = len(self.state)
        if isinstance(diffusion, sp.MatrixBase | Sequence) and not isinstance(diffusion, str):
            try:
                matrix = sp.Matrix(diffusion)
            except (ValueError, TypeError) as exc:
                raise SDESpecError(f"diffusion: expected an m x d matrix (m = {m}), got {diffusion!r}") from exc
            if matrix.rows != m or matrix.cols < 1:
                raise SDESpecError(
                    f"diffusion: expected an m x d matrix with m = {m} rows (or a scalar meaning s*I), "
                    f"got shape {matrix.rows} x {matrix.cols}"
                )
            matrix = matrix.applyfunc(lambda e: _sympify(e, "diffusion entry"))
        else:
            matrix = _sympify(diffusion, "diffusion") * sp.eye(m)
        return matrix

    def _check_symbols(self) -> None:
        allowed = set(self.state) | {self.time} | set(self.params)
        # the diffusion's non-zero entries only: a diagonal 1089 x 1089 sigma has 1089 of 1.2 million
        diffusion_entries = list(self.diffusion.todok().values())
        found = set().union(*(e.free_symbols for e in self.drift), *(e.free_symbols for e in diffusion_entries))
        unbound = sorted(str(s) for s in found - allowed)
        if unbound:
            raise SDESpecError(
                f"unbound symbols {', '.join(unbound)}: every symbol must be a state symbol "
                f"({', '.join(map(str, self.state))}), the time symbol {self.time} or a key of params"
            )
        for where, exprs in (("drift", self.drift), ("diffusion", diffusion_entries)):
            for e in exprs:
                undefined = e.atoms(sp.core.function.AppliedUndef)
                if undefined:
                    raise SDESpecError(f"{where}: undefined function {sorted(map(str, undefined))[0]} in {e}")

    # -- views ----------------------------------------------------------------------------
    @property
    def m(self) -> int:
        """State dimension."""
        return len(self.state)

    @property
    def slug(self) -> str:
        """The name reduced to ``[A-Za-z0-9_]`` (at most 40 characters), for file and module names."""
        slug = re.sub(r"[^0-9A-Za-z_]+", "_", self.name).strip("_")[:40] or "sde"
        return slug if not slug[0].isdigit() else f"sde_{slug}"

    @property
    def d(self) -> int:
        """Noise dimension (columns of sigma)."""
        return self.diffusion.cols

    def bound_drift(self) -> sp.Matrix:
        """The drift with parameter values substituted."""
        return self.drift.xreplace(self.params)

    def bound_diffusion(self) -> sp.Matrix:
        """The diffusion with parameter values substituted."""
        return self.diffusion.xreplace(self.params)

    def fingerprint(self) -> str:
        """A hash of everything that determines generated code (stable across processes)."""
        parts = [self.name, repr(self.T), sp.srepr(self.state), sp.srepr(self.time),
                 sp.srepr(self.drift), _matrix_srepr(self.diffusion),
                 sp.srepr(sorted(self.params.items(), key=lambda kv: str(kv[0])))]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()

    def derive(self):
        """The symbolic derivation (Jacobian, Hessian, variation equations, steps); computed once."""
        from ..symbolic.derivation import Derivation

        if getattr(self, "_derivation", None) is None:
            self._derivation = Derivation(self)
        return self._derivation

    def __repr__(self) -> str:
        return f"SDE(name={self.name!r}, m={self.m}, d={self.d}, drift={list(self.drift)}, T={self.T})"
