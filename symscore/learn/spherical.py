"""A spherical block: the part of a field's score that lives in pixel space.

A field's coefficients x (m = (L + 1)^2, :mod:`symscore.fields.harmonics`) are a poor input for an
MLP when the data are non-Gaussian pixel by pixel (lognormal, thresholded): the score of a field
whose log-density is a sum over pixels, sum_p w_p V(f_p), is

    grad_x log p = S^T diag(w) V'(S x),

a synthesis S, a pointwise nonlinearity and an analysis. An MLP on coefficients must learn that
composition from scratch, and one narrower than m cannot. This block builds it in, in the manner
of spherical Fourier neural operators (Bonev et al. 2023): with C channels,

    u_k = S (a_k[l] * z)               per-degree filters a_k, then synthesis: C fields on the grid
    h_p = act(W1 u_p + b1 + E emb(t))  one pointwise layer per pixel p, shared by all pixels
    v_p = g(t) * (W2 h_p)              C outputs per pixel, a gain per channel and time
    out = sum_k b_k[l] * (A v_k)       analysis, then per-degree filters b_k

where z is the model's normalised input and A = S^T diag(w) is the grid's quadrature analysis.
S and A are dense (m, P) matrices on the smallest exact Gauss-Legendre grid, P = 2 (L + 1)^2,
built once from :class:`~symscore.fields.SphericalHarmonics` and not saved (the config's L
rebuilds them). The gain g(t) = G emb(t) + 1 (G starts at zero) lets the block fade where the
score is Gaussian (large t, where the model's Gaussian skip is exact) and grow where it is not:
without it the pointwise function is the same at every t up to a shift of its hidden units, and
the first measurement at L = 16 inflated the samples' spectrum. The output filters start at zero, so the block starts as nothing and the model
as the plain MLP.

With ``depth`` D > 1 the block stacks D pointwise layers, as a spherical Fourier neural operator
stacks its blocks: layer j + 1 sees, per pixel, the input fields u and layer j's output v after a
spectral convolution (analysis, a C x C channel mixing per degree, synthesis). One layer can only
represent scores of the form S^T diag(w) V'(S x); a lognormal field f = exp(g) - E, with g
Gaussian of mean mu and covariance K, has in pixel space the score

    -(K^-1 (log(f + E) - mu) + 1) / (f + E),

a pointwise function, a non-local filter, and a product with another pointwise function, which
needs two layers and both inputs.

Rotations act on each degree's coefficients orthogonally; the pointwise layers commute with them
(up to the grid) and the spectral convolution mixes channels within a degree, so the block is
close to rotation-equivariant, as a stationary field's score is.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..fields.harmonics import SphericalHarmonics

__all__ = ["SphericalBlock", "sphere_degree"]


def sphere_degree(m: int) -> int:
    """L with m = (L + 1)^2, or -1 if m is not such a square (L >= 1)."""
    root = math.isqrt(m)
    return root - 1 if root * root == m and root >= 2 else -1


class SphericalBlock(nn.Module):
    """Per-degree filters, synthesis, a pointwise layer per pixel, analysis, per-degree filters.

    Args:
        L: the largest degree (the block acts on (L + 1)^2 coefficients).
        channels: C, the fields synthesised (and analysed) per input.
        hidden: the pointwise layer's width.
        embedding_size: the size of the time features it is conditioned on.
        activation: an ``nn.Module`` class.
        depth: pointwise layers; each after the first sees the input fields and the previous
            layer's output after a spectral convolution (per-degree channel mixing), see the
            module docstring.
    """

    def __init__(self, L: int, channels: int, hidden: int, embedding_size: int, activation, depth: int = 1):
        super().__init__()
        harmonics = SphericalHarmonics(L)
        m, pixels = harmonics.m, harmonics.nlat * harmonics.nlon
        synthesis = harmonics.synthesis(np.eye(m)).reshape(m, pixels)
        analysis = harmonics.analysis(np.eye(pixels).reshape(pixels, harmonics.nlat, harmonics.nlon))
        self.register_buffer("synthesis", torch.as_tensor(synthesis), persistent=False)
        self.register_buffer("analysis", torch.as_tensor(analysis), persistent=False)
        self.register_buffer("degrees", torch.as_tensor(harmonics.degrees, dtype=torch.long), persistent=False)
        # a white input (unit variance per coefficient) synthesises to pixels of variance m / 4 pi
        self.filters_in = nn.Parameter(torch.randn(channels, L + 1) * math.sqrt(4 * math.pi / m))
        self.pointwise_in = nn.Linear(channels, hidden)
        self.time_in = nn.Linear(embedding_size, hidden)
        self.activation = activation()
        self.pointwise_out = nn.Linear(hidden, channels)
        self.time_gain = nn.Linear(embedding_size, channels)
        nn.init.zeros_(self.time_gain.weight)
        nn.init.ones_(self.time_gain.bias)
        self.filters_out = nn.Parameter(torch.zeros(channels, L + 1))
        # layers 2..depth (empty for depth 1, so a one-layer block's state dict is as it always was):
        # the spectral convolution starts near the identity on each degree (the projection of the
        # previous output onto degrees <= L), perturbed so that the channels differ
        self.mixing = nn.ParameterList(
            nn.Parameter(torch.eye(channels).unsqueeze(2).repeat(1, 1, L + 1)
                         + 0.1 * torch.randn(channels, channels, L + 1) / math.sqrt(channels))
            for _ in range(depth - 1))
        self.layers = nn.ModuleList(
            nn.ModuleDict({"pointwise_in": nn.Linear(2 * channels, hidden), "time_in": nn.Linear(embedding_size, hidden),
                           "pointwise_out": nn.Linear(hidden, channels)})
            for _ in range(depth - 1))

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """(n, m) normalised coefficients and (n, E) time features -> (n, m)."""
        lifted = z.unsqueeze(1) * self.filters_in[:, self.degrees]  # (n, C, m)
        fields = (lifted @ self.synthesis.to(z.dtype)).transpose(1, 2)  # (n, P, C)
        hidden = self.pointwise_in(fields) + self.time_in(embedding).unsqueeze(1)
        values = self.pointwise_out(self.activation(hidden)).transpose(1, 2)  # (n, C, P)
        synthesis, analysis = self.synthesis.to(z.dtype), self.analysis.to(z.dtype)
        for mixing, layer in zip(self.mixing, self.layers):
            # spectral convolution: out_k[lm] = sum_c M[k, c, l] in_c[lm], back on the grid
            spectral = torch.einsum("ncm,kcm->nkm", values @ analysis, mixing[:, :, self.degrees])
            inputs = torch.cat([fields, (spectral @ synthesis).transpose(1, 2)], dim=2)  # (n, P, 2C)
            hidden = layer["pointwise_in"](inputs) + layer["time_in"](embedding).unsqueeze(1)
            values = layer["pointwise_out"](self.activation(hidden)).transpose(1, 2)
        values = values * self.time_gain(embedding).unsqueeze(2)
        coefficients = values @ analysis  # (n, C, m)
        return (coefficients * self.filters_out[:, self.degrees]).sum(dim=1)
