"""What an experiment compares: cells (a forward SDE and a target) and the network they share.

A comparison is fair when only the cell changes: every cell of an experiment trains the same
:class:`Network` on the same data for the same budget, so a difference in the metrics is the
SDE's and the target's, not the optimiser's.
"""
from __future__ import annotations

from dataclasses import dataclass

from .._checks import positive_int
from .._errors import SymscoreError
from ..spec import library

__all__ = ["Cell", "Network", "parse_cells"]


@dataclass(frozen=True)
class Cell:
    """One trained model of a comparison: a built-in forward SDE (a :mod:`symscore.spec.library`
    name) and a regression target (a name of :data:`symscore.learn.targets.TARGETS`).

    >>> Cell("cauchy", "malliavin").label
    'cauchy + malliavin'
    """

    sde: str
    target: str

    @property
    def label(self) -> str:
        """The cell's name in tables: ``"<sde> + <target>"``."""
        return f"{self.sde} + {self.target}"

    def build_sde(self, m: int):
        """The cell's forward SDE in ``m`` dimensions (the library function's defaults otherwise)."""
        return getattr(library, self.sde)(m=m)


@dataclass(frozen=True)
class Network:
    """The network and batch every cell of an experiment trains with (:func:`symscore.train`'s
    arguments of the same names): a ``width`` x ``depth`` MLP with ``activation``, ``batch_size``
    paths per step and ``n_times`` record times per path."""

    width: int
    depth: int
    activation: str = "relu"
    batch_size: int = 256
    n_times: int = 4

    def __post_init__(self):
        for name in ("width", "depth", "batch_size", "n_times"):
            object.__setattr__(self, name, positive_int(getattr(self, name), name))


def parse_cells(text: str) -> tuple[Cell, ...]:
    """Cells from comma-separated ``sde+target`` names: ``"cauchy+malliavin,vp+dsm"``; each SDE must
    be a built-in and each target registered (the error lists both)."""
    from ..learn.targets import TARGETS

    names = [item.strip() for item in str(text).split(",") if item.strip()]
    if not names:
        raise SymscoreError(f"cells: expected comma-separated 'sde+target' names, got {text!r}")
    cells = []
    for name in names:
        sde, plus, target = (part.strip() for part in name.partition("+"))
        if not plus or sde not in library.BUILTINS or target not in TARGETS:
            raise SymscoreError(f"cells: expected 'sde+target' with an SDE among {', '.join(library.BUILTINS)} and "
                                f"a target among {', '.join(TARGETS)}, got {name!r}")
        cells.append(Cell(sde, target))
    return tuple(cells)
