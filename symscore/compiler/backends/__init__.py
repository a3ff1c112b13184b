"""The registry of backends: a backend is one module here and one :class:`Backend` record.

A record names what turns the IR into a running kernel on one kind of hardware:

* ``printer``: a factory of the SymPy code printer of the target language;
* ``template``: the Jinja2 skeleton of the generated module (``compiler/templates/``);
* ``kernel``: the :class:`~symscore.compiler.kernel.Kernel` subclass: its array namespace (of
  :mod:`~symscore.compiler.host`) and the launch of its generated kernel on one chunk;
* ``check_options``: validates ``compile``'s dtype/device/compile options.

``compile``, ``emit``, ``bench`` and the command line read :data:`BACKENDS`; adding a backend means
writing its module and calling :func:`register_backend` there (and importing it below).
"""
from .registry import BACKENDS, Backend, get_backend, make_printer, register_backend

__all__ = ["Backend", "BACKENDS", "register_backend", "get_backend", "make_printer"]

# the built-in backends register themselves on import
from . import numba, torch, triton  # noqa: E402,F401
