"""The counter-based increments of :mod:`~symscore.compiler.runtime` in torch, drawn on the device.

The torch form of symscore's stream (``brownian_increments``' values to rounding: the same
counters, with torch's log, cos and sin). Rendered verbatim into torch modules; the Philox words
are integers held in int64 tensors, so they equal the numpy and numba words exactly.
"""
from __future__ import annotations

import math

import torch

__all__ = ["philox_normals4_torch", "torch_increments"]

_MASK32 = 0xFFFFFFFF


def philox_normals4_torch(seed, path, group, column):
    """The standard normals of steps 4 group .. 4 group + 3 (a last axis of 4) of (seed, path, column):
    int64 tensors that broadcast.

    Philox4x32-10 with counter (path mod 2^32, path div 2^32, group, column) and key (seed mod 2^32,
    seed div 2^32); Box-Muller on (r0, r1) gives steps 4 group and 4 group + 1, on (r2, r3) the next
    two, in float64. Words live in int64: a 32 x 32-bit product wraps modulo 2^64 and its high word
    is recovered by an arithmetic shift and a mask.
    """
    c0, c1, c2, c3 = torch.broadcast_tensors(path & _MASK32, (path >> 32) & _MASK32, group, column)
    k0, k1 = seed & _MASK32, seed >> 32
    for _ in range(10):
        p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
        c0, c1, c2, c3 = ((p1 >> 32) & _MASK32) ^ c1 ^ k0, p1 & _MASK32, ((p0 >> 32) & _MASK32) ^ c3 ^ k1, p0 & _MASK32
        k0, k1 = (k0 + 0x9E3779B9) & _MASK32, (k1 + 0xBB67AE85) & _MASK32
    rho01 = torch.sqrt(-2.0 * torch.log((c0.to(torch.float64) + 1.0) * 2.0**-32))
    rho23 = torch.sqrt(-2.0 * torch.log((c2.to(torch.float64) + 1.0) * 2.0**-32))
    angle01, angle23 = 6.283185307179586 * 2.0**-32 * c1.to(torch.float64), 6.283185307179586 * 2.0**-32 * c3.to(torch.float64)
    return torch.stack([rho01 * torch.cos(angle01), rho01 * torch.sin(angle01), rho23 * torch.cos(angle23),
                        rho23 * torch.sin(angle23)], dim=-1)


def torch_increments(seed, path_index, first_step, n_draw, columns, dt, dtype):
    """(n, n_draw, *columns.shape) increments of the paths ``path_index`` (an (n,) int64 tensor),
    steps first_step.. (a multiple of 4) and the given noise columns."""
    device = columns.device
    n, n_groups = path_index.shape[0], -(-n_draw // 4)
    shape = (1,) * columns.ndim
    path = path_index.reshape((n, 1) + shape)
    group = torch.arange(first_step // 4, first_step // 4 + n_groups, dtype=torch.long, device=device).reshape((1, n_groups) + shape)
    z = philox_normals4_torch(seed, path, group, columns.reshape((1, 1) + tuple(columns.shape)))  # (n, G, ..., 4)
    z = torch.movedim(z, -1, 2).reshape((n, 4 * n_groups) + tuple(columns.shape))[:, :n_draw]
    return (z * math.sqrt(dt)).to(dtype)
