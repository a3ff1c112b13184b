"""The host side of a simulation, written once over the backend's arrays: checks, chunks, re-runs.

A generated kernel only steps paths. Everything around it is here, in plain Python over an
*array namespace* (:class:`NumpyArrays` for numba; ``TorchArrays`` of :mod:`.host_torch` for
torch and triton), and is used twice: by :class:`~symscore.Kernel` in the package, and rendered
verbatim into every emitted module (after :mod:`symscore._errors`, :mod:`symscore._checks` and
:mod:`~symscore.compiler.runtime`), so both accept the same inputs and report failures alike.

A backend supplies one *launch* function, the call of its generated kernel on one chunk::

    launch(x0, dW, path_index, simulation, out, step_checks)

which steps the paths of ``x0`` (global indices ``path_index``; increments from the rows ``dW``,
or from ``simulation.seed`` when ``dW`` is None) and writes into the :class:`Outputs` ``out``.
A kernel that tests finiteness at record steps only (numba, triton) is then re-run on the few
failed paths with ``step_checks=True``, which finds the first failing step (testing every step
of every path would cost about 8% on 1-D lanes); a kernel that tests every step (torch) is not.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import number_at_least, positive_int
from .._errors import SimulationInputError
from .runtime import COND_MAX, FailureReport, TimeGrid, check_dw, check_seed, check_x0

__all__ = ["Outputs", "NumpyArrays", "Simulation", "check_simulation", "run_simulation", "run_chunk",
           "failure_report", "simulate_standalone"]


@dataclass(frozen=True)
class Outputs:
    """What a kernel writes for n paths and K records (arrays of the backend, written in place).

    Attributes:
        x, target: (n, K, m) X_t and the score target at the record times.
        fail_step: (n,) int, the first step after which X, Y/Yi or C was not finite (n_steps + 1: never).
        fail_kind: (n,) int, bits of what was not finite: 1 X, 2 Y or Yi, 4 C.
        illcond: (n, K) bool, C_t + ridge I singular or with condition estimate >= cond_max.
        target_finite: (n, K) bool, every coordinate of the target finite (filled on the host side).
    """

    x: object
    target: object
    fail_step: object
    fail_kind: object
    illcond: object
    target_finite: object

    def rows(self, rows: slice) -> "Outputs":
        """The outputs of the paths ``rows``: views, so a kernel writing into them fills these."""
        return Outputs(self.x[rows], self.target[rows], self.fail_step[rows], self.fail_kind[rows],
                       self.illcond[rows], self.target_finite[rows])


class NumpyArrays:
    """The array namespace of host numpy float64 arrays (the numba backend and its modules)."""

    dtype_name = "float64"

    check_x0 = staticmethod(check_x0)
    check_dw = staticmethod(check_dw)

    @staticmethod
    def path_index(first: int, n: int):
        return np.arange(first, first + n, dtype=np.int64)

    @staticmethod
    def allocate(n: int, n_records: int, m: int, n_steps: int) -> Outputs:
        x = np.empty((n, n_records, m))
        return Outputs(x, np.empty_like(x), np.full(n, n_steps + 1, dtype=np.int64), np.zeros(n, dtype=np.int64),
                       np.zeros((n, n_records), dtype=np.bool_), np.zeros((n, n_records), dtype=np.bool_))

    @staticmethod
    def rows_finite(target):
        """(n, K): every coordinate of the (n, K, m) ``target`` finite."""
        return np.isfinite(target).all(axis=2)

    @staticmethod
    def where(mask):
        """The indices where the 1-D ``mask`` is True."""
        return np.flatnonzero(mask)

    @staticmethod
    def host(array) -> np.ndarray:
        """A host numpy array."""
        return np.asarray(array)

    @staticmethod
    def index(host_index):
        """A host mask or index array as an index into these arrays."""
        return host_index


@dataclass(frozen=True)
class Simulation:
    """The checked arguments of one simulation (see :func:`check_simulation`).

    Attributes:
        grid: the :class:`TimeGrid`.
        x0: (n, m) initial points, as the namespace's array.
        dW: (n, n_steps, d) increments as the namespace's array, or None (draw them from ``seed``).
        seed: the Philox key, an int in [0, 2^64).
        path_offset: the global index of path 0.
        ridge: the Tikhonov parameter lambda >= 0.
        cond_max: the threshold on the condition estimate of C_t.
        chunk_size: paths per launch.
    """

    grid: TimeGrid
    x0: object
    dW: object
    seed: int
    path_offset: int
    ridge: float
    cond_max: float
    chunk_size: int


def check_simulation(arrays, x0, times, n_steps, *, horizon: float, m: int, d: int, seed=0, dW=None, ridge=0.0,
                     cond_max=None, path_offset=0, chunk_size=None) -> Simulation:
    """Check the arguments of ``simulate`` (see :meth:`symscore.Kernel.simulate`).

    Raises :class:`SimulationInputError` naming the first bad argument. ``cond_max`` None means the
    default of the namespace's dtype (:data:`COND_MAX`); ``chunk_size`` None means all paths.
    """
    grid = TimeGrid.from_times(times, n_steps, horizon)
    x0 = arrays.check_x0(x0, m)
    n = x0.shape[0]
    ridge = number_at_least(ridge, "ridge", 0.0, error=SimulationInputError)
    cond_max = number_at_least(COND_MAX[arrays.dtype_name] if cond_max is None else cond_max, "cond_max", 1.0,
                               error=SimulationInputError)
    seed = check_seed(seed)
    path_offset = positive_int(path_offset, "path_offset", low=0, error=SimulationInputError)
    chunk_size = n if chunk_size is None else positive_int(chunk_size, "chunk_size", error=SimulationInputError)
    if dW is not None:
        dW = arrays.check_dw(dW, (n, grid.n_steps, d))
    return Simulation(grid, x0, dW, seed, path_offset, ridge, cond_max, chunk_size)


def run_chunk(arrays, launch, simulation: Simulation, x0, dW, path_index, out: Outputs, rerun_failed: bool):
    """Launch the kernel on one chunk of paths into ``out``; with ``rerun_failed``, re-run the paths
    found non-finite at a record step alone, testing every step, for their first failing step and
    what failed there (the same increments: the same path indices or dW rows)."""
    launch(x0, dW, path_index, simulation, out, False)
    n_steps = simulation.grid.n_steps
    failed = arrays.where(out.fail_step <= n_steps) if rerun_failed else ()
    if len(failed):
        again = arrays.allocate(len(failed), simulation.grid.n_records, out.x.shape[2], n_steps)
        launch(x0[failed], None if dW is None else dW[failed], path_index[failed], simulation, again, True)
        out.fail_step[failed] = again.fail_step
        out.fail_kind[failed] = again.fail_kind
    out.target_finite[...] = arrays.rows_finite(out.target)  # per chunk: temporaries O(chunk)


def run_simulation(arrays, launch, simulation: Simulation, m: int, *, rerun_failed: bool) -> Outputs:
    """Every path of ``simulation``, ``chunk_size`` at a time: the memory beyond the returned
    :class:`Outputs` is O(chunk_size), and the result does not depend on it (the increments of a
    path are a function of its global index)."""
    x0, dW, grid = simulation.x0, simulation.dW, simulation.grid
    n = x0.shape[0]
    outputs = arrays.allocate(n, grid.n_records, m, grid.n_steps)
    for start in range(0, n, simulation.chunk_size):
        rows = slice(start, min(n, start + simulation.chunk_size))
        path_index = arrays.path_index(simulation.path_offset + start, rows.stop - start)
        run_chunk(arrays, launch, simulation, x0[rows], None if dW is None else dW[rows], path_index,
                  outputs.rows(rows), rerun_failed)
    return outputs


def failure_report(arrays, simulation: Simulation, outputs: Outputs) -> FailureReport:
    """The :class:`FailureReport` of a finished simulation (read on the host)."""
    return FailureReport(simulation.grid, arrays.host(outputs.fail_step), arrays.host(outputs.fail_kind),
                         arrays.host(outputs.illcond), ~arrays.host(outputs.target_finite), simulation.cond_max)


def simulate_standalone(arrays, launch, x0, times, n_steps, seed, dW, ridge, cond_max, path_offset, *,
                        horizon: float, m: int, d: int, rerun_failed: bool):
    """An emitted module's ``simulate``: every path at once, an error on any failure.

    Returns (grid, outputs); raises :class:`SimulationInputError` naming a bad argument, and
    :class:`NonFiniteSimulationError` or :class:`SingularMalliavinMatrixError` saying on how many
    paths and from when the simulation failed.
    """
    simulation = check_simulation(arrays, x0, times, n_steps, horizon=horizon, m=m, d=d, seed=seed, dW=dW,
                                  ridge=ridge, cond_max=cond_max, path_offset=path_offset)
    outputs = run_simulation(arrays, launch, simulation, m, rerun_failed=rerun_failed)
    failure_report(arrays, simulation, outputs).raise_if_failed()
    return simulation.grid, outputs
