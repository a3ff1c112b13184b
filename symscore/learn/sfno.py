"""A spherical Fourier neural operator for the score of a field on the sphere.

A field up to degree L is (L + 1)^2 real spherical-harmonic coefficients
(:mod:`symscore.fields.harmonics`). When the data are non-Gaussian pixel by pixel (a lognormal
field is exp of a Gaussian one, a thresholded field a step of one), the score is local in pixel
space and global in coefficients, so a network on coefficients must learn a synthesis, a
pointwise nonlinearity and an analysis from scratch. This network is built from those parts, in
the manner of spherical Fourier neural operators (Bonev et al. 2023, torch-harmonics' SFNO):

    u_0 = lift(S(c * z))                    the field on the quadrature grid, C channels per pixel
    v_k = FiLM_k(t)[ SpectralConv_k(u_k) + W_k u_k ]
    u_k+1 = u_k + W''_k act(W'_k act(v_k))  a residual pointwise MLP per pixel (k = 0..depth-1)
    out = (1 / c) * P(A u_depth)            analysis, a per-degree projection to one channel

* z is the model's normalised input (Cameron-Martin preconditioning makes it the field in units of
  the noise, white across degrees), and c = Q^1/2 up to a constant: ``S(c * z)`` is the field itself
  on the grid, at unit pixel variance, where its pointwise structure is; ``1 / c`` takes the output
  back to the model's units (the network predicts a smooth field; the score of the white input is
  that field whitened). Q is the model's ``metric``; under the other preconditionings it is the
  identity and the grid sees z as it is (a whitened field, without its spatial structure): use
  ``preconditioning="cameron-martin"`` with this network.
* A linear gain per degree and time, kappa_l(t) z_lm, beside the blocks: the score's linear part
  per degree as a free parameter of the regression (at its optimum the model satisfies Stein's
  identity E[(X - mu) s] = -1 per degree, which the samples' spectrum rests on). It starts at zero.
* S and A are the synthesis and the quadrature analysis of torch-harmonics' transforms
  (:class:`GridTransforms`) on a Gauss-Legendre grid of ``oversampling`` (L + 1) latitudes and
  twice as many longitudes. The default 1 is the smallest exact grid; a pointwise nonlinearity
  raises a field's degree, and a finer grid (1.5) would keep more of it from folding back
  (aliasing) when the layers' output is analysed, at twice the cost per step (measured:
  docs/results/fields.md); the default is the cheap grid because a time budget buys steps.
* The spectral convolution mixes channels with one real C x C matrix per degree l, the same for
  every order m (Driscoll-Healy): such a filter commutes with rotations, and so do the pointwise
  layers (up to the grid), so the network is rotation-equivariant up to the grid's resolution, as
  a stationary field's score is. Weights per (l, m) would break that for no gain on stationary data.
* FiLM: the time features give each block a scale and shift per channel, (1 + gamma(t)) v + beta(t):
  the nonlinearity a score needs at small t (sharp, data-like) differs from that at large t
  (nearly linear), and the field's scale varies with t.
* The last projection starts at zero, so the network starts at zero and the model at its Gaussian
  skip (:mod:`symscore.learn.model`).
* Layouts: the grid is latitude-major, (nlat, n, C, nlon), and the coefficients inside the network
  are kept by slot, (orders, degrees, n, C), so that the transforms' two factors, the per-degree
  mixing and the pointwise maps are each one matrix product with no transposed copy in between
  (a third of the forward pass's time went to such copies and to gathering coefficients in the
  (n, C, P) layout; the forward and backward pass of 256 fields takes 0.57 s instead of 0.82 s at
  L = 16 and 5.5 s instead of 9.7 s at L = 32, docs/results/fields.md).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .._errors import SymscoreError
from ..fields.harmonics import SphericalHarmonics

__all__ = ["SphericalFourierNetwork", "sphere_degree"]


def sphere_degree(m: int) -> int:
    """L with m = (L + 1)^2, or -1 if m is not such a square (L >= 1)."""
    root = math.isqrt(m)
    return root - 1 if root * root == m and root >= 2 else -1


class GridTransforms(nn.Module):
    """Synthesis (n, (L + 1)^2) -> (n, nlat, nlon) and analysis back, on a Gauss-Legendre grid, in the
    two factors of the spherical-harmonic transform: a Legendre sum over degrees per order, then a
    trigonometric sum over orders per latitude (and the transposes, with the quadrature weights).

    Both factors are read off torch-harmonics' transforms (:class:`~symscore.fields.SphericalHarmonics`
    evaluated on unit vectors), so the result is theirs to rounding; written as batched matrix
    products they cost about nlat (2 L + 1)(L + 1) + nlat nlon (2 L + 1) multiplications per field instead of
    (L + 1)^2 nlat nlon for the dense matrix, the bulk of the network's work (measured at L = 16:
    docs/results/fields.md). A sum over 2 L + 1 orders per latitude is cheaper here than an FFT of
    length nlon and stays in real arithmetic.
    """

    def __init__(self, L: int, nlat: int, nlon: int):
        super().__init__()
        harmonics = SphericalHarmonics(L, nlat=nlat, nlon=nlon)
        m, orders_count = harmonics.m, 2 * L + 1
        dense = harmonics.synthesis(np.eye(m))  # (m, nlat, nlon): Y_lm on the grid
        longitude = np.radians(harmonics.lon)
        orders = np.arange(-L, L + 1)
        trig = np.where(orders[:, None] >= 0, np.cos(np.abs(orders)[:, None] * longitude),
                        np.sin(np.abs(orders)[:, None] * longitude))  # (2L + 1, nlon)
        # Y_lm(k, j) = legendre[o, l, k] trig[o, j] with o the slot of order m; slot entries with
        # l < |m| point at a zero pad (index m of the padded coefficients)
        gather = np.full((orders_count, L + 1), m)
        legendre = np.zeros((orders_count, L + 1, nlat))
        for slot, order in enumerate(orders):
            for degree in range(abs(order), L + 1):
                index = degree * degree + degree + order
                gather[slot, degree] = index
                legendre[slot, degree] = dense[index] @ trig[slot] / (trig[slot] @ trig[slot])
                assert np.allclose(np.outer(legendre[slot, degree], trig[slot]), dense[index], atol=1e-10), \
                    "the harmonics do not factor into Legendre and trigonometric parts"
        latitude_weights = harmonics.weights[:, 0] * nlon / (2 * math.pi)
        scatter = np.full(m, -1)
        scatter[gather[gather < m]] = np.flatnonzero(gather.ravel() < m)
        # float64 tables, cast to the input's dtype per call (they are small): a float64 model is
        # float64-accurate, a float32 one pays no conversion of its activations
        as_float = dict(dtype=torch.float64)
        self.L, self.m, self.nlat, self.nlon = L, m, nlat, nlon
        self.degrees = harmonics.degrees  # (m,) the degree l of each coefficient
        self.register_buffer("gather", torch.as_tensor(gather.ravel()), persistent=False)
        self.register_buffer("scatter", torch.as_tensor(scatter), persistent=False)
        # synthesis: sum_l P[o, l, k] a[o, l] (O, nlat, L+1), then sum_o trig[o, j]
        self.register_buffer("legendre", torch.as_tensor(np.transpose(legendre, (0, 2, 1)), **as_float),
                             persistent=False)  # (O, nlat, L+1)
        self.register_buffer("trig", torch.as_tensor(trig, **as_float), persistent=False)  # (O, nlon)
        # analysis: the quadrature sum_kj w_k (2 pi / nlon) Y_lm(k, j) f(k, j)
        self.register_buffer("trig_analysis", torch.as_tensor(trig * (2 * math.pi / nlon), **as_float),
                             persistent=False)  # (O, nlon)
        self.register_buffer("legendre_analysis", torch.as_tensor(legendre * latitude_weights, **as_float),
                             persistent=False)  # (O, L+1, nlat)

    # The network works in two layouts chosen so that every factor is one matrix product with no
    # transposed copy: grids latitude-major, (nlat, R, nlon), and coefficients by slot,
    # (O, L + 1, R) (order o = -L..L, degree l; entries with l < |o| are zero).
    def to_slots(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(R, (L + 1)^2) -> (O, L + 1, R)."""
        padded = nn.functional.pad(coefficients, (0, 1))[:, self.gather]  # (R, O (L + 1)), zero pad
        return padded.T.reshape(2 * self.L + 1, self.L + 1, -1)

    def from_slots(self, slots: torch.Tensor) -> torch.Tensor:
        """(O, L + 1, R) -> (R, (L + 1)^2)."""
        return slots.reshape(-1, slots.shape[-1])[self.scatter].T

    def slots_to_grid(self, slots: torch.Tensor) -> torch.Tensor:
        """Synthesis, (O, L + 1, R) -> (nlat, R, nlon)."""
        orders, _, rows = slots.shape
        by_latitude = torch.bmm(self.legendre.to(slots.dtype), slots)  # (O, nlat, R)
        grid = by_latitude.reshape(orders, -1).T @ self.trig.to(slots.dtype)  # (nlat R, nlon)
        return grid.reshape(self.nlat, rows, self.nlon)

    def grid_to_slots(self, grid: torch.Tensor) -> torch.Tensor:
        """Analysis, (nlat, R, nlon) -> (O, L + 1, R)."""
        _, rows, _ = grid.shape
        by_order = self.trig_analysis.to(grid.dtype) @ grid.reshape(-1, self.nlon).T  # (O, nlat R)
        return torch.bmm(self.legendre_analysis.to(grid.dtype), by_order.reshape(-1, self.nlat, rows))

    def synthesis(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(R, (L + 1)^2) -> (R, nlat, nlon)."""
        return self.slots_to_grid(self.to_slots(coefficients)).transpose(0, 1)

    def analysis(self, grid: torch.Tensor) -> torch.Tensor:
        """(R, nlat, nlon) -> (R, (L + 1)^2), the quadrature projection."""
        return self.from_slots(self.grid_to_slots(grid.transpose(0, 1).contiguous()))


class SpectralConvolution(nn.Module):
    """out_d[lm] = sum_c W[d, c, l] in_c[lm]: a real channel mixing per degree (rotation-equivariant),
    on coefficients by slot (O, L + 1, n, C_in) -> (O, L + 1, n, C_out) (zero entries stay zero)."""

    def __init__(self, channels_in: int, channels_out: int, L: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(scale * torch.randn(channels_out, channels_in, L + 1))

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        return torch.matmul(slots, self.weight.permute(2, 1, 0))  # (L + 1, C_in, C_out), broadcast over orders


class PointwiseLinear(nn.Module):
    """A linear map of the channels at every pixel: (..., C_in, P) -> (..., C_out, P)."""

    def __init__(self, channels_in: int, channels_out: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(channels_out, channels_in) / math.sqrt(channels_in))
        self.bias = nn.Parameter(torch.zeros(channels_out)) if bias else None

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        out = torch.matmul(self.weight, u)
        return out if self.bias is None else out + self.bias[:, None]


class FieldBlock(nn.Module):
    """u + W2 act(W1 act(FiLM(t)[SpectralConv(u) + W u])), on the latitude-major grid (nlat, n, C, nlon)."""

    def __init__(self, channels: int, L: int, time_features: int, activation, hidden: int):
        super().__init__()
        self.spectral = SpectralConvolution(channels, channels, L, 1.0 / math.sqrt(channels))
        self.local = PointwiseLinear(channels, channels)
        self.film = nn.Linear(time_features, 2 * channels)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.inner, self.outer = PointwiseLinear(channels, hidden), PointwiseLinear(hidden, channels)
        self.act = activation()

    def forward(self, u: torch.Tensor, transforms, embedding: torch.Tensor) -> torch.Tensor:
        """u (nlat, n, C, nlon) on the grid of ``transforms`` (a :class:`GridTransforms`)."""
        nlat, n, channels, nlon = u.shape
        slots = transforms.grid_to_slots(u.reshape(nlat, n * channels, nlon))
        spectral = self.spectral(slots.reshape(*slots.shape[:2], n, channels))
        spectral = transforms.slots_to_grid(spectral.reshape(slots.shape)).reshape(u.shape)
        scale, shift = self.film(embedding)[:, :, None].chunk(2, dim=1)  # (n, C, 1) each
        v = (spectral + self.local(u)) * (1 + scale) + shift
        return u + self.outer(self.act(self.inner(self.act(v))))


class SphericalFourierNetwork(nn.Module):
    """The network F_theta(z, embed(t)) for a field of m = (L + 1)^2 coefficients (module docstring).

    Args:
        m: (L + 1)^2 with L >= 1.
        time_features: the size of the time features.
        width: C, the channels per pixel.
        depth: the number of blocks.
        activation: an ``nn.Module`` class.
        oversampling: the grid has ``ceil(oversampling (L + 1))`` Gauss-Legendre latitudes and twice
            as many longitudes (1: the smallest exact grid).
        hidden: the pointwise MLP's width as a multiple of ``width``.
    """

    def __init__(self, m: int, time_features: int, width: int, depth: int, activation, oversampling: float = 1.0,
                 hidden: int = 2):
        super().__init__()
        L = sphere_degree(m)
        if L < 1:
            raise SymscoreError(f"architecture: 'sfno' needs m = (L + 1)^2 coefficients of a field with L >= 1, "
                                f"got m = {m}")
        self.L = L
        nlat = math.ceil(oversampling * (L + 1))
        nlon = 2 * nlat
        self.transforms = GridTransforms(L, nlat, nlon)
        self.register_buffer("degrees", torch.as_tensor(self.transforms.degrees), persistent=False)
        self.lift = PointwiseLinear(1, width)
        self.lift_time = nn.Linear(time_features, width)
        self.blocks = nn.ModuleList(FieldBlock(width, L, time_features, activation, hidden * width) for _ in range(depth))
        self.project = SpectralConvolution(width, 1, L, 0.0)
        # a linear gain per degree and time on the input (the score's linear part; starts at zero)
        self.linear = nn.Linear(time_features, L + 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, z: torch.Tensor, embedding: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
        """(n, m) normalised coefficients, (n, E) time features and the (m,) diagonal of Q -> (n, m)."""
        # c = Q^1/2 scaled so that a white z synthesises to unit pixel variance
        dtype = self.lift.weight.dtype  # the network's (the transforms' buffers follow it)
        colour = torch.sqrt(metric * (4 * math.pi / metric.sum())).to(dtype)
        z, embedding = z.to(dtype), embedding.to(dtype)
        transforms = self.transforms
        field = transforms.slots_to_grid(transforms.to_slots(z * colour))  # (nlat, n, nlon)
        u = self.lift(field.unsqueeze(2)) + self.lift_time(embedding)[:, :, None]  # (nlat, n, C, nlon)
        for block in self.blocks:
            u = block(u, transforms, embedding)
        nlat, n, channels, nlon = u.shape
        slots = transforms.grid_to_slots(u.reshape(nlat, n * channels, nlon))
        projected = self.project(slots.reshape(*slots.shape[:2], n, channels))  # (O, L + 1, n, 1)
        coefficients = transforms.from_slots(projected.reshape(*slots.shape[:2], n))  # (n, m)
        return coefficients / colour + self.linear(embedding)[:, self.degrees] * z
