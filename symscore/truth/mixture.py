"""Gaussian mixtures: the initial laws p_0 of the truth, and the exact p_t of a linear SDE.

A mixture p(x) = sum_k w_k N(x; mu_k, Sigma_k) has a closed-form density and score,

    log p(x) = logsumexp_k [log w_k + log N(x; mu_k, Sigma_k)],
    grad log p(x) = -sum_k r_k(x) Sigma_k^-1 (x - mu_k),   r_k(x) = w_k N(x; mu_k, Sigma_k) / p(x),

computed here from Cholesky factors (no explicit inverse) and with the responsibilities r_k in
log space, so points far in a tail keep a finite score. A linear SDE maps each component to a
Gaussian, so the family is closed under the forward process (:mod:`symscore.truth.linear`).
"""
from __future__ import annotations

import numbers

import numpy as np
from scipy.special import logsumexp

from .._errors import SymscoreError

__all__ = ["GaussianMixture", "check_points"]


def check_points(x, m: int, name: str = "x") -> np.ndarray:
    """``x`` as a finite float64 array of shape (n, m) (a 1-D array of length n is taken as (n, 1)
    when m = 1), else an error naming ``name``."""
    array = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x.astype(np.float64, copy=False)
    if array.ndim == 1 and m == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != m:
        raise SymscoreError(f"{name}: expected an array of shape (n, {m}), got shape {np.shape(x)}")
    if not np.isfinite(array).all():
        rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
        raise SymscoreError(f"{name}: expected finite values; rows {rows[:5].tolist()} are not")
    return array


class GaussianMixture:
    """p(x) = sum_k w_k N(x; mu_k, Sigma_k) in m dimensions.

    Args:
        weights: (K,) non-negative, with a positive sum; they are normalised to sum to 1.
        means: (K, m) component means (a (K,) array means m = 1).
        covs: (K, m, m) symmetric positive definite covariances; a (K,) array of variances is
            taken as (K, 1, 1) when m = 1.

    >>> import numpy as np, symscore as ss
    >>> p0 = ss.truth.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[0.1]], [[0.1]]])
    >>> p0.score(np.zeros((1, 1)))
    array([[0.]])
    """

    def __init__(self, weights, means, covs):
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 1 or weights.size == 0 or not np.isfinite(weights).all() or (weights < 0).any() \
                or weights.sum() <= 0:
            raise SymscoreError(f"weights: expected a non-empty 1-D array of non-negative numbers with a positive sum, "
                                f"got {np.asarray(weights).tolist()!r}")
        K = weights.size
        means = np.asarray(means, dtype=np.float64)
        if means.ndim == 1:
            means = means[:, None]
        if means.ndim != 2 or means.shape[0] != K or not np.isfinite(means).all():
            raise SymscoreError(f"means: expected a finite array of shape ({K}, m), got shape {np.shape(means)}")
        m = means.shape[1]
        covs = np.asarray(covs, dtype=np.float64)
        if covs.ndim == 1 and m == 1:
            covs = covs[:, None, None]
        if covs.shape != (K, m, m) or not np.isfinite(covs).all():
            raise SymscoreError(f"covs: expected a finite array of shape ({K}, {m}, {m}), got shape {np.shape(covs)}")
        if not np.allclose(covs, np.swapaxes(covs, 1, 2), rtol=1e-10, atol=1e-14):
            raise SymscoreError("covs: expected symmetric matrices")
        covs = (covs + np.swapaxes(covs, 1, 2)) / 2
        try:
            chol = np.linalg.cholesky(covs)
        except np.linalg.LinAlgError:
            bad = [k for k in range(K) if np.linalg.eigvalsh(covs[k]).min() <= 0]
            raise SymscoreError(f"covs: expected positive definite matrices; component {bad[0] if bad else '?'} "
                                "is not") from None
        self.weights, self.means, self.covs, self._chol = weights / weights.sum(), means, covs, chol
        self.m, self.n_components = m, K
        self._log_norm = (np.log(self.weights) - 0.5 * m * np.log(2 * np.pi)
                          - np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1))

    def __repr__(self) -> str:
        return f"GaussianMixture(n_components={self.n_components}, m={self.m})"

    @classmethod
    def kernel_density(cls, data, bandwidth: float | None = None, max_components: int = 2000, seed: int = 0):
        """The Gaussian kernel density estimate of samples ``data`` (n, m) as a mixture: one
        component N(x_i, h^2 Cov(data)) per point (at most ``max_components``, drawn without
        replacement), h by Scott's rule n^(-1/(m + 4)) unless ``bandwidth`` is given."""
        data = check_points(data, np.shape(data)[1] if np.ndim(data) == 2 else 1, "data")
        if data.shape[0] < 2:
            raise SymscoreError(f"data: expected at least 2 points, got {data.shape[0]}")
        if data.shape[0] > max_components:
            data = data[np.random.default_rng(seed).choice(data.shape[0], max_components, replace=False)]
        n, m = data.shape
        h = n ** (-1.0 / (m + 4)) if bandwidth is None else bandwidth
        if not isinstance(h, numbers.Real) or not np.isfinite(h) or h <= 0:
            raise SymscoreError(f"bandwidth: expected a positive number, got {bandwidth!r}")
        cov = np.atleast_2d(np.cov(data, rowvar=False)) * h**2
        return cls(np.full(n, 1.0 / n), data, np.broadcast_to(cov, (n, m, m)))

    # -- the law ----------------------------------------------------------------------------------
    def _component_log_densities(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(log w_k N(x; mu_k, Sigma_k) of shape (n, K), whitened residuals L_k^-1 (x - mu_k), (K, n, m))."""
        residual = x[None, :, :] - self.means[:, None, :]
        white = np.linalg.solve(self._chol, np.swapaxes(residual, 1, 2))  # (K, m, n)
        return (self._log_norm[None, :] - 0.5 * np.einsum("kin,kin->nk", white, white)), white

    def _rows(self, n: int):
        """Slices of at most about 2^22 / (K m) rows: a kernel-density mixture has thousands of
        components, and the whitened residuals hold K x rows x m numbers at once."""
        step = max(1, (1 << 22) // (self.n_components * self.m))
        return (slice(start, min(start + step, n)) for start in range(0, n, step))

    def log_density(self, x) -> np.ndarray:
        """log p(x), shape (n,)."""
        x = check_points(x, self.m)
        out = np.empty(x.shape[0])
        for rows in self._rows(x.shape[0]):
            out[rows] = logsumexp(self._component_log_densities(x[rows])[0], axis=1)
        return out

    def density(self, x) -> np.ndarray:
        """p(x), shape (n,)."""
        return np.exp(self.log_density(x))

    def score(self, x) -> np.ndarray:
        """grad log p(x), shape (n, m)."""
        x = check_points(x, self.m)
        out = np.empty_like(x)
        for rows in self._rows(x.shape[0]):
            log_parts, white = self._component_log_densities(x[rows])
            resp = np.exp(log_parts - logsumexp(log_parts, axis=1, keepdims=True))  # (n, K)
            # Sigma_k^-1 (x - mu_k) = L_k^-T L_k^-1 (x - mu_k)
            pulled = np.linalg.solve(np.swapaxes(self._chol, 1, 2), white)  # (K, m, n)
            out[rows] = -np.einsum("nk,kin->ni", resp, pulled)
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """n independent draws, shape (n, m)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise SymscoreError(f"n: expected an integer >= 1, got {n!r}")
        rng = np.random.default_rng(seed)
        component = rng.choice(self.n_components, size=int(n), p=self.weights)
        z = rng.standard_normal((int(n), self.m))
        return self.means[component] + np.einsum("nij,nj->ni", self._chol[component], z)

    def mean(self) -> np.ndarray:
        """E[X], shape (m,)."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        """Cov[X], shape (m, m)."""
        centred = self.means - self.mean()
        return np.einsum("k,kij->ij", self.weights, self.covs) + np.einsum("k,ki,kj->ij", self.weights, centred, centred)
