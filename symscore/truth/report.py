"""Measuring against the truth: the error of a learned score and the bias of a regression target.

Both reports draw what they need from a :class:`~symscore.truth.solution.Solution` (the exact p_t
of a linear SDE from a Gaussian mixture, or a Fokker-Planck solution for m <= 2) and are plain
Monte Carlo with honest standard errors:

* :func:`score_error`: the p_t-weighted relative L2 error of a score s at each time,

      ``e(t) = sqrt( E_{p_t} |s(X, t) - s*(X, t)|^2 / E_{p_t} |s*(X, t)|^2 ),   X ~ p_t``,

  with its delta-method standard error and the truth's own error estimate beside it.
* :func:`compare_targets`: several (target, n_steps) choices on one truth, at equal cost, and which to
  use.
* :func:`target_bias`: whether a regression target (``malliavin``, ``dsm``, ... or a compiled
  kernel) has conditional mean ``s*(X_t)`` given X_t at a step count. The residual ``r = target - s*(X_t)``
  is taken at each path's own X_t, so E[r | X_t in bin] = 0 for an unbiased target *whatever the
  bin*: binning adds no error of its own (comparing bin means of the target with ``s*`` at the bin
  centre would), and any bin mean far from 0 in units of its standard error is bias.

Every time and bin is a z-score; the reports keep the per-bin arrays (for tests and plots),
print a table (``str(report)``) and serialise to JSON (``report.to_dict()``).
"""
from __future__ import annotations

import math
import time as clock
from dataclasses import dataclass, field, fields

import numpy as np
from scipy import stats

from .._checks import positive_int
from .._errors import SymscoreError
from ..compiler.kernel import Kernel
from ..compiler.runtime import check_seed
from .mixture import GaussianMixture, check_points
from .solution import Solution, check_times
from .selection import solve

__all__ = ["ScoreErrorReport", "TargetBiasReport", "TargetComparison", "score_error", "target_bias", "compare_targets"]

#: rows per call of the score under test (a network's activations grow with the rows); a mixture
#: truth bounds its own memory (GaussianMixture evaluates in row chunks)
CHUNK_ROWS = 2048
#: bins with fewer paths are skipped: their standard error would be too rough for a z-score
MIN_BIN_COUNT = 20


# -- shared checks ----------------------------------------------------------------------------------
def _stream(seed: int, *key: int) -> int:
    """An independent integer seed for (seed, key...): neighbouring seeds give unrelated draws."""
    return int(np.random.SeedSequence([seed, *key]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _truth(sde, p0, times, truth, solver_options) -> Solution:
    """The given ``truth`` (checked to cover ``times``) or ``solve(sde, p0, times)``."""
    if isinstance(p0, GaussianMixture) and p0.m != sde.m:
        raise SymscoreError(f"p0: expected a mixture in m = {sde.m} dimensions, got m = {p0.m}")
    if truth is None:
        if not isinstance(p0, GaussianMixture) and not callable(p0):
            raise SymscoreError(f"p0: expected a GaussianMixture or a callable density p0(x) on (n, m) points, "
                                f"got {type(p0).__name__}")
        return solve(sde, p0, times, **solver_options)
    if not isinstance(truth, Solution):
        raise SymscoreError(f"truth: expected a symscore.truth Solution (from ss.truth.solve), "
                            f"got {type(truth).__name__}")
    if solver_options:
        raise SymscoreError(f"truth: solver options {sorted(solver_options)} have no effect on a given truth")
    if truth.m != sde.m:
        raise SymscoreError(f"truth: expected a solution in m = {sde.m} dimensions, got m = {truth.m}")
    missing = [float(t) for t in times if np.min(np.abs(truth.times - t)) > 1e-9 * max(1.0, abs(t))]
    if missing:
        raise SymscoreError(f"truth: expected a solution at every time {np.asarray(times).tolist()}; it has "
                            f"{truth.times.tolist()}, not {missing}")
    return truth


def _truth_score(truth: Solution, x: np.ndarray, t: float) -> np.ndarray:
    """s*(x, t); an error if the truth is not finite there."""
    score = truth.score(x, t)
    if not np.isfinite(score).all():
        raise SymscoreError(f"truth: its score is not finite at {int((~np.isfinite(score)).any(axis=1).sum())} of "
                            f"{x.shape[0]} points at t = {t:g} (a grid too small for p_t?)")
    return score


def _as_numpy(array) -> np.ndarray:
    """A host float64 array from a numpy array or a torch tensor (any device)."""
    if isinstance(array, np.ndarray):
        return array.astype(np.float64, copy=False)
    import torch

    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy().astype(np.float64)
    return np.asarray(array, dtype=np.float64)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Report:
    """Shared: ``str`` is the table, ``to_dict`` every field as JSON-ready lists."""

    def table(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


# -- the score error ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ScoreErrorReport(_Report):
    """The relative L2 error of a score against the truth at each time (:func:`score_error`).

    Attributes:
        sde_name: the SDE's name.
        truth_kind: ``"closed form"`` or ``"Fokker-Planck"``.
        n: draws from p_t per time.
        times: (K,) the times.
        error: (K,) e(t), the p_t-weighted relative L2 error.
        standard_error: (K,) its Monte Carlo standard error (delta method).
        truth_error: (K,) the truth's own estimated relative error (0 for a closed form): e(t)
            below it is not resolved.
        score_scale: (K,) ``sqrt(E_{p_t} |s*|^2)``, the scale e(t) is relative to.
    """

    sde_name: str
    truth_kind: str
    n: int
    times: np.ndarray
    error: np.ndarray
    standard_error: np.ndarray
    truth_error: np.ndarray
    score_scale: np.ndarray

    def table(self) -> str:
        rows = [[f"{t:.4g}", f"{e:.4f}", f"{se:.4f}", f"{te:.1e}", f"{s:.4g}"]
                for t, e, se, te, s in zip(self.times, self.error, self.standard_error, self.truth_error,
                                           self.score_scale)]
        header = (f"score error against the truth ({self.truth_kind}) for {self.sde_name}, {self.n} draws of "
                  "p_t per time;\ne(t) = sqrt(E|s - s*|^2 / E|s*|^2), X ~ p_t\n\n")
        return header + _markdown(["t", "e(t)", "std. error", "truth error", "RMS s*"], rows)


def _check_score(score, x: np.ndarray, t: float) -> np.ndarray:
    try:
        value = score(x, t)
    except SymscoreError as exc:
        raise SymscoreError(f"score: calling score(x, t) on x of shape {x.shape} failed: {exc}") from exc
    value = _as_numpy(value)
    if value.shape != x.shape:
        raise SymscoreError(f"score: expected score(x, t) of shape {x.shape} for x of shape {x.shape}, got shape "
                            f"{value.shape}")
    if not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).any(axis=1).sum())
        raise SymscoreError(f"score: expected finite values; score(x, {t:g}) is not finite at {bad} of "
                            f"{x.shape[0]} points")
    return value


def score_error(score, sde, p0, times, n: int = 20000, seed: int = 0, truth: Solution | None = None,
                **solver_options) -> ScoreErrorReport:
    """How far ``score`` is from the true score of p_t, at each time.

    With X_1..X_n ~ p_t drawn from the truth, ``a_i = |s(X_i, t) - s*(X_i, t)|^2`` and
    ``b_i = |s*(X_i, t)|^2``,

        e(t) = sqrt(mean(a) / mean(b)),   se(e) = sd(a - e^2 b) / (2 e mean(b) sqrt(n))

    (the delta method for a ratio of means, then for the square root). Weighting by p_t is what
    training sees: the denoising loss is this numerator plus a constant.

    Args:
        score: a trained :class:`~symscore.ScoreModel`, or any callable ``score(x, t)`` with x a
            (n, m) float64 array and t a float, returning (n, m) (numpy or torch).
        sde: the :class:`~symscore.SDE`.
        p0: the initial law: a :class:`GaussianMixture` (exact truth for a linear SDE) or what
            :func:`~symscore.truth.fokker_planck` accepts (m <= 2). Unused when ``truth`` is given.
        times: increasing times in [0, T].
        n: draws of p_t per time (>= 2).
        seed: seeds the draws (each time its own independent stream).
        truth: a precomputed :class:`Solution` covering ``times`` (skips :func:`solve`).
        **solver_options: passed to :func:`~symscore.truth.solve` (cells, bounds, ...).

    Returns:
        A :class:`ScoreErrorReport`; ``print(report)`` shows the table.
    """
    times = check_times(times, sde)
    n, seed = positive_int(n, "n", low=2), check_seed(seed)
    if not callable(score):
        raise SymscoreError(f"score: expected a ScoreModel or a callable score(x, t) -> (n, m), "
                            f"got {type(score).__name__}")
    truth = _truth(sde, p0, times, truth, solver_options)
    error, standard_error, truth_error, scale = (np.zeros(times.size) for _ in range(4))
    for k, t in enumerate(times.tolist()):
        x = check_points(truth.sample(n, t, seed=_stream(seed, k)), sde.m, "truth.sample")
        exact = _truth_score(truth, x, t)
        learned = np.concatenate([_check_score(score, x[i:i + CHUNK_ROWS], t) for i in range(0, n, CHUNK_ROWS)])
        a, b = ((learned - exact) ** 2).sum(axis=1), (exact**2).sum(axis=1)
        if b.mean() <= 0:
            raise SymscoreError(f"truth: its score vanishes on every draw at t = {t:g}; the relative error is "
                                "undefined")
        ratio = a.mean() / b.mean()
        ratio_se = np.std(a - ratio * b, ddof=1) / (b.mean() * math.sqrt(n))
        error[k] = math.sqrt(ratio)
        standard_error[k] = ratio_se / (2 * error[k]) if error[k] > 0 else 0.0
        truth_error[k] = truth.error_estimate[truth.time_index(t)]
        scale[k] = math.sqrt(b.mean())
    return ScoreErrorReport(sde.name, truth.kind, n, times, error, standard_error, truth_error, scale)


# -- the target bias ----------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TargetBiasReport(_Report):
    """The conditional bias of a regression target against the truth's score (:func:`target_bias`).

    Per time k (lists of length K), over the B_k bins kept (those with >= ``MIN_BIN_COUNT`` paths):

    Attributes:
        sde_name, target, truth_kind: what was measured against what.
        n_steps: Euler steps over [0, T]; n: paths; seconds: wall clock of the target's simulation
            (all times together, after a small untimed warm-up).
        times: (K,) record times.
        bin_axes: the coordinates binned on (the first min(m, 2)); bins: bins per axis.
        bin_cells: list of (B_k, len(bin_axes)) integer grid positions of the kept bins.
        bin_counts: list of (B_k,) paths per bin.
        bin_centres: list of (B_k, m) mean X_t in the bin.
        bin_mean_target: list of (B_k, m) mean target in the bin.
        bin_mean_truth: list of (B_k, m) mean ``s*(X_t)`` in the bin.
        bin_residual: list of (B_k, m) mean of ``target - s*(X_t)``: 0 in expectation when unbiased.
        bin_standard_error: list of (B_k, m) its standard error sd / sqrt(count).
        bin_truth_gap: list of (B_k, m) the mean of |s*_h - s*_2h| in the bin, the truth's own
            error there (a Fokker-Planck solution against its half-cells grid; 0 for a closed form).
        chi2_per_dof: (K,) the sum over bins of Hotelling's T^2 = n_b rbar^T S^-1 rbar (S the
            residual's covariance in the bin: the coordinates' z-scores are correlated, so their
            squares do not add up to a chi-square), divided by its degrees of freedom (bins x m);
            about 1 when unbiased.
        p_value: (K,) the chi-square tail probability of that sum (small: biased, or the truth off).
        max_abs_z: (K,) the largest |z| (about 3 for ~100 unbiased z-scores).
        max_excess_z: (K,) the largest (|rbar| - truth gap) / se: how far beyond the truth's own
            error a bin lies (equal to max_abs_z for a closed form).
        bias: (K,) RMS over bins of the bin residual / RMS of ``s*`` over the paths: the bias as a
            fraction of the score's scale (it includes the noise: compare with ``noise_floor``).
        noise_floor: (K,) RMS of the standard errors / RMS of ``s*``: what ``bias`` reads for an
            unbiased target.
        truth_gap: (K,) RMS over bins of the truth gap / RMS of ``s*``: the share of ``bias`` the
            truth's own error could explain.
        score_scale: (K,) RMS of ``s*(X_t)`` over the paths.
    """

    sde_name: str
    target: str
    truth_kind: str
    n_steps: int
    n: int
    seconds: float
    times: np.ndarray
    bin_axes: tuple
    bins: int
    bin_cells: list = field(repr=False)
    bin_counts: list = field(repr=False)
    bin_centres: list = field(repr=False)
    bin_mean_target: list = field(repr=False)
    bin_mean_truth: list = field(repr=False)
    bin_residual: list = field(repr=False)
    bin_standard_error: list = field(repr=False)
    bin_truth_gap: list = field(repr=False)
    chi2_per_dof: np.ndarray
    p_value: np.ndarray
    max_abs_z: np.ndarray
    max_excess_z: np.ndarray
    bias: np.ndarray
    noise_floor: np.ndarray
    truth_gap: np.ndarray
    score_scale: np.ndarray

    @property
    def z(self) -> list[np.ndarray]:
        """Per time, (B_k, m) z-scores residual / standard error (0 where both vanish)."""
        return [_z(r, s) for r, s in zip(self.bin_residual, self.bin_standard_error)]

    def unbiased(self, level: float = 1e-3) -> bool:
        """Whether no time shows bias at family-wise ``level``: its chi-square p-value is above
        ``level``, or no bin lies beyond the truth's own error by more than the normal quantile at
        ``level`` over its bins and coordinates (what a grid truth cannot resolve is not counted)."""
        return all(p > level or z < stats.norm.isf(level / (2 * r.size))
                   for p, z, r in zip(self.p_value, self.max_excess_z, self.bin_residual))

    def truth_limited(self, level: float = 1e-3) -> bool:
        """Whether the chi-square test sees bias at some time that the truth's own error explains."""
        return self.unbiased(level) and bool(np.any(self.p_value <= level))

    def excess_bias(self) -> np.ndarray:
        """(K,) sqrt(max(0, bias^2 - noise_floor^2)): the bias with the noise's share removed."""
        return np.sqrt(np.maximum(0.0, self.bias**2 - self.noise_floor**2))

    def table(self) -> str:
        rows = [[f"{t:.4g}", str(len(c)), f"{c2:.2f}", f"{p:.2g}", f"{z:.2f}", f"{b:.4f}", f"{f:.4f}", f"{g:.4f}"]
                for t, c, c2, p, z, b, f, g in zip(self.times, self.bin_counts, self.chi2_per_dof, self.p_value,
                                                   self.max_abs_z, self.bias, self.noise_floor, self.truth_gap)]
        header = (f"target bias of {self.target!r} for {self.sde_name} at n_steps = {self.n_steps}: {self.n} paths, "
                  f"{self.seconds:.3g} s; truth: {self.truth_kind}\n"
                  "per bin of X_t: z = mean(target - s*(X_t)) / its std. error "
                  "(unbiased: chi2/dof ~ 1, max|z| ~ 3); truth error: the truth's own, on the same scale\n\n")
        return header + _markdown(["t", "bins", "chi2/dof", "p", "max|z|", "bias/RMS s*", "noise floor", "truth error"],
                                  rows)


def _z(residual: np.ndarray, standard_error: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(standard_error > 0, residual / standard_error, np.where(residual == 0, 0.0, np.inf))


def _check_record_times(times, sde, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, record steps k) with t = k T / n_steps, 1 <= k <= n_steps, else an error naming ``times``."""
    times = check_times(times, sde)
    if times[0] <= 0:
        raise SymscoreError(f"times: expected times > 0 (the target is not defined at t = 0), got {times.tolist()}")
    steps = times * n_steps / sde.T
    rounded = np.rint(steps)
    if rounded[0] < 1:
        raise SymscoreError(f"times: expected times of at least one step T / n_steps = {sde.T / n_steps:g}, got "
                            f"{times[0]:g}")
    if np.any(np.abs(steps - rounded) > 1e-8 * np.maximum(1.0, steps)):
        off = times[np.abs(steps - rounded) > 1e-8 * np.maximum(1.0, steps)].tolist()
        raise SymscoreError(f"times: expected times on the grid k T / n_steps = k * {sde.T / n_steps:g}; "
                            f"{off} are not")
    return times, rounded.astype(np.int64)


#: Draws of p0, independent of the rows, that a target averaging over data (``stf``) takes as its data.
REFERENCE_DRAWS = 65536


def _needs_data(target) -> bool:
    """A registered target name whose source averages over data (``stf``)."""
    from ..learn.targets import TARGETS

    return isinstance(target, str) and getattr(TARGETS.lookup(target), "needs_data", False)


def _target_runner(target, sde, n_steps: int, backend: str, reference=None):
    """(name, run(x0, record_steps, seed) -> (x, target) of shape (K, n, m) as numpy); ``reference``:
    draws of p0 independent of x0, the data of a target that averages over data (``stf``)."""
    from ..learn.targets import TargetSource, make_target_source

    if isinstance(target, Kernel):
        if target.sde.m != sde.m:
            raise SymscoreError(f"target: the kernel is for m = {target.sde.m}, the sde has m = {sde.m}")
        dt = sde.T / n_steps

        def run(x0, steps, seed):
            paths = target.simulate(x0, steps * dt, int(steps[-1]), seed=seed, as_numpy=True)
            return paths.x.swapaxes(0, 1), paths.target.swapaxes(0, 1)

        return f"kernel {target.sde.name} ({target.backend})", run
    if isinstance(target, str):
        source = make_target_source(target, sde, n_steps, backend=backend, data=reference)
        name = target
    elif isinstance(target, TargetSource):
        source, name = target, type(target).__name__
        if source.n_steps != n_steps or source.sde.m != sde.m:
            raise SymscoreError(f"target: the TargetSource was built for n_steps = {source.n_steps} and m = "
                                f"{source.sde.m}; expected n_steps = {n_steps} and m = {sde.m}")
    else:
        raise SymscoreError(f"target: expected a registered target name, a compiled ss.Kernel or a TargetSource, "
                            f"got {type(target).__name__}")
    if not source.has_target:
        raise SymscoreError(f"target: {name!r} has no regression target (its loss needs none), so it has no bias to "
                            "measure; choose a target such as 'malliavin' or 'dsm'")
    return name, source.batch


def _bin_edges(x: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count edges of one coordinate: its quantiles at 0, 1/bins, ..., 1."""
    return np.quantile(x, np.linspace(0.0, 1.0, bins + 1))


def _bin_statistics(x, target, exact, gap, bins: int, axes: tuple) -> dict:
    """Per kept bin: its grid cell, count, mean X, target, s* and residual r = target - s*, the
    residual's standard error per coordinate, Hotelling's T^2 = n_b rbar^T S^-1 rbar (S the residual's
    covariance in the bin), as the chi-square(m) value of equal tail probability (summing the
    coordinates' z^2 instead would not be chi-square: they are correlated), and the mean of ``gap``."""
    cells = np.stack([np.clip(np.searchsorted(_bin_edges(x[:, a], bins)[1:-1], x[:, a], side="right"), 0, bins - 1)
                      for a in axes], axis=1)
    flat = np.ravel_multi_index(tuple(cells.T), (bins,) * len(axes))
    counts = np.bincount(flat, minlength=bins ** len(axes))
    kept = np.flatnonzero(counts >= MIN_BIN_COUNT)
    residual = target - exact
    m = x.shape[1]

    def mean(values):  # (B, k) per-bin means over the kept bins
        return np.stack([np.bincount(flat, weights=values[:, i], minlength=counts.size)[kept] for i in
                         range(values.shape[1])], axis=1) / counts[kept, None]

    n_b = counts[kept].astype(np.float64)
    res_mean = mean(residual)
    outer = mean((residual[:, :, None] * residual[:, None, :]).reshape(-1, m * m)).reshape(-1, m, m)
    covariance = (outer - res_mean[:, :, None] * res_mean[:, None, :]) * (n_b / (n_b - 1))[:, None, None]
    variance = np.maximum(np.diagonal(covariance, axis1=1, axis2=2), 0.0)
    standard_error = np.sqrt(variance / n_b[:, None])
    # pinv: a coordinate whose residual does not vary in a bin (a noiseless direction) adds nothing
    hotelling = n_b * np.einsum("bi,bij,bj->b", res_mean, np.linalg.pinv(covariance, hermitian=True), res_mean)
    # With S estimated from n_b paths, T^2 (n_b - m) / ((n_b - 1) m) is F(m, n_b - m) for normal
    # residuals: each bin's T^2 is mapped to the chi-square(m) value of equal tail probability, so
    # that the sum over bins is chi-square(bins x m) even for bins of a few dozen paths.
    tail = stats.f.sf(hotelling * (n_b - m) / ((n_b - 1) * m), m, n_b - m)
    hotelling = stats.chi2.isf(np.maximum(tail, 1e-300), m)
    grid = np.stack(np.unravel_index(kept, (bins,) * len(axes)), axis=1)
    return {"cells": grid, "counts": counts[kept], "centres": mean(x), "mean_target": mean(target),
            "mean_truth": mean(exact), "residual": res_mean, "se": standard_error, "hotelling": hotelling,
            "truth_gap": mean(gap)}


def target_bias(sde, p0, times, n_steps: int, target="malliavin", n: int = 50000, bins: int | None = None,
                seed: int = 0, backend: str = "numba", truth: Solution | None = None,
                **solver_options) -> TargetBiasReport:
    """The conditional bias of a regression target at ``n_steps`` Euler steps, bin by bin.

    Draws x0 ~ p0, simulates (X_t, target) at the record times, and per bin of X_t and coordinate
    takes the mean and standard error of the residual ``r = target - s*(X_t, t)``, ``s*`` the truth's score
    at each path's own X_t. For a target with ``E[target | X_t] = s*(X_t)`` every bin mean is 0 in
    expectation, so z = mean / se is standard normal per bin: sum z^2 over bins and coordinates is
    chi-square with that many degrees of freedom, and a target biased by a fraction f of the score
    shows as |z| growing like f sqrt(n). What is measured is the whole step-count bias: the
    weight's and that of the Euler law of X_t (both O(T / n_steps) for ``malliavin``; ``dsm``
    samples the exact transition and has none).

    Bins: 1-D, ``bins`` equal-count quantile bins of X_t (default min(20, n / 100)); m >= 2, a grid
    of ``bins`` marginal-quantile bins per coordinate on the first two coordinates (default
    min(6, sqrt(n / 100))) — any partition of the state keeps E[r | bin] = 0. Bins with fewer
    than ``MIN_BIN_COUNT`` paths are skipped.

    Args:
        sde: the :class:`~symscore.SDE`.
        p0: the initial law: a :class:`GaussianMixture` (x0 = p0.sample), or a callable density
            p0(x) for :func:`~symscore.truth.fokker_planck` (x0 = truth.sample(n, 0.0); the truth
            is solved at 0 too).
        times: increasing record times in (0, T], each on the grid k T / n_steps.
        n_steps: Euler steps over [0, T] (the simulation stops at the last record time).
        target: a registered target name (``"malliavin"``, ``"dsm"``, ``"malliavin-richardson"``,
            ...; not ``"ssm"``, which has no target), a :class:`~symscore.learn.targets.TargetSource`
            built for ``n_steps``, or a compiled :class:`~symscore.Kernel` (e.g. an ablation
            ``ss.compile(sde, variant=ss.Variant(first_order_only=True))``).
        n: paths (>= 2).
        bins: bins per binned coordinate (>= 2).
        seed: seeds x0 and the Brownian increments.
        backend: the kernel backend of a named target (``"numba"``, ``"torch"``, ...).
        truth: a precomputed :class:`Solution` covering ``times`` (and 0 for a callable p0).
        **solver_options: passed to :func:`~symscore.truth.solve`.

    Returns:
        A :class:`TargetBiasReport`; ``print(report)`` shows one row per time.
    """
    n_steps = positive_int(n_steps, "n_steps")
    times, steps = _check_record_times(times, sde, n_steps)
    n, seed = positive_int(n, "n", low=2), check_seed(seed)
    axes = tuple(range(min(sde.m, 2)))
    if bins is None:
        bins = max(2, min(20, n // 100)) if len(axes) == 1 else max(2, min(6, math.isqrt(n // 100)))
    bins = positive_int(bins, "bins", low=2)
    if isinstance(p0, GaussianMixture):
        truth = _truth(sde, p0, times, truth, solver_options)

        def draw_p0(count, key):
            return p0.sample(count, seed=_stream(seed, key))
    else:  # from the truth's own p_0 (a grid's, for a callable density)
        truth = _truth(sde, p0, np.concatenate([[0.0], times]), truth, solver_options)

        def draw_p0(count, key):
            return check_points(truth.sample(count, 0.0, seed=_stream(seed, key)), sde.m, "truth.sample")
    x0 = draw_p0(n, 0)
    reference = draw_p0(REFERENCE_DRAWS, 5) if _needs_data(target) else None
    name, run = _target_runner(target, sde, n_steps, backend, reference)

    run(x0[: min(n, 16)], steps, seed)  # warm-up (compilation, caches): not part of the timed cost
    start = clock.perf_counter()
    x, values = run(x0, steps, seed)
    seconds = clock.perf_counter() - start
    x, values = _as_numpy(x), _as_numpy(values)
    if x.shape != (times.size, n, sde.m) or values.shape != x.shape:
        raise SymscoreError(f"target: expected (x, target) of shape {(times.size, n, sde.m)}, got {x.shape} and "
                            f"{values.shape}")
    if not (np.isfinite(x).all() and np.isfinite(values).all()):
        raise SymscoreError("target: the simulated X_t or target is not finite on some paths (more n_steps?)")

    per_time = {key: [] for key in ("cells", "counts", "centres", "mean_target", "mean_truth", "residual", "se",
                                    "truth_gap")}
    summary = {key: np.zeros(times.size) for key in ("chi2", "p", "max_z", "excess_z", "bias", "floor", "gap",
                                                     "scale")}
    coarse = getattr(truth, "coarse", None)  # a grid truth's half-cells solution: its error, bin by bin
    for k, t in enumerate(times.tolist()):
        exact = _truth_score(truth, x[k], t)
        gap = np.abs(exact - _truth_score(coarse, x[k], t)) if coarse is not None else np.zeros_like(exact)
        binned = _bin_statistics(x[k], values[k], exact, gap, bins, axes)
        if len(binned["counts"]) == 0:
            raise SymscoreError(f"n: no bin of X_t at t = {t:g} holds {MIN_BIN_COUNT} paths; raise n or lower bins")
        for key in per_time:
            per_time[key].append(binned[key])
        residual, se = binned["residual"], binned["se"]
        z = _z(residual, se)
        chi2, dof = float(np.sum(binned["hotelling"])), residual.size
        scale = math.sqrt(float(np.mean(exact**2)))
        summary["chi2"][k] = chi2 / dof
        summary["p"][k] = stats.chi2.sf(chi2, dof) if np.isfinite(chi2) else 0.0
        summary["max_z"][k] = float(np.max(np.abs(z)))
        summary["excess_z"][k] = float(np.max(_z(np.maximum(np.abs(residual) - binned["truth_gap"], 0.0), se)))
        summary["bias"][k] = math.sqrt(float(np.mean(residual**2))) / scale
        summary["floor"][k] = math.sqrt(float(np.mean(se**2))) / scale
        summary["gap"][k] = math.sqrt(float(np.mean(binned["truth_gap"] ** 2))) / scale
        summary["scale"][k] = scale
    return TargetBiasReport(
        sde.name, name, truth.kind, n_steps, n, seconds, times, axes, bins, per_time["cells"], per_time["counts"],
        per_time["centres"], per_time["mean_target"], per_time["mean_truth"], per_time["residual"], per_time["se"],
        per_time["truth_gap"],
        summary["chi2"], summary["p"], summary["max_z"], summary["excess_z"], summary["bias"], summary["floor"],
        summary["gap"], summary["scale"])


# -- the choice of a target at equal cost --------------------------------------------------------------
#: The family-wise level at which a candidate counts as biased (TargetBiasReport.unbiased).
UNBIASED_P_VALUE = 1e-3
#: Kernel passes of n_steps steps per path, by target (the Richardson target runs 2 n_steps + n_steps).
PASSES = {"malliavin-richardson": 3, "malliavin-cv": 2}


@dataclass(frozen=True, eq=False)
class TargetComparison(_Report):
    """Targets and step counts measured on the same paths count and truth (:func:`compare_targets`).

    Attributes:
        sde_name: the SDE's name.
        reports: one :class:`TargetBiasReport` per candidate.
        path_steps: (R,) kernel steps per path (n_steps times the target's passes): the cost.
        seconds: (R,) measured wall clock of each candidate.
        excess_bias: (R,) the worst time's excess bias (bias with the noise's share removed, as a
            fraction of the score's scale).
        unbiased: (R,) :meth:`TargetBiasReport.unbiased` at :data:`UNBIASED_P_VALUE`: no time shows
            bias beyond the noise and the truth's own error.
        least_biased: the index of the candidate with the smallest ``excess_bias``.
        cheapest_unbiased: the index of the cheapest (wall clock) unbiased candidate, or None.
    """

    sde_name: str
    reports: tuple
    path_steps: np.ndarray
    seconds: np.ndarray
    excess_bias: np.ndarray
    unbiased: np.ndarray
    least_biased: int
    cheapest_unbiased: int | None

    def verdict(self) -> str:
        """One sentence naming the candidate to use."""
        least = self.reports[self.least_biased]
        text = (f"least biased: {least.target} at n_steps = {least.n_steps} ({int(self.path_steps[self.least_biased])} "
                f"steps per path, {self.seconds[self.least_biased]:.3g} s)")
        if self.cheapest_unbiased is None:
            return text + f"; none is unbiased within noise at {least.n} paths: raise n_steps"
        cheap = self.reports[self.cheapest_unbiased]
        text += (f"; cheapest unbiased within noise at {cheap.n} paths: {cheap.target} at n_steps = "
                 f"{cheap.n_steps} ({self.seconds[self.cheapest_unbiased]:.3g} s)")
        if cheap.truth_limited(UNBIASED_P_VALUE):
            text += (" (its remaining bias is within the truth's own grid error: finer cells would resolve it)")
        return text

    def table(self) -> str:
        rows = [[r.target, str(r.n_steps), str(int(c)), f"{s:.3g}", f"{float(r.max_abs_z.max()):.2f}",
                 f"{float(r.p_value.min()):.2g}", f"{b:.4f}"]
                for r, c, s, b in zip(self.reports, self.path_steps, self.seconds, self.excess_bias)]
        header = (f"targets for {self.sde_name} on {self.reports[0].n} paths (worst time; excess bias = "
                  "sqrt(bias^2 - noise floor^2) / RMS s*)\n\n")
        return header + _markdown(["target", "n_steps", "steps/path", "seconds", "max|z|", "min p", "excess bias"],
                                  rows) + "\n\n" + self.verdict()

    def to_dict(self) -> dict:
        out = {f.name: _jsonable(getattr(self, f.name)) for f in fields(self) if f.name != "reports"}
        out["candidates"] = [{"target": r.target, "n_steps": r.n_steps} for r in self.reports]
        out["verdict"] = self.verdict()
        return out


def compare_targets(sde, p0, times, n_steps: int, candidates=None, n: int = 50000, seed: int = 0,
                    backend: str = "numba", truth: Solution | None = None, **solver_options) -> TargetComparison:
    """Measure the bias of several (target, n_steps) choices on one truth, to choose one at equal cost.

    The default candidates are the plain weight at ``n_steps`` and, at equal cost (3 n_steps kernel
    steps per path), the plain weight at 3 n_steps and the Richardson target at n_steps (its fine
    pass of 2 n_steps and its coarse pass of n_steps share one Brownian path). The plain weight's
    bias is O(1 / n_steps) from the weight and from the Euler law of X_t; Richardson cancels the
    weight's first-order part only, so which one wins at equal cost depends on the SDE: this
    measures it.

    Args:
        candidates: (target, n_steps) pairs; targets as in :func:`target_bias`. Every record time
            must lie on each candidate's grid.
        other arguments: as in :func:`target_bias`.

    Returns:
        A :class:`TargetComparison`; ``print(comparison)`` shows the table and the verdict.
    """
    n_steps = positive_int(n_steps, "n_steps")
    if candidates is None:
        candidates = (("malliavin", n_steps), ("malliavin", 3 * n_steps), ("malliavin-richardson", n_steps))
    try:
        candidates = [(target, positive_int(steps, "candidates")) for target, steps in candidates]
    except (TypeError, ValueError):
        raise SymscoreError(f"candidates: expected (target, n_steps) pairs, got {candidates!r}") from None
    if not candidates:
        raise SymscoreError("candidates: expected at least one (target, n_steps) pair")
    times = check_times(times, sde)
    if truth is None:
        with_zero = times if isinstance(p0, GaussianMixture) or times[0] == 0 else np.concatenate([[0.0], times])
        truth = _truth(sde, p0, with_zero, None, solver_options)
    reports = tuple(target_bias(sde, p0, times, steps, target=target, n=n, seed=seed, backend=backend, truth=truth)
                    for target, steps in candidates)
    path_steps = np.array([steps * PASSES.get(target if isinstance(target, str) else "", 1)
                           for target, steps in candidates], dtype=np.float64)
    seconds = np.array([r.seconds for r in reports])
    excess = np.array([float(r.excess_bias().max()) for r in reports])
    unbiased = np.array([r.unbiased(UNBIASED_P_VALUE) for r in reports])
    clean = np.flatnonzero(unbiased)
    cheapest = int(clean[np.argmin(seconds[clean])]) if clean.size else None
    return TargetComparison(sde.name, reports, path_steps, seconds, excess, unbiased, int(np.argmin(excess)),
                            cheapest)
