"""The intermediate representation (IR) of a score kernel: straight-line scalar assignments.

The recursion of docs/math.md is written out entry by entry as SymPy expressions over named scalar
symbols, so that

* structurally zero entries of J, H, Y, C, ... disappear (a product with a literal 0 is 0),
* the drift, J, H and sigma share one SymPy CSE pass,
* one IR is printed by every backend's printer (numba: scalars inside a loop over paths; torch:
  the same assignments on tensors vectorised over paths).

Coordinates are first split into independent *components*: coordinates linked by the Jacobian
pattern or by a shared noise column. The score target of a component depends on that component
alone (Y, C, Zh, Q, R are block diagonal), so a separable SDE becomes m independent 1-D problems.
Components whose local equations are identical (up to renaming the state) form one
:class:`Block`, evaluated once per *lane* (one lane per component): a 64-d separable SDE compiles
to a single 1-D recursion run over 64 lanes.

The construction is a pipeline of pure functions over values, one per formula of the recursion:

    coefficients(local system)              -> Coefficients  (b, J, H, sigma after CSE)
    first_order_state(coefficients)         -> State         (X, Y, Yi, M, C: the carried symbols)
    first_variation_step(state, coeffs)     -> StepPart      A = Yi sigma, S = A A^T, M, C, Y, Yi, X
    second_variation_step(state, coeffs, S) -> StepPart      Zh, Q, R (adds them to the state)
    weight_assembly(state)                  -> Weight        LDL^T of C, v, rho, the target

Per step (left-point Euler, all right-hand sides use the values at t_k, see docs/math.md):

    A = Yi sigma,  S = A A^T,  M += A dW,  C += S dt,
    Q[i; j, b] += sum_a S[i, a] Zh[j; a, b] dt,
    Ht[i; j, b] = sum_a C[i, a] Zh[j; a, b] - Q[i; j, b],
    R[i; j, c] += sum_b (Ht[i; j, b] S[b, c] + S[j, b] Ht[i; c, b]) dt,
    Zh[i; a, b] += sum_p Yi[i, p] sum_{q,w} H[p; q, w] Y[q, a] Y[w, b] dt,
    Y += J Y dt,  Yi -= Yi J dt,  X += b dt + sigma dW.

At a record time the weight is assembled from an LDL^T factorisation of C (+ ridge I):

    v_b = sum_j Zh[j; j, b] - sum_{i,j} Cinv[i, j] Q[i; j, b],   rho_c = sum_{i,j} Cinv[i, j] R[i; j, c],
    delta = Yi^T (Cinv M + v - Cinv rho),   target = -delta.

Failure checks, cheap enough to stay on: the sums of the carried X, Y/Yi and C entries are
tested for finiteness (a sum of finite numbers is finite unless it overflows, which is a failure
too) at every record step, and by the torch kernel after every step; a non-finite value stays
non-finite, so the numba kernel misses nothing and re-runs only the failed paths step by step to
find the first failing step. At a record time C counts as ill-conditioned unless
every LDL^T pivot is positive and the condition estimate

    kappa = w sum_a C_aa (C^-1)_aa      (w = width of the block)

stays below a threshold. kappa = tr(Cs) tr(Cs^-1) for the Jacobi-scaled Cs = diag(C)^-1/2 C
diag(C)^-1/2, so kappa_2(Cs) <= kappa <= w^2 kappa_2(Cs): the scaling that LDL^T is insensitive
to (a hypoelliptic C_t with entries of orders t, t^2, t^3) does not count against it.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from itertools import product

import numpy as np
import sympy as sp

from .._errors import SDESpecError, SymscoreError
from .runtime import HEALTH_BITS

__all__ = ["Assignment", "Block", "LoopBlock", "CoefficientTable", "RankOneHessian", "LOOP_FORM_TERMS",
           "unrolled_terms", "rank_one_hessian", "loop_block_of", "KernelIR", "build_ir", "LocalSystem", "Coefficients", "State", "StepPart",
           "Weight", "coefficients", "first_order_state", "noise_terms", "first_variation_step",
           "second_variation_step", "weight_assembly", "block_of"]

T_SYMBOL = sp.Symbol("t")
DT_SYMBOL = sp.Symbol("dt")
RIDGE_SYMBOL = sp.Symbol("ridge")
ZERO = sp.S.Zero


@dataclass(frozen=True)
class Assignment:
    """``lhs = rhs``; ``comment`` is the symbolic meaning shown in generated code."""

    lhs: sp.Symbol
    rhs: sp.Expr
    comment: str = ""


class _Lines:
    """The assignments one formula writes: ``bind`` names an expression (numbers and plain symbols
    are inlined, not named) and records it. Each pure function below owns one."""

    def __init__(self):
        self.assignments: list[Assignment] = []

    def bind(self, name: str, expr, comment: str = "") -> sp.Expr:
        expr = sp.sympify(expr)
        if expr.is_Number or expr.is_Symbol:
            return expr
        symbol = sp.Symbol(name)
        self.assignments.append(Assignment(symbol, expr, comment))
        return symbol


# -- the values passed between the formulas ------------------------------------------------------
@dataclass(frozen=True)
class LocalSystem:
    """One component in local coordinates x_0, ..., x_{w-1} and time ``t``, parameters bound.

    ``jacobian``, ``hessian`` and the diffusion's derivatives come from the
    :class:`~symscore.Derivation` (renamed, never differentiated again): ``hessian`` holds the
    structurally non-zero H[p; q, r] with q <= r, ``diffusion_gradient`` G_l[p, q] keyed (p, l, q)
    and ``diffusion_hessian`` Hs_l[p; q, r] keyed (p, l, q, r), q <= r (empty for sigma(t)).
    """

    x: tuple[sp.Symbol, ...]
    drift: tuple[sp.Expr, ...]
    jacobian: sp.Matrix
    hessian: dict
    sigma: sp.Matrix
    diffusion_gradient: dict = field(default_factory=dict)
    diffusion_hessian: dict = field(default_factory=dict)

    @property
    def width(self) -> int:
        return len(self.x)

    @property
    def n_noise(self) -> int:
        return self.sigma.cols


@dataclass(frozen=True)
class Coefficients:
    """b, J, H (q <= r) and sigma as named symbols or inlined constants, and the assignments (CSE
    temporaries first) that compute them at (t, x)."""

    b: tuple[sp.Expr, ...]
    J: sp.Matrix
    H: dict
    sigma: sp.Matrix
    assignments: tuple[Assignment, ...]
    G: tuple[sp.Matrix, ...] = ()
    Hs: dict = field(default_factory=dict)

    def h(self, p: int, q: int, r: int) -> sp.Expr:
        """H[p; q, r], symmetric in (q, r)."""
        return self.H.get((p, min(q, r), max(q, r)), ZERO)

    def hs(self, l: int, p: int, q: int, r: int) -> sp.Expr:
        """Hs_l[p; q, r] = d^2 sigma[p, l] / d x_q d x_r, symmetric in (q, r)."""
        return self.Hs.get((p, l, min(q, r), max(q, r)), ZERO)

    @property
    def state_dependent(self) -> bool:
        """Whether sigma depends on the state (G_l carried in the recursion)."""
        return bool(self.G)


@dataclass(frozen=True)
class State:
    """The carried state of one block: each entry a state symbol, or a literal 0 where structurally zero.

    ``Zh[i, a, c]``, ``Q[i, j, c]`` and ``R[i, j, c]`` (second order only, else empty) are keyed
    with a <= c for Zh and j <= c for R (both symmetric in those indices), and ``P[i, j, b]`` (a
    state-dependent sigma only); R holds R + RK - RPsi of docs/math.md when sigma depends on the
    state. ``initial`` lists every carried symbol with its value at t = 0, in the order of the
    generated state; ``second_order`` says whether the weight uses the second-order terms.
    """

    x: tuple[sp.Symbol, ...]
    Y: sp.Matrix
    Yi: sp.Matrix
    M: tuple[sp.Expr, ...]
    C: sp.Matrix
    Zh: dict = field(default_factory=dict)
    Q: dict = field(default_factory=dict)
    R: dict = field(default_factory=dict)
    P: dict = field(default_factory=dict)
    initial: tuple[tuple[sp.Symbol, sp.Expr], ...] = ()
    second_order: bool = False

    @property
    def width(self) -> int:
        return len(self.x)

    def zh(self, i: int, a: int, c: int) -> sp.Expr:
        return self.Zh.get((i, min(a, c), max(a, c)), ZERO)

    def r(self, i: int, j: int, c: int) -> sp.Expr:
        return self.R.get((i, min(j, c), max(j, c)), ZERO)

    def health(self) -> tuple[tuple[int, tuple[sp.Symbol, ...]], ...]:
        """(bit, symbols) groups whose sum must stay finite: X, then Y and Yi, then C."""
        carried = {s for s, _ in self.initial}
        w = self.width
        return (
            (HEALTH_BITS["X"], tuple(self.x)),
            (HEALTH_BITS["Y"], tuple(s for s in list(self.Y) + list(self.Yi) if s in carried)),
            (HEALTH_BITS["C"], tuple(self.C[i, j] for i in range(w) for j in range(i, w) if self.C[i, j] in carried)),
        )


@dataclass(frozen=True)
class StepPart:
    """What one formula contributes to the step: assignments, then (state symbol, next value) updates."""

    assignments: tuple[Assignment, ...]
    updates: tuple[tuple[sp.Symbol, sp.Expr, str], ...]


@dataclass(frozen=True)
class Weight:
    """The weight assembly at a record time: assignments, the local target, the LDL^T pivots and the
    condition estimate kappa (module docstring)."""

    assignments: tuple[Assignment, ...]
    target: tuple[sp.Expr, ...]
    pivots: tuple[sp.Expr, ...]
    condition: sp.Expr


@dataclass(frozen=True)
class Block:
    """One independent sub-system, run once per lane.

    Attributes:
        lanes: ``lanes[l][c]`` is the global state coordinate of local coordinate c in lane l.
        noise_lanes: ``noise_lanes[l][e]`` is the global noise column of local column e.
        x, dw: local state and noise-increment symbols.
        state: (symbol, initial value) of every carried scalar; X's initial values are the x0
            symbols ``x0_c``.
        step: assignments computing next values from current ones (and t, dt, dw).
        commit: (state symbol, next-value expression) pairs applied after ``step``.
        weight: assignments assembling the target at a record time.
        target: local target expressions (one per local coordinate).
        pivots: the pivots of the LDL^T factorisation of C + ridge I (all positive for an SPD matrix).
        condition: the condition estimate kappa of C + ridge I (module docstring), in weight symbols.
        health: (bit, symbols) groups whose sum must stay finite after every step: bit 1 the
            state X, bit 2 the first variation Y and its inverse Yi, bit 4 the Malliavin matrix C.
        second_order: whether Zh, Q, R are carried (False for a linear drift).
        constants: the lane constants ``lane_k0, lane_k1, ...`` of an additive noise that differs
            between lanes only in its numbers (the degree-dependent scales of a spherical field);
            ``constant_values[l]`` are their values in lane l, loaded when the lane starts.
    """

    lanes: tuple[tuple[int, ...], ...]
    noise_lanes: tuple[tuple[int, ...], ...]
    x: tuple[sp.Symbol, ...]
    x0: tuple[sp.Symbol, ...]
    dw: tuple[sp.Symbol, ...]
    state: tuple[tuple[sp.Symbol, sp.Expr], ...]
    step: tuple[Assignment, ...]
    commit: tuple[tuple[sp.Symbol, sp.Expr], ...]
    weight: tuple[Assignment, ...]
    target: tuple[sp.Expr, ...]
    pivots: tuple[sp.Expr, ...]
    condition: sp.Expr
    health: tuple[tuple[int, tuple[sp.Symbol, ...]], ...]
    second_order: bool
    description: str = ""
    constants: tuple[sp.Symbol, ...] = ()
    constant_values: tuple[tuple[float, ...], ...] = ()
    form = "unrolled"

    @property
    def width(self) -> int:
        return len(self.x)

    @property
    def n_noise(self) -> int:
        return len(self.dw)


@dataclass(frozen=True)
class CoefficientTable:
    """The entries of one coefficient array of a loop-form block: ``array.flat[index[k]] =
    coefficient[k] * factor[which[k]]``, or the constant ``coefficient[k]`` where ``which[k] = -1``.

    ``name`` is one of b (w,), J (w, w), H (w, w, w), sigma (w, e), G (e, w, w), Hs (e, w, w, w):
    H[p; q, r] and Hs[l; p, q, r] are listed in both orders of (q, r); G[l; p, q] = d sigma[p, l] / d x_q.
    """

    name: str
    shape: tuple[int, ...]
    index: tuple[int, ...]
    coefficient: tuple[float, ...]
    which: tuple[int, ...]


@dataclass(frozen=True)
class RankOneHessian:
    """H[p; q, r] = sum_k g_k u_k[p] v_k[q] v'_k[r] with g_k = factor[which[k]] (1 where which[k] = -1).

    A ridge drift a f(theta . x) has H = f''(theta . x) a (x) theta (x) theta: one term. With these
    terms the second variation's Yi H[Y., Y.] costs O(K w^3) per step instead of O(w^4).
    """

    which: tuple[int, ...]
    u: tuple[tuple[float, ...], ...]
    v: tuple[tuple[float, ...], ...]
    v2: tuple[tuple[float, ...], ...]

    @property
    def n_terms(self) -> int:
        return len(self.which)


@dataclass(frozen=True)
class LoopBlock:
    """A block too wide to unroll, run by the loop form (:mod:`symscore.compiler.dense`).

    Attributes:
        lanes, noise_lanes, x: as for :class:`Block`.
        factors: assignments (CSE temporaries, then ``factor_k`` for k < n_factors) of the distinct
            factors of the coefficients at (t, x): every entry of b, J, H, sigma, G, Hs is a number
            times one factor (module docstring of :mod:`symscore.compiler.dense`).
        tables: one :class:`CoefficientTable` per coefficient array.
        second_order, state_dependent: whether Zh, Q, R (and P) are carried; whether sigma depends on x.
        keep_p, keep_psi: False only for the wrong variants of ``build_ir(drop=...)``.
        estimated_terms: the unrolled form's estimated size (:func:`unrolled_terms`), for the header.
        rank_one: H as a short sum of rank-one terms (its table is then empty), or None.
    """

    lanes: tuple[tuple[int, ...], ...]
    noise_lanes: tuple[tuple[int, ...], ...]
    x: tuple[sp.Symbol, ...]
    factors: tuple[Assignment, ...]
    n_factors: int
    tables: tuple[CoefficientTable, ...]
    second_order: bool
    state_dependent: bool
    keep_p: bool
    keep_psi: bool
    estimated_terms: int
    description: str = ""
    rank_one: RankOneHessian | None = None
    form = "loop"

    @property
    def width(self) -> int:
        return len(self.x)

    @property
    def n_noise(self) -> int:
        return len(self.noise_lanes[0])


@dataclass(frozen=True)
class KernelIR:
    """The whole kernel: blocks covering every coordinate exactly once."""

    m: int
    d: int
    blocks: tuple[Block | LoopBlock, ...]
    structure: str
    header: tuple[str, ...] = field(default=())


# -- the formulas, one pure function each ---------------------------------------------------------
def coefficients(system: LocalSystem, second_order: bool) -> Coefficients:
    """b, J, H (if ``second_order``), sigma and for sigma(t, x) G_l (and Hs_l if ``second_order``)
    through one CSE pass; named outputs, constants inlined."""
    w, e = system.width, system.n_noise
    named: list[tuple[str, sp.Expr, str]] = [(f"b_{i}", system.drift[i], f"b_{i}") for i in range(w)]
    named += [(f"J_{i}_{j}", system.jacobian[i, j], f"d b_{i} / d x_{j}") for i in range(w) for j in range(w)
              if system.jacobian[i, j] != 0]
    if second_order:
        named += [(f"H_{p}_{q}_{r}", h, f"d^2 b_{p} / d x_{q} d x_{r}") for (p, q, r), h in sorted(system.hessian.items())]
    named += [(f"sigma_{i}_{l}", system.sigma[i, l], f"sigma[{i}, {l}]") for i in range(w) for l in range(e)
              if system.sigma[i, l] != 0]
    named += [(f"G_{l}_{p}_{q}", g, f"d sigma[{p}, {l}] / d x_{q}") for (p, l, q), g in sorted(system.diffusion_gradient.items())]
    if second_order:
        named += [(f"Hs_{l}_{p}_{q}_{r}", h, f"d^2 sigma[{p}, {l}] / d x_{q} d x_{r}")
                  for (p, l, q, r), h in sorted(system.diffusion_hessian.items())]
    symbolic = [(n, ex, c) for n, ex, c in named if not ex.is_Number]
    temps, reduced = sp.cse([ex for _, ex, _ in symbolic], symbols=sp.numbered_symbols("tmp"), order="canonical")
    assignments = [Assignment(tmp, ex) for tmp, ex in temps]
    value = {n: ex for n, ex, _ in named}
    for (name, original, comment), ex in zip(symbolic, reduced):
        assignments.append(Assignment(sp.Symbol(name), ex, f"{comment} = {original}"))
        value[name] = sp.Symbol(name)
    return Coefficients(
        b=tuple(value[f"b_{i}"] for i in range(w)),
        J=sp.Matrix(w, w, lambda i, j: value.get(f"J_{i}_{j}", 0)),
        H={k: value[f"H_{k[0]}_{k[1]}_{k[2]}"] for k in system.hessian} if second_order else {},
        sigma=sp.Matrix(w, e, lambda i, l: value.get(f"sigma_{i}_{l}", 0)),
        assignments=tuple(assignments),
        G=tuple(sp.Matrix(w, w, lambda p, q: value.get(f"G_{l}_{p}_{q}", 0)) for l in range(e))
        if system.diffusion_gradient else (),
        Hs={k: value[f"Hs_{k[1]}_{k[0]}_{k[2]}_{k[3]}"] for k in system.diffusion_hessian} if second_order else {},
    )


def variation_pattern(jacobian: sp.Matrix, gradients: tuple[sp.Matrix, ...] = ()) -> np.ndarray:
    """Structural pattern of Y (and of Yi): the reflexive-transitive closure of the pattern of J and
    of the G_l (dY = J Y dt + sum_l G_l Y dB^l)."""
    w = jacobian.rows
    pattern = np.eye(w, dtype=bool) | (np.array(jacobian.tolist(), dtype=object) != 0)
    for g in gradients:
        pattern |= np.array(g.tolist(), dtype=object) != 0
    closure = np.eye(w, dtype=bool)
    while True:
        grown = closure | ((pattern.astype(int) @ closure.astype(int)) > 0)
        if (grown == closure).all():
            return closure
        closure = grown


def _symmetric(w: int, entry) -> sp.Matrix:
    values = {}
    for i in range(w):
        for j in range(i, w):
            values[i, j] = values[j, i] = entry(i, j)
    return sp.Matrix(w, w, lambda i, j: values[i, j])


def first_order_state(x: tuple[sp.Symbol, ...], coeffs: Coefficients) -> State:
    """X, Y, Yi (on the closure of J's pattern), M (where noise reaches) and C (where S can be non-zero).

    Y = Yi = I, M = C = 0 and X = x0 initially. The pattern of A = Yi sigma decides M and C.
    """
    w, e = len(x), coeffs.sigma.cols
    pattern = variation_pattern(coeffs.J, coeffs.G)
    Y = sp.Matrix(w, w, lambda i, j: sp.Symbol(f"Y_{i}_{j}") if pattern[i, j] else 0)
    Yi = sp.Matrix(w, w, lambda i, j: sp.Symbol(f"Yi_{i}_{j}") if pattern[i, j] else 0)
    reaches = [any(pattern[i, p] and coeffs.sigma[p, l] != 0 for p in range(w)) for i in range(w) for l in range(e)]
    noisy = [any(reaches[i * e + l] for l in range(e)) for i in range(w)]
    shared = [[any(reaches[i * e + l] and reaches[j * e + l] for l in range(e)) for j in range(w)] for i in range(w)]
    M = tuple(sp.Symbol(f"M_{i}") if noisy[i] else ZERO for i in range(w))
    C = _symmetric(w, lambda i, j: sp.Symbol(f"C_{i}_{j}") if shared[i][j] else ZERO)
    initial = [(Y[i, j], sp.Integer(int(i == j))) for i, j in product(range(w), range(w)) if pattern[i, j]]
    initial += [(Yi[i, j], sp.Integer(int(i == j))) for i, j in product(range(w), range(w)) if pattern[i, j]]
    initial += [(s, ZERO) for s in M if s != 0]
    initial += [(C[i, j], ZERO) for i in range(w) for j in range(i, w) if C[i, j] != 0]
    return State(x=tuple(x), Y=Y, Yi=Yi, M=M, C=C, initial=tuple(initial))


def noise_terms(state: State, coeffs: Coefficients) -> tuple[StepPart, sp.Matrix, sp.Matrix]:
    """A = Yi sigma and S = A A^T (shared by both variation steps); returns the part, A and S."""
    lines, w, e = _Lines(), state.width, coeffs.sigma.cols
    A = sp.Matrix(w, e, lambda i, l: lines.bind(f"A_{i}_{l}", sum(state.Yi[i, p] * coeffs.sigma[p, l]
                                                                  for p in range(w)), "A = Yi sigma"))
    S = _symmetric(w, lambda i, j: lines.bind(f"S_{i}_{j}", sum(A[i, l] * A[j, l] for l in range(e)), "S = A A^T"))
    return StepPart(tuple(lines.assignments), ()), A, S


def first_variation_step(state: State, coeffs: Coefficients, A: sp.Matrix, S: sp.Matrix,
                         dw: tuple[sp.Symbol, ...]) -> StepPart:
    """M += A dW, C += S dt, Y += J Y dt, Yi -= Yi J dt, X += b dt + sigma dW.

    For sigma(t, x) the Ito first variation Y += J Y dt + sum_l G_l Y dW_l, and Yi takes the
    inverse of that step to second order, Yi <- Yi (I - E + E^2) with E = J dt + sum_l G_l dW_l,
    keeping the terms of order dt:

        Yi += -Yi J dt - sum_l Yi G_l dW_l + sum_{l,l'} Yi G_l G_l' dW_l dW_l'

    (the Ito rule with dW_l dW_l' in place of its mean delta_ll' dt): Y Yi = I + O(dt^3/2) per
    step, so Yi stays the inverse of Y to O(dt) along the path (Ito's rule alone: O(dt^1/2)).
    """
    w, e, dt = state.width, coeffs.sigma.cols, DT_SYMBOL
    updates = []
    for i in range(w):
        if state.M[i] != 0:
            updates.append((state.M[i], state.M[i] + sum(A[i, l] * dw[l] for l in range(e)), "M += A dW"))
        for j in range(i, w):
            if state.C[i, j] != 0:
                updates.append((state.C[i, j], state.C[i, j] + S[i, j] * dt, "C += S dt"))
    JY, YiJ = coeffs.J * state.Y, state.Yi * coeffs.J
    if coeffs.state_dependent:
        GY = [g * state.Y for g in coeffs.G]
        YiG = [state.Yi * g for g in coeffs.G]
        second = state.Yi * sum((coeffs.G[l] * coeffs.G[k] * dw[l] * dw[k] for l in range(e) for k in range(e)),
                                sp.zeros(w, w))
    for i, j in product(range(w), range(w)):
        if state.Y[i, j] == 0:
            continue
        if coeffs.state_dependent:
            updates.append((state.Y[i, j], state.Y[i, j] + JY[i, j] * dt + sum(GY[l][i, j] * dw[l] for l in range(e)),
                            "Y += J Y dt + G_l Y dW_l"))
            updates.append((state.Yi[i, j], state.Yi[i, j] - YiJ[i, j] * dt - sum(YiG[l][i, j] * dw[l] for l in range(e))
                            + second[i, j], "Yi += -Yi J dt - Yi G_l dW_l + Yi G_l G_k dW_l dW_k"))
        else:
            updates.append((state.Y[i, j], state.Y[i, j] + JY[i, j] * dt, "Y += J Y dt"))
            updates.append((state.Yi[i, j], state.Yi[i, j] - YiJ[i, j] * dt, "Yi -= Yi J dt"))
    for i in range(w):
        updates.append((state.x[i], state.x[i] + coeffs.b[i] * dt + sum(coeffs.sigma[i, l] * dw[l] for l in range(e)),
                        "X += b dt + sigma dW"))
    return StepPart((), tuple(updates))


def _pulled_back(lines: _Lines, name: str, tensor, state: State) -> dict:
    """Yi T[Y., Y.] for a tensor T[p; q, r] symmetric in (q, r): {(i, a, c): expression}, a <= c,
    through the named temporaries T1 = T[p; ., r] Y and T2 = T[p; Y., Y.]."""
    w, Y, Yi = state.width, state.Y, state.Yi
    rng = range(w)
    T1 = {(p, r, a): lines.bind(f"{name}1_{p}_{r}_{a}", sum(tensor(p, q, r) * Y[q, a] for q in rng),
                                f"{name}1 = {name}[p; ., w] Y") for p in rng for r in rng for a in rng}
    T2 = {(p, a, c): lines.bind(f"{name}2_{p}_{a}_{c}", sum(T1[p, r, a] * Y[r, c] for r in rng),
                                f"{name}2 = {name}[p; Y., Y.]") for p in rng for a in rng for c in range(a, w)}
    return {(i, a, c): sum(Yi[i, p] * T2[p, a, c] for p in rng) for i in rng for a in rng for c in range(a, w)}


def second_variation_step(state: State, coeffs: Coefficients, A: sp.Matrix, S: sp.Matrix,
                          dw: tuple[sp.Symbol, ...], drop: frozenset = frozenset()) -> tuple[StepPart, State]:
    """Zh, Q, R (and P for sigma(t, x)) and their increments (the second-order part of docs/math.md).

    sigma(t): Zh += Yi H[Y., Y.] dt, Q += S Zh dt, R += (Ht S + S Ht^T) dt with Ht = C Zh - Q.
    sigma(t, x): Zh += Yi (H - G_l Hs_l)[Y., Y.] dt + Yi Hs_l[Y., Y.] dW_l, K_l = Yi G_l Y,
    P += A_l K_l dt, and R carries R + RK - RPsi: R += ((Ht + P) S + S (Ht + P)^T - Psi) dt with
    Psi[i; j, c] = sum_a C[i, a] sum_e (K_e[j, a] A[c, e] + A[j, e] K_e[c, a]). ``drop`` may name
    "P" or "RPsi" (wrong targets, kept to show that those terms matter).

    Returns the step part and the state with the entries of Zh, Q, R, P whose increments are
    structurally non-zero added (all 0 initially).
    """
    lines, w, e, dt = _Lines(), state.width, len(dw), DT_SYMBOL
    rng, Y, Yi, C, G = range(w), state.Y, state.Yi, state.C, coeffs.G
    if coeffs.state_dependent:
        @functools.cache  # _pulled_back asks for each entry w times
        def drift_part(p, q, r):  # (H - sum_l G_l Hs_l)[p; q, r]
            return coeffs.h(p, q, r) - sum(G[l][p, u] * coeffs.hs(l, u, q, r) for l in range(e) for u in rng)

        dZh_dt = _pulled_back(lines, "T", drift_part, state)
        dZh_dw = [_pulled_back(lines, f"U{l}_", lambda p, q, r, l=l: coeffs.hs(l, p, q, r), state)
                  if any(k[1] == l for k in coeffs.Hs) else {} for l in range(e)]
    else:
        dZh_dt, dZh_dw = _pulled_back(lines, "T", coeffs.h, state), []
    dZh = {k: (v, [part.get(k, ZERO) for part in dZh_dw]) for k, v in dZh_dt.items()}
    Zh = {k: sp.Symbol(f"Zh_{k[0]}_{k[1]}_{k[2]}") for k, (v, vw) in dZh.items() if v != 0 or any(x != 0 for x in vw)}
    with_zh = replace(state, Zh=Zh)
    dQ = {(i, j, c): sum(S[i, a] * with_zh.zh(j, a, c) for a in rng) for i in rng for j in rng for c in rng}
    Q = {k: sp.Symbol(f"Q_{k[0]}_{k[1]}_{k[2]}") for k, v in dQ.items() if v != 0}
    Ht = {(i, j, c): lines.bind(f"Ht_{i}_{j}_{c}", sum(C[i, a] * with_zh.zh(j, a, c) for a in rng)
                                - Q.get((i, j, c), ZERO), "Ht = C Zh - Q")
          for i in rng for j in rng for c in rng}
    K = [sp.Matrix(w, w, lambda j, b, l=l: lines.bind(f"K_{l}_{j}_{b}", sum(Yi[j, p] * G[l][p, q] * Y[q, b]
                                                                          for p in rng for q in rng), "K_l = Yi G_l Y"))
         for l in range(e)] if coeffs.state_dependent else []
    dP = {(i, j, b): sum(A[i, l] * K[l][j, b] for l in range(e)) for i in rng for j in rng for b in rng} if K else {}
    P = {k: sp.Symbol(f"P_{k[0]}_{k[1]}_{k[2]}") for k, v in dP.items() if v != 0} if "P" not in drop else {}

    def p_(i, j, b):
        return P.get((i, j, b), ZERO)

    def psi(i, j, c):
        if not K or "RPsi" in drop:
            return ZERO
        return sum(C[i, a] * sum(K[l][j, a] * A[c, l] + A[j, l] * K[l][c, a] for l in range(e)) for a in rng)

    dR = {(i, j, c): sum((Ht[i, j, a] + p_(i, j, a)) * S[a, c] + S[j, a] * (Ht[i, c, a] + p_(i, c, a)) for a in rng)
          - psi(i, j, c) for i in rng for j in rng for c in range(j, w)}
    R = {k: sp.Symbol(f"R_{k[0]}_{k[1]}_{k[2]}") for k, v in dR.items() if v != 0}
    r_comment = "R += ((Ht + P) S + S (Ht + P)^T - Psi) dt" if K else "R += (Ht S + S Ht^T) dt"
    updates = [(Q[k], Q[k] + v * dt, "Q += S Zh dt") for k, v in dQ.items() if v != 0]
    updates += [(R[k], R[k] + v * dt, r_comment) for k, v in dR.items() if v != 0]
    for k, (v, vw) in dZh.items():
        if k in Zh:
            if coeffs.state_dependent:
                updates.append((Zh[k], Zh[k] + v * dt + sum(x * dw[l] for l, x in enumerate(vw)),
                                "Zh += Yi (H - G Hs)[Y, Y] dt + Yi Hs_l[Y, Y] dW_l"))
            else:
                updates.append((Zh[k], Zh[k] + v * dt, "Zh += Yi H[Y, Y] dt"))
    updates += [(P[k], P[k] + dP[k] * dt, "P += A_l K_l dt") for k in P]
    initial = state.initial + tuple((s, ZERO) for s in (*Zh.values(), *Q.values(), *R.values(), *P.values()))
    return StepPart(tuple(lines.assignments), tuple(updates)), replace(state, Zh=Zh, Q=Q, R=R, P=P, initial=initial,
                                                                       second_order=True)


def weight_assembly(state: State) -> Weight:
    """The target at a record time from an LDL^T factorisation of C + ridge I (module docstring)."""
    lines, w = _Lines(), state.width
    Cr = state.C + RIDGE_SYMBOL * sp.eye(w)
    D, invD, L = {}, {}, {}
    for k in range(w):
        D[k] = lines.bind(f"D_{k}", Cr[k, k] - sum(L[k, j] ** 2 * D[j] for j in range(k)), "LDL^T pivot of C")
        invD[k] = lines.bind(f"invD_{k}", 1 / D[k], "")
        for i in range(k + 1, w):
            L[i, k] = lines.bind(f"L_{i}_{k}", (Cr[i, k] - sum(L[i, j] * L[k, j] * D[j] for j in range(k))) * invD[k],
                                 "LDL^T factor of C")
    Linv = {}
    for i in range(w):
        Linv[i, i] = sp.S.One
        for k in range(i - 1, -1, -1):
            Linv[i, k] = lines.bind(f"Li_{i}_{k}", -sum(L[i, j] * Linv[j, k] for j in range(k, i)), "L^-1")
    Cinv = {}
    for a in range(w):
        for c in range(a, w):
            Cinv[a, c] = Cinv[c, a] = lines.bind(f"Cinv_{a}_{c}", sum(Linv[k, a] * Linv[k, c] * invD[k] for k in range(c, w)),
                                                 "C^-1 = L^-T D^-1 L^-1")
    g = [sum(Cinv[i, j] * state.M[j] for j in range(w)) for i in range(w)]
    if state.second_order:
        v = [lines.bind(f"v_{c}", sum(state.zh(j, j, c) for j in range(w))
                        - sum(Cinv[i, j] * state.Q.get((i, j, c), ZERO) for i in range(w) for j in range(w))
                        + sum(Cinv[i, j] * state.P.get((i, j, c), ZERO) for i in range(w) for j in range(w)),
                        "v = tr Zh - <C^-1, Q> + <C^-1, P>" if state.P else "v = tr Zh - <C^-1, Q>") for c in range(w)]
        rho = [lines.bind(f"rho_{c}", sum(Cinv[i, j] * state.r(i, j, c) for i in range(w) for j in range(w)),
                          "rho = <C^-1, R>") for c in range(w)]
        g = [g[i] + v[i] - sum(Cinv[i, j] * rho[j] for j in range(w)) for i in range(w)]
    g = [lines.bind(f"g_{i}", g[i], "C^-1 M + v - C^-1 rho") for i in range(w)]
    target = [lines.bind(f"target_{a}", -sum(state.Yi[i, a] * g[i] for i in range(w)), "-Yi^T g") for a in range(w)]
    condition = w * sum(Cr[a, a] * Cinv[a, a] for a in range(w))
    return Weight(tuple(lines.assignments), tuple(target), tuple(D[k] for k in range(w)), condition)


def _commit(parts: tuple[StepPart, ...]) -> tuple[tuple[Assignment, ...], tuple[tuple[sp.Symbol, sp.Expr], ...]]:
    """Name every next value (``<symbol>_next``); an entry whose increment is structurally zero stays."""
    lines = _Lines()
    for part in parts:
        lines.assignments.extend(part.assignments)
    commit = []
    for part in parts:
        for symbol, expr, comment in part.updates:
            nxt = lines.bind(f"{symbol}_next", expr, comment)
            if nxt != symbol:
                commit.append((symbol, nxt))
    return tuple(lines.assignments), tuple(commit)


def time_weighted(A: sp.Matrix, S: sp.Matrix, weight: sp.Expr) -> tuple[StepPart, sp.Matrix, sp.Matrix]:
    """a(t) A and a(t) S for the time-weighted covering field u_r = a(r) A_r^T (C^a_t)^-1 Y_t^-1.

    <D X_t, u> = Y_t (int a S dr) (C^a)^-1 Y_t^-1 = I for any a(r) > 0, so u covers X_t and its
    Skorokhod integral has the score as conditional mean too. Pairing D_r with a(r) A_r and C^a's
    a(s) S_s puts a in front of every S of the recursion (C, Q, R) and of A in M = int a A dB;
    X, Y, Yi and Zh do not change (docs/math.md, "Control variate"). a = 1 is the plain target.
    """
    lines = _Lines()
    a = lines.bind("a_t", weight, "a(t): time weight of the covering field")
    Aa = sp.Matrix(A.rows, A.cols, lambda i, l: lines.bind(f"Aa_{i}_{l}", a * A[i, l], "a A") if A[i, l] != 0 else ZERO)
    Sa = _symmetric(S.rows, lambda i, j: lines.bind(f"Sa_{i}_{j}", a * S[i, j], "a S") if S[i, j] != 0 else ZERO)
    return StepPart(tuple(lines.assignments), ()), Aa, Sa


def block_of(system: LocalSystem, lanes, noise_lanes, description: str, *, second_order: bool,
             drop: frozenset = frozenset(), constants=(), constant_values=(), covering_weight=None) -> Block:
    """The block of one local system: the formulas above composed in the order of the recursion.

    ``covering_weight``: a(t) of :func:`time_weighted` (None: the plain covering field, a = 1).
    """
    second_order = second_order and (bool(system.hessian) or bool(system.diffusion_gradient))
    coeffs = coefficients(system, second_order)
    dw = tuple(sp.Symbol(f"dw_{l}") for l in range(system.n_noise))
    state = first_order_state(system.x, coeffs)
    noise, A, S = noise_terms(state, coeffs)
    parts = [StepPart(coeffs.assignments, ()), noise]
    if covering_weight is not None:
        weighted, A, S = time_weighted(A, S, covering_weight)
        parts.append(weighted)
    if second_order:
        second, state = second_variation_step(state, coeffs, A, S, dw, drop)
        parts.append(second)
    parts.append(first_variation_step(state, coeffs, A, S, dw))
    step, commit = _commit(tuple(parts))
    weight = weight_assembly(state)
    state_symbols = state.initial + tuple((x, sp.Symbol(f"x0_{i}")) for i, x in enumerate(system.x))
    return Block(
        lanes=tuple(lanes), noise_lanes=tuple(noise_lanes), x=system.x,
        x0=tuple(sp.Symbol(f"x0_{i}") for i in range(system.width)), dw=dw, state=state_symbols, step=step,
        commit=commit, weight=weight.assignments, target=weight.target, pivots=weight.pivots,
        condition=weight.condition, health=state.health(), second_order=second_order, description=description,
        constants=tuple(constants), constant_values=tuple(map(tuple, constant_values)),
    )


# -- the loop form ----------------------------------------------------------------------------------
#: Blocks whose unrolled form would exceed this many terms (:func:`unrolled_terms`) use the loop form.
#: Measured on 2 cores (benchmarks/bench_wide.py): a coupled w = 4 block (256 terms) unrolls into a
#: kernel numba compiles in about 12 s, w = 6 (1296) takes minutes, w = 8 does not finish.
LOOP_FORM_TERMS = 500
FORMS = ("auto", "unrolled", "loop")


def unrolled_terms(system: LocalSystem, second_order: bool) -> int:
    """The size of the unrolled form, estimated before building it: w^2 nnz(Y) products for the
    second-order contractions (w nnz(Y) for the first order), nnz(Y) from J's and G's pattern."""
    gradients = tuple(sp.Matrix(system.width, system.width, lambda p, q, l=l: system.diffusion_gradient.get((p, l, q), 0))
                      for l in range(system.n_noise)) if system.diffusion_gradient else ()
    n_y = int(variation_pattern(system.jacobian, gradients).sum())
    w = system.width
    return w * w * n_y if second_order else w * n_y


def _table_shapes(w: int, e: int) -> dict[str, tuple[int, ...]]:
    """The coefficient arrays of a loop-form block of width w with e noise columns, in table order."""
    return {"b": (w,), "J": (w, w), "H": (w, w, w), "sigma": (w, e), "G": (e, w, w), "Hs": (e, w, w, w)}


def _entries(system: LocalSystem, second_order: bool):
    """(table name, index, expression) of every coefficient entry (H and Hs in both orders of (q, r))."""
    w, e = system.width, system.n_noise
    yield from (("b", (i,), system.drift[i]) for i in range(w))
    yield from (("J", (i, j), system.jacobian[i, j]) for i in range(w) for j in range(w))
    if second_order:
        for (p, q, r), h in sorted(system.hessian.items()):
            yield from (("H", (p, a, c), h) for a, c in dict.fromkeys([(q, r), (r, q)]))
    yield from (("sigma", (i, l), system.sigma[i, l]) for i in range(w) for l in range(e))
    for (p, l, q), g in sorted(system.diffusion_gradient.items()):
        yield "G", (l, p, q), g
    if second_order:
        for (p, l, q, r), h in sorted(system.diffusion_hessian.items()):
            yield from (("Hs", (l, p, a, c), h) for a, c in dict.fromkeys([(q, r), (r, q)]))


def _number_times_factor(expr: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """expr = number * factor, with the numbers of every sum among the factor's multiplicands pulled
    out too (SymPy distributes a number into a sum: 0.18 - 0.18 t is 0.18 (1 - t)), so that entries
    that differ by a constant factor share one factor."""
    number, rest = expr.as_coeff_Mul()
    factors = []
    for term in sp.Mul.make_args(rest):
        base, power = term.as_base_exp()
        if isinstance(base, sp.Add) and power.is_Integer:
            # the number of the term whose non-numeric part sorts first: the same for any multiple of base
            scale = min((a.as_coeff_Mul() for a in base.args), key=lambda cr: sp.default_sort_key(cr[1]))[0]
            if scale != 0 and scale != 1:
                base = sp.Add(*(c / scale * r for c, r in (a.as_coeff_Mul() for a in base.args)))
                number *= scale**power
        factors.append(base**power)
    return number, sp.Mul(*factors)


def rank_one_hessian(index, coefficient, which, w: int, rtol: float = 1e-12) -> RankOneHessian | None:
    """H's entries (flat index, number, factor; an entry may be listed once per additive term) as at
    most w rank-one terms, one per factor (constants: one more), or None.

    The numbers of one factor form a tensor c[p, q, r]; it is rank one when c = u (x) v (x) v' with
    u = c[:, q0, r0], v = c[p0, :, r0] / c0, v' = c[p0, q0, :] / c0 at its largest entry c0, to
    ``rtol`` of c0. Beyond w terms the dense contraction is cheaper, and it is kept.
    """
    groups: dict[int, np.ndarray] = {}
    for flat, number, k in zip(index, coefficient, which):
        groups.setdefault(k, np.zeros((w, w, w))).flat[flat] += number
    if not groups or len(groups) > w:
        return None
    terms = []
    for k, c in sorted(groups.items()):
        p0, q0, r0 = np.unravel_index(np.argmax(np.abs(c)), c.shape)
        c0 = c[p0, q0, r0]
        u, v, v2 = c[:, q0, r0], c[p0, :, r0] / c0, c[p0, q0, :] / c0
        if np.max(np.abs(c - np.einsum("p,q,r->pqr", u, v, v2))) > rtol * abs(c0):
            return None
        terms.append((k, tuple(map(float, u)), tuple(map(float, v)), tuple(map(float, v2))))
    which_, u_, v_, v2_ = zip(*terms)
    return RankOneHessian(which_, u_, v_, v2_)


def loop_block_of(system: LocalSystem, lanes, noise_lanes, description: str, *, second_order: bool,
                  drop: frozenset = frozenset()) -> LoopBlock:
    """The loop-form block of one local system: the coefficients' distinct factors through one CSE
    pass, and a table of (index, number, factor) per coefficient array.

    With sigma(t), H is first tried as a short sum of rank-one terms (:func:`rank_one_hessian`),
    each entry split into its additive terms (a sum of ridge functions sum_k a_k f_k(c_k . x) has
    one term per ridge); if that fails, H gets its table like the other arrays.
    """
    second_order = second_order and (bool(system.hessian) or bool(system.diffusion_gradient))
    factor_of: dict[sp.Expr, int] = {}
    factor_exprs: list[sp.Expr] = []
    factor_comments: list[str] = []
    tables: dict[str, tuple] = {}
    shapes = _table_shapes(system.width, system.n_noise)

    def factor_index(rest, comment) -> int:
        if rest == 1:
            return -1
        if rest not in factor_of:
            factor_of[rest] = len(factor_exprs)
            factor_exprs.append(rest)
            factor_comments.append(comment)
        return factor_of[rest]

    entries = list(_entries(system, second_order))
    rank_one = None
    if second_order and not system.diffusion_gradient:
        split = [(int(np.ravel_multi_index(index, shapes["H"])), *_number_times_factor(term), f"H{list(index)} = {expr}")
                 for name, index, expr in entries if name == "H"
                 for term in sp.Add.make_args(sp.sympify(expr)) if term != 0]
        groups = list(dict.fromkeys(rest for _, _, rest, _ in split))
        rank_one = rank_one_hessian([flat for flat, *_ in split], [float(number) for _, number, _, _ in split],
                                    [groups.index(rest) for _, _, rest, _ in split], system.width)
        if rank_one is not None:  # the factors of H are those of its terms
            comments = {rest: comment for _, _, rest, comment in reversed(split)}
            which = tuple(factor_index(groups[k], comments[groups[k]]) for k in rank_one.which)
            rank_one = RankOneHessian(which, rank_one.u, rank_one.v, rank_one.v2)
            entries = [entry for entry in entries if entry[0] != "H"]
    for name, index, expr in entries:
        expr = sp.sympify(expr)
        if expr == 0:
            continue
        coefficient, rest = _number_times_factor(expr)
        which = factor_index(rest, f"{name}{list(index)} = {expr}")
        table = tables.setdefault(name, ([], [], []))
        table[0].append(int(np.ravel_multi_index(index, shapes[name])))
        table[1].append(float(coefficient))
        table[2].append(which)
    temps, reduced = sp.cse(factor_exprs, symbols=sp.numbered_symbols("tmp"), order="canonical")
    factors = [Assignment(tmp, ex) for tmp, ex in temps]
    factors += [Assignment(sp.Symbol(f"factor_{k}"), ex, comment)
                for k, (ex, comment) in enumerate(zip(reduced, factor_comments))]
    return LoopBlock(
        lanes=tuple(lanes), noise_lanes=tuple(noise_lanes), x=system.x, factors=tuple(factors),
        n_factors=len(factor_exprs),
        tables=tuple(CoefficientTable(name, shape, *map(tuple, tables.get(name, ([], [], []))))
                     for name, shape in shapes.items()),
        second_order=second_order, state_dependent=bool(system.diffusion_gradient),
        keep_p="P" not in drop, keep_psi="RPsi" not in drop,
        estimated_terms=unrolled_terms(system, second_order), description=description, rank_one=rank_one,
    )


# -- components and the whole kernel ----------------------------------------------------------------
def _components(jac_pattern: np.ndarray, sigma_pattern: np.ndarray) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Connected components of coordinates linked by J's pattern or a shared noise column."""
    m, d = sigma_pattern.shape
    parent = list(range(m))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i, j):
        parent[find(i)] = find(j)

    for i, j in zip(*np.nonzero(jac_pattern)):
        union(int(i), int(j))
    for col in range(d):
        rows = np.flatnonzero(sigma_pattern[:, col])
        for r in rows[1:]:
            union(int(rows[0]), int(r))
    groups: dict[int, list[int]] = {}
    for i in range(m):
        groups.setdefault(find(i), []).append(i)
    comps = []
    for coords in sorted(groups.values()):
        cols = tuple(int(c) for c in np.flatnonzero(sigma_pattern[coords].any(axis=0)))
        comps.append((tuple(coords), cols))
    return comps


def _local_system(derivation, coords, cols) -> LocalSystem:
    """Component ``coords`` (noise columns ``cols``) renamed to local x_0..x_{w-1} and t, parameters bound.

    J and H are the derivation's, restricted and renamed: nothing is differentiated here.
    """
    sde = derivation.sde
    x = tuple(sp.Symbol(f"x_{c}") for c in range(len(coords)))
    rename = {sde.state[g]: x[c] for c, g in enumerate(coords)} | {sde.time: T_SYMBOL}

    def local(expr):
        return expr.xreplace(sde.params).xreplace(rename)

    drift = tuple(local(sde.drift[g]) for g in coords)
    jacobian = sp.Matrix(len(coords), len(coords), lambda i, j: local(derivation.jacobian[coords[i], coords[j]]))
    hessian = {}
    position = {g: c for c, g in enumerate(coords)}
    for gp in coords:
        for gq in coords:
            for gr in coords:
                entry = derivation.hessian_entries.get((gp, gq, gr))
                if entry is not None and position[gq] <= position[gr]:
                    entry = local(entry)
                    if entry != 0:
                        hessian[position[gp], position[gq], position[gr]] = entry
    sigma = sde.diffusion.extract(list(coords), list(cols))
    local_coord = {g: c for c, g in enumerate(coords)}
    local_col = {g: e for e, g in enumerate(cols)}
    gradient, hessian_s = {}, {}
    for (gp, gl, gq), entry in derivation.diffusion_gradient.items():
        if gp in local_coord and gl in local_col:
            entry = local(entry)
            if entry != 0:
                gradient[local_coord[gp], local_col[gl], local_coord[gq]] = entry
    for (gp, gl, gq, gw), entry in derivation.diffusion_hessian.items():
        if gp in local_coord and gl in local_col:
            entry = local(entry)
            if entry != 0:
                q, r = sorted((local_coord[gq], local_coord[gw]))
                hessian_s[local_coord[gp], local_col[gl], q, r] = entry
    return LocalSystem(x=x, drift=drift, jacobian=jacobian, hessian=hessian, sigma=local(sigma),
                       diffusion_gradient=gradient, diffusion_hessian=hessian_s)


def build_ir(derivation, *, force_coupled: bool = False, first_order_only: bool = False,
             drop: tuple[str, ...] = (), form: str = "auto", covering_weight=None) -> KernelIR:
    """Build the kernel IR of a derivation.

    Args:
        derivation: a :class:`~symscore.Derivation` (its J and H are reused, not recomputed).
        force_coupled: treat all coordinates as one component (testing the general path).
        first_order_only: drop the second-order terms (Zh, Q, R, P): a *wrong* target for a
            nonlinear drift, kept to show that those terms matter.
        drop: for sigma(t, x), leave out "P" and/or "RPsi" (wrong targets, for the same purpose).
        form: "unrolled" (straight-line scalar code), "loop" (:class:`LoopBlock`) or "auto": the
            loop form for blocks whose unrolled form exceeds :data:`LOOP_FORM_TERMS` terms.
        covering_weight: a(t), an expression in ``t`` (and ``dt``) positive at every grid time
            t_k from 0 (the left-point rule evaluates it there: ``t + dt`` is r at the step's right
            end), for the time-weighted covering field of :func:`time_weighted` (the second weight
            of the control variate); None for the plain one. sigma(t) only, unrolled form only.
    """
    if form not in FORMS:
        raise SymscoreError(f"form: expected one of {', '.join(map(repr, FORMS))}, got {form!r}")
    sde = derivation.sde
    if covering_weight is not None:
        covering_weight = _checked_covering_weight(covering_weight, derivation)
    m, d = sde.m, sde.d
    sigma = sde.bound_diffusion()
    # the patterns from the non-zero entries (m^2 SymPy look-ups cost seconds at m = 1089), with
    # parameters bound (a parameter set to 0 removes a coupling)
    sigma_pattern = np.zeros((m, d), dtype=bool)
    for (i, l), entry in sigma.todok().items():
        sigma_pattern[i, l] = entry != 0
    jac_pattern = np.zeros((m, m), dtype=bool)
    for (i, j), entry in derivation.jacobian.todok().items():
        jac_pattern[i, j] = entry.xreplace(sde.params) != 0
    for p, _, q in derivation.diffusion_gradient:  # sigma[p, l] depends on x_q: p and q are linked
        jac_pattern[p, q] = True
    if force_coupled:
        comps = [(tuple(range(m)), tuple(range(d)))]
    else:
        comps = _components(jac_pattern, sigma_pattern)
    for coords, cols in comps:
        if not cols:
            names = ", ".join(str(sde.state[i]) for i in coords)
            raise SDESpecError(
                f"diffusion: coordinate(s) {names} receive no noise, neither directly nor through the drift, "
                "so the Malliavin matrix C_t is singular and the score target is undefined"
            )
    # components with the same local equations, up to the numbers of an additive noise, share a block
    groups: dict[tuple, list] = {}
    for coords, cols in comps:
        system = _local_system(derivation, coords, cols)
        abstract, values = _lane_constants(system)
        key = (tuple(map(sp.srepr, system.drift)), sp.srepr(abstract.sigma))
        groups.setdefault(key, [abstract, []])
        groups[key][1].append((coords, cols, values))
    second_order = not first_order_only
    blocks = []
    for abstract, members in groups.values():
        loop = form == "loop" or (form == "auto" and unrolled_terms(abstract, second_order) > LOOP_FORM_TERMS)
        distinct = sorted({values for _, _, values in members})
        if loop and covering_weight is not None:
            raise SymscoreError(
                "covering_weight: the time-weighted covering field is built for the unrolled form only; a block "
                f"of width {abstract.width} needs the loop form here (pass form='unrolled' to force it)")
        if len(distinct) > 1 and not loop:  # one block, the numbers loaded per lane
            blocks.append(_make_block(sde, abstract, members, second_order, drop, False, constants=True,
                                      covering_weight=covering_weight))
            continue
        for values in distinct:  # the numbers bound: one block per distinct set (the loop form has no lane tables)
            bound = replace(abstract, sigma=abstract.sigma.xreplace(dict(zip(_constant_symbols(len(values)), values))))
            blocks.append(_make_block(sde, bound, [mb for mb in members if mb[2] == values], second_order, drop, loop,
                                      covering_weight=covering_weight))
    return KernelIR(m=m, d=d, blocks=tuple(blocks), structure=derivation.structure)


def _constant_symbols(n: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"lane_k{j}") for j in range(n))


def _lane_constants(system: LocalSystem) -> tuple[LocalSystem, tuple[sp.Float, ...]]:
    """The system with the floating-point numbers of an additive (state-independent) sigma
    replaced by symbols lane_k0, lane_k1, ... (in the order they occur), and their values.

    A spherical field's coefficients obey the same equation with a noise scale sqrt(2 C_l) per
    degree: abstracted, they form one block run over every coefficient, instead of L + 1 blocks
    whose generated code numba compiles in minutes. The drift and its derivatives stay as they are,
    so a lane constant never needs differentiating.
    """
    if system.diffusion_gradient:
        return system, ()
    floats = []
    for entry in system.sigma:
        for node in sp.preorder_traversal(entry):
            if isinstance(node, sp.Float) and node not in floats:
                floats.append(node)
    if not floats:
        return system, ()
    symbols = _constant_symbols(len(floats))
    abstract = system.sigma.xreplace(dict(zip(floats, symbols)))
    if abstract.xreplace(dict(zip(symbols, floats))) != system.sigma:  # re-canonicalised: keep the numbers
        return system, ()
    return replace(system, sigma=abstract), tuple(floats)


def _checked_covering_weight(weight, derivation) -> sp.Expr:
    """a(t) as a SymPy expression of ``t`` and the step ``dt``, for an SDE with sigma(t) (else a clear error)."""
    try:
        weight = sp.sympify(weight)
    except (sp.SympifyError, TypeError) as exc:
        raise SymscoreError(f"covering_weight: expected a SymPy expression in t, got {weight!r}") from exc
    extra = weight.free_symbols - {T_SYMBOL, DT_SYMBOL}
    if extra:
        raise SymscoreError(f"covering_weight: expected an expression in t (and the step dt) only, got {weight} "
                            f"(free symbols {', '.join(sorted(map(str, extra)))})")
    if derivation.diffusion_gradient:
        raise SymscoreError("covering_weight: the time-weighted covering field is derived for a diffusion "
                            "sigma(t) that does not depend on the state; this SDE has sigma(t, x)")
    return weight


def _make_block(sde, system, members, second_order, drop, loop, constants=False, covering_weight=None):
    lanes = [coords for coords, _, _ in members]
    names = [", ".join(str(sde.state[g]) for g in coords) for coords in lanes]
    description = f"{len(lanes)} lane(s) of width {system.width}: " + "; ".join(names[:4]) + (
        " ..." if len(names) > 4 else "")
    if loop:
        return loop_block_of(system, lanes, [cols for _, cols, _ in members], description + " (loop form)",
                             second_order=second_order, drop=frozenset(drop))
    extra = {}
    if constants:
        values = [tuple(float(v) for v in vals) for _, _, vals in members]
        extra = {"constants": _constant_symbols(len(values[0])), "constant_values": values}
        description += f" (lane constants {', '.join(map(str, extra['constants']))} per lane)"
    if covering_weight is not None:
        description += f" (covering field weighted by a(t) = {covering_weight})"
    return block_of(system, lanes, [cols for _, cols, _ in members], description, second_order=second_order,
                    drop=frozenset(drop), covering_weight=covering_weight, **extra)
