"""The unrolled form of a block: the recursion of docs/math.md written out entry by entry.

Every entry of J, H, Y, C, ... is a SymPy expression over named scalar symbols, so structurally
zero entries disappear (a product with a literal 0 is 0) and the drift, J, H and sigma share one
SymPy CSE pass; the resulting straight-line assignments (:class:`~symscore.compiler.ir.values.Block`)
are printed by every backend's printer.

The construction is a pipeline of pure functions over values, one per formula of the recursion:

    coefficients(local system)              -> Coefficients  (b, J, H, sigma after CSE)
    first_order_state(coefficients)         -> State         (X, Y, Yi, M, C: the carried symbols)
    first_variation_step(state, coeffs)     -> StepPart      A = Yi sigma, S = A A^T, M, C, Y, Yi, X
    second_variation_step(state, coeffs, S) -> StepPart      Zh, Q, R (adds them to the state)
    weight_assembly(state)                  -> Weight        LDL^T of C, v, rho, the target

:func:`noise_terms` computes A and S once for both steps, :func:`time_weighted` puts a(t) in front
of them for a covering weight, and :func:`block_of` composes the formulas into a
:class:`~symscore.compiler.ir.values.Block`.

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

from ..runtime import HEALTH_BITS
from ..variant import Variant
from .values import DT_SYMBOL, RIDGE_SYMBOL, ZERO, Assignment, Block, LocalSystem

__all__ = ["Coefficients", "State", "StepPart", "Weight", "coefficients", "variation_pattern", "first_order_state",
           "noise_terms", "first_variation_step", "second_variation_step", "weight_assembly", "time_weighted",
           "block_of", "unrolled_terms"]


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


def weight_assembly(state: State, negate_r: bool = False) -> Weight:
    """The target at a record time from an LDL^T factorisation of C + ridge I (module docstring);
    ``negate_r`` flips the sign of the R part (``Variant(negate=("R",))``, a wrong target)."""
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
        sign = 1 if negate_r else -1
        g = [g[i] + v[i] + sign * sum(Cinv[i, j] * rho[j] for j in range(w)) for i in range(w)]
    g = [lines.bind(f"g_{i}", g[i], "C^-1 M + v + C^-1 rho (R's sign flipped)" if negate_r else "C^-1 M + v - C^-1 rho")
         for i in range(w)]
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


def block_of(system: LocalSystem, lanes, noise_lanes, description: str, *, variant: Variant = Variant(),
             constants=(), constant_values=()) -> Block:
    """The block of one local system: the formulas above composed in the order of the recursion.

    ``variant`` picks the weight (:class:`~symscore.compiler.variant.Variant`): the second variation
    unless ``first_order_only``, without the terms it ``drop``s, with the R part's sign flipped if
    it ``negate``s "R", and the time-weighted covering
    field of :func:`time_weighted` when it has a ``covering_weight``.
    """
    second_order = variant.second_order and (bool(system.hessian) or bool(system.diffusion_gradient))
    coeffs = coefficients(system, second_order)
    dw = tuple(sp.Symbol(f"dw_{l}") for l in range(system.n_noise))
    state = first_order_state(system.x, coeffs)
    noise, A, S = noise_terms(state, coeffs)
    parts = [StepPart(coeffs.assignments, ()), noise]
    if variant.covering_weight is not None:
        weighted, A, S = time_weighted(A, S, variant.covering_weight)
        parts.append(weighted)
    if second_order:
        second, state = second_variation_step(state, coeffs, A, S, dw, frozenset(variant.drop))
        parts.append(second)
    parts.append(first_variation_step(state, coeffs, A, S, dw))
    step, commit = _commit(tuple(parts))
    weight = weight_assembly(state, negate_r="R" in variant.negate)
    state_symbols = state.initial + tuple((x, sp.Symbol(f"x0_{i}")) for i, x in enumerate(system.x))
    return Block(
        lanes=tuple(lanes), noise_lanes=tuple(noise_lanes), x=system.x,
        x0=tuple(sp.Symbol(f"x0_{i}") for i in range(system.width)), dw=dw, state=state_symbols, step=step,
        commit=commit, weight=weight.assignments, target=weight.target, pivots=weight.pivots,
        condition=weight.condition, health=state.health(), second_order=second_order, description=description,
        constants=tuple(constants), constant_values=tuple(map(tuple, constant_values)),
        estimated_terms=unrolled_terms(system, second_order),
    )


def unrolled_terms(system: LocalSystem, second_order: bool) -> int:
    """The size of the unrolled form, estimated before building it: w^2 nnz(Y) products for the
    second-order contractions (w nnz(Y) for the first order), nnz(Y) from J's and G's pattern."""
    gradients = tuple(sp.Matrix(system.width, system.width, lambda p, q, l=l: system.diffusion_gradient.get((p, l, q), 0))
                      for l in range(system.n_noise)) if system.diffusion_gradient else ()
    n_y = int(variation_pattern(system.jacobian, gradients).sum())
    w = system.width
    return w * w * n_y if second_order else w * n_y
