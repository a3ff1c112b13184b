"""The Gaussian transition of a linear SDE, for the denoising target and the Gaussian prior.

For linear drifts b = B(t) x + c(t) the law of X_t given X_0 is Gaussian,

    X_t | X_0 ~ N(Phi_t X_0 + o_t, Sigma_t),
    dPhi = B Phi,  do = B o + c,  dSigma = B Sigma + Sigma B^T + sigma sigma^T  (Phi_0 = I, o_0 = 0, Sigma_0 = 0),

which :class:`LinearMoments` integrates with classical RK4 on a fine grid (error O(h^4), far
below Monte Carlo noise), or exactly by matrix exponentials when B, c and sigma do not depend on t.
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

    def _rhs(self, t, phi, offset, cov):
        B, c = self.numeric.linear_parts(t)
        return B @ phi, B @ offset + c, B @ cov + cov @ B.T + self.numeric.diffusion_matrix(t)

    def __call__(self, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(Phi (K, m, m), o (K, m), Sigma (K, m, m)) at increasing times >= 0."""
        times = np.asarray(times, dtype=np.float64).ravel()
        if np.any(np.diff(times) < 0) or (times.size and times[0] < 0):
            raise SymscoreError(f"times: expected increasing times >= 0, got {times}")
        m = self.numeric.m
        if self.numeric.time_invariant and times.size:
            return self._exponential(times)
        state, t_now, out = (np.eye(m), np.zeros(m), np.zeros((m, m))), 0.0, []
        for t_next in times:
            n_sub = int(np.ceil((t_next - t_now) / self.h_max))
            for i in range(n_sub):
                h = (t_next - t_now) / n_sub
                state = rk4_step(lambda t, y: self._rhs(t, *y), t_now + i * h, state, h)
            t_now = t_next
            out.append(state)
        phi, offset, cov = (np.stack([s[i] for s in out]) for i in range(3))
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
        phi, offset, cov = (a[0] for a in self([t]))
        return phi @ mean0 + offset, phi @ cov0 @ phi.T + cov
