"""Random fields on the sphere: spherical harmonics, Whittle-Matern noise, field data.

A field up to degree L is a vector of (L + 1)^2 real spherical-harmonic coefficients
(:class:`SphericalHarmonics`); its forward SDE in coefficient space (:func:`whittle_matern_sde`)
is an ordinary :class:`symscore.SDE`, so the compiler, :func:`symscore.train` and
:func:`symscore.sample` work on fields unchanged. ``train(..., preconditioning="cameron-martin")``
regresses the score in the Cameron-Martin geometry of Q (see :mod:`symscore.learn.model`).
"""
from .data import FIELD_KINDS, amplitude_spread, field_data, gaussian_counterpart, pixel_statistic, pixel_std
from .harmonics import SphericalHarmonics, coefficient_index, n_coefficients, power_spectrum
from .sde import TIME, X, coefficient_symbols, whittle_matern_sde, whittle_matern_spectrum

__all__ = ["SphericalHarmonics", "power_spectrum", "coefficient_index", "n_coefficients", "whittle_matern_spectrum",
           "whittle_matern_sde", "coefficient_symbols", "X", "TIME", "FIELD_KINDS", "field_data", "pixel_statistic",
           "amplitude_spread", "pixel_std", "gaussian_counterpart"]
