"""The time loop of a torch module: every block's generated functions stepped over the grid.

A torch module (``templates/torch_kernel.py.j2``) generates, per block, ``init``, ``step``,
``weight`` and ``health`` over a named-tuple state and lists them in ``BLOCKS``; this loop, the
same for every SDE, runs them vectorised over (paths, lanes). Rendered verbatim into torch
modules; the package's torch kernel calls it with its (possibly ``torch.compile``d) blocks.
"""
from __future__ import annotations

import torch

from .philox_torch import torch_increments

__all__ = ["DRAW_ELEMENTS", "simulate_blocks", "torch_launch"]

#: Elements of int64 work per draw of increments (steps are drawn in groups of this size or less).
DRAW_ELEMENTS = 1 << 22


def simulate_blocks(blocks, x0, dt, n_steps, record_steps, dW, seed, path_index, ridge, cond_max, out_x, out_target,
                    fail_step, fail_kind, illcond):
    """One Euler pass; the target is assembled at every record step (O(n_steps) per path).

    x0 (n, M), dW (n, n_steps, D) or None (then the increments of ``seed`` for the global path
    indices ``path_index``: see philox_normals4_torch), outputs out_x, out_target (n, K, M),
    fail_step, fail_kind (n,) and illcond (n, K), all tensors on one device. fail_step[p]
    (initially n_steps + 1) becomes the first step after which X, Y/Yi or C of path p is not
    finite (one finiteness test per step, without a host sync); fail_kind[p] gets the bits (1 X,
    2 Y/Yi, 4 C) of what is not finite at the end of the pass; illcond[p, r] is set where
    C_t + ridge I is not positive definite or its condition estimate reaches cond_max.
    """
    n, dtype, device = x0.shape[0], x0.dtype, x0.device
    records = [int(r) for r in record_steps]
    t_grid = torch.arange(n_steps, dtype=dtype, device=device) * dt
    for block in blocks:
        lanes = torch.tensor(block.lanes, dtype=torch.long, device=device)
        noise = torch.tensor(block.noise, dtype=torch.long, device=device)
        width, n_lanes, n_noise = lanes.shape[1], lanes.shape[0], noise.shape[1]
        constants = torch.tensor(block.constants, dtype=dtype, device=device).reshape(n_lanes, -1) if block.constants else None
        state = block.init(tuple(x0[:, lanes[:, c]] for c in range(width)),
                           () if constants is None else tuple(constants.unbind(1)))
        first_bad = torch.full((n, n_lanes), n_steps + 1, dtype=torch.long, device=device)
        rec = 0
        n_draw = 4 * max(1, min(-(-n_steps // 4), DRAW_ELEMENTS // (4 * n * n_lanes * n_noise)))
        for k in range(n_steps):
            if dW is not None:
                dw = dW[:, k][:, noise]
            else:
                if k % n_draw == 0:  # counter-based: a group of steps at once costs no more than one
                    drawn = torch_increments(seed, path_index, k, min(n_draw, n_steps - k), noise, dt, dtype)
                dw = drawn[:, k % n_draw]
            state = block.step(t_grid[k], dt, tuple(dw[:, :, l] for l in range(n_noise)), state)
            # failure check: one finiteness test per step on the sum of X, Y, Yi and C (no host sync)
            total = sum(value for _, value in block.health(state))
            first_bad = torch.where(torch.isfinite(total), first_bad, first_bad.clamp(max=k + 1))
            if k + 1 == records[rec]:
                x, target, ok = block.weight(ridge, cond_max, state)
                for c in range(width):
                    out_x[:, rec, lanes[:, c]] = torch.broadcast_to(x[c], (n, n_lanes)).to(dtype)
                    out_target[:, rec, lanes[:, c]] = torch.broadcast_to(torch.as_tensor(target[c], dtype=dtype, device=device), (n, n_lanes))
                illcond[:, rec] |= ~torch.broadcast_to(ok, (n, n_lanes)).all(dim=1)
                rec += 1
                if rec == len(records):
                    break
        torch.minimum(fail_step, first_bad.min(dim=1).values, out=fail_step)
        for bit, value in block.health(state):
            bad = ~torch.isfinite(torch.broadcast_to(torch.as_tensor(value, dtype=dtype, device=device), (n, n_lanes)))
            fail_kind |= bit * bad.any(dim=1)


def torch_launch(blocks):
    """The launch function (:mod:`~symscore.compiler.host`) of a torch module's ``blocks``. The loop
    tests every step, so ``step_checks`` changes nothing and failed paths need no re-run."""

    def launch(x0, dW, path_index, simulation, out, step_checks):
        grid = simulation.grid
        with torch.no_grad():
            simulate_blocks(blocks, x0, grid.dt, grid.n_steps, grid.record_steps.tolist(), dW, simulation.seed,
                            path_index, simulation.ridge, simulation.cond_max, out.x, out.target, out.fail_step,
                            out.fail_kind, out.illcond)

    return launch
