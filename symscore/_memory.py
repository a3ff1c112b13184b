"""The process's allocator, for training and sampling on the CPU.

A network on a field's grid (L = 32: 33 x 66 pixels x 16 channels per field) makes activations of
tens to hundreds of MB. glibc serves blocks above its mmap threshold (at most 32 MB, adjusted
dynamically) with fresh mmap calls and returns them on free, so every step page-faults its
activations in again: on 2 cores a forward and backward pass of 256 fields at L = 32 took 3.0 s
that way and 1.85 s with the blocks kept in the heap (benchmarks/bench_allocator.py,
docs/results/fields.md). The fix is glibc's own ``mallopt``: a 1 GiB mmap threshold and no
trimming. It changes the whole process (memory once used stays with it, as with jemalloc or
tcmalloc, the usual preloads for PyTorch on the CPU), so the library never calls it on import: the
``symscore`` command and :func:`symscore.demo.run_fields_demo` do, and a user's own script may
(:func:`symscore.experiments.fields.reuse_large_allocations`).
"""
from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["reuse_large_allocations"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4


def reuse_large_allocations() -> bool:
    """Keep freed large blocks in the heap for reuse (glibc only; elsewhere nothing happens).
    Returns True when the allocator was changed."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): no mallopt
        return False
    # older glibc refuses a threshold above 32 MiB; no mmap at all (M_MMAP_MAX 0) does the same job
    in_heap = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) or bool(mallopt(_M_MMAP_MAX, 0))
    kept = bool(mallopt(_M_TRIM_THRESHOLD, (1 << 31) - 1))
    return in_heap and kept
