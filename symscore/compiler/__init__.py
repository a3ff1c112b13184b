"""Stage 3, the compiler: derivation -> IR -> printed module -> loaded kernel.

``variant``    :class:`Variant`, the weight a kernel computes (the plain target or an ablation);
``ir``         the kernel's intermediate representation, built by pure functions of the derivation:
               components and lanes, the unrolled formulas of the recursion (docs/math.md) and the
               loop form's coefficient tables, one sub-module each;
``printing``   one SymPy printer per target language over those assignments;
``codegen``    renders a backend's module skeleton (Jinja2 templates in ``templates/``);
``dense``, ``dense_torch``  the loop form's step over numpy arrays (numba) and torch tensors,
               contracting the IR's coefficient tables over index ranges;
``runtime``    the time grid, input checks, failure reports and the Philox stream over numpy;
``host``       the host side written once over an array namespace (checks, chunks, the re-run of
               failed paths, outputs), with ``host_numba``, ``host_torch``, ``host_triton``,
               ``torch_loop``, ``philox_numba`` and ``philox_torch`` for each backend: all shared
               by :class:`Kernel` and rendered verbatim into emitted modules;
``backends``   the registry of backends, one module each (printer, template, kernel, options);
``build``      ``compile``/``emit``; ``kernel`` :class:`Kernel`/:class:`Paths`; ``cache`` keeps modules on disk.
"""
from .variant import Variant

__all__ = ["Variant"]
