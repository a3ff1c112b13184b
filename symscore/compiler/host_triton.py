"""How the host calls a triton module's kernels: the ``launch`` of :mod:`~symscore.compiler.host`.

A triton module (``templates/triton_kernel.py.j2``) generates one ``@triton.jit`` kernel per block
and lists them in ``BLOCKS`` with their lanes, noise columns and lane constants. The kernels of a
block's lanes report failures through atomics, on int32 and int8 buffers; this launch gives each
kernel those buffers and folds them into the host's :class:`~symscore.compiler.host.Outputs`.
Rendered verbatim into triton modules; the package's triton kernel uses it too.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import triton
import triton.language as tl

__all__ = ["BLOCK_PATHS", "triton_launch"]

#: Paths per program on a GPU (one per thread at 4 warps); the interpreter takes larger blocks.
BLOCK_PATHS = 128


def triton_launch(blocks):
    """The launch function of a triton module's ``blocks``: (kernel, lanes, noise columns, lane
    constants) per block, each kernel launched on a grid of (blocks of paths, lanes)."""

    def launch(x0, dW, path_index, simulation, out, step_checks):
        grid = simulation.grid
        n, device, dtype = x0.shape[0], x0.device, x0.dtype
        x0, path_index = x0.contiguous(), path_index.contiguous()
        block_paths = BLOCK_PATHS if device.type == "cuda" else min(1024, triton.next_power_of_2(n))
        real = torch.tensor([grid.dt, math.sqrt(grid.dt), simulation.ridge, simulation.cond_max], dtype=dtype,
                            device=device)
        seed = simulation.seed
        seed_word = torch.tensor([seed - (1 << 64) if seed >= 1 << 63 else seed], dtype=torch.int64, device=device)
        records = torch.as_tensor(grid.record_steps, dtype=torch.int32, device=device)
        dw_arg = x0 if dW is None else dW.contiguous()
        tl_dtype = tl.float64 if dtype == torch.float64 else tl.float32
        step = torch.full((n,), grid.n_steps + 1, dtype=torch.int32, device=device)
        kind = torch.zeros((n,), dtype=torch.int32, device=device)
        bad = torch.zeros((n, grid.n_records), dtype=torch.int8, device=device)
        x, target = torch.empty_like(out.x), torch.empty_like(out.target)
        for kernel, lanes, noise, constants in blocks:
            lanes_t = torch.tensor(lanes, dtype=torch.int32, device=device)
            noise_t = torch.tensor(noise, dtype=torch.int32, device=device)
            constants_t = torch.tensor(constants, dtype=dtype, device=device).reshape(-1) if constants else real
            # Triton's CPU interpreter evaluates both branches of tl.where in numpy: silence its warnings
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                kernel[(triton.cdiv(n, block_paths), len(lanes))](
                    x0, dw_arg, records, real, seed_word, path_index, lanes_t, noise_t, constants_t, x, target, step,
                    kind, bad, n, grid.n_steps, grid.n_records, DTYPE=tl_dtype, BLOCK=block_paths,
                    USE_DW=dW is not None, STEP_CHECKS=step_checks, enable_fp_fusion=True)  # FMA contraction, explicitly
        out.x.copy_(x)
        out.target.copy_(target)
        torch.minimum(out.fail_step, step.to(out.fail_step.dtype), out=out.fail_step)
        out.fail_kind.bitwise_or_(kind.to(out.fail_kind.dtype))
        out.illcond.logical_or_(bad.bool())

    return launch
