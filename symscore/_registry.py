"""Registries: a dict of named extensions with a decorator to add one and a lookup that, for an
unknown name, lists the known ones. Backends, targets, samplers and priors are each one."""
from __future__ import annotations

from ._errors import SymscoreError

__all__ = ["Registry"]


class Registry(dict):
    """``name -> object``; ``argument`` is the parameter name used in error messages.

        >>> SAMPLERS = Registry("method")
        >>> @SAMPLERS.register("sde")
        ... def reverse_sde(run): ...
    """

    def __init__(self, argument: str):
        super().__init__()
        self.argument = argument

    def register(self, name: str):
        """Decorator adding its function or class under ``name`` (a name is registered once)."""
        def add(obj):
            if name in self:
                raise SymscoreError(f"{self.argument}: {name!r} is already registered")
            self[name] = obj
            return obj

        return add

    def lookup(self, name, extra: tuple[str, ...] = ()):
        """The object registered as ``name``; an unknown name raises an error listing the known ones
        (after ``extra``, names the caller handles itself)."""
        if name not in self:
            known = ", ".join(map(repr, (*extra, *self)))
            raise SymscoreError(f"{self.argument}: expected one of {known}, got {name!r}")
        return self[name]
