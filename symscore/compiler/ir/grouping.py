"""From a derivation to the kernel's blocks: components, lanes and the form of each block.

Coordinates are first split into independent *components*: coordinates linked by the Jacobian
pattern (or by sigma[p, l] depending on x_q) or by a shared noise column. The score target of a
component depends on that component alone (Y, C, Zh, Q, R are block diagonal), so a separable SDE
becomes m independent 1-D problems. Each component is renamed to local coordinates
(:func:`local_system`, a :class:`~symscore.compiler.ir.values.LocalSystem`).

Components whose local equations are identical (up to renaming the state) form one block,
evaluated once per *lane* (one lane per component): a 64-d separable SDE compiles to a single 1-D
recursion run over 64 lanes. Components that differ only in the numbers of an additive noise (the
degree-dependent scales of a spherical field) share a block too, the numbers becoming *lane
constants* loaded per lane.

Each block is then built in one of two forms (:data:`FORMS`): unrolled
(:func:`~symscore.compiler.ir.unrolled.block_of`) or, when its unrolled code would exceed
:data:`~symscore.compiler.ir.loop_tables.LOOP_FORM_TERMS` terms, the loop form
(:func:`~symscore.compiler.ir.loop_tables.loop_block_of`).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import sympy as sp

from ..._errors import SDESpecError, SymscoreError
from ..variant import Variant
from .loop_tables import LOOP_FORM_TERMS, loop_block_of
from .unrolled import block_of, unrolled_terms
from .values import T_SYMBOL, KernelIR, LocalSystem

__all__ = ["FORMS", "build_ir", "local_system"]

#: The forms ``build_ir`` accepts: "auto" chooses per block, the others force one for every block.
FORMS = ("auto", "unrolled", "loop")


def build_ir(derivation, *, variant: Variant = Variant(), form: str = "auto") -> KernelIR:
    """Build the kernel IR of a derivation.

    Args:
        derivation: a :class:`~symscore.Derivation` (its J and H are reused, not recomputed).
        variant: the weight to build (:class:`~symscore.compiler.variant.Variant`); the default is
            the plain target. ``force_coupled`` makes every coordinate one component; the other
            fields go to the block builders. A ``covering_weight`` a(t) is evaluated at every grid
            time t_k from 0 (the left-point rule: ``t + dt`` is r at the step's right end); it
            needs sigma(t) and the unrolled form.
        form: "unrolled" (straight-line scalar code), "loop" (:class:`~symscore.compiler.ir.values.LoopBlock`)
            or "auto": the loop form for blocks whose unrolled form exceeds
            :data:`~symscore.compiler.ir.loop_tables.LOOP_FORM_TERMS` terms.
    """
    if form not in FORMS:
        raise SymscoreError(f"form: expected one of {', '.join(map(repr, FORMS))}, got {form!r}")
    if variant.covering_weight is not None and derivation.diffusion_gradient:
        raise SymscoreError("covering_weight: the time-weighted covering field is derived for a diffusion "
                            "sigma(t) that does not depend on the state; this SDE has sigma(t, x)")
    sde = derivation.sde
    blocks = []
    for abstract, members in _lane_groups(derivation, _components_of(derivation, variant.force_coupled)):
        loop = form == "loop" or (form == "auto" and unrolled_terms(abstract, variant.second_order) > LOOP_FORM_TERMS)
        distinct = sorted({values for _, _, values in members})
        if loop and variant.covering_weight is not None:
            raise SymscoreError(
                "covering_weight: the time-weighted covering field is built for the unrolled form only; a block "
                f"of width {abstract.width} needs the loop form here (pass form='unrolled' to force it)")
        if loop and variant.negate:
            raise SymscoreError(
                f"negate: the sign-flipped variants are built for the unrolled form only; a block of width "
                f"{abstract.width} needs the loop form here (pass form='unrolled' to force it)")
        if len(distinct) > 1 and not loop:  # one block, the numbers loaded per lane
            blocks.append(_make_block(sde, abstract, members, variant, False, constants=True))
            continue
        for values in distinct:  # the numbers bound: one block per distinct set (the loop form has no lane tables)
            bound = replace(abstract, sigma=abstract.sigma.xreplace(dict(zip(_constant_symbols(len(values)), values))))
            blocks.append(_make_block(sde, bound, [mb for mb in members if mb[2] == values], variant, loop))
    return KernelIR(m=sde.m, d=sde.d, blocks=tuple(blocks), structure=derivation.structure)


def _components_of(derivation, force_coupled: bool) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(coordinates, noise columns) of every component; an error if one receives no noise."""
    sde = derivation.sde
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
    return comps


def _lane_groups(derivation, comps) -> list[tuple[LocalSystem, list]]:
    """Components with the same local equations, up to the numbers of an additive noise: (the local
    system with lane constants, [(coordinates, noise columns, constant values) per member])."""
    groups: dict[tuple, list] = {}
    for coords, cols in comps:
        system = local_system(derivation, coords, cols)
        abstract, values = _lane_constants(system)
        key = (tuple(map(sp.srepr, system.drift)), sp.srepr(abstract.sigma))
        groups.setdefault(key, [abstract, []])
        groups[key][1].append((coords, cols, values))
    return [(abstract, members) for abstract, members in groups.values()]


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


def local_system(derivation, coords, cols) -> LocalSystem:
    """Component ``coords`` (noise columns ``cols``) renamed to local x_0..x_{w-1} and t, parameters bound.

    J and H are the derivation's, restricted and renamed: nothing is differentiated here.
    """
    sde = derivation.sde
    x = tuple(sp.Symbol(f"x_{c}") for c in range(len(coords)))
    rename = {sde.state[g]: x[c] for c, g in enumerate(coords)} | {sde.time: T_SYMBOL}

    # parameters are numbers, so binding them and renaming the state is one substitution; the
    # entries of a wide block share subexpressions (theta . x in every one), rebuilt once each
    local = _SharedSubstitution({**sde.params, **rename})

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
    return LocalSystem(x=x, drift=drift, jacobian=jacobian, hessian=hessian, sigma=sigma.applyfunc(local),
                       diffusion_gradient=gradient, diffusion_hessian=hessian_s)


class _SharedSubstitution:
    """expr.xreplace(mapping) for many expressions, each distinct subexpression rebuilt once.

    ``xreplace`` rebuilds every node of every expression it is given; the m^3 Hessian entries of a
    coupled drift all contain the same inner sums, so at m = 24 renaming them took 15 s."""

    def __init__(self, mapping):
        self._memo = dict(mapping)

    def __call__(self, expr):
        memo = self._memo
        if expr in memo:
            return memo[expr]
        result = expr.func(*map(self, expr.args)) if expr.args else expr
        memo[expr] = result
        return result


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


def _make_block(sde, system, members, variant: Variant, loop: bool, constants: bool = False):
    """The block of ``members`` (lanes) sharing ``system``, in the loop or unrolled form."""
    lanes = [coords for coords, _, _ in members]
    names = [", ".join(str(sde.state[g]) for g in coords) for coords in lanes]
    description = f"{len(lanes)} lane(s) of width {system.width}: " + "; ".join(names[:4]) + (
        " ..." if len(names) > 4 else "")
    if loop:
        return loop_block_of(system, lanes, [cols for _, cols, _ in members], description + " (loop form)",
                             variant=variant)
    extra = {}
    if constants:
        values = [tuple(float(v) for v in vals) for _, _, vals in members]
        extra = {"constants": _constant_symbols(len(values[0])), "constant_values": values}
        description += f" (lane constants {', '.join(map(str, extra['constants']))} per lane)"
    if variant.covering_weight is not None:
        description += f" (covering field weighted by a(t) = {variant.covering_weight})"
    if variant.negate:
        description += f" (wrong sign of {', '.join(variant.negate)})"
    return block_of(system, lanes, [cols for _, cols, _ in members], description, variant=variant, **extra)
