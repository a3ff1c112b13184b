"""How the host calls a numba module's kernel: the ``launch`` of :mod:`~symscore.compiler.host`.

The generated ``simulate_kernel`` (``templates/numba_kernel.py.j2``) takes plain numba types
only: the grid as (dt, n_steps, record_steps), the seed as a uint64, and an empty (0, 0, 0) array
for "no increments given" (numba compiles one signature for both). Rendered verbatim into numba
modules after :mod:`~symscore.compiler.host`; used by the package's numba kernel.
"""
from __future__ import annotations

import numpy as np

__all__ = ["numba_launch"]

#: The ``dW`` of ``simulate_kernel`` when the increments are drawn from the seed.
NO_INCREMENTS = np.zeros((0, 0, 0))


def numba_launch(simulate_kernel):
    """The launch function of the numba kernel ``simulate_kernel``: float64 numpy arrays in and out."""

    def launch(x0, dW, path_index, simulation, out, step_checks):
        grid = simulation.grid
        simulate_kernel(x0, grid.dt, grid.n_steps, grid.record_steps, NO_INCREMENTS if dW is None else dW,
                        np.uint64(simulation.seed), path_index, simulation.ridge, simulation.cond_max, out.x,
                        out.target, out.fail_step, out.fail_kind, out.illcond, step_checks)

    return launch
