"""Sampling a trained cell over seeds.

One sample set is one draw: on the checkerboard one set's sliced W2 varies by about a third of
its noise floor, so an experiment draws several sets per sampler (one per sampler seed) and
reports each metric's mean with its standard error (:mod:`.evaluation`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from tqdm.auto import tqdm

from ..learn.samplers import COMPARED_SAMPLERS, sample
from .training import Trained

__all__ = ["Sampled", "sample_over_seeds"]


@dataclass(frozen=True)
class Sampled:
    """Sample sets of one trained cell: ``sets[method]`` holds one (n, m) array per sampler seed,
    in the order of the seeds; ``seconds[method]`` is the mean wall clock of one set."""

    sets: dict
    seconds: dict


def sample_over_seeds(trained: Trained, n: int, sample_steps: int, seeds, methods=COMPARED_SAMPLERS,
                      progress: bool = False) -> Sampled:
    """``n`` samples of ``trained`` with each sampler of ``methods`` (names of
    :data:`symscore.learn.samplers.SAMPLERS`, default the reverse SDE and predictor-corrector) in
    ``sample_steps`` reverse-time steps, once per seed of ``seeds``."""
    seeds = [int(seed) for seed in seeds]
    sets, seconds = {}, {}
    with tqdm(total=len(methods) * len(seeds), desc=f"sample[{trained.cell.label}]", disable=not progress,
              leave=False) as bar:
        for method in methods:
            start = time.perf_counter()
            sets[method] = []
            for seed in seeds:
                sets[method].append(sample(trained.sde, trained.model, n, sample_steps, method=method, seed=seed))
                bar.update()
            seconds[method] = (time.perf_counter() - start) / len(seeds)
    return Sampled(sets, seconds)
