"""A loaded score kernel: :class:`Kernel` runs a generated module, :class:`Paths` holds the result.

A kernel runs one Euler-Maruyama pass per path over the grid 0, dt, ..., times[-1] (dt =
times[-1] / n_steps) carrying X and the processes of docs/math.md, and assembles the score target
at every record time: the cost is O(n_steps) per path whatever the number of record times.

:class:`Kernel` runs the host side of :mod:`~symscore.compiler.host` (the checks, chunking, the
re-run of failed paths: the code emitted modules run too) and adds the package's failure policy;
each backend's subclass (:mod:`symscore.compiler.backends`) gives it an array namespace and the
launch function of its generated module.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import number_at_least, positive_int
from .._errors import SimulationInputError
from .host import NumpyArrays, check_simulation, failure_report, run_simulation
from .runtime import ON_FAILURE, FailureReport, brownian_increments, check_seed

__all__ = ["Kernel", "Paths"]


@dataclass(frozen=True)
class Paths:
    """Simulated paths at the record times.

    Attributes:
        t: (K,) record times.
        x: (n, K, m) states X_t.
        target: (n, K, m) score targets with E[target | X_t] = grad log p_t(X_t).
        failed: (n, K) bool, True where a record failed (non-finite X, Y or C, an ill-conditioned
            Malliavin matrix, a non-finite target); those records hold NaN. All False unless
            ``simulate(on_failure="keep")`` kept such paths.
    """

    t: np.ndarray
    x: np.ndarray
    target: np.ndarray
    failed: np.ndarray | None = None


class Kernel:
    """A compiled score kernel. Use :meth:`simulate`; ``source`` is the generated module.

    A backend's subclass sets, from its module: ``arrays`` (the array namespace of
    :mod:`~symscore.compiler.host`), ``launch`` (its generated kernel's call on one chunk) and
    ``rerun_failed`` (whether the kernel tests finiteness at record steps only, so that failed
    paths are re-run for their first failing step); compile's options are checked by the
    backend's record.
    """

    backend = ""
    rerun_failed = True

    def __init__(self, sde, module, path: Path, was_cached: bool):
        self.sde, self.module, self.path, self.was_cached = sde, module, path, was_cached
        self.arrays = NumpyArrays()
        self.launch = None  # the backend's subclass sets it

    @property
    def dtype_name(self) -> str:
        """The dtype the kernel computes in: ``"float64"`` or ``"float32"`` (its array namespace's)."""
        return self.arrays.dtype_name

    @property
    def source(self) -> str:
        """The generated module source."""
        return self.path.read_text().partition("\n")[2]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sde={self.sde.name!r}, backend={self.backend!r}, path={str(self.path)!r})"

    def simulate(self, x0, times, n_steps, seed: int = 0, dW=None, *, ridge: float = 0.0,
                 on_failure: str = "raise", cond_max: float | None = None, chunk_size: int | None = None,
                 as_numpy: bool = False, path_offset: int = 0) -> Paths:
        """Simulate paths and their score targets.

        Args:
            x0: (n, m) initial points, one per path.
            times: increasing 1-D record times in (0, T]; the grid runs from 0 to times[-1] in
                n_steps equal steps and every record time must lie on it.
            n_steps: number of Euler steps (>= 1).
            seed: seed of the Brownian increments (ignored when dW is given), an integer in
                [0, 2^64): the increment of path p, step k, noise column l is a function of
                (seed, path_offset + p, k, l) alone (Philox4x32-10; :func:`brownian_increments`),
                the same for any chunk size or thread count, and on every backend to rounding.
            dW: optional (n, n_steps, d) Brownian increments (each N(0, dt)); makes the run
                fully deterministic.
            ridge: Tikhonov parameter lambda >= 0: C_t is replaced by C_t + lambda I. Zero (exact)
                by default; lambda > 0 biases the target by O(lambda / lambda_min(C_t)) but bounds
                its variance at small t.
            on_failure: what to do with paths whose X, Y or C become non-finite, whose Malliavin
                matrix is singular or ill-conditioned, or whose target is not finite:
                ``"raise"`` (default) raises an error saying how many paths failed, when, and what
                to change; ``"drop"`` returns the other paths with a warning giving the count;
                ``"keep"`` returns every path with a warning, NaN in the failed records and the
                mask in ``paths.failed``.
            cond_max: threshold on the condition estimate kappa = m sum_a C_aa (C^-1)_aa of the
                Malliavin matrix per component (between the 2-norm condition number of the
                Jacobi-scaled C and m^2 times it); default 1e12 (float64), 1e5 (float32).
            chunk_size: simulate this many paths at a time (default: all), so that the memory
                beyond the returned arrays is O(chunk_size); the result does not depend on it.
            as_numpy: torch backend: return numpy arrays instead of tensors on the device.
            path_offset: the global index of the first path (its increments are those of path
                ``path_offset``): processes that share a seed simulate disjoint paths with it.

        Returns:
            :class:`Paths` with t (K,), x (n, K, m), target (n, K, m) and failed (n, K).
        """
        if on_failure not in ON_FAILURE:
            raise SimulationInputError(f"on_failure: expected one of {', '.join(map(repr, ON_FAILURE))}, "
                                       f"got {on_failure!r}")
        simulation = check_simulation(self.arrays, x0, times, n_steps, horizon=self.sde.T, m=self.sde.m,
                                      d=self.sde.d, seed=seed, dW=dW, ridge=ridge, cond_max=cond_max,
                                      path_offset=path_offset, chunk_size=chunk_size)
        outputs = run_simulation(self.arrays, self.launch, simulation, self.sde.m, rerun_failed=self.rerun_failed)
        report = failure_report(self.arrays, simulation, outputs)
        return self._apply_failure_policy(report, on_failure, simulation.grid.times, outputs.x, outputs.target,
                                          as_numpy)

    def increments(self, n: int, n_steps: int, dt: float, seed: int = 0, path_offset: int = 0) -> np.ndarray:
        """The (n, n_steps, d) Brownian increments ``simulate`` draws for ``seed`` (paths
        ``path_offset`` on), as a host float64 array: equal to :func:`brownian_increments` (the
        reference) to rounding (a few ulps: the backend's own log, cos and sin, where it has a faster
        form). For schemes that transform one Brownian path (antithetic pairs, coarse increments
        summed from fine ones)."""
        n = positive_int(n, "n", low=0, error=SimulationInputError)
        n_steps = positive_int(n_steps, "n_steps", error=SimulationInputError)
        dt = number_at_least(dt, "dt", 0.0, strict=True, error=SimulationInputError)
        path_offset = positive_int(path_offset, "path_offset", low=0, error=SimulationInputError)
        return self._increments(n, n_steps, dt, check_seed(seed), path_offset)

    def _apply_failure_policy(self, report: FailureReport, on_failure: str, times, out_x, out_target, as_numpy):
        """raise, drop the failed paths, or keep them with NaN in their failed records (both with a warning)."""
        failed = report.failed
        if failed.any():
            if on_failure == "raise":
                report.raise_error()
            keep_rows = ~failed.any(axis=1)
            if on_failure == "drop":
                if not keep_rows.any():
                    report.raise_error()
                warnings.warn(f"dropped {int((~keep_rows).sum())} of {len(keep_rows)} paths: {report.message()}",
                              RuntimeWarning, stacklevel=3)
                index = self.arrays.index(np.flatnonzero(keep_rows))
                out_x, out_target = out_x[index], out_target[index]
                failed = np.zeros((int(keep_rows.sum()), failed.shape[1]), dtype=bool)
            else:
                warnings.warn(f"kept failed paths, their failed records are NaN (see paths.failed): "
                              f"{report.message()}", RuntimeWarning, stacklevel=3)
                mask = self.arrays.index(failed)
                out_x[mask] = np.nan
                out_target[mask] = np.nan
        return self._paths(times, out_x, out_target, failed, as_numpy)

    def _increments(self, n, n_steps, dt, seed, path_offset) -> np.ndarray:
        """The increments of :meth:`increments` (here: the numpy reference; a backend may draw its own)."""
        return brownian_increments(seed, n, n_steps, self.sde.d, dt, path_offset=path_offset)

    def _paths(self, times, out_x, out_target, failed, as_numpy):
        """The :class:`Paths` of the outputs (a tensor backend keeps tensors unless ``as_numpy``)."""
        return Paths(t=times, x=out_x, target=out_target, failed=failed)
