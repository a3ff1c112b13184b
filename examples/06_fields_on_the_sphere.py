"""Random fields on the sphere: a score-based model of lognormal fields with Whittle-Matern noise.

A field up to degree L is a vector of (L + 1)^2 real spherical-harmonic coefficients. The forward
SDE dX = -X dt + sqrt(2) dW^Q with Q = (kappa^2 - Laplacian)^-alpha is, in those coefficients, an
ordinary symscore SDE (one 1-D equation per coefficient, noise sqrt(2 C_l)); the network learns
Q grad log p_t (Cameron-Martin preconditioning). Writes Mollweide maps of data and samples and
their angular power spectra.

    python examples/06_fields_on_the_sphere.py          (SYMSCORE_SMALL=1 for a smoke run)
"""
import numpy as np

import symscore as ss
from _common import output_folder, size
from symscore.fields import (SphericalHarmonics, field_data, pixel_statistic, pixel_std, power_spectrum,
                             whittle_matern_sde, whittle_matern_spectrum)

out = output_folder(__file__)
L, kappa, alpha = size(8, 3), 4.0, 2.0
harmonics = SphericalHarmonics(L)                                   # torch-harmonics transforms, Gauss-Legendre grid
data = field_data("lognormal", L, size(20_000, 400), seed=0, kappa=kappa, alpha=alpha)   # (n, (L + 1)^2)
print(f"{data.shape[0]} lognormal fields, L = {L}: {harmonics.m} coefficients on a {harmonics.nlat} x {harmonics.nlon} grid")

sde = whittle_matern_sde(L, kappa, alpha)                           # an ordinary ss.SDE in coefficient space
model = ss.train(sde, data, steps=size(2000, 20), batch_size=size(256, 32), width=size(256, 32), t_min=0.02,
                 n_steps=150, preconditioning="cameron-martin", gaussian_skip=True, progress=False)
samples = ss.sample(sde, model, size(1000, 50), n_steps=size(300, 30), seed=1)

held_out = field_data("lognormal", L, samples.shape[0], seed=1, kappa=kappa, alpha=alpha)
ratio = power_spectrum(samples, L).mean(0) / power_spectrum(held_out, L).mean(0)
print("C_l(samples) / C_l(data) per degree:", np.round(ratio, 2))
for label, fields in (("data", held_out), ("samples", samples)):
    fraction = pixel_statistic(fields, L, threshold=pixel_std(L, kappa, alpha))
    print(f"fraction of area above sigma_Q, {label:>7}: {fraction.mean():.4f} +- {fraction.std(ddof=1) / np.sqrt(len(fraction)):.4f}")
ss.plots.plot_field_maps({"data": held_out, "samples": samples}, L, out / "maps.png")
ss.plots.plot_power_spectra({"data": power_spectrum(held_out, L).mean(0), "samples": power_spectrum(samples, L).mean(0)},
                            out / "spectra.png", reference={"noise C_l": whittle_matern_spectrum(L, kappa, alpha)})
print(f"wrote maps.png, spectra.png to {out}/")
