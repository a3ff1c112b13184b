"""The intermediate representation (IR) of a score kernel, built by pure functions of the derivation.

:func:`build_ir` turns a :class:`~symscore.Derivation` into a :class:`KernelIR`: blocks of the
recursion of docs/math.md, each covering one or more independent components of the state, which
every backend's printer turns into code. One module per mechanism, each depending only on those
above it in this list:

``values``       the frozen values: :class:`LocalSystem` (a component in local coordinates), the two
                 block forms behind the :class:`KernelBlock` protocol (:class:`Block`, unrolled
                 assignments; :class:`LoopBlock`, coefficient tables) and :class:`KernelIR`;
``unrolled``     the unrolled formulas, one pure function each (coefficients, first and second
                 variation, weight assembly, the time-weighted covering field) composed by
                 :func:`block_of`; the formulas of the recursion are written out there;
``loop_tables``  the loop form: numbers times distinct factors per coefficient array, H as rank-one
                 terms where it is one (:func:`loop_block_of`), and the size that chooses the form;
``grouping``     components, lanes and lane constants, and :func:`build_ir`, which picks each block's
                 form and builds it.

The weight itself (plain, or an ablation) is chosen by a :class:`~symscore.compiler.variant.Variant`.
"""
from .grouping import FORMS, build_ir, local_system
from .loop_tables import LOOP_FORM_TERMS, loop_block_of, rank_one_hessian
from .unrolled import (
    Coefficients,
    State,
    StepPart,
    Weight,
    block_of,
    coefficients,
    first_order_state,
    first_variation_step,
    noise_terms,
    second_variation_step,
    time_weighted,
    unrolled_terms,
    variation_pattern,
    weight_assembly,
)
from .values import (
    DT_SYMBOL,
    RIDGE_SYMBOL,
    T_SYMBOL,
    ZERO,
    Assignment,
    Block,
    CoefficientTable,
    KernelBlock,
    KernelIR,
    LocalSystem,
    LoopBlock,
    RankOneHessian,
)

__all__ = ["Assignment", "Block", "LoopBlock", "KernelBlock", "CoefficientTable", "RankOneHessian", "LOOP_FORM_TERMS",
           "FORMS", "unrolled_terms", "rank_one_hessian", "loop_block_of", "KernelIR", "build_ir", "local_system",
           "LocalSystem", "Coefficients", "State", "StepPart", "Weight", "coefficients", "variation_pattern",
           "first_order_state", "noise_terms", "first_variation_step", "second_variation_step", "weight_assembly",
           "time_weighted", "block_of", "T_SYMBOL", "DT_SYMBOL", "RIDGE_SYMBOL", "ZERO"]
