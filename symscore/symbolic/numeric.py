"""Numerical views of an SDE for the stages after the kernel: training, sampling and priors.

The score kernel is generated code; the reverse-time sampler, the baseline targets and the
priors only need b(t, x), sigma(t) and a few derived quantities evaluated on arrays. SymPy's
``lambdify`` turns the bound expressions into vectorised numpy functions once per SDE.

For linear drifts b = B(t) x + c(t) the law of X_t given X_0 is Gaussian,

    X_t | X_0 ~ N(Phi_t X_0 + o_t, Sigma_t),
    dPhi = B Phi,  do = B o + c,  dSigma = B Sigma + Sigma B^T + sigma sigma^T  (Phi_0 = I, o_0 = 0, Sigma_0 = 0),

which :class:`LinearMoments` integrates with classical RK4 on a fine grid (error O(h^4), far
below Monte Carlo noise). That gives the denoising target and the Gaussian prior.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.linalg import expm
import sympy as sp

from .._errors import SymscoreError
from ..integrators import rk4_step

__all__ = ["NumericSDE", "LinearMoments"]


class NumericSDE:
    """b(t, x), sigma(t, x) and the derivatives the samplers need, as numpy functions.

    ``x`` is always an (n, m) array and ``t`` a scalar; results are float64 arrays. With a
    state-dependent diffusion, D = sigma sigma^T varies with x and the reverse-time equations
    gain its divergence (docs/math.md, "State-dependent diffusion"):

        (div D)_i = sum_j d_j D_ij,      div div D = sum_{ij} d_i d_j D_ij.
    """

    def __init__(self, sde):
        self.sde, self.m, self.d = sde, sde.m, sde.d
        t, x = sde.time, sde.state
        drift, sigma = sde.bound_drift(), sde.bound_diffusion()
        derivation = sde.derive()
        jacobian = derivation.jacobian.xreplace(sde.params)  # J is derived once, in the Derivation
        self.state_dependent = derivation.state_dependent_diffusion
        self._drift = sp.lambdify((t, *x), list(drift), "numpy")
        self._divergence = sp.lambdify((t, *x), jacobian.trace(), "numpy")
        self.time_invariant = False  # set below for sigma(t); LinearMoments' exponential route
        if self.state_dependent:
            D = sigma * sigma.T
            div_D = [sum(sp.diff(D[i, j], x[j]) for j in range(self.m)) for i in range(self.m)]
            self._sigma_x = sp.lambdify((t, *x), list(sigma), "numpy")
            self._div_D = sp.lambdify((t, *x), div_D, "numpy")
            self._div_div_D = sp.lambdify((t, *x), sum(sp.diff(div_D[i], x[i]) for i in range(self.m)), "numpy")
        else:
            offset = drift.xreplace({xi: 0 for xi in x})
            self._sigma = sp.lambdify((t,), sigma, "numpy")
            self._linear_parts = (sp.lambdify((t,), jacobian, "numpy"), sp.lambdify((t,), list(offset), "numpy"))
            #: B, c and sigma free of t: LinearMoments can use the matrix exponential, not RK4
            self.time_invariant = all(t not in e.free_symbols for e in (*jacobian, *sigma, *offset))

    @staticmethod
    def _columns(values, n: int) -> np.ndarray:
        return np.stack([np.broadcast_to(np.asarray(c, dtype=np.float64), (n,)) for c in values], axis=1)

    def drift(self, t: float, x: np.ndarray) -> np.ndarray:
        """b(t, x) for x of shape (n, m)."""
        return self._columns(self._drift(float(t), *x.T), x.shape[0])

    def sigma(self, t: float) -> np.ndarray:
        """sigma(t), shape (m, d) (a diffusion that does not depend on the state)."""
        if self.state_dependent:
            raise SymscoreError(f"sde: sigma of {self.sde.name!r} depends on the state; use sigma_at(t, x)")
        return np.asarray(self._sigma(float(t)), dtype=np.float64).reshape(self.m, self.d)

    def diffusion_matrix(self, t: float) -> np.ndarray:
        """sigma(t) sigma(t)^T, shape (m, m) (a diffusion that does not depend on the state)."""
        s = self.sigma(t)
        return s @ s.T

    def sigma_at(self, t: float, x: np.ndarray) -> np.ndarray:
        """sigma(t, x) per point, shape (n, m, d)."""
        if not self.state_dependent:
            return np.broadcast_to(self.sigma(t), (x.shape[0], self.m, self.d))
        return self._columns(self._sigma_x(float(t), *x.T), x.shape[0]).reshape(x.shape[0], self.m, self.d)

    def noise(self, t: float, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """sigma(t, x) z per point for z of shape (n, d)."""
        if not self.state_dependent:
            return z @ self.sigma(t).T
        return np.einsum("nil,nl->ni", self.sigma_at(t, x), z)

    def apply_diffusion(self, t: float, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """D(t, x) v per point, D = sigma sigma^T, for v of shape (n, m)."""
        if not self.state_dependent:
            return v @ self.diffusion_matrix(t).T
        s = self.sigma_at(t, x)
        return np.einsum("nil,njl,nj->ni", s, s, v)

    def diffusion_at(self, t: float, x: np.ndarray) -> np.ndarray:
        """D(t, x) = sigma sigma^T per point, shape (n, m, m)."""
        s = self.sigma_at(t, x)
        return np.einsum("nil,njl->nij", s, s)

    def diffusion_divergence(self, t: float, x: np.ndarray) -> np.ndarray:
        """(div D)_i = sum_j d_j D_ij, shape (n, m); zero when sigma does not depend on the state."""
        if not self.state_dependent:
            return np.zeros_like(x)
        return self._columns(self._div_D(float(t), *x.T), x.shape[0])

    def diffusion_second_divergence(self, t: float, x: np.ndarray) -> np.ndarray:
        """sum_{ij} d_i d_j D_ij, shape (n,); zero when sigma does not depend on the state."""
        if not self.state_dependent:
            return np.zeros(x.shape[0])
        return np.broadcast_to(np.asarray(self._div_div_D(float(t), *x.T), dtype=np.float64), (x.shape[0],))

    def drift_divergence(self, t: float, x: np.ndarray) -> np.ndarray:
        """div_x b(t, x) = trace of the Jacobian, shape (n,)."""
        return np.broadcast_to(np.asarray(self._divergence(float(t), *x.T), dtype=np.float64), (x.shape[0],))

    def euler(self, x0: np.ndarray, record_steps, dt: float, rng: np.random.Generator) -> np.ndarray:
        """Euler-Maruyama from x0 on the grid k dt; X at the (sorted) record steps, shape (K, n, m)."""
        record_steps = np.asarray(record_steps)
        x, out, k_out = np.array(x0, dtype=np.float64), [], 0
        for k in range(int(record_steps[-1])):
            noise = rng.standard_normal((x.shape[0], self.d)) * np.sqrt(dt)
            x = x + self.drift(k * dt, x) * dt + self.noise(k * dt, x, noise)
            while k_out < len(record_steps) and record_steps[k_out] == k + 1:
                out.append(x.copy())
                k_out += 1
        return np.stack(out)

    def linear_parts(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(B(t), c(t)) of a linear drift b = B(t) x + c(t) (and sigma(t))."""
        B = np.asarray(self._linear_parts[0](float(t)), dtype=np.float64).reshape(self.m, self.m)
        c = np.broadcast_to(np.asarray(self._linear_parts[1](float(t)), dtype=np.float64).ravel(), (self.m,))
        return B, c

    @cached_property
    def derivation(self):
        return self.sde.derive()


class LinearMoments:
    """Phi_t, o_t and Sigma_t of a linear SDE (X_t | X_0 ~ N(Phi_t X_0 + o_t, Sigma_t)).

    Args:
        sde: an SDE whose drift is linear in the state (``sde.derive().is_linear``).
        max_substep: the RK4 step is at most ``max_substep * T``.
    """

    def __init__(self, sde, max_substep: float = 2.5e-4):
        numeric = sde if isinstance(sde, NumericSDE) else NumericSDE(sde)
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
