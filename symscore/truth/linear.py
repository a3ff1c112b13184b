"""The exact law of a linear SDE started from a Gaussian mixture: a Gaussian mixture at every t.

For b = B(t) x + c(t) and sigma(t), X_t = Phi_t X_0 + o_t + (a centred Gaussian of covariance
Sigma_t) (:class:`~symscore.learn.linear_moments.LinearMoments`), so each component
N(mu_k, S_k) of p_0 is carried to

    N(Phi_t mu_k + o_t,  Phi_t S_k Phi_t^T + Sigma_t),

with the same weight. Exact in any dimension (Phi, o and Sigma by matrix exponentials, or RK4
far below Monte Carlo noise when the coefficients depend on t).
"""
from __future__ import annotations

import numpy as np

from .._errors import SymscoreError
from ..learn.linear_moments import LinearMoments
from .mixture import GaussianMixture
from .solution import Solution

__all__ = ["LinearMixtureSolution", "linear_mixture", "is_linear"]


def is_linear(sde) -> bool:
    """Whether ``sde`` has a linear drift and a diffusion free of the state (a Gaussian transition)."""
    derivation = sde.derive()
    return bool(derivation.is_linear) and not derivation.state_dependent_diffusion


class LinearMixtureSolution(Solution):
    """p_t of a linear SDE from a Gaussian mixture p_0: ``at(t)`` is the mixture itself."""

    kind = "closed form"

    def __init__(self, sde, p0: GaussianMixture, times):
        super().__init__(sde, times)
        phi, offset, cov = LinearMoments(sde)(self.times)
        self.mixtures = [GaussianMixture(p0.weights, p0.means @ phi[k].T + offset[k],
                                         np.einsum("ij,kjl,ml->kim", phi[k], p0.covs, phi[k]) + cov[k])
                         for k in range(self.times.size)]

    def at(self, t) -> GaussianMixture:
        """p_t as a :class:`GaussianMixture`."""
        return self.mixtures[self.time_index(t)]

    def density(self, x, t):
        return self.at(t).density(x)

    def score(self, x, t):
        return self.at(t).score(x)

    def sample(self, n, t, seed=0):
        return self.at(t).sample(n, seed)


def linear_mixture(sde, p0: GaussianMixture, times) -> LinearMixtureSolution:
    """The exact p_t of a linear SDE (drift B(t) x + c(t), diffusion sigma(t)) from a mixture p_0."""
    if not isinstance(p0, GaussianMixture):
        raise SymscoreError(f"p0: expected a GaussianMixture for the closed form, got {type(p0).__name__}")
    if p0.m != sde.m:
        raise SymscoreError(f"p0: expected a mixture in m = {sde.m} dimensions, got m = {p0.m}")
    if not is_linear(sde):
        derivation = sde.derive()
        why = "its diffusion depends on the state" if derivation.state_dependent_diffusion else \
            f"its drift is {derivation.structure}"
        raise SymscoreError(f"sde: the closed form needs a linear SDE with sigma(t); {sde.name!r} is not ({why}). "
                            "Use ss.truth.fokker_planck (m <= 2).")
    return LinearMixtureSolution(sde, p0, times)
