"""``compile(sde)`` -> :class:`~symscore.Kernel` and ``emit(sde)`` -> module source: the compiler's entry points.

SDE -> derivation -> IR (:func:`~symscore.compiler.ir.build_ir`) -> source printed for the backend
(:func:`~symscore.compiler.codegen.render_source`) -> module on disk under a hash of all that
shapes the source (:mod:`~symscore.compiler.cache`) -> the backend's kernel class around it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .._errors import SymscoreError
from .._version import __version__
from ..spec.sde import SDE
from .backends import get_backend
from .cache import atomic_write, load_or_write_module
from .codegen import generator_text, render_source, template_text
from .ir import FORMS, build_ir
from .variant import Variant

__all__ = ["compile", "emit", "generate_source", "module_key"]


def compile(sde: SDE, backend: str = "numba", dtype: str = "float64", device=None, *, compile: bool = False,
            form: str = "auto", variant: Variant = Variant()):
    """Generate, cache and load the score kernel of ``sde``.

    Args:
        sde: the :class:`~symscore.SDE`.
        backend: a name in :data:`symscore.compiler.backends.BACKENDS`: ``"numba"`` (CPU, parallel
            over paths) or ``"torch"`` (vectorised over paths, CPU or GPU).
        dtype: ``"float64"`` (default) or, for torch, ``"float32"`` (relative error of the target
            against float64 measured at median 3e-7, 99th percentile 2e-5; see the README).
        device: numba: None or ``"cpu"``; torch: None (CPU), ``"cpu"``, ``"cuda"`` or a ``torch.device``.
        compile: torch only, wrap the generated step and weight functions in ``torch.compile``
            (needs a C++ compiler; tens of seconds the first time). Off by default.
        form: ``"auto"`` (default): a block whose unrolled code would exceed
            :data:`~symscore.compiler.ir.LOOP_FORM_TERMS` terms (a coupled component of width 5 or
            more) runs in the loop form (small per-path arrays and loops over index ranges, see
            :mod:`symscore.compiler.dense`), the others unrolled; ``"unrolled"`` or ``"loop"``
            force one form for every block. The module's header says which form each block has.
        variant: which weight the kernel computes, a :class:`~symscore.Variant`: the plain
            Malliavin target (default), or an ablation (first order only, dropped terms, forced
            coupling) or the time-weighted covering field of the ``malliavin-cv`` target. Part of
            the cache key.

    Every backend prints the same intermediate representation. The generated module is written to
    the cache folder (:func:`symscore.cache_dir`) under a hash of the SDE; numba's compiled code is
    cached beside it, so a second process starts fast.
    """
    record = _backend_of(sde, backend, form, variant)
    options = record.check_options(dtype, device, compile)
    key = module_key(sde, backend, variant, form)
    module, path, cached = load_or_write_module(key, lambda: generate_source(sde, backend, variant=variant, form=form,
                                                                                   standalone=False))
    return record.kernel()(sde, module, Path(path), cached, **options)


def _backend_of(sde, backend: str, form: str, variant=Variant()):
    """Validate the (sde, backend, form, variant) shared by compile and emit; the backend's record."""
    if not isinstance(sde, SDE):
        raise SymscoreError(f"sde: expected a symscore.SDE, got {type(sde).__name__}")
    if form not in FORMS:
        raise SymscoreError(f"form: expected one of {', '.join(map(repr, FORMS))}, got {form!r}")
    if not isinstance(variant, Variant):
        raise SymscoreError(f"variant: expected a symscore.Variant, got {type(variant).__name__}")
    return get_backend(backend)


def module_key(sde: SDE, backend: str, variant: Variant = Variant(), form: str = "auto") -> str:
    """Cache key of the generated module: backend, SDE name and a hash of everything that shapes the
    source (the SDE, the variant, the form, the version, the templates and the code generator itself)."""
    # a Variant's repr lists every field, its covering weight as SymPy prints it: deterministic text
    key_text = "\n".join([sde.fingerprint(), backend, repr(variant), f"form={form}", __version__,
                          template_text(backend), generator_text(backend)])
    return f"{backend}_{sde.slug}_{hashlib.sha256(key_text.encode()).hexdigest()[:20]}"


def generate_source(sde: SDE, backend: str, *, variant: Variant = Variant(), form: str = "auto",
                    standalone: bool = True) -> str:
    """The module source of ``sde`` for ``backend`` (deterministic: the same SDE gives the same bytes);
    ``standalone`` as for :func:`~symscore.compiler.codegen.render_source`."""
    ir = build_ir(sde.derive(), variant=variant, form=form)
    forms = get_backend(backend).forms
    for b, block in enumerate(ir.blocks):
        if block.form not in forms:
            raise SymscoreError(
                f"form: the {backend} backend prints the {' and '.join(forms)} form only; block {b} "
                f"({block.description}) needs the {block.form} form (its unrolled code would have about "
                f"{block.estimated_terms} terms). Use another backend for this SDE, or "
                f"form={forms[0]!r} to force it (large code, slow to compile)")
    return render_source(sde, ir, backend, module_key(sde, backend, variant, form), standalone=standalone)


def emit(sde: SDE, backend: str = "numba", path=None, *, form: str = "auto") -> str:
    """The standalone kernel module of ``sde`` as source text; written to ``path`` if given.

    The module imports only numpy + numba (``backend="numba"``) or numpy + torch (``"torch"``) and
    exposes ``simulate(x0, times, n_steps, seed=0, dW=None, ridge=0.0, cond_max=1e12)`` ->
    ``(times, x, target)`` with the meaning of :meth:`Kernel.simulate`, the same input checks and
    the same exception types (their code is rendered into it). Its docstring carries the SDE, the
    symscore version and the hash; the same SDE gives byte-identical source. An existing file at
    ``path`` is replaced atomically (never left half-written).
    """
    _backend_of(sde, backend, form)
    source = generate_source(sde, backend, form=form)
    if path is not None:
        target = Path(path)
        if target.is_dir():
            raise SymscoreError(f"path: expected a file name, got the folder {str(target)!r}")
        atomic_write(target, source)
    return source
