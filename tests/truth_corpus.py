"""A corpus of random 1-D and 2-D SDEs with a Fokker-Planck truth, and the binned check of a target.

Each SDE is drawn from a seeded generator (no hypothesis: the corpus is the same on every machine)
as a confining linear part plus polynomial, rational or transcendental terms, with one of the noise
kinds the parser accepts:

* ``constant``: sigma a constant matrix (lower triangular in 2-D);
* ``time``: sigma(t) = s sqrt(1 + t) (times a constant matrix in 2-D);
* ``state``: sigma(x) diagonal, s (1 + f(x) / 2) with a bounded smooth f (the general weight with
  P and RPsi);
* ``hypoelliptic`` (2-D): noise on the second coordinate only (d = 1), the first driven through the
  drift, as in kinetic Langevin dynamics (Hoermander's condition holds, C is invertible for t > 0).

p0 is a two-component Gaussian mixture. :func:`binned_check` is the statistic of the truth tests:
the binned mean of target - s*(X_t), with s* the Fokker-Planck score, against its standard error and
an allowance for the Euler bias measured from the step count (see its docstring).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import sympy as sp
from scipy.stats import norm

import symscore as ss

t = sp.Symbol("t")

#: Nonlinear drift terms f(u, v) of one or two coordinates, bounded or confining, by family.
TERMS = {
    "polynomial": [lambda u, v: -u**3 / 2, lambda u, v: u**2 / (4 + u**4) * 4 - u**3 / 4, lambda u, v: -u**3 / 3 + u * v / 4],
    "rational": [lambda u, v: 2 * u / (1 + u**2), lambda u, v: 1 / (1 + (u - v / 2) ** 2), lambda u, v: (u - v) / (1 + u**2 + v**2)],
    "transcendental": [lambda u, v: sp.sin(2 * u), lambda u, v: sp.tanh(2 * u) * sp.cos(v), lambda u, v: sp.atan(u + v / 2),
                       lambda u, v: sp.exp(-u**2) * (1 + v / 2)],
}
#: Bounded smooth f(u) for state-dependent diffusion entries (|f| <= 1).
SIGMA_TERMS = [sp.tanh, lambda u: 2 * u / (1 + u**2), sp.sin, lambda u: sp.exp(-u**2)]
NOISE_KINDS = {1: ("constant", "time", "state"), 2: ("constant", "time", "state", "hypoelliptic")}


@dataclasses.dataclass(frozen=True)
class Case:
    """One corpus entry: the SDE, its initial law and what was drawn."""

    sde: ss.SDE
    p0: "ss.truth.GaussianMixture"
    label: str


def corpus_case(m: int, family: str, noise: str, seed: int) -> Case:
    """A random SDE of dimension ``m`` with drift terms of ``family`` and noise ``noise``."""
    rng = np.random.default_rng([m, list(TERMS).index(family), NOISE_KINDS[m].index(noise), seed])
    x = sp.symbols(f"x1:{m + 1}")

    def coef(low, high):
        return sp.Rational(int(rng.integers(round(8 * low), round(8 * high) + 1)), 8)

    drift = []
    for i in range(m):
        term = TERMS[family][int(rng.integers(len(TERMS[family])))]
        other = x[(i + 1) % m] if m > 1 else sp.S.Zero  # in 1-D, v = 0 (u - v terms must not cancel)
        drift.append(-coef(0.5, 1.25) * x[i] + coef(0.5, 1.0) * term(x[i], other))
    if noise == "hypoelliptic":  # kinetic form: x1' = x2 - a x1 + ..., noise on x2 only
        drift[0] = x[1] - coef(0.25, 0.75) * x[0] + coef(0.25, 0.5) * TERMS[family][0](x[0], x[1])
        sigma = sp.Matrix([0, coef(0.75, 1.25)])
    elif noise == "constant":
        s = coef(0.6, 1.0)
        sigma = s if m == 1 else sp.Matrix([[s, 0], [coef(-0.4, 0.4), coef(0.6, 1.0)]])
    elif noise == "time":
        s = coef(0.5, 0.9) * sp.sqrt(1 + t)
        sigma = s if m == 1 else s * sp.Matrix([[1, 0], [coef(-0.4, 0.4), 1]])
    else:
        entries = [coef(0.6, 0.9) * (1 + SIGMA_TERMS[int(rng.integers(len(SIGMA_TERMS)))](x[(i + int(rng.integers(m))) % m]) / 2)
                   for i in range(m)]
        sigma = entries[0] if m == 1 else sp.diag(*entries)
    direction = rng.normal(size=m)
    direction /= np.linalg.norm(direction)
    shift = rng.uniform(0.6, 1.0) * direction
    std = rng.uniform(0.3, 0.45)
    p0 = ss.truth.GaussianMixture([rng.uniform(0.3, 0.7), 1.0], [shift, -shift], np.stack([std**2 * np.eye(m)] * 2))
    name = f"{family}_{noise}_{m}d_{seed}"
    return Case(ss.SDE(drift, sigma, list(x), t, name=name), p0, name)


@dataclasses.dataclass
class BinnedCheck:
    """Per record time k, bin b and coordinate j (arrays (K, B, m)):

    * ``mean``: the bin mean of target - s*(X_t) on the fine run (2 n_steps steps);
    * ``se``: its standard error;
    * ``change``: the coarse run's bin mean minus the fine run's, each run binned by its own X_t on
      the same edges (the coarse weight's noise has mean zero given the coarse X_t, not the fine
      one), with its standard error ``change_se``: the two runs share one Brownian path, so the
      covariance of the two bin means (over the paths in that bin in both runs) is subtracted.

    For a first-order scheme bias(2N) = bias(N) - bias(2N) to leading order, so ``|change|`` is
    the allowance for the fine run's Euler bias. ``excess`` = (|mean| - |change| - 2 change_se
    - truth allowance) / se: how many standard errors the fine residual lies beyond the bias
    the step count explains. A correct target has ``excess`` below the normal quantile for the
    number of bins (:attr:`threshold`); a wrong one far above it.
    """

    times: np.ndarray
    mean: np.ndarray
    se: np.ndarray
    change: np.ndarray
    change_se: np.ndarray
    truth_allowance: np.ndarray
    seconds: float

    @property
    def excess(self) -> np.ndarray:
        return (np.abs(self.mean) - np.abs(self.change) - 2 * self.change_se - self.truth_allowance) / self.se

    @property
    def threshold(self) -> float:
        """The two-sided normal quantile at family-wise level 1e-3 over all bins and coordinates."""
        return float(norm.isf(1e-3 / (2 * self.mean.size)))

    def worst(self) -> float:
        return float(np.nanmax(self.excess))


def _bin_index(x, edges):
    """The flat bin of each row of x (n, m) on per-axis ``edges`` (interior edges)."""
    index = np.zeros(x.shape[0], dtype=np.int64)
    for j, axis_edges in enumerate(edges):
        index = index * (len(axis_edges) + 1) + np.searchsorted(axis_edges, x[:, j])
    return index


def _bin_moments(index, values, n_bins):
    """(count (B,), mean (B, m), centred values (n, m)) of ``values`` per bin."""
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    sums = np.stack([np.bincount(index, values[:, j], n_bins) for j in range(values.shape[1])], 1)
    mean = sums / np.maximum(count, 1)[:, None]
    return count, mean, values - mean[index]


def binned_check(kernel, truth, x0, times, n_steps: int, seed: int, bins: int = 16) -> BinnedCheck:
    """Simulate ``kernel`` at 2 n_steps and n_steps on one Brownian path per row and bin the residual
    target - truth.score(X_t, t) by marginal quantiles of the fine X_t (about ``bins`` bins).

    The truth's own error enters as an allowance: per bin, the mean |s*_fine - s*_coarse| of the
    Fokker-Planck solution against its half-resolution grid, where the truth carries one."""
    import time as clock

    n, m = x0.shape
    times = np.asarray(times, dtype=np.float64)
    dt = times[-1] / n_steps
    fine = kernel.increments(n, 2 * n_steps, dt / 2, seed)
    coarse = fine[:, 0::2] + fine[:, 1::2]
    options = {"as_numpy": True} if kernel.backend != "numba" else {}
    start = clock.perf_counter()
    fine_paths = kernel.simulate(x0, times, 2 * n_steps, dW=fine, **options)
    coarse_paths = kernel.simulate(x0, times, n_steps, dW=coarse, **options)
    seconds = clock.perf_counter() - start
    per_axis = max(2, int(round(bins ** (1 / m))))
    n_bins = per_axis**m
    shape = (len(times), n_bins, m)
    mean, se, change, change_se, allowance = (np.full(shape, np.nan) for _ in range(5))
    coarse_truth = getattr(truth, "coarse", None)
    for k, t_k in enumerate(times):
        x_fine, x_coarse = fine_paths.x[:, k], coarse_paths.x[:, k]
        score_fine = truth.score(x_fine, t_k)
        edges = [np.quantile(x_fine[:, j], np.linspace(0, 1, per_axis + 1)[1:-1]) for j in range(m)]
        index_f, index_c = _bin_index(x_fine, edges), _bin_index(x_coarse, edges)
        count_f, mean_f, centred_f = _bin_moments(index_f, fine_paths.target[:, k] - score_fine, n_bins)
        count_c, mean_c, centred_c = _bin_moments(index_c, coarse_paths.target[:, k] - truth.score(x_coarse, t_k),
                                                  n_bins)
        var_f = np.stack([np.bincount(index_f, centred_f[:, j] ** 2, n_bins) for j in range(m)], 1)
        var_c = np.stack([np.bincount(index_c, centred_c[:, j] ** 2, n_bins) for j in range(m)], 1)
        both = index_f == index_c  # paths in the same bin in both runs carry the shared noise
        cross = np.stack([np.bincount(index_f[both], (centred_f * centred_c)[both, j], n_bins) for j in range(m)], 1)
        used = (count_f >= 50) & (count_c >= 50)
        se_f2 = var_f / np.maximum(count_f * (count_f - 1), 1)[:, None]
        se_c2 = var_c / np.maximum(count_c * (count_c - 1), 1)[:, None]
        covariance = cross / np.maximum(count_f * count_c, 1)[:, None]
        mean[k][used], se[k][used] = mean_f[used], np.sqrt(se_f2[used])
        change[k][used] = (mean_c - mean_f)[used]
        change_se[k][used] = np.sqrt(np.maximum(se_f2 + se_c2 - 2 * covariance, 0.0)[used])
        if coarse_truth is not None:
            gap = np.abs(score_fine - coarse_truth.score(x_fine, t_k))
            allowance[k][used] = _bin_moments(index_f, gap, n_bins)[1][used]
        else:
            allowance[k][used] = 0.0
    return BinnedCheck(times, mean, se, change, change_se, allowance, seconds)
