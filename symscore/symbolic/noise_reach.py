"""How the noise reaches each coordinate: the structural Hoermander bracket depth of an SDE.

Coordinate i is hit by the noise directly when some sigma[i, l] is not identically zero (depth 0);
otherwise it receives noise only through the drift: depth r_i = 1 + the least depth of a
coordinate x_j that b_i depends on (J[i, j] not identically zero, parameters bound). Depth r is
the number of brackets [b, .] with the drift that the noise field needs before it points along
coordinate i (Hoermander's condition, read off the sparsity patterns: a structural, generic
depth; a Jacobian entry that vanishes at a point, like 2 p for b_q = p^2 at p = 0, can make it
larger there). It sets the small-t order of the Malliavin matrix: C_t[i, i] ~ t^(2 r_i + 1), so
gamma_t^{-1} = O(t^-(2 r + 1)) with r the largest depth (1/t elliptic, 1/t^3 for a damped
pendulum with noise on the momentum). A coordinate the noise never reaches (r_i = None) has a
singular C_t at every t: the score is undefined.

What this means for the left-point Euler scheme of docs/math.md (C_k = dt sum_{j<k} A_j A_j^T with
A_j = Yi_j sigma(t_j)): Yi_j = I - j dt J + ... brings in one more power of J per step, so C_k has
full rank only from step r + 1 on; and a column of sigma that vanishes at t = 0 (sub-VP) adds
nothing at step 0, one step later. The depth-r entry of A_j grows like j^r, so C_k[i, i] is the
left-point Riemann sum sum_{j<k} j^(2 r) of the integral k^(2 r + 1) / (2 r + 1); their ratio is
about 1 - (2 r + 1) / (2 k), at least 1/2 from k = 2 r + 1 on. Over a pure chain of integrators
the Jacobi-scaled condition number of C_k grows with k towards its continuous-time value, so from
that step on the scheme's C is invertible, no worse conditioned than C_t itself, and resolves its
t^(2 r + 1) growth to within a factor 2: :attr:`NoiseReach.resolved_steps`.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

__all__ = ["NoiseReach", "noise_reach"]


@dataclass(frozen=True)
class NoiseReach:
    """How the noise reaches each coordinate (module docstring).

    Attributes:
        depth: per coordinate, the bracket depth r_i (0: noise acts directly), or None when the
            noise never reaches it.
        via: per coordinate, the coordinate whose drift coupling brings the noise (on a shortest
            chain), or None for depth 0 and unreached coordinates.
        late_columns: noise columns l with sigma[:, l] identically zero at t = 0 (the first Euler
            step adds nothing through them).
        delay: per coordinate, 1 when every shortest chain to it starts from an entry of sigma that
            vanishes at t = 0, else 0.
    """

    depth: tuple[int | None, ...]
    via: tuple[int | None, ...]
    late_columns: tuple[int, ...]
    delay: tuple[int, ...]

    @property
    def unreached(self) -> tuple[int, ...]:
        """Coordinates the noise never reaches (C_t singular for every t)."""
        return tuple(i for i, r in enumerate(self.depth) if r is None)

    @property
    def max_depth(self) -> int:
        """The largest depth over the reached coordinates (0: elliptic in the structural sense)."""
        return max((r for r in self.depth if r is not None), default=0)

    @property
    def small_t_order(self) -> int:
        """n with C_t's smallest scale ~ t^n (2 r + 1): gamma_t^{-1} = O(t^-n) as t -> 0."""
        return 2 * self.max_depth + 1

    @property
    def invertible_steps(self) -> int:
        """Left-point Euler steps after which the scheme's C is (generically) invertible: r_i + 1 + delay_i."""
        return max((r + 1 + a for r, a in zip(self.depth, self.delay) if r is not None), default=1)

    @property
    def resolved_steps(self) -> int:
        """Steps after which the scheme's C resolves every C_t[i, i] ~ t^(2 r_i + 1) within a factor 2:
        2 r_i + 1 + delay_i (1 for an elliptic sigma that does not vanish at t = 0)."""
        return max((2 * r + 1 + a for r, a in zip(self.depth, self.delay) if r is not None), default=1)


def _is_zero_at_start(entry: sp.Expr, time: sp.Symbol) -> bool:
    value = entry.xreplace({time: sp.S.Zero})
    if value.has(sp.nan, sp.zoo):  # 0/0 and the like: be conservative, no noise at step 0
        return True
    return value == 0


def noise_reach(derivation) -> NoiseReach:
    """The :class:`NoiseReach` of ``derivation``'s SDE, from the sparsity of sigma and J (parameters bound)."""
    sde = derivation.sde
    m, time = sde.m, sde.time
    sigma = sde.bound_diffusion()
    columns: dict[int, list[int]] = {}
    for (i, l), entry in sigma.todok().items():
        if entry != 0:
            columns.setdefault(i, []).append(l)
    late = tuple(sorted(l for l in {l for ls in columns.values() for l in ls}
                        if all(_is_zero_at_start(sigma[i, l], time) for i in range(m) if sigma[i, l] != 0)))
    # costs (depth, delay) compared lexicographically: the fewest brackets first
    best: list[tuple[int, int] | None] = [None] * m
    via: list[int | None] = [None] * m
    for i, ls in columns.items():
        # per entry, not per column: sigma = [[sqrt(t), 0], [1, 1]] has no late column, yet the first
        # Euler step adds nothing to coordinate 0
        best[i] = (0, 0 if any(not _is_zero_at_start(sigma[i, l], time) for l in ls) else 1)
    # b_i depends on x_j: an edge j -> i (parameters set to 0 remove a coupling)
    parents: dict[int, list[int]] = {}
    for (i, j), entry in derivation.jacobian.todok().items():
        if i != j and entry.xreplace(sde.params) != 0:
            parents.setdefault(i, []).append(j)
    changed = True
    while changed:  # Bellman-Ford over the sparse pattern (J is sparse; few rounds)
        changed = False
        for i, js in parents.items():
            for j in js:
                if best[j] is None:
                    continue
                candidate = (best[j][0] + 1, best[j][1])
                if best[i] is None or candidate < best[i]:
                    best[i], via[i], changed = candidate, j, True
    return NoiseReach(depth=tuple(None if b is None else b[0] for b in best), via=tuple(via),
                      late_columns=late, delay=tuple(0 if b is None else b[1] for b in best))
