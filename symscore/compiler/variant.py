"""The ablations of the score weight, as one frozen value passed to ``compile``.

The plain kernel returns the closed-form Malliavin target of docs/math.md. A :class:`Variant`
asks for another weight built by the same recursion, to measure what a part of it contributes or
to build a second estimator beside the plain one:

    >>> import symscore as ss
    >>> wrong = ss.Variant(first_order_only=True)           # the target without Zh, Q, R
    >>> kern = ss.compile(ss.library.cubic(m=1), variant=wrong)   # doctest: +SKIP

The variant is part of the kernel's cache key and travels as one object through the compiler
(``module_key``, ``generate_source``, ``build_ir`` and the block builders).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .._errors import SymscoreError

__all__ = ["Variant", "DROPPABLE_TERMS", "NEGATABLE_TERMS"]

#: The terms of a state-dependent sigma(t, x) that ``Variant(drop=...)`` may leave out (docs/math.md):
#: "P", the integral of A_l K_l, and "RPsi", the Psi part of R's increment.
DROPPABLE_TERMS = ("P", "RPsi")
#: The terms whose sign ``Variant(negate=...)`` may flip: "R", whose part of the weight,
#: -C^-1 rho with rho = <C^-1, R>, enters with the wrong sign.
NEGATABLE_TERMS = ("R",)

# a(t) may use the time and the step of the left-point rule (t + dt is the step's right end)
_WEIGHT_SYMBOLS = frozenset({sp.Symbol("t"), sp.Symbol("dt")})


@dataclass(frozen=True)
class Variant:
    """Which weight a kernel computes; ``Variant()`` is the plain Malliavin target.

    Attributes:
        force_coupled: treat all coordinates as one component, even where the drift and the
            noise split them into independent ones. The target is the same (up to rounding); the
            code is the general, coupled path, which tests compare with the split one.
        first_order_only: leave out the second variation (Zh, Q, R and, for sigma(t, x), P). For
            a nonlinear drift this is a deliberately *wrong* target: its bias shows that the
            second-order terms matter (for a linear drift nothing changes).
        drop: for a state-dependent sigma(t, x), names among ``"P"`` and ``"RPsi"`` of terms to
            leave out; deliberately wrong targets too, kept to show that each term matters.
        negate: names among ``"R"`` of terms whose sign is flipped: the R part of the weight,
            -C^-1 rho, enters as +C^-1 rho. A deliberately wrong target (a sign error a hand
            derivation could make), kept for the negative controls of the truth tests; unrolled
            form only.
        covering_weight: a(t), an expression (or its text) in ``t`` and the step ``dt``, positive
            at every grid time, for the time-weighted covering field u_r = a(r) A_r^T (C^a_t)^-1
            Y_t^-1 (docs/math.md, "Control variate"). Its target has the score as conditional
            mean too, with another noise: the ``malliavin-cv`` target pairs it with the plain one
            as a control variate. sigma(t) only, unrolled form only; None (default) is a = 1.

    Values are checked on construction (errors name the field); ``drop`` is kept sorted without
    repeats and ``covering_weight`` as a SymPy expression, so equal requests give equal variants
    and the same cache key.
    """

    force_coupled: bool = False
    first_order_only: bool = False
    drop: tuple[str, ...] = ()
    covering_weight: sp.Expr | str | None = None
    negate: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("force_coupled", "first_order_only"):
            if not isinstance(getattr(self, name), bool):
                raise SymscoreError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        for field, allowed in (("drop", DROPPABLE_TERMS), ("negate", NEGATABLE_TERMS)):
            object.__setattr__(self, field, _checked_names(getattr(self, field), field, allowed))
            if self.first_order_only and getattr(self, field):
                raise SymscoreError(f"{field}: {getattr(self, field)} are second-order terms, which first_order_only "
                                    "leaves out already; ask for one ablation at a time")
        if self.covering_weight is not None:
            object.__setattr__(self, "covering_weight", _checked_weight(self.covering_weight))

    @property
    def second_order(self) -> bool:
        """Whether the second variation is requested (it is built only where the drift is nonlinear
        or sigma depends on the state)."""
        return not self.first_order_only


def _checked_names(names, field: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` (one name or an iterable of them) as a sorted tuple without repeats, each among
    ``allowed``, else an error naming ``field``."""
    names = (names,) if isinstance(names, str) else names
    try:
        names = tuple(names)
    except TypeError:
        raise SymscoreError(f"{field}: expected a tuple of names among {allowed}, got {names!r}") from None
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise SymscoreError(f"{field}: expected names among {allowed}, got {unknown[0]!r}")
    return tuple(sorted(set(names)))


def _checked_weight(weight) -> sp.Expr:
    """a(t) as a SymPy expression of ``t`` and ``dt`` (else an error naming ``covering_weight``)."""
    try:
        expr = sp.sympify(weight)
    except (sp.SympifyError, TypeError) as exc:
        raise SymscoreError(f"covering_weight: expected a SymPy expression in t, got {weight!r}") from exc
    if not isinstance(expr, sp.Expr):
        raise SymscoreError(f"covering_weight: expected a SymPy expression in t, got {weight!r}")
    extra = expr.free_symbols - _WEIGHT_SYMBOLS
    if extra:
        raise SymscoreError(f"covering_weight: expected an expression in t (and the step dt) only, got {expr} "
                            f"(free symbols {', '.join(sorted(map(str, extra)))})")
    return expr
