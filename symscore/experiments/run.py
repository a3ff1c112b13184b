"""One cell of an experiment from start to end: trained at the experiment's budget, then sampled
over seeds. Evaluation is left to the experiment, which chooses its metrics and held-out data."""
from __future__ import annotations

from dataclasses import dataclass

from ..learn.samplers import COMPARED_SAMPLERS
from .sampling import Sampled, sample_over_seeds
from .spec import Cell, Network
from .training import Trained, train_cell

__all__ = ["CellRun", "run_cell"]


@dataclass(frozen=True)
class CellRun:
    """A cell's :class:`~.training.Trained` model and its :class:`~.sampling.Sampled` sets."""

    trained: Trained
    sampled: Sampled

    def rows(self):
        """``(row label, sampler, sample sets)`` per sampler; a row label is ``"<cell label>, <sampler>"``."""
        return [(f"{self.trained.cell.label}, {method}", method, sets) for method, sets in self.sampled.sets.items()]


def run_cell(cell: Cell, data, network: Network, *, n_steps: int, budget: float | None, steps: int | None,
             seed: int, n_samples: int, sample_steps: int, sampler_seeds, t_min: float | None = None,
             methods=COMPARED_SAMPLERS, progress: bool = False) -> CellRun:
    """Train ``cell`` (:func:`~.training.train_cell`, with ``seed``), then draw ``n_samples`` per
    sampler of ``methods`` and seed of ``sampler_seeds`` (:func:`~.sampling.sample_over_seeds`)."""
    trained = train_cell(cell, data, network, n_steps=n_steps, t_min=t_min, budget=budget, steps=steps, seed=seed,
                         progress=progress)
    return CellRun(trained, sample_over_seeds(trained, n_samples, sample_steps, sampler_seeds, methods, progress))
