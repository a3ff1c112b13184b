"""Symbolic derivation: the objects of docs/math.md for one concrete SDE.

For dX = b(t, X) dt + sigma(t) dB the score target needs

    J = db/dx            (m x m)       first variation   dY/dt = J Y,       Y_0 = I
    H = d^2 b/dx^2       (m x m x m)   second variation  dZ/dt = H[Y, Y] + J Z,  Z_0 = 0

and the structure of the drift decides how cheap the kernel can be:

* ``linear``: H is identically zero, so Z = 0 and the target is the denoising (Gaussian) one;
* ``separable``: b_i depends on x_i and t only and sigma is diagonal: m independent 1-D problems;
* ``coupled``: everything else.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import sympy as sp

from .._errors import SDESpecError, SymscoreError
from ..spec.sde import SDE

__all__ = ["Derivation"]

# What a derivative that SymPy cannot write in closed form contains: an unevaluated derivative
# (of Abs or re/im of a complex symbol), a delta or a step (of Heaviside, sign) - no kernel can use it.
_NOT_SMOOTH = (sp.Derivative, sp.DiracDelta, sp.Heaviside, sp.sign, sp.re, sp.im, sp.Subs)


def _check_differentiable(entry, derivative, where, symbol):
    """The state-dependent diffusion must be twice differentiable in closed form (the weight uses
    G_l and Hs_l); raise an error naming the entry otherwise."""
    if derivative.has(*_NOT_SMOOTH):
        raise SDESpecError(
            f"diffusion[{where[0]}, {where[1]}] = {entry}: its derivative in {symbol} is {derivative}, not a "
            "closed-form smooth expression; a state-dependent diffusion must be twice differentiable in the "
            "state (write |x| as sqrt(x**2 + eps**2), for instance)")


class _Derivatives:
    """d expr / d x term by term, each term a number times a factor whose derivative is computed
    once per (factor, x).

    A coupled drift's entries share factors with different numbers (theta_p tanh(theta . x) in
    every b_p; theta_p theta_q tanh(theta . x)^2 in every J[p, q]), so its m^2 Jacobian and m^3
    Hessian entries cost about m differentiations each instead of m^2 and m^3 (at m = 32 a ridge
    drift took minutes). The sum of the terms' derivatives is the derivative, in SymPy's canonical
    form as sp.diff would give it."""

    def __init__(self):
        self._cache: dict[tuple[sp.Expr, sp.Symbol], sp.Expr] = {}
        self._symbols: dict[sp.Expr, frozenset] = {}

    def __call__(self, expr: sp.Expr, symbol: sp.Symbol) -> sp.Expr:
        terms = []
        for term in sp.Add.make_args(expr):
            number, factor = term.as_coeff_Mul()
            if factor not in self._symbols:  # free_symbols walks the factor: once per distinct one
                self._symbols[factor] = factor.free_symbols
            if symbol not in self._symbols[factor]:
                continue
            key = (factor, symbol)
            if key not in self._cache:
                self._cache[key] = sp.diff(factor, symbol)
            terms.append(_times(number, self._cache[key]))
        return sp.Add(*terms)


def _times(number: sp.Number, expr: sp.Expr) -> sp.Expr:
    """number * expr; a product's numeric coefficient is multiplied in place, without SymPy
    re-flattening the product (most of the derivation's time at m = 32 went there)."""
    if number == 1:
        return expr
    if isinstance(expr, sp.Mul):
        coefficient, rest = expr.as_coeff_Mul()
        coefficient = coefficient * number
        if coefficient == 0:
            return sp.S.Zero
        return rest if coefficient == 1 else sp.Mul._from_args((coefficient,) + sp.Mul.make_args(rest))
    return number * expr


class Derivation:
    """The derivation of the Malliavin score target for one :class:`~symscore.SDE`.

    Attributes:
        jacobian: ``sp.Matrix`` (m x m), J[i, j] = d b_i / d x_j.
        hessian: ``sp.Array`` (m x m x m), H[p, q, w] = d^2 b_p / (d x_q d x_w).
        structure: ``"linear"``, ``"separable"`` or ``"coupled"``.
        jacobian_sparsity, hessian_sparsity: boolean numpy arrays of structurally non-zero entries.
        hessian_entries: the non-zero H[p, q, w] as a dict (the sparse form the compiler uses).
        first_variation, second_variation: the variation equations as SymPy ``Eq`` objects.
        steps: list of (title, LaTeX) describing the derivation for this SDE.
        closed_form: closed forms of a linear SDE (or None).
    """

    def __init__(self, sde):
        if not isinstance(sde, SDE):
            raise SymscoreError(f"sde: expected a symscore.SDE, got {type(sde).__name__}")
        self.sde = sde
        x, m = sde.state, sde.m
        # Differentiate only where x_q occurs: a field of m = 1089 coefficients has m of m^2 Jacobian
        # entries and m of m^3 Hessian entries; dense m^3 tables would not fit in memory.
        index = {symbol: i for i, symbol in enumerate(x)}
        diff = _Derivatives()
        jacobian_entries: dict[tuple[int, int], sp.Expr] = {}
        for p in range(m):
            for q in sorted(index[s] for s in sde.drift[p].free_symbols if s in index):
                entry = diff(sde.drift[p], x[q])
                if entry != 0:
                    jacobian_entries[p, q] = entry
        self.jacobian = sp.Matrix(sp.SparseMatrix(m, m, jacobian_entries))
        #: The structurally non-zero Hessian entries H[p, q, w] (both orders of q, w).
        self.hessian_entries: dict[tuple[int, int, int], sp.Expr] = {}
        for (p, q), entry in jacobian_entries.items():
            for w in sorted(index[s] for s in entry.free_symbols if s in index):
                h = diff(entry, x[w])
                if h != 0:
                    self.hessian_entries[p, q, w] = h
        self.jacobian_sparsity = np.zeros((m, m), dtype=bool)
        for p, q in jacobian_entries:
            self.jacobian_sparsity[p, q] = True
        # sigma(t, x): G_l[p, q] = d sigma[p, l] / d x_q and Hs_l[p; q, w] (q <= w), structurally
        # non-zero entries only, differentiating each entry by the state symbols it contains
        self.diffusion_gradient: dict[tuple[int, int, int], sp.Expr] = {}
        self.diffusion_hessian: dict[tuple[int, int, int, int], sp.Expr] = {}
        for (p, l), entry in sorted(sde.diffusion.todok().items()):
            depends = sorted(index[s] for s in entry.free_symbols if s in index)
            for q in depends:
                g = diff(entry, x[q])
                _check_differentiable(entry, g, (p, l), x[q])
                if g != 0:
                    self.diffusion_gradient[p, l, q] = g
                    for w in depends:
                        if w >= q:
                            h = diff(g, x[w])
                            _check_differentiable(entry, h, (p, l), x[w])
                            if h != 0:
                                self.diffusion_hessian[p, l, q, w] = h

    @cached_property
    def hessian(self) -> sp.ImmutableSparseNDimArray:
        """H as a SymPy array (m x m x m), built on first use: SymPy hashes every entry into it,
        which took most of the derivation at m = 24; the compiler reads :attr:`hessian_entries`."""
        m = self.sde.m
        return sp.ImmutableSparseNDimArray(dict(self.hessian_entries), (m, m, m))  # it rewrites the keys

    # -- structure ---------------------------------------------------------------------------
    @property
    def state_dependent_diffusion(self) -> bool:
        """True when some sigma[p, l] depends on the state (G_l != 0): the general weight of
        docs/math.md, "State-dependent diffusion"."""
        return bool(self.diffusion_gradient)

    @property
    def is_linear(self) -> bool:
        """True when the Hessian of the drift is identically zero and sigma does not depend on the
        state: then X_t given X_0 is Gaussian."""
        return not self.hessian_entries and not self.state_dependent_diffusion

    @property
    def is_separable(self) -> bool:
        """True when b_i and sigma_ii depend on (t, x_i) only and sigma is square and diagonal."""
        sigma = self.sde.diffusion
        diagonal = sigma.rows == sigma.cols and all(i == j for i, j in sigma.todok())
        own_noise = all(q == p for p, _, q in self.diffusion_gradient)
        return diagonal and own_noise and not (self.jacobian_sparsity & ~np.eye(self.sde.m, dtype=bool)).any()

    @property
    def structure(self) -> str:
        """``"linear"`` (H = 0, sigma(t)), ``"separable"`` (m independent 1-D problems) or ``"coupled"``;
        :attr:`diffusion_structure` says whether sigma depends on the state."""
        if self.is_linear:
            return "linear"
        return "separable" if self.is_separable else "coupled"

    @property
    def diffusion_structure(self) -> str:
        """``"state-dependent"`` (sigma(t, x)) or ``"additive"`` (sigma(t))."""
        return "state-dependent" if self.state_dependent_diffusion else "additive"

    @cached_property
    def noise_reach(self):
        """How the noise reaches each coordinate: the structural Hoermander bracket depth, the small-t
        order of C_t and the Euler steps before the scheme's C is invertible
        (:class:`symscore.symbolic.noise_reach.NoiseReach`)."""
        from .noise_reach import noise_reach

        return noise_reach(self)

    # -- equations ---------------------------------------------------------------------------
    def _matrix_function(self, name: str, rows: int, cols: int) -> sp.Matrix:
        t = self.sde.time
        return sp.Matrix(rows, cols, lambda i, j: sp.Function(f"{name}_{{{i + 1}{j + 1}}}")(t))

    @cached_property
    def first_variation(self) -> sp.Eq:
        """dY/dt = J(t, X_t) Y, Y_0 = I (Y_t = dX_t / dx_0)."""
        m, t = self.sde.m, self.sde.time
        Y = self._matrix_function("Y", m, m)
        return sp.Eq(sp.Derivative(Y, t), self.jacobian * Y, evaluate=False)

    @cached_property
    def second_variation(self) -> list[sp.Eq]:
        """dZ[i; a, b]/dt = sum_{q,w} H[i; q, w] Y[q, a] Y[w, b] + sum_p J[i, p] Z[p; a, b], a <= b."""
        m, t = self.sde.m, self.sde.time
        Y = self._matrix_function("Y", m, m)
        Z = [[[sp.Function(f"Z_{{{i + 1};{a + 1}{b + 1}}}")(t) for b in range(m)] for a in range(m)] for i in range(m)]
        H, J = self.hessian, self.jacobian
        eqs = []
        for i in range(m):
            for a in range(m):
                for b in range(a, m):
                    rhs = sum((H[i, q, w] * Y[q, a] * Y[w, b] for q in range(m) for w in range(m)), sp.S.Zero)
                    rhs += sum((J[i, p] * Z[p][a][b] for p in range(m)), sp.S.Zero)
                    eqs.append(sp.Eq(sp.Derivative(Z[i][a][b], t), rhs, evaluate=False))
        return eqs

    @property
    def hessian_sparsity(self) -> np.ndarray:
        """Boolean (m, m, m) array of the structurally non-zero H[p, q, w] (dense: for small m;
        :attr:`hessian_entries` is the sparse form)."""
        m = self.sde.m
        pattern = np.zeros((m, m, m), dtype=bool)
        for key in self.hessian_entries:
            pattern[key] = True
        return pattern

    def nonzero_hessian(self) -> list[tuple[tuple[int, int, int], sp.Expr]]:
        """The structurally non-zero entries H[p, q, w] with q <= w (H is symmetric in q, w)."""
        return [(key, h) for key, h in sorted(self.hessian_entries.items()) if key[1] <= key[2]]

    @cached_property
    def closed_form(self):
        """For a linear SDE, the closed-form Y_t, C_t, gamma_t, mean, target and the small-t order of
        gamma_t^{-1} (:class:`symscore.symbolic.closed_form.LinearClosedForm`), or None (nonlinear drift, or
        SymPy cannot integrate it)."""
        from .closed_form import linear_closed_form

        return linear_closed_form(self)

    # -- teaching output (symscore.teach.render) ------------------------------------------------
    @cached_property
    def _sections(self):
        from ..teach.render import sections

        return sections(self)

    @property
    def steps(self) -> list[tuple[str, str]]:
        """The derivation for this SDE as (title, LaTeX) pairs, the user's expressions substituted."""
        return [(s.title, r" \\ ".join(s.equations)) for s in self._sections]

    def to_markdown(self) -> str:
        """The derivation as Markdown with ``$`` / ``$$`` math, step by step."""
        from ..teach.render import render_markdown

        return render_markdown(self.sde.name, self._sections)

    def to_latex(self) -> str:
        """A standalone LaTeX document of the derivation (compiles with pdflatex)."""
        from ..teach.render import render_latex_document

        return render_latex_document(self.sde.name, self._sections)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_latex_(self) -> str:
        from ..teach.render import render_display_math

        return render_display_math(self._sections)

    def __repr__(self) -> str:
        return f"Derivation(sde={self.sde.name!r}, structure={self.structure!r})"
