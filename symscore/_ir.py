"""The intermediate representation (IR) of a score kernel: straight-line scalar assignments.

The recursion of MATH.md is written out entry by entry as SymPy expressions over named scalar
symbols, so that

* structurally zero entries of J, H, Y, C, ... disappear (a product with a literal 0 is 0),
* the drift, J, H and sigma share one SymPy CSE pass,
* one IR is printed by several printers (numba: scalars inside a loop over paths; torch: the same
  assignments on tensors vectorised over paths).

Coordinates are first split into independent *components*: coordinates linked by the Jacobian
pattern or by a shared noise column. The score target of a component depends on that component
alone (Y, C, Zh, Q, R are block diagonal), so a separable SDE becomes m independent 1-D problems.
Components whose local equations are identical (up to renaming the state) form one
:class:`Block`, evaluated once per *lane* (one lane per component): a 64-d separable SDE compiles
to a single 1-D recursion run over 64 lanes.

Per step (left-point Euler, all right-hand sides use the values at t_k, see MATH.md):

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

from dataclasses import dataclass, field
from itertools import product

import numpy as np
import sympy as sp

from ._errors import SDESpecError

__all__ = ["Assignment", "Block", "KernelIR", "build_ir"]

T_SYMBOL = sp.Symbol("t")
DT_SYMBOL = sp.Symbol("dt")
RIDGE_SYMBOL = sp.Symbol("ridge")
#: Bits of what a kernel reports as non-finite per path (a non-finite target is found on the host).
HEALTH_BITS = {"X": 1, "Y": 2, "C": 4}


@dataclass(frozen=True)
class Assignment:
    """``lhs = rhs``; ``comment`` is the symbolic meaning shown in generated code."""

    lhs: sp.Symbol
    rhs: sp.Expr
    comment: str = ""


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

    @property
    def width(self) -> int:
        return len(self.x)

    @property
    def n_noise(self) -> int:
        return len(self.dw)


@dataclass(frozen=True)
class KernelIR:
    """The whole kernel: blocks covering every coordinate exactly once."""

    m: int
    d: int
    blocks: tuple[Block, ...]
    structure: str
    header: tuple[str, ...] = field(default=())


# -- components -------------------------------------------------------------------------------
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
        cols = tuple(c for c in range(d) if sigma_pattern[coords, c].any())
        comps.append((tuple(coords), cols))
    return comps


# -- the per-block builder ----------------------------------------------------------------------
class _BlockBuilder:
    """Writes the step and weight assignments of one component in local coordinates."""

    def __init__(self, drift: list[sp.Expr], sigma: sp.Matrix, x: tuple[sp.Symbol, ...],
                 second_order: bool | None):
        self.w, self.e = len(x), sigma.cols
        self.x, self.drift, self.sigma = x, drift, sigma
        self.dw = tuple(sp.Symbol(f"dw_{l}") for l in range(self.e))
        self.jac = sp.Matrix(drift).jacobian(list(x))
        hess = {(p, q, r): sp.diff(self.jac[p, q], x[r]) for p in range(self.w) for q in range(self.w)
                for r in range(q, self.w)}
        self.hess = {k: v for k, v in hess.items() if v != 0}
        self.second_order = bool(self.hess) if second_order is None else (second_order and bool(self.hess))
        self.lines: list[Assignment] = []
        self.state: list[tuple[sp.Symbol, sp.Expr]] = []
        self.commit: list[tuple[sp.Symbol, sp.Expr]] = []

    # helpers
    def assign(self, name: str, expr: sp.Expr, comment: str = "", lines: list | None = None) -> sp.Expr:
        """Bind ``expr`` to a named temporary; numbers and plain symbols are inlined."""
        expr = sp.sympify(expr)
        if expr.is_Number or expr.is_Symbol:
            return expr
        sym = sp.Symbol(name)
        (self.lines if lines is None else lines).append(Assignment(sym, expr, comment))
        return sym

    def carried(self, name: str, initial: sp.Expr) -> sp.Symbol:
        sym = sp.Symbol(name)
        self.state.append((sym, sp.sympify(initial)))
        return sym

    # patterns
    def _variation_pattern(self) -> np.ndarray:
        """Structural pattern of Y (and of Yi): the reflexive-transitive closure of J's pattern."""
        pattern = np.eye(self.w, dtype=bool) | (np.array(self.jac.tolist(), dtype=object) != 0)
        closure = np.eye(self.w, dtype=bool)
        while True:
            grown = closure | ((pattern.astype(int) @ closure.astype(int)) > 0)
            if (grown == closure).all():
                return closure
            closure = grown

    # the step
    def build_step(self):
        w, e, x = self.w, self.e, self.x
        coeffs = self._coefficients()
        b, J, H, sig = coeffs
        pattern = self._variation_pattern()
        Y = sp.Matrix(w, w, lambda i, j: self.carried(f"Y_{i}_{j}", int(i == j)) if pattern[i, j] else 0)
        Yi = sp.Matrix(w, w, lambda i, j: self.carried(f"Yi_{i}_{j}", int(i == j)) if pattern[i, j] else 0)
        A = sp.Matrix(w, e, lambda i, l: self.assign(f"A_{i}_{l}", sum(Yi[i, p] * sig[p, l] for p in range(w)),
                                                     "A = Yi sigma"))
        S = self._symmetric("S", lambda i, j: sum(A[i, l] * A[j, l] for l in range(e)), "S = A A^T")
        M = [self.carried(f"M_{i}", 0) if any(A[i, l] != 0 for l in range(e)) else sp.S.Zero for i in range(w)]
        C = self._symmetric_state("C", lambda i, j: S[i, j])
        self.C, self.M, self.Y, self.Yi = C, M, Y, Yi
        carried = [s for s, _ in self.state]
        self.health = (
            (HEALTH_BITS["X"], tuple(x)),
            (HEALTH_BITS["Y"], tuple(s for s in list(Y) + list(Yi) if s in carried)),
            (HEALTH_BITS["C"], tuple(C[i, j] for i in range(w) for j in range(i, w) if C[i, j] in carried)),
        )
        updates: list[tuple[sp.Symbol, sp.Expr, str]] = []
        if self.second_order:
            Zh, Q, R = self._second_order_step(H, Y, Yi, S, C, updates)
            self.Zh, self.Q, self.R = Zh, Q, R
        dt = DT_SYMBOL
        for i in range(w):
            if M[i] != 0:
                updates.append((M[i], M[i] + sum(A[i, l] * self.dw[l] for l in range(e)), "M += A dW"))
            for j in range(i, w):
                if C[i, j] != 0:
                    updates.append((C[i, j], C[i, j] + S[i, j] * dt, "C += S dt"))
        JY, YiJ = J * Y, Yi * J
        for i, j in product(range(w), range(w)):
            if pattern[i, j]:
                updates.append((Y[i, j], Y[i, j] + JY[i, j] * dt, "Y += J Y dt"))
                updates.append((Yi[i, j], Yi[i, j] - YiJ[i, j] * dt, "Yi -= Yi J dt"))
        for i in range(w):
            self.carried(str(x[i]), sp.Symbol(f"x0_{i}"))
        for i in range(w):
            updates.append((x[i], x[i] + b[i] * dt + sum(sig[i, l] * self.dw[l] for l in range(e)),
                            "X += b dt + sigma dW"))
        for sym, expr, comment in updates:
            nxt = self.assign(f"{sym}_next", expr, comment)
            if nxt != sym:  # an entry whose increment is structurally zero stays as it is
                self.commit.append((sym, nxt))

    def _coefficients(self):
        """b, J, H (q <= w) and sigma, through one CSE pass; named outputs, constants inlined."""
        w, e = self.w, self.e
        named: list[tuple[str, sp.Expr, str]] = [(f"b_{i}", self.drift[i], f"b_{i}") for i in range(w)]
        named += [(f"J_{i}_{j}", self.jac[i, j], f"d b_{i} / d x_{j}") for i in range(w) for j in range(w)
                  if self.jac[i, j] != 0]
        if self.second_order:
            named += [(f"H_{p}_{q}_{r}", h, f"d^2 b_{p} / d x_{q} d x_{r}") for (p, q, r), h in sorted(self.hess.items())]
        named += [(f"sigma_{i}_{l}", self.sigma[i, l], f"sigma[{i}, {l}]") for i in range(w) for l in range(e)
                  if self.sigma[i, l] != 0]
        symbolic = [(n, ex, c) for n, ex, c in named if not ex.is_Number]
        temps, reduced = sp.cse([ex for _, ex, _ in symbolic], symbols=sp.numbered_symbols("tmp"), order="canonical")
        for tmp, ex in temps:
            self.lines.append(Assignment(tmp, ex))
        value = {n: ex for n, ex, _ in named}
        for (name, original, comment), ex in zip(symbolic, reduced):
            self.lines.append(Assignment(sp.Symbol(name), ex, f"{comment} = {original}"))
            value[name] = sp.Symbol(name)
        b = [value[f"b_{i}"] for i in range(w)]
        J = sp.Matrix(w, w, lambda i, j: value.get(f"J_{i}_{j}", 0))
        H = {k: value[f"H_{k[0]}_{k[1]}_{k[2]}"] for k in self.hess} if self.second_order else {}
        sig = sp.Matrix(w, e, lambda i, l: value.get(f"sigma_{i}_{l}", 0))
        return b, J, H, sig

    def _symmetric(self, name, entry, comment):
        w = self.w
        vals = {}
        for i in range(w):
            for j in range(i, w):
                vals[i, j] = vals[j, i] = self.assign(f"{name}_{i}_{j}", entry(i, j), comment)
        return sp.Matrix(w, w, lambda i, j: vals[i, j])

    def _symmetric_state(self, name, increment):
        w = self.w
        vals = {}
        for i in range(w):
            for j in range(i, w):
                vals[i, j] = vals[j, i] = self.carried(f"{name}_{i}_{j}", 0) if increment(i, j) != 0 else sp.S.Zero
        return sp.Matrix(w, w, lambda i, j: vals[i, j])

    def _second_order_step(self, H, Y, Yi, S, C, updates):
        """Zh, Q, R and their increments (the second-variation part of MATH.md)."""
        w, dt = self.w, DT_SYMBOL
        rng = range(w)

        def h(p, q, r):
            return H.get((p, min(q, r), max(q, r)), 0)

        T1 = {(p, r, a): self.assign(f"T1_{p}_{r}_{a}", sum(h(p, q, r) * Y[q, a] for q in rng), "T1 = H[p; ., w] Y")
              for p in rng for r in rng for a in rng}
        T2 = {(p, a, c): self.assign(f"T2_{p}_{a}_{c}", sum(T1[p, r, a] * Y[r, c] for r in rng), "T2 = H[p; Y., Y.]")
              for p in rng for a in rng for c in range(a, w)}
        dZh = {(i, a, c): sum(Yi[i, p] * T2[p, a, c] for p in rng) for i in rng for a in rng for c in range(a, w)}
        Zh_sym = {k: (self.carried(f"Zh_{k[0]}_{k[1]}_{k[2]}", 0) if v != 0 else sp.S.Zero) for k, v in dZh.items()}

        def zh(i, a, c):
            return Zh_sym[i, min(a, c), max(a, c)]

        dQ = {(i, j, c): sum(S[i, a] * zh(j, a, c) for a in rng) for i in rng for j in rng for c in rng}
        Q = {k: (self.carried(f"Q_{k[0]}_{k[1]}_{k[2]}", 0) if v != 0 else sp.S.Zero) for k, v in dQ.items()}
        Ht = {(i, j, c): self.assign(f"Ht_{i}_{j}_{c}", sum(C[i, a] * zh(j, a, c) for a in rng) - Q[i, j, c],
                                     "Ht = C Zh - Q")
              for i in rng for j in rng for c in rng}
        dR = {(i, j, c): sum(Ht[i, j, a] * S[a, c] + S[j, a] * Ht[i, c, a] for a in rng)
              for i in rng for j in rng for c in range(j, w)}
        R_sym = {k: (self.carried(f"R_{k[0]}_{k[1]}_{k[2]}", 0) if v != 0 else sp.S.Zero) for k, v in dR.items()}
        for k, v in dQ.items():
            if v != 0:
                updates.append((Q[k], Q[k] + v * dt, "Q += S Zh dt"))
        for k, v in dR.items():
            if v != 0:
                updates.append((R_sym[k], R_sym[k] + v * dt, "R += (Ht S + S Ht^T) dt"))
        for k, v in dZh.items():
            if v != 0:
                updates.append((Zh_sym[k], Zh_sym[k] + v * dt, "Zh += Yi H[Y, Y] dt"))

        def r(i, j, c):
            return R_sym[i, min(j, c), max(j, c)]

        return zh, Q, r

    # the weight
    def build_weight(self):
        """Assignments of the target at a record time; returns (assignments, target, pivots)."""
        w, lines = self.w, []
        Cr = self.C + RIDGE_SYMBOL * sp.eye(w)
        D, invD, L = {}, {}, {}
        for k in range(w):
            D[k] = self.assign(f"D_{k}", Cr[k, k] - sum(L[k, j] ** 2 * D[j] for j in range(k)), "LDL^T pivot of C", lines)
            invD[k] = self.assign(f"invD_{k}", 1 / D[k], "", lines)
            for i in range(k + 1, w):
                L[i, k] = self.assign(f"L_{i}_{k}", (Cr[i, k] - sum(L[i, j] * L[k, j] * D[j] for j in range(k))) * invD[k],
                                      "LDL^T factor of C", lines)
        Linv = {}
        for i in range(w):
            Linv[i, i] = sp.S.One
            for k in range(i - 1, -1, -1):
                Linv[i, k] = self.assign(f"Li_{i}_{k}", -sum(L[i, j] * Linv[j, k] for j in range(k, i)), "L^-1", lines)
        Cinv = {}
        for a in range(w):
            for c in range(a, w):
                Cinv[a, c] = Cinv[c, a] = self.assign(
                    f"Cinv_{a}_{c}", sum(Linv[k, a] * Linv[k, c] * invD[k] for k in range(c, w)),
                    "C^-1 = L^-T D^-1 L^-1", lines)
        g = [sum(Cinv[i, j] * self.M[j] for j in range(w)) for i in range(w)]
        if self.second_order:
            zh, Q, R = self.Zh, self.Q, self.R
            v = [self.assign(f"v_{c}", sum(zh(j, j, c) for j in range(w))
                             - sum(Cinv[i, j] * Q[i, j, c] for i in range(w) for j in range(w)),
                             "v = tr Zh - <C^-1, Q>", lines) for c in range(w)]
            rho = [self.assign(f"rho_{c}", sum(Cinv[i, j] * R(i, j, c) for i in range(w) for j in range(w)),
                               "rho = <C^-1, R>", lines) for c in range(w)]
            g = [g[i] + v[i] - sum(Cinv[i, j] * rho[j] for j in range(w)) for i in range(w)]
        g = [self.assign(f"g_{i}", g[i], "C^-1 M + v - C^-1 rho", lines) for i in range(w)]
        target = [self.assign(f"target_{a}", -sum(self.Yi[i, a] * g[i] for i in range(w)), "-Yi^T g", lines)
                  for a in range(w)]
        pivots = [D[k] for k in range(w)]
        condition = w * sum(Cr[a, a] * Cinv[a, a] for a in range(w))
        return lines, target, pivots, condition

    def block(self, lanes, noise_lanes, description) -> Block:
        self.build_step()
        step = tuple(self.lines)
        weight, target, pivots, condition = self.build_weight()
        return Block(
            lanes=lanes, noise_lanes=noise_lanes, x=self.x, x0=tuple(sp.Symbol(f"x0_{i}") for i in range(self.w)),
            dw=self.dw, state=tuple(self.state), step=step, commit=tuple(self.commit), weight=tuple(weight),
            target=tuple(target), pivots=tuple(pivots), condition=condition, health=self.health,
            second_order=self.second_order, description=description,
        )


def build_ir(derivation, *, force_coupled: bool = False, first_order_only: bool = False) -> KernelIR:
    """Build the kernel IR of a derivation.

    Args:
        derivation: a :class:`~symscore.Derivation`.
        force_coupled: treat all coordinates as one component (testing the general path).
        first_order_only: drop the second-variation terms (Zh, Q, R): a *wrong* target for a
            nonlinear drift, kept to show that those terms matter.
    """
    sde = derivation.sde
    drift, sigma = sde.bound_drift(), sde.bound_diffusion()
    m, d = sde.m, sde.d
    jac_pattern = np.array([[sp.diff(drift[i], sde.state[j]) != 0 for j in range(m)] for i in range(m)], dtype=bool)
    sigma_pattern = np.array([[sigma[i, l] != 0 for l in range(d)] for i in range(m)], dtype=bool)
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
    groups: dict[tuple, list] = {}
    for coords, cols in comps:
        local_x = tuple(sp.Symbol(f"x_{c}") for c in range(len(coords)))
        rename = {sde.state[g]: local_x[c] for c, g in enumerate(coords)} | {sde.time: T_SYMBOL}
        local_drift = tuple(drift[g].xreplace(rename) for g in coords)
        local_sigma = sigma.extract(list(coords), list(cols)).xreplace(rename)
        key = (tuple(map(sp.srepr, local_drift)), sp.srepr(local_sigma))
        groups.setdefault(key, [local_drift, local_sigma, local_x, [], []])
        groups[key][3].append(coords)
        groups[key][4].append(cols)
    blocks = []
    for local_drift, local_sigma, local_x, lanes, noise_lanes in groups.values():
        builder = _BlockBuilder(list(local_drift), local_sigma, local_x, None if not first_order_only else False)
        names = [", ".join(str(sde.state[g]) for g in coords) for coords in lanes]
        description = f"{len(lanes)} lane(s) of width {len(local_x)}: " + "; ".join(names[:4]) + (
            " ..." if len(names) > 4 else "")
        blocks.append(builder.block(tuple(lanes), tuple(noise_lanes), description))
    return KernelIR(m=m, d=d, blocks=tuple(blocks), structure=derivation.structure)
