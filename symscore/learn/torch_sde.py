"""b(t, x), sigma(t, x) and the derivatives the samplers need, as torch functions on one device.

The tensor twin of :class:`~symscore.symbolic.numeric.NumericSDE` (same methods, same shapes): the
same bound expressions, lambdified with the torch kernel printer (the printer of the torch
backend, so constants become literals and every function a torch call), evaluated on (n, m)
tensors of one dtype and device. It is what lets the samplers step on the model's device
without a trip through the host per step.
"""
from __future__ import annotations

import sympy as sp
import torch

from ..compiler.backends.torch import torch_kernel_printer

__all__ = ["TorchSDE"]


def _lambdify(args, expr):
    return sp.lambdify(args, expr, modules=[{"torch": torch}], printer=torch_kernel_printer()())


class TorchSDE:
    """The samplers' view of an SDE on tensors: ``x`` is (n, m) and ``t`` a Python float."""

    def __init__(self, sde, device, dtype):
        self.sde, self.m, self.d = sde, sde.m, sde.d
        self.device, self.dtype = torch.device(device), dtype
        t, x = sde.time, sde.state
        drift, sigma = sde.bound_drift(), sde.bound_diffusion()
        derivation = sde.derive()
        jacobian = derivation.jacobian.xreplace(sde.params)
        self.state_dependent = derivation.state_dependent_diffusion
        self._drift = _lambdify((t, *x), list(drift))
        self._divergence = _lambdify((t, *x), jacobian.trace())
        self._sigma = _lambdify((t, *x), list(sigma))
        if self.state_dependent:
            D = sigma * sigma.T
            div_D = [sum(sp.diff(D[i, j], x[j]) for j in range(self.m)) for i in range(self.m)]
            self._div_D = _lambdify((t, *x), div_D)
            self._div_div_D = _lambdify((t, *x), sum(sp.diff(div_D[i], x[i]) for i in range(self.m)))

    def _time(self, t: float) -> torch.Tensor:
        return torch.tensor(float(t), dtype=self.dtype, device=self.device)

    def _columns(self, values, n: int) -> torch.Tensor:
        return torch.stack([torch.broadcast_to(torch.as_tensor(v, dtype=self.dtype, device=self.device), (n,))
                            for v in values], dim=1)

    def _scalar(self, value, n: int) -> torch.Tensor:
        return torch.broadcast_to(torch.as_tensor(value, dtype=self.dtype, device=self.device), (n,))

    def drift(self, t, x):
        """b(t, x), (n, m)."""
        return self._columns(self._drift(self._time(t), *x.T), x.shape[0])

    def sigma_at(self, t, x):
        """sigma(t, x) per point, (n, m, d)."""
        return self._columns(self._sigma(self._time(t), *x.T), x.shape[0]).reshape(x.shape[0], self.m, self.d)

    def noise(self, t, x, z):
        """sigma(t, x) z per point for z of shape (n, d)."""
        return torch.einsum("nil,nl->ni", self.sigma_at(t, x), z)

    def apply_diffusion(self, t, x, v):
        """D(t, x) v per point, D = sigma sigma^T."""
        s = self.sigma_at(t, x)
        return torch.einsum("nil,njl,nj->ni", s, s, v)

    def diffusion_at(self, t, x):
        """D(t, x) per point, (n, m, m)."""
        s = self.sigma_at(t, x)
        return torch.einsum("nil,njl->nij", s, s)

    def diffusion_divergence(self, t, x):
        """(div D)_i = sum_j d_j D_ij, (n, m); zero when sigma does not depend on the state."""
        if not self.state_dependent:
            return torch.zeros_like(x)
        return self._columns(self._div_D(self._time(t), *x.T), x.shape[0])

    def diffusion_second_divergence(self, t, x):
        """sum_ij d_i d_j D_ij, (n,); zero when sigma does not depend on the state."""
        if not self.state_dependent:
            return torch.zeros(x.shape[0], dtype=self.dtype, device=self.device)
        return self._scalar(self._div_div_D(self._time(t), *x.T), x.shape[0])

    def drift_divergence(self, t, x):
        """div_x b(t, x), (n,)."""
        return self._scalar(self._divergence(self._time(t), *x.T), x.shape[0])
