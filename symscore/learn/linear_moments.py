"""The Gaussian transition of a linear SDE, for the denoising target and the Gaussian prior.

For linear drifts b = B(t) x + c(t) the law of X_t given X_0 is Gaussian,

    X_t | X_0 ~ N(Phi_t X_0 + o_t, Sigma_t),
    dPhi = B Phi,  do = B o + c,  dSigma = B Sigma + Sigma B^T + sigma sigma^T  (Phi_0 = I, o_0 = 0, Sigma_0 = 0),

which :class:`LinearMoments` integrates with classical RK4 on a fine grid (error O(h^4), far
below Monte Carlo noise), or exactly by matrix exponentials when B, c and sigma do not depend on t.

When B and sigma are diagonal (m independent scalar SDEs, such as a field's coefficients) the
three are diagonal too, and :meth:`LinearMoments.diagonal_moments` gives their diagonals, (K, m)
arrays, in closed form (constant coefficients) or by RK4 on vectors: at m = 1089 the dense route
holds 301 matrices of 1089^2 per quantity (2.9 GB) and takes minutes of matrix exponentials.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import expm

from .._errors import SymscoreError
from ..integrators import rk4_step
from .numeric_sde import NumericSDE

__all__ = ["LinearMoments"]


class LinearMoments:
    """Phi_t, o_t and Sigma_t of a linear SDE (X_t | X_0 ~ N(Phi_t X_0 + o_t, Sigma_t)).

    Args:
        sde: an SDE whose drift is linear in the state (``sde.derive().is_linear``).
        max_substep: the RK4 step is at most ``max_substep * T``.
    """

    def __init__(self, sde, max_substep: float = 2.5e-4):
        numeric = sde if isinstance(sde, NumericSDE) else NumericSDE(sde)
        if numeric.device is not None:
            raise SymscoreError(f"sde: expected an SDE or a host NumericSDE (device=None), got one on {numeric.device}")
        if not numeric.derivation.is_linear:
            raise SymscoreError(f"sde: the Gaussian transition needs a linear drift; {numeric.sde.name!r} is "
                                f"{numeric.derivation.structure}")
        self.numeric, self.h_max = numeric, max_substep * numeric.sde.T
        #: B(t) and sigma(t) diagonal: the transition factorises into m scalar ones
        self.diagonal = numeric.diagonal_linear

    def diagonal_moments(self, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(diag Phi (K, m), o (K, m), diag Sigma (K, m)) at increasing times >= 0, for a diagonal SDE."""
        if not self.diagonal:
            raise SymscoreError(f"sde: {self.numeric.sde.name!r} is not diagonal (B(t) and sigma(t) diagonal)")
        times = _check_times(times)
        if self.numeric.time_invariant:
            b, c = self.numeric.diagonal_linear_parts(0.0)
            b, d = b[None, :], np.diag(self.numeric.diffusion_matrix(0.0))[None, :]
            t = times[:, None]
            # expm1(b t) / b, written to be exact at b = 0 (then it is t)
            growth = np.where(b == 0, t, np.expm1(b * t) / np.where(b == 0, 1.0, b))
            growth2 = np.where(b == 0, t, np.expm1(2 * b * t) / np.where(b == 0, 1.0, 2 * b))
            return np.exp(b * t), c * growth, d * growth2

        def rhs(t, state):
            b, c = self.numeric.diagonal_linear_parts(t)
            phi, offset, var = state
            return b * phi, b * offset + c, 2 * b * var + np.diag(self.numeric.diffusion_matrix(t))

        m = self.numeric.m
        return self._integrate(rhs, (np.ones(m), np.zeros(m), np.zeros(m)), times)

    def _integrate(self, rhs, state, times):
        """RK4 from t = 0 through ``times`` with substeps of at most h_max; the states stacked."""
        t_now, out = 0.0, []
        for t_next in times:
            n_sub = int(np.ceil((t_next - t_now) / self.h_max))
            for i in range(n_sub):
                h = (t_next - t_now) / n_sub
                state = rk4_step(rhs, t_now + i * h, state, h)
            t_now = t_next
            out.append(state)
        return tuple(np.stack([s[i] for s in out]) for i in range(len(state)))

    def _rhs(self, t, phi, offset, cov):
        B, c = self.numeric.linear_parts(t)
        return B @ phi, B @ offset + c, B @ cov + cov @ B.T + self.numeric.diffusion_matrix(t)

    def __call__(self, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Phi (K, m, m), o (K, m), Sigma (K, m, m)) at increasing times >= 0."""
        times = _check_times(times)
        m = self.numeric.m
        if self.diagonal and times.size:
            phi, offset, var = self.diagonal_moments(times)
            return _diagonal_matrices(phi), offset, _diagonal_matrices(var)
        if self.numeric.time_invariant and times.size:
            return self._exponential(times)
        phi, offset, cov = self._integrate(lambda t, y: self._rhs(t, *y), (np.eye(m), np.zeros(m), np.zeros((m, m))),
                                           times)
        return phi, offset, (cov + np.swapaxes(cov, 1, 2)) / 2

    def _exponential(self, times):
        """Constant B, c, D: Phi = e^(B t), o = int_0^t e^(B s) ds c (an augmented exponential) and
        Sigma by Van Loan's block exponential, exp([[-B, D], [0, B^T]] t) = [[., F12], [0, e^(B^T t)]],
        Sigma = e^(B t) F12. Exact, and O(m^3) per time instead of O(m^3) per RK4 substep (at m = 289
        the RK4 route took about 10 minutes for the prior at T = 3)."""
        B, c = self.numeric.linear_parts(0.0)
        D, m = self.numeric.diffusion_matrix(0.0), self.numeric.m
        augmented = np.zeros((m + 1, m + 1))
        augmented[:m, :m], augmented[:m, m] = B, c
        van_loan = np.block([[-B, D], [np.zeros((m, m)), B.T]])
        phi, offset, cov = [], [], []
        for t in times:
            drift_part = expm(augmented * t)
            block = expm(van_loan * t)
            phi.append(drift_part[:m, :m])
            offset.append(drift_part[:m, m])
            cov.append(block[m:, m:].T @ block[:m, m:])
        cov = np.stack(cov)
        return np.stack(phi), np.stack(offset), (cov + np.swapaxes(cov, 1, 2)) / 2

    def marginal(self, t: float, mean0: np.ndarray, cov0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of X_t when X_0 has mean ``mean0`` and covariance ``cov0``."""
        if self.diagonal:
            phi, offset, var = (a[0] for a in self.diagonal_moments([t]))
            return phi * mean0 + offset, phi[:, None] * cov0 * phi[None, :] + np.diag(var)
        phi, offset, cov = (a[0] for a in self([t]))
        return phi @ mean0 + offset, phi @ cov0 @ phi.T + cov


def _check_times(times) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64).ravel()
    if np.any(np.diff(times) < 0) or (times.size and times[0] < 0):
        raise SymscoreError(f"times: expected increasing times >= 0, got {times}")
    return times


def _diagonal_matrices(diagonals: np.ndarray) -> np.ndarray:
    """(K, m) diagonals -> (K, m, m) matrices."""
    out = np.zeros(diagonals.shape + diagonals.shape[-1:])
    out[:, np.arange(diagonals.shape[1]), np.arange(diagonals.shape[1])] = diagonals
    return out
