"""Training one cell at an equal budget.

A fair comparison gives every cell the same wall clock on the same machine: with ``budget`` the
clock sets the step count (:func:`symscore.train`'s ``budget``: the cosine schedule is re-planned
after every step so that it ends when the budget does). A fixed ``steps`` instead makes a run
reproducible step for step (smoke runs, tests). The clock turns threads into steps, so the
benchmarks fix torch's thread count (:func:`use_torch_threads`) before comparing budgets.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .._checks import positive_int
from .._errors import SymscoreError
from ..learn.train import train
from .spec import Cell, Network

__all__ = ["Trained", "train_cell", "use_torch_threads"]


@dataclass(frozen=True)
class Trained:
    """A trained cell: its forward ``sde``, the EMA ``model``, the optimiser ``steps`` taken and the
    wall-clock ``seconds`` of training (set-up and kernel compilation included)."""

    cell: Cell
    sde: object
    model: object
    steps: int
    seconds: float


def train_cell(cell: Cell, data, network: Network, *, n_steps: int, t_min: float | None = None,
               budget: float | None = None, steps: int | None = None, seed: int = 0,
               progress: bool = False) -> Trained:
    """Train ``cell`` on ``data`` (n, m) with ``network``, for ``budget`` seconds or ``steps`` steps.

    Args:
        n_steps: Euler steps over [0, T] of the training grid.
        t_min: the smallest record time; default 2 T / n_steps (two Euler steps: an SDE whose
            sigma(0) = 0, as sub-VP's, has no Malliavin target after one).
        budget: seconds of training; the clock sets the step count.
        steps: a fixed step count instead; it wins over ``budget``.
        seed: seeds the network's initialisation and every training draw.
    """
    if budget is None and steps is None:
        raise SymscoreError("budget, steps: expected a training budget in seconds or a step count, got neither")
    sde = cell.build_sde(m=data.shape[1])
    start = time.perf_counter()
    model = train(sde, data, steps=steps or 1, budget=budget if steps is None else None, target=cell.target,
                  n_steps=n_steps, t_min=2 * sde.T / n_steps if t_min is None else t_min, seed=seed,
                  width=network.width, depth=network.depth, activation=network.activation,
                  batch_size=network.batch_size, n_times=network.n_times, progress=progress)
    return Trained(cell, sde, model, len(model.loss_history), time.perf_counter() - start)


def use_torch_threads(threads: int) -> int:
    """Set torch's intra-op thread count (a clock budget buys steps by it); returns it."""
    import torch

    threads = positive_int(threads, "threads")
    torch.set_num_threads(threads)
    return threads
