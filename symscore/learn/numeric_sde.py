"""One numerical view of an SDE, on numpy arrays or torch tensors: b, sigma, div D, an Euler step.

The score kernel is generated code; everything after it (the reverse-time samplers, the
likelihood, the calibrations, the baseline targets, the priors) only needs b(t, x), sigma(t, x)
and a few derived quantities evaluated on (n, m) arrays. SymPy's ``lambdify`` turns the bound
expressions into vectorised functions once per SDE, for one of two array kinds:

* on the host (``device=None``): numpy float64 arrays, ``t`` a Python float;
* on a torch device: tensors of one dtype there, lambdified with the torch backend's kernel
  printer (constants become literals and every function a torch call), so a sampler steps on
  the model's device without a trip through the host per step.

The formulas are written once below; only the few array primitives differ (:class:`_HostArrays`,
:class:`_DeviceArrays`). With D = sigma sigma^T and a state-dependent diffusion the reverse-time
equations gain the divergence of D (docs/math.md, "State-dependent diffusion"):

    (div D)_i = sum_j d_j D_ij,      div div D = sum_{ij} d_i d_j D_ij,

and the two reverse-time vector fields are

    reverse SDE drift   b - D s - div D,        probability-flow velocity   b - D s / 2 - div D / 2.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import sympy as sp
import torch

from .._errors import SymscoreError
from ..compiler.backends.torch import torch_kernel_printer

__all__ = ["NumericSDE"]


class _HostArrays:
    """The array primitives on the host: numpy float64."""

    dtype, device = np.float64, None

    @staticmethod
    def lambdify(args, expr):
        return sp.lambdify(args, expr, "numpy")

    @staticmethod
    def time(t):
        return float(t)

    @staticmethod
    def columns(values, n: int):
        return np.stack([np.broadcast_to(np.asarray(c, dtype=np.float64), (n,)) for c in values], axis=1)

    @staticmethod
    def scalars(value, n: int):
        return np.broadcast_to(np.asarray(value, dtype=np.float64), (n,))

    @staticmethod
    def matrix(values, rows: int, cols: int):
        return np.asarray(values, dtype=np.float64).reshape(rows, cols)

    einsum = staticmethod(np.einsum)

    @staticmethod
    def zeros(n: int):
        return np.zeros(n)

    @staticmethod
    def normal(rng: np.random.Generator, shape):
        return rng.standard_normal(shape)

    @staticmethod
    def broadcast(array, shape):
        return np.broadcast_to(array, shape)

    zeros_like = staticmethod(np.zeros_like)

    @staticmethod
    def copy(array):
        return array.copy()

    stack = staticmethod(np.stack)


class _DeviceArrays:
    """The array primitives on a torch device: tensors of one dtype there."""

    def __init__(self, device, dtype):
        self.device, self.dtype = torch.device(device), dtype
        self.printer = torch_kernel_printer()

    def lambdify(self, args, expr):
        return sp.lambdify(args, expr, modules=[{"torch": torch}], printer=self.printer())

    def time(self, t):
        return torch.tensor(float(t), dtype=self.dtype, device=self.device)

    def _tensor(self, value):
        return torch.as_tensor(value, dtype=self.dtype, device=self.device)

    def columns(self, values, n: int):
        return torch.stack([torch.broadcast_to(self._tensor(v), (n,)) for v in values], dim=1)

    def scalars(self, value, n: int):
        return torch.broadcast_to(self._tensor(value), (n,))

    def matrix(self, values, rows: int, cols: int):
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        return torch.stack([torch.broadcast_to(self._tensor(v), ()) for v in values]).reshape(rows, cols)

    einsum = staticmethod(torch.einsum)

    def zeros(self, n: int):
        return torch.zeros(n, dtype=self.dtype, device=self.device)

    def normal(self, rng: torch.Generator, shape):
        return torch.randn(shape, generator=rng, dtype=self.dtype, device=self.device)

    @staticmethod
    def broadcast(tensor, shape):
        return tensor.expand(shape)

    zeros_like = staticmethod(torch.zeros_like)

    @staticmethod
    def copy(tensor):
        return tensor.clone()

    stack = staticmethod(torch.stack)


class NumericSDE:
    """b(t, x), sigma(t, x) and the derivatives the samplers need, on numpy arrays or torch tensors.

    Args:
        sde: the :class:`~symscore.SDE`.
        device: None (default) for numpy float64 on the host; else a torch device, where every
            method takes and returns tensors of ``dtype``.
        dtype: the tensors' dtype on a device (default float64).

    ``x`` is always an (n, m) array of the instance's kind and ``t`` a Python float.
    :class:`~symscore.learn.linear_moments.LinearMoments` takes a host instance.
    """

    def __init__(self, sde, device=None, dtype=torch.float64):
        self.sde, self.m, self.d = sde, sde.m, sde.d
        self.arrays = _HostArrays() if device is None else _DeviceArrays(device, dtype)
        self.device, self.dtype = self.arrays.device, self.arrays.dtype
        t, x = sde.time, sde.state
        drift, sigma = sde.bound_drift(), sde.bound_diffusion()
        jacobian = self.derivation.jacobian.xreplace(sde.params)  # J is derived once, in the Derivation
        self.state_dependent = self.derivation.state_dependent_diffusion
        lambdify = self.arrays.lambdify
        self._drift = lambdify((t, *x), list(drift))
        self._divergence = lambdify((t, *x), jacobian.trace())
        self.time_invariant = False  # set below for sigma(t); LinearMoments' exponential route
        self.diagonal_linear = False
        if self.state_dependent:
            D = sigma * sigma.T
            div_D = [sum(sp.diff(D[i, j], x[j]) for j in range(self.m)) for i in range(self.m)]
            self._sigma_x = lambdify((t, *x), list(sigma))
            self._div_D = lambdify((t, *x), div_D)
            self._div_div_D = lambdify((t, *x), sum(sp.diff(div_D[i], x[i]) for i in range(self.m)))
        else:
            self._sigma = lambdify((t,), sigma if device is None else list(sigma))
            if self.derivation.is_linear:  # b = B(t) x + c(t); elsewhere b(t, 0) may not even exist (1 / x)
                offset = drift.xreplace({xi: 0 for xi in x})
                #: B(t) and sigma(t) diagonal: m independent scalar linear SDEs (LinearMoments' diagonal
                #: route); only B's diagonal is then compiled (a field at L = 32 has m^2 = 1.2e6 entries)
                self.diagonal_linear = (sigma.shape[0] == sigma.shape[1] and jacobian.is_diagonal()
                                        and sigma.is_diagonal())
                slope = jacobian.diagonal() if self.diagonal_linear else jacobian
                self._linear_parts = (sp.lambdify((t,), list(slope) if self.diagonal_linear else slope, "numpy"),
                                      sp.lambdify((t,), list(offset), "numpy"))
                #: B, c and sigma free of t: LinearMoments can use the matrix exponential, not RK4
                self.time_invariant = all(t not in e.free_symbols for e in (*slope, *sigma, *offset))

    @cached_property
    def derivation(self):
        return self.sde.derive()

    # -- coefficients -------------------------------------------------------------------------
    def drift(self, t: float, x):
        """b(t, x), shape (n, m)."""
        return self.arrays.columns(self._drift(self.arrays.time(t), *x.T), x.shape[0])

    def sigma(self, t: float):
        """sigma(t), shape (m, d) (a diffusion that does not depend on the state)."""
        if self.state_dependent:
            raise SymscoreError(f"sde: sigma of {self.sde.name!r} depends on the state; use sigma_at(t, x)")
        return self.arrays.matrix(self._sigma(self.arrays.time(t)), self.m, self.d)

    def diffusion_matrix(self, t: float):
        """sigma(t) sigma(t)^T, shape (m, m) (a diffusion that does not depend on the state)."""
        s = self.sigma(t)
        return s @ s.T

    def sigma_at(self, t: float, x):
        """sigma(t, x) per point, shape (n, m, d)."""
        if not self.state_dependent:
            s = self.sigma(t)
            return self.arrays.broadcast(s, (x.shape[0], self.m, self.d))
        return self.arrays.columns(self._sigma_x(self.arrays.time(t), *x.T), x.shape[0]).reshape(
            x.shape[0], self.m, self.d)

    def noise(self, t: float, x, z):
        """sigma(t, x) z per point for z of shape (n, d)."""
        if not self.state_dependent:
            return z @ self.sigma(t).T
        return self.arrays.einsum("nil,nl->ni", self.sigma_at(t, x), z)

    def apply_diffusion(self, t: float, x, v):
        """D(t, x) v per point, D = sigma sigma^T, for v of shape (n, m)."""
        if not self.state_dependent:
            return v @ self.diffusion_matrix(t).T
        s = self.sigma_at(t, x)
        return self.arrays.einsum("nil,njl,nj->ni", s, s, v)

    def diffusion_at(self, t: float, x):
        """D(t, x) = sigma sigma^T per point, shape (n, m, m)."""
        s = self.sigma_at(t, x)
        return self.arrays.einsum("nil,njl->nij", s, s)

    def diffusion_divergence(self, t: float, x):
        """(div D)_i = sum_j d_j D_ij, shape (n, m); zero when sigma does not depend on the state."""
        if not self.state_dependent:
            return self.arrays.zeros_like(x)
        return self.arrays.columns(self._div_D(self.arrays.time(t), *x.T), x.shape[0])

    def diffusion_second_divergence(self, t: float, x):
        """sum_{ij} d_i d_j D_ij, shape (n,); zero when sigma does not depend on the state."""
        if not self.state_dependent:
            return self.arrays.zeros(x.shape[0])
        return self.arrays.scalars(self._div_div_D(self.arrays.time(t), *x.T), x.shape[0])

    def drift_divergence(self, t: float, x):
        """div_x b(t, x) = trace of the Jacobian, shape (n,)."""
        return self.arrays.scalars(self._divergence(self.arrays.time(t), *x.T), x.shape[0])

    def linear_parts(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(B(t), c(t)) of a linear drift b = B(t) x + c(t) (and sigma(t)), host arrays."""
        if not hasattr(self, "_linear_parts"):
            raise SymscoreError(f"sde: {self.sde.name!r} has no linear parts B(t), c(t): its drift is "
                                f"{self.derivation.structure}" + (" and its sigma depends on the state"
                                                                  if self.state_dependent else ""))
        if self.diagonal_linear:
            b, c = self.diagonal_linear_parts(t)
            return np.diag(b), c
        B = np.asarray(self._linear_parts[0](float(t)), dtype=np.float64).reshape(self.m, self.m)
        return B, self._offset(t)

    def diagonal_linear_parts(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(diag B(t), c(t)), vectors, of a diagonal linear SDE (``diagonal_linear``)."""
        if not self.diagonal_linear:
            raise SymscoreError(f"sde: {self.sde.name!r} is not a diagonal linear SDE (B(t) and sigma(t) diagonal)")
        b = np.broadcast_to(np.asarray(self._linear_parts[0](float(t)), dtype=np.float64).ravel(), (self.m,))
        return b, self._offset(t)

    def _offset(self, t: float) -> np.ndarray:
        return np.broadcast_to(np.asarray(self._linear_parts[1](float(t)), dtype=np.float64).ravel(), (self.m,))

    # -- the vector fields of the reverse-time equations ----------------------------------------
    def reverse_drift(self, t: float, x, score):
        """b - D s (- div D for sigma(t, x)): the reverse-time SDE's drift for score values ``score``."""
        drift = self.drift(t, x) - self.apply_diffusion(t, x, score)
        if self.state_dependent:
            drift = drift - self.diffusion_divergence(t, x)
        return drift

    def flow_velocity(self, t: float, x, score):
        """b - D s / 2 (- div D / 2 for sigma(t, x)): the probability-flow ODE's velocity."""
        velocity = self.drift(t, x) - self.apply_diffusion(t, x, 0.5 * score)
        if self.state_dependent:
            velocity = velocity - 0.5 * self.diffusion_divergence(t, x)
        return velocity

    # -- Euler-Maruyama -----------------------------------------------------------------------
    def euler_step(self, t: float, x, h: float, rng):
        """X + b(t, X) h + sigma(t, X) sqrt(h) z with z standard normal (n, d) from ``rng`` (a numpy
        Generator on the host, a torch.Generator on a device)."""
        noise = self.arrays.normal(rng, (x.shape[0], self.d)) * np.sqrt(h)
        return x + self.drift(t, x) * h + self.noise(t, x, noise)

    def euler(self, x0, record_steps, dt: float, rng):
        """Euler-Maruyama from x0 on the grid k dt; X at the (sorted) record steps, shape (K, n, m)."""
        record_steps = np.asarray(record_steps)
        x, out, k_out = self._start(x0), [], 0
        for k in range(int(record_steps[-1])):
            x = self.euler_step(k * dt, x, dt, rng)
            while k_out < len(record_steps) and record_steps[k_out] == k + 1:
                out.append(self.arrays.copy(x))
                k_out += 1
        return self.arrays.stack(out)

    def _start(self, x0):
        if self.device is None:
            return np.array(x0, dtype=np.float64)
        return torch.as_tensor(x0, dtype=self.dtype, device=self.device).clone()
