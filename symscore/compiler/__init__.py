"""Stage 3, the compiler: derivation -> IR -> printed module -> loaded kernel.

``variant``    :class:`Variant`, the weight a kernel computes (the plain target or an ablation);
``ir``         the kernel's intermediate representation, built by pure functions of the derivation:
               components and lanes, the unrolled formulas of the recursion (docs/math.md) and the
               loop form's coefficient tables, one sub-module each;
``printing``   one SymPy printer per target language over those assignments;
``codegen``    renders a backend's module skeleton (Jinja2 templates in ``templates/``);
``dense``      the loop form's step, contracting the IR's coefficient tables over index ranges;
``runtime``    host-side checks (time grid, x0, dW) and failure reports, shared by :class:`Kernel`
               and rendered verbatim into emitted modules;
``backends``   the registry of backends, one module each (printer, template, array adapter, options);
``build``      ``compile``/``emit``; ``kernel`` :class:`Kernel`/:class:`Paths`; ``cache`` keeps modules on disk.
"""
from .variant import Variant

__all__ = ["Variant"]
