"""Seeded spherical field data: fields drawn on a fine grid, projected to degrees <= L.

Kinds (each is scaled by one constant, so that its mean pixel variance is the Whittle-Matern
noise's, sigma_Q^2 = sum_l (2 l + 1) C_l / (4 pi) (:func:`pixel_std`): the data sit on the scale of
the forward SDE's stationary law N(0, Q), which the samplers start from):

* ``"gaussian"``: the Whittle-Matern Gaussian field itself, a_lm ~ N(0, C_l) (the one kind with
  a closed-form score, for checks).
* ``"lognormal"``: exp(g) minus its mean, g a Gaussian Whittle-Matern field of unit pixel variance:
  skewed, with heavy positive tails.
* ``"threshold"``: a smoothed indicator 1{g > 1} minus its population mean (g as above):
  two-valued patches.
* ``"blobs"``: a few Gaussian bumps of random sign at uniform points of the sphere: sparse.

Each is non-Gaussian on the grid; the projection to degree L keeps that (a threshold's sharp edge
rings a little at the truncation). The generator is numpy's, seeded, and the projection is
:meth:`SphericalHarmonics.analysis` on a grid of 4 (L + 1) latitudes.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import scipy.special

from .._checks import positive_int
from .._errors import SymscoreError
from .harmonics import SphericalHarmonics, power_spectrum
from .sde import whittle_matern_spectrum

__all__ = ["FIELD_KINDS", "field_data", "pixel_statistic", "pixel_std", "gaussian_counterpart", "amplitude_spread"]

FIELD_KINDS = ("gaussian", "lognormal", "threshold", "blobs")


def _gaussian_grid(fine: SphericalHarmonics, n: int, rng, kappa, alpha) -> np.ndarray:
    """Gaussian Whittle-Matern fields on ``fine``'s grid, normalised to unit pixel variance."""
    spectrum = whittle_matern_spectrum(fine.L, kappa, alpha)
    variance = np.sum((2 * np.arange(fine.L + 1) + 1) * spectrum) / (4 * np.pi)
    coeffs = rng.standard_normal((n, fine.m)) * np.sqrt(spectrum[fine.degrees] / variance)
    return fine.synthesis(coeffs)


def pixel_std(L: int, kappa: float = 4.0, alpha: float = 2.0) -> float:
    """sigma_Q: the pixel standard deviation of the Whittle-Matern field N(0, Q) up to degree L."""
    spectrum = whittle_matern_spectrum(L, kappa, alpha)
    return float(np.sqrt(np.sum((2 * np.arange(L + 1) + 1) * spectrum) / (4 * np.pi)))


#: Fields drawn per batch on the fine grid (bounds the memory: a batch of L = 16 is about 0.1 GB).
CHUNK = 1000
#: Fields of the fixed calibration sample that sets each kind's scale (module docstring).
CALIBRATION_SIZE = 4000
#: Its seed: a constant, apart from users' seeds.
CALIBRATION_SEED = 20_260_601


def field_data(kind: str, L: int, n: int, seed: int = 0, kappa: float = 4.0, alpha: float = 2.0) -> np.ndarray:
    """n seeded fields of ``kind`` (:data:`FIELD_KINDS`) as (n, (L + 1)^2) real coefficients.

    ``kappa`` and ``alpha`` are the Whittle-Matern parameters of the Gaussian field behind every
    kind but blobs (whose bump width is set by kappa: angular radius about 1 / (kappa + 2)).

    Every draw of one (kind, L, kappa, alpha) is scaled by the same constant, so a training set
    and a held-out set of other seeds and sizes come from one law: the constant that gives the
    mean pixel variance sigma_Q^2 on a fixed calibration sample of 4000 fields (not on the draw
    itself, whose own variance has a sampling error of several percent for heavy-tailed kinds).
    Fields are made in batches of 1000, so n is limited by the output's memory alone.
    """
    if kind not in FIELD_KINDS:
        raise SymscoreError(f"kind: expected one of {', '.join(map(repr, FIELD_KINDS))}, got {kind!r}")
    L, n = positive_int(L, "L"), positive_int(n, "n")
    rng = np.random.default_rng(positive_int(seed, "seed", low=0))
    kappa, alpha = float(kappa), float(alpha)
    spectrum = whittle_matern_spectrum(L, kappa, alpha)  # also checks kappa and alpha
    if kind == "gaussian":  # exact in coefficient space, already on the noise's scale
        sh = SphericalHarmonics(L)
        return rng.standard_normal((n, sh.m)) * np.sqrt(spectrum[sh.degrees])
    return _draw(kind, L, n, rng, kappa, alpha) * _scale(kind, L, kappa, alpha)


def _draw(kind: str, L: int, n: int, rng, kappa: float, alpha: float) -> np.ndarray:
    """Unscaled coefficients of n fields of ``kind``, in batches of :data:`CHUNK`."""
    fine = SphericalHarmonics(2 * L, nlat=4 * (L + 1), nlon=8 * (L + 1))
    coarse = SphericalHarmonics(L, nlat=fine.nlat, nlon=fine.nlon)
    out = np.empty((n, coarse.m))
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        if kind == "lognormal":  # E exp(g) = e^(1/2) for g ~ N(0, 1): mean zero
            field = np.exp(_gaussian_grid(fine, size, rng, kappa, alpha)) - np.exp(0.5)
        elif kind == "threshold":
            field = _sigmoid_step(_gaussian_grid(fine, size, rng, kappa, alpha)) - THRESHOLD_MEAN
        else:  # blobs: random signs, mean zero
            field = _blobs(fine, size, rng, width=1.0 / (kappa + 2.0))
        out[start:start + size] = coarse.analysis(field)
    return out


def _sigmoid_step(g):
    """The smoothed indicator 1{g > 1} of the threshold kind."""
    return 1.0 / (1.0 + np.exp(-8.0 * (g - 1.0)))


def _gauss_hermite_mean(function, order: int = 200) -> float:
    """E f(g) for g ~ N(0, 1) by Gauss-Hermite quadrature."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    return float(np.sum(weights * function(nodes)) / np.sqrt(2 * np.pi))


#: E 1 / (1 + e^(-8 (g - 1))) for g ~ N(0, 1): the threshold kind's population mean (subtracted).
THRESHOLD_MEAN = _gauss_hermite_mean(_sigmoid_step)


@functools.lru_cache(maxsize=64)
def _scale(kind: str, L: int, kappa: float, alpha: float) -> float:
    """sigma_Q / (root mean pixel square of a fixed calibration sample of ``kind``)."""
    calibration = _draw(kind, L, CALIBRATION_SIZE, np.random.default_rng(CALIBRATION_SEED), kappa, alpha)
    pixels = SphericalHarmonics(L).synthesis(calibration)
    return pixel_std(L, kappa, alpha) / float(np.sqrt(np.mean(pixels**2)))


def _blobs(fine: SphericalHarmonics, n: int, rng, width: float, per_field: int = 6) -> np.ndarray:
    lat, lon = np.radians(fine.lat)[:, None], np.radians(fine.lon)[None, :]
    points = np.stack(np.broadcast_arrays(np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)), axis=-1)
    # one row of normals per field (centre, sign, amplitude of each bump): the stream does not
    # depend on how the fields are batched
    normals = rng.standard_normal((n, per_field, 5))
    centres = normals[..., :3] / np.linalg.norm(normals[..., :3], axis=-1, keepdims=True)
    signs = np.where(normals[..., 3] < 0, -1.0, 1.0) * (0.5 + scipy.special.ndtr(normals[..., 4]))
    cosine = np.einsum("abk,nck->ncab", points, centres)
    return np.einsum("nc,ncab->nab", signs, np.exp((cosine - 1.0) / width**2))


def pixel_statistic(coeffs, L: int, threshold: float) -> np.ndarray:
    """The fraction of each field's area where its value exceeds ``threshold``: (n,) for
    coefficients (n, (L + 1)^2), by the quadrature of the Gauss-Legendre grid of 2 (L + 1)
    latitudes. A Gaussian field and a lognormal one of the same spectrum differ in it."""
    sh = SphericalHarmonics(positive_int(L, "L"), nlat=2 * (L + 1), nlon=4 * (L + 1))
    pixels = sh.synthesis(np.asarray(coeffs, dtype=np.float64))
    return sh.integrate((pixels > threshold).astype(np.float64)) / (4 * np.pi)


def amplitude_spread(coeffs) -> float:
    """How much fields differ in overall brightness: the coefficient of variation over fields of
    each field's RMS pixel value above degree 0, sqrt(sum_{l >= 1} a_lm^2 / 4 pi) (Parseval: no grid).

    A Gaussian field's is small, about sqrt(sum q^2 / 2) / sum q over the variances q of its
    coefficients above degree 0 (0.11 for the Whittle-Matern noise at L = 16); a lognormal field's
    is large (0.42 at L = 16), because a field's brightness there is multiplicative. A sampler that keeps every degree's mean
    power but loses the field-to-field heterogeneity shows it here and not in the spectrum.
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    m = coeffs.shape[-1] if coeffs.ndim else 0
    if coeffs.ndim != 2 or coeffs.shape[0] < 2 or m < 4 or math.isqrt(m) ** 2 != m:
        raise SymscoreError(f"coeffs: expected (n, (L + 1)^2) coefficients of n >= 2 fields with L >= 1, got shape "
                            f"{coeffs.shape}")
    if not np.all(np.isfinite(coeffs)):
        raise SymscoreError("coeffs: expected finite coefficients, got NaN or infinity")
    rms = np.sqrt(np.sum(coeffs[:, 1:] ** 2, axis=1) / (4 * np.pi))
    if rms.mean() == 0:
        raise SymscoreError("coeffs: every field is constant (no power above degree 0), so the spread is undefined")
    return float(rms.std() / rms.mean())


def gaussian_counterpart(coeffs, L: int, n: int, seed: int = 0) -> np.ndarray:
    """n Gaussian fields with the mean power spectrum of ``coeffs`` (n', (L + 1)^2) per degree:
    what a score that learned only the spectrum would sample. :func:`pixel_statistic` tells it
    from non-Gaussian data, the spectrum cannot."""
    L, n = positive_int(L, "L"), positive_int(n, "n")
    spectrum = power_spectrum(np.asarray(coeffs, dtype=np.float64), L).mean(0)
    rng = np.random.default_rng(positive_int(seed, "seed", low=0))
    return rng.standard_normal((n, (L + 1) ** 2)) * np.sqrt(spectrum[SphericalHarmonics(L).degrees])
