"""The loop form of a block: coefficient tables of numbers times distinct factors.

A coupled component of width w unrolls into about w^2 nnz(Y) products per step
(:func:`~symscore.compiler.ir.unrolled.unrolled_terms`): beyond :data:`LOOP_FORM_TERMS` the
generated code takes minutes to compile. Such a block is instead described by data that the loop
form of :mod:`symscore.compiler.dense` contracts over index ranges:

* the *factors*: every entry of b, J, H, sigma, G, Hs is a number times one of a few distinct
  expressions of (t, x) (:func:`_number_times_factor`), computed once per step through one CSE pass;
* one :class:`~symscore.compiler.ir.values.CoefficientTable` per coefficient array: (flat index,
  number, which factor) for each structurally non-zero entry;
* for sigma(t), H as a short sum of rank-one terms where it is one
  (:class:`~symscore.compiler.ir.values.RankOneHessian`, :func:`rank_one_hessian`): a ridge drift
  a f(theta . x) then costs O(w^3) per step in the second variation instead of O(w^4).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp

from ..variant import Variant
from .unrolled import unrolled_terms
from .values import Assignment, CoefficientTable, LocalSystem, LoopBlock, RankOneHessian

__all__ = ["LOOP_FORM_TERMS", "rank_one_hessian", "loop_block_of"]

#: Blocks whose unrolled form would exceed this many terms (:func:`unrolled_terms`) use the loop form.
#: Measured on 2 cores (benchmarks/bench_wide.py): a coupled w = 4 block (256 terms) unrolls into a
#: kernel numba compiles in about 12 s, w = 6 (1296) takes minutes, w = 8 does not finish.
LOOP_FORM_TERMS = 500


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
    scale, factor = _normalized(rest)
    return number * scale, factor


@lru_cache(maxsize=1 << 16)
def _normalized(product: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(scale, factor) with product = scale * factor, each sum among the product's multiplicands
    divided by the number of its term whose non-numeric part sorts first (the same for any
    multiple of it). Cached: the m^3 Hessian entries of a wide block share a few products."""
    scale, factors = sp.S.One, []
    for term in sp.Mul.make_args(product):
        base, power = term.as_base_exp()
        if isinstance(base, sp.Add) and power.is_Integer:
            first = min((a.as_coeff_Mul() for a in base.args), key=lambda cr: sp.default_sort_key(cr[1]))[0]
            if first != 0 and first != 1:
                base = sp.Add(*(c / first * r for c, r in (a.as_coeff_Mul() for a in base.args)))
                scale *= first**power
        factors.append(base**power)
    return scale, sp.Mul(*factors)


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


def loop_block_of(system: LocalSystem, lanes, noise_lanes, description: str, *,
                  variant: Variant = Variant()) -> LoopBlock:
    """The loop-form block of one local system: the coefficients' distinct factors through one CSE
    pass, and a table of (index, number, factor) per coefficient array.

    With sigma(t), H is first tried as a short sum of rank-one terms (:func:`rank_one_hessian`),
    each entry split into its additive terms (a sum of ridge functions sum_k a_k f_k(c_k . x) has
    one term per ridge); if that fails, H gets its table like the other arrays. ``variant`` decides
    whether the second variation is carried and which of its terms are dropped (a covering weight
    is refused before, by :func:`~symscore.compiler.ir.grouping.build_ir`).
    """
    second_order = variant.second_order and (bool(system.hessian) or bool(system.diffusion_gradient))
    factor_of: dict[sp.Expr, int] = {}
    factor_exprs: list[sp.Expr] = []
    factor_comments: list[str] = []
    tables: dict[str, tuple] = {}
    shapes = _table_shapes(system.width, system.n_noise)

    def factor_index(rest, source) -> int:
        """The index of factor ``rest``, a new one if needed; ``source`` = (table name, index, entry)
        becomes its comment (printed only here: printing every entry of a wide H took most of the build)."""
        if rest == 1:
            return -1
        if rest not in factor_of:
            name, index, expr = source
            factor_of[rest] = len(factor_exprs)
            factor_exprs.append(rest)
            factor_comments.append(f"{name}{list(index)} = {expr}")
        return factor_of[rest]

    entries = list(_entries(system, second_order))
    rank_one = None
    if second_order and not system.diffusion_gradient:
        split = [(int(np.ravel_multi_index(index, shapes["H"])), *_number_times_factor(term), (name, index, expr))
                 for name, index, expr in entries if name == "H"
                 for term in sp.Add.make_args(sp.sympify(expr)) if term != 0]
        group_of = {rest: k for k, rest in enumerate(dict.fromkeys(rest for _, _, rest, _ in split))}
        groups = list(group_of)
        rank_one = rank_one_hessian([flat for flat, *_ in split], [float(number) for _, number, _, _ in split],
                                    [group_of[rest] for _, _, rest, _ in split], system.width)
        if rank_one is not None:  # the factors of H are those of its terms
            sources = {rest: source for _, _, rest, source in reversed(split)}
            which = tuple(factor_index(groups[k], sources[groups[k]]) for k in rank_one.which)
            rank_one = RankOneHessian(which, rank_one.u, rank_one.v, rank_one.v2)
            entries = [entry for entry in entries if entry[0] != "H"]
    for name, index, expr in entries:
        expr = sp.sympify(expr)
        if expr == 0:
            continue
        coefficient, rest = _number_times_factor(expr)
        which = factor_index(rest, (name, index, expr))
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
        keep_p="P" not in variant.drop, keep_psi="RPsi" not in variant.drop,
        estimated_terms=unrolled_terms(system, second_order), description=description, rank_one=rank_one,
    )
