"""Kernel throughput for any SDE, against a baseline run in the same process.

The baseline is a vectorised numpy Euler-Maruyama of X alone (:meth:`NumericSDE.euler`), which
knows nothing of the variation processes: the ratio says what the score target costs on top of
simulating the SDE, and path-steps per second compare backends and machines.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ._checks import positive_int

__all__ = ["BenchRow", "bench_kernel", "best_of"]


@dataclass(frozen=True)
class BenchRow:
    label: str
    seconds: float
    path_steps_per_second: float
    ratio_to_baseline: float


def best_of(run, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``run``, after one untimed warm-up call."""
    run()  # warm-up: compilation, caches, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_kernel(sde, backends=("numba",), n_paths: int = 10_000, n_steps: int = 200, repeats: int = 3,
                 device=None, seed: int = 0) -> list[BenchRow]:
    """Time ``kernel.simulate`` for each backend and the numpy baseline (best of ``repeats``).

    Returns one row per backend, then the baseline row (ratio 1).
    """
    from .compiler.build import compile as compile_kernel
    from .learn.numeric_sde import NumericSDE

    n_paths, n_steps = positive_int(n_paths, "n_paths"), positive_int(n_steps, "n_steps")
    repeats = positive_int(repeats, "repeats")
    x0 = np.random.default_rng(seed).normal(scale=0.5, size=(n_paths, sde.m))
    numeric = NumericSDE(sde)
    baseline = best_of(lambda: numeric.euler(x0, [n_steps], sde.T / n_steps, np.random.default_rng(seed)), repeats)
    rows = []
    for backend in backends:
        kernel = compile_kernel(sde, backend=backend, device=None if backend == "numba" else device)
        seconds = best_of(lambda: kernel.simulate(x0, [sde.T], n_steps, seed=seed, as_numpy=True), repeats)
        rows.append(BenchRow(f"{backend} kernel (X, Y, Z, weights)", seconds, n_paths * n_steps / seconds,
                             seconds / baseline))
    rows.append(BenchRow("numpy Euler of X only (baseline)", baseline, n_paths * n_steps / baseline, 1.0))
    return rows
