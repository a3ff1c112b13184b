"""The values of the IR: what the block builders produce and the printers read.

A :class:`KernelIR` is a tuple of blocks covering every state coordinate once. A block has one of
two forms, named by its class attribute ``form`` and sharing the :class:`KernelBlock` protocol:

* :class:`Block` (``form = "unrolled"``): straight-line scalar assignments, one per entry of the
  recursion's arrays (built by :mod:`~symscore.compiler.ir.unrolled`);
* :class:`LoopBlock` (``form = "loop"``): the distinct factors of the coefficients and tables of
  numbers (:class:`CoefficientTable`, :class:`RankOneHessian`) that the loop form of
  :mod:`symscore.compiler.dense` contracts (built by :mod:`~symscore.compiler.ir.loop_tables`).

:class:`LocalSystem` is the input of both builders: one component of the SDE in local coordinates.
Every value is frozen: the IR of a derivation is a pure function of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import sympy as sp

__all__ = ["Assignment", "LocalSystem", "KernelBlock", "Block", "CoefficientTable", "RankOneHessian", "LoopBlock",
           "KernelIR", "T_SYMBOL", "DT_SYMBOL", "RIDGE_SYMBOL", "ZERO"]

#: The local time, step and ridge symbols of every block's expressions.
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


class KernelBlock(Protocol):
    """What every block offers, whatever its form; a printer dispatches on ``form``, never on the type.

    Attributes:
        form: ``"unrolled"`` (:class:`Block`) or ``"loop"`` (:class:`LoopBlock`), a class attribute.
        lanes: ``lanes[l][c]`` is the global state coordinate of local coordinate c in lane l.
        noise_lanes: ``noise_lanes[l][e]`` is the global noise column of local column e.
        width, n_noise: the local state and noise dimensions.
        description: one line for the generated module's header.
        second_order: whether the second variation (Zh, Q, R) is carried.
        estimated_terms: the unrolled form's estimated size
            (:func:`~symscore.compiler.ir.unrolled.unrolled_terms`), which chose the form.
        constants, constant_values: the lane constants and their values per lane (empty for the
            loop form, which binds its numbers).
    """

    form: ClassVar[str]
    lanes: tuple[tuple[int, ...], ...]
    noise_lanes: tuple[tuple[int, ...], ...]
    description: str
    second_order: bool
    estimated_terms: int
    constants: tuple[sp.Symbol, ...]
    constant_values: tuple[tuple[float, ...], ...]

    @property
    def width(self) -> int: ...

    @property
    def n_noise(self) -> int: ...


@dataclass(frozen=True)
class Block:
    """One independent sub-system in the unrolled form, run once per lane.

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
        condition: the condition estimate kappa of C + ridge I (:mod:`~symscore.compiler.ir.unrolled`),
            in weight symbols.
        health: (bit, symbols) groups whose sum must stay finite after every step: bit 1 the
            state X, bit 2 the first variation Y and its inverse Yi, bit 4 the Malliavin matrix C.
        second_order: whether Zh, Q, R are carried (False for a linear drift).
        constants: the lane constants ``lane_k0, lane_k1, ...`` of an additive noise that differs
            between lanes only in its numbers (the degree-dependent scales of a spherical field);
            ``constant_values[l]`` are their values in lane l, loaded when the lane starts.
        estimated_terms: the size estimate that chose this form (:class:`KernelBlock`).
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
    estimated_terms: int = 0
    form: ClassVar[str] = "unrolled"

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
        keep_p, keep_psi: False only for the wrong variants of ``Variant(drop=...)``.
        estimated_terms: the unrolled form's estimated size, for the header (:class:`KernelBlock`).
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
    form: ClassVar[str] = "loop"
    #: a loop-form block binds its numbers (no lane constants; one block per distinct set)
    constants: ClassVar[tuple] = ()
    constant_values: ClassVar[tuple] = ()

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
    blocks: tuple[KernelBlock, ...]
    structure: str
    header: tuple[str, ...] = field(default=())
