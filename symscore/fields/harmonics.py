"""Real spherical harmonics up to degree L: fields on the sphere as coefficient vectors.

A band-limited field f on the unit sphere is

    f(theta, phi) = sum_{l <= L} sum_{m = -l..l} a_lm Y_lm(theta, phi)

with the real, orthonormal harmonics (the integral of Y_lm Y_l'm' over the sphere is 1 when
(l, m) = (l', m') and 0 otherwise)

    Y_l0 = Y_l^0,   Y_lm = sqrt(2) Re Y_l^m  (m > 0),   Y_l,-m = sqrt(2) Im Y_l^m  (m > 0),

where Y_l^m are the complex harmonics with the Condon-Shortley phase (scipy.special.sph_harm_y).
The (L + 1)^2 coefficients are ordered by degree l, then order m = -l..l: a_lm sits at index
l^2 + l + m. Orthonormality makes the coefficient vector's Euclidean norm the field's L2 norm.

The transforms are torch-harmonics' (``RealSHT`` and ``InverseRealSHT``: an FFT in longitude and a
Legendre quadrature in latitude), in float64 on the Gauss-Legendre grid, which integrates the
products of two band-limited fields exactly: analysis after synthesis is the identity to
rounding. This module converts between their complex coefficients (l, m >= 0) and the real ones.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch_harmonics

from .._checks import positive_int
from .._errors import SymscoreError

__all__ = ["SphericalHarmonics", "power_spectrum", "coefficient_index", "n_coefficients"]

GRIDS = ("legendre-gauss", "equiangular")


def n_coefficients(L: int) -> int:
    """(L + 1)^2, the number of real coefficients up to degree L."""
    return (positive_int(L, "L", low=0) + 1) ** 2


def coefficient_index(l: int, m: int) -> int:
    """The position l^2 + l + m of a_lm in a coefficient vector (|m| <= l)."""
    if not (0 <= abs(m) <= l):
        raise SymscoreError(f"m: expected |m| <= l = {l}, got {m}")
    return l * l + l + m


def _degrees_and_orders(L: int) -> tuple[np.ndarray, np.ndarray]:
    degrees = np.concatenate([np.full(2 * l + 1, l) for l in range(L + 1)])
    orders = np.concatenate([np.arange(-l, l + 1) for l in range(L + 1)])
    return degrees, orders


class SphericalHarmonics:
    """The real spherical-harmonic transform up to degree ``L`` on a latitude-longitude grid.

    Args:
        L: the largest degree (coefficients: (L + 1)^2).
        nlat, nlon: the grid (default L + 1 latitudes and 2 L + 2 longitudes, the smallest grid
            on which the transforms are exact; pass more for smoother maps or for projecting
            fields that are not band-limited).
        grid: ``"legendre-gauss"`` (default: latitudes at Gauss-Legendre nodes, exact) or
            ``"equiangular"`` (Clenshaw-Curtis, including the poles; exact only with nlat > 2 L).

    Attributes: ``L``, ``m`` (the number of coefficients), ``nlat``, ``nlon``, ``lat`` and ``lon``
    (degrees; row 0 is the northernmost latitude), ``weights`` (nlat, nlon) quadrature weights of
    the grid (they sum to 4 pi), ``degrees`` and ``orders`` (m,) of each coefficient.

    ``synthesis`` and ``analysis`` take numpy arrays (returning float64 numpy) or torch tensors
    (returning tensors of their dtype on their device), with any leading batch dimensions.
    """

    def __init__(self, L: int, nlat: int | None = None, nlon: int | None = None, grid: str = "legendre-gauss"):
        self.L = positive_int(L, "L")
        if grid not in GRIDS:
            raise SymscoreError(f"grid: expected one of {', '.join(map(repr, GRIDS))}, got {grid!r}")
        least_lat = self.L + 1 if grid == "legendre-gauss" else 2 * self.L + 2
        self.nlat = least_lat if nlat is None else positive_int(nlat, "nlat")
        self.nlon = 2 * self.L + 2 if nlon is None else positive_int(nlon, "nlon")
        if self.nlat < self.L + 1:
            raise SymscoreError(f"nlat: expected at least L + 1 = {self.L + 1} latitudes, got {self.nlat}")
        if self.nlon < 2 * self.L + 1:
            raise SymscoreError(f"nlon: expected at least 2 L + 1 = {2 * self.L + 1} longitudes, got {self.nlon}")
        self.grid, self.m = grid, (self.L + 1) ** 2
        self.degrees, self.orders = _degrees_and_orders(self.L)
        size = dict(lmax=self.L + 1, mmax=self.L + 1, grid=grid, norm="ortho", csphase=True)
        self._forward = torch_harmonics.RealSHT(self.nlat, self.nlon, **size).double()
        self._inverse = torch_harmonics.InverseRealSHT(self.nlat, self.nlon, **size).double()
        # the grid torch-harmonics uses: cos(colatitude) nodes from south to north, flipped
        nodes, weights = _quadrature(grid, self.nlat)
        colatitude = np.flip(np.arccos(nodes))
        self.lat = 90.0 - np.degrees(colatitude)
        self.lon = np.arange(self.nlon) * 360.0 / self.nlon
        self.weights = np.outer(np.flip(weights), np.full(self.nlon, 2 * math.pi / self.nlon))
        # where each real coefficient sits in the complex (l, m >= 0) array, and its factor
        positive = self.orders >= 0
        self._cos_index = np.flatnonzero(positive)  # a_l0 and a_lm (m > 0): the real parts
        self._sin_index = np.flatnonzero(self.orders < 0)  # a_l,-m: the imaginary parts
        self._cos_lm = (self.degrees[positive], self.orders[positive])
        self._sin_lm = (self.degrees[~positive], -self.orders[~positive])
        self._cos_scale = np.where(self.orders[positive] == 0, 1.0, math.sqrt(0.5))

    def __repr__(self) -> str:
        return f"SphericalHarmonics(L={self.L}, nlat={self.nlat}, nlon={self.nlon}, grid={self.grid!r})"

    # -- transforms ----------------------------------------------------------------------------
    def synthesis(self, coeffs):
        """The field on the grid, (..., nlat, nlon), of coefficients (..., (L + 1)^2)."""
        tensor, is_numpy = self._tensor(coeffs, "coeffs")
        if tensor.shape[-1] != self.m:
            raise SymscoreError(f"coeffs: expected a last dimension of (L + 1)^2 = {self.m}, got shape "
                                f"{tuple(tensor.shape)}")
        batch = tensor.shape[:-1]
        flat = tensor.reshape(-1, self.m).to(torch.float64)
        real = torch.zeros(flat.shape[0], self.L + 1, self.L + 1, dtype=torch.float64, device=flat.device)
        imag = torch.zeros_like(real)
        cos_scale = torch.as_tensor(self._cos_scale, device=flat.device)
        real[:, self._cos_lm[0], self._cos_lm[1]] = flat[:, self._cos_index] * cos_scale
        imag[:, self._sin_lm[0], self._sin_lm[1]] = -flat[:, self._sin_index] * math.sqrt(0.5)
        field = self._inverse.to(flat.device)(torch.complex(real, imag))
        return self._out(field.reshape(*batch, self.nlat, self.nlon), tensor.dtype, is_numpy)

    def analysis(self, grid):
        """The coefficients (..., (L + 1)^2) of a field (..., nlat, nlon) on the grid (the
        quadrature projection onto degrees <= L; exact for a band-limited field)."""
        tensor, is_numpy = self._tensor(grid, "grid")
        if tensor.ndim < 2 or tuple(tensor.shape[-2:]) != (self.nlat, self.nlon):
            raise SymscoreError(f"grid: expected a field of shape (..., nlat, nlon) = (..., {self.nlat}, "
                                f"{self.nlon}), got shape {tuple(tensor.shape)}")
        batch = tensor.shape[:-2]
        flat = tensor.reshape(-1, self.nlat, self.nlon).to(torch.float64)
        complex_coeffs = self._forward.to(flat.device)(flat)
        out = torch.empty(flat.shape[0], self.m, dtype=torch.float64, device=flat.device)
        cos_scale = torch.as_tensor(self._cos_scale, device=flat.device)
        out[:, self._cos_index] = complex_coeffs.real[:, self._cos_lm[0], self._cos_lm[1]] / cos_scale
        out[:, self._sin_index] = -complex_coeffs.imag[:, self._sin_lm[0], self._sin_lm[1]] * math.sqrt(2.0)
        return self._out(out.reshape(*batch, self.m), tensor.dtype, is_numpy)

    def integrate(self, grid):
        """The integral over the sphere of fields (..., nlat, nlon) on the grid, by its quadrature."""
        values = np.asarray(grid, dtype=np.float64)
        return (values * self.weights).sum(axis=(-2, -1))

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _tensor(values, name: str):
        if isinstance(values, torch.Tensor):
            tensor, is_numpy = values, False
            if not tensor.is_floating_point():
                tensor = tensor.to(torch.float64)
        else:
            try:
                array = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise SymscoreError(f"{name}: expected a numeric array, got {type(values).__name__}") from exc
            tensor, is_numpy = torch.from_numpy(np.ascontiguousarray(array)), True
        if tensor.ndim < 1 or tensor.numel() == 0:
            raise SymscoreError(f"{name}: expected a non-empty array, got shape {tuple(tensor.shape)}")
        if not torch.isfinite(tensor).all():
            raise SymscoreError(f"{name}: contains NaN or infinite values")
        return tensor, is_numpy

    @staticmethod
    def _out(tensor, dtype, is_numpy):
        if is_numpy:
            return tensor.cpu().numpy()
        return tensor.to(dtype)


def _quadrature(grid: str, nlat: int) -> tuple[np.ndarray, np.ndarray]:
    """torch-harmonics' latitude nodes (cos of colatitude, increasing) and weights (summing to 2)."""
    from torch_harmonics.quadrature import clenshaw_curtiss_weights, legendre_gauss_weights

    rule = legendre_gauss_weights if grid == "legendre-gauss" else clenshaw_curtiss_weights
    nodes, weights = rule(nlat, -1, 1)
    return np.asarray(nodes, dtype=np.float64), np.asarray(weights, dtype=np.float64)


def power_spectrum(coeffs, L: int) -> np.ndarray:
    """The angular power spectrum C_l = sum_m a_lm^2 / (2 l + 1), l = 0..L, of coefficients
    (..., (L + 1)^2): an array (..., L + 1) (average over samples for the spectrum of a law).
    For a field with independent a_lm ~ N(0, C_l) it is an unbiased estimate of C_l with relative
    standard error sqrt(2 / (2 l + 1)) per sample."""
    L = positive_int(L, "L")
    if isinstance(coeffs, torch.Tensor):
        coeffs = coeffs.detach().cpu().numpy()
    values = np.asarray(coeffs, dtype=np.float64)
    if values.ndim < 1 or values.shape[-1] != (L + 1) ** 2:
        raise SymscoreError(f"coeffs: expected a last dimension of (L + 1)^2 = {(L + 1) ** 2}, got shape {values.shape}")
    starts = np.arange(L + 1) ** 2
    return np.add.reduceat(values**2, starts, axis=-1) / (2 * np.arange(L + 1) + 1)
