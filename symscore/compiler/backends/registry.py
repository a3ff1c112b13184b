"""The backend registry: :class:`Backend` records by name (see :mod:`symscore.compiler.backends`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..._registry import Registry

__all__ = ["Backend", "BACKENDS", "register_backend", "get_backend", "make_printer"]


@dataclass(frozen=True)
class Backend:
    """One backend.

    Attributes:
        name: the ``backend=`` value.
        description: one line for ``--help`` and errors.
        template: file name of the module skeleton in ``compiler/templates/``.
        printer: returns a fresh code printer (SymPy ``CodePrinter`` subclass instance).
        kernel: returns the Kernel subclass (a function, so that torch or numba load on first use).
        check_options: ``(dtype, device, use_compile) -> dict`` of keyword arguments for the kernel.
        source_file: the backend module, whose text is part of the cache key of generated modules.
        forms: the block forms its template prints (:data:`~symscore.compiler.ir.FORMS` but "auto").
    """

    name: str
    description: str
    template: str
    printer: Callable[[], object]
    kernel: Callable[[], type]
    check_options: Callable[..., dict]
    source_file: Path
    forms: tuple[str, ...] = ("unrolled", "loop")


#: Registered backends by name.
BACKENDS = Registry("backend")


def register_backend(backend: Backend) -> Backend:
    """Add ``backend`` to :data:`BACKENDS` (a name can be registered once)."""
    return BACKENDS.register(backend.name)(backend)


def get_backend(name) -> Backend:
    """The record of backend ``name``; an unknown name raises an error listing the known ones."""
    return BACKENDS.lookup(name)



def make_printer(name: str):
    """A fresh code printer of backend ``name``."""
    return get_backend(name).printer()

