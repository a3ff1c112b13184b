"""The counter-based increments of :mod:`~symscore.compiler.runtime`, compiled by numba.

Rendered verbatim into numba modules after the runtime: its Philox functions, written once over
numpy integers, are registered with numba (the Python functions stay usable on arrays), so a
kernel draws the very numbers of :func:`~symscore.compiler.runtime.brownian_increments`.
"""
from __future__ import annotations

import numba
import numba.extending
import numpy as np

from .runtime import philox4x32, philox_normals4

__all__ = ["philox_normals4_jit", "increments_kernel"]

numba.extending.register_jitable(philox4x32)
philox_normals4_jit = numba.njit(philox_normals4, inline="always")


@numba.njit(parallel=True, cache=True, error_model="numpy")
def increments_kernel(seed, path_index, n_steps, d, sqrt_dt):
    """(n, n_steps, d) increments of the paths path_index: the values simulate_kernel draws."""
    out = np.empty((path_index.shape[0], n_steps, d))
    for p in numba.prange(path_index.shape[0]):
        path = np.uint64(path_index[p])
        for l in range(d):
            for group in range((n_steps + 3) // 4):
                z = philox_normals4_jit(seed, path, np.uint64(group), np.uint64(l))
                for i in range(min(4, n_steps - 4 * group)):
                    out[p, 4 * group + i, l] = z[i] * sqrt_dt
    return out
