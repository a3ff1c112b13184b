"""Random fields on the sphere: a score-based model of lognormal fields with Whittle-Matern noise.

A field up to degree L is a vector of (L + 1)^2 real spherical-harmonic coefficients. The forward
SDE dX = -X dt + sqrt(2) dW^Q with Q = (kappa^2 - Laplacian)^-alpha is, in those coefficients, an
ordinary symscore SDE (one 1-D equation per coefficient, noise sqrt(2 C_l)). The field recipe
trains the spherical Fourier network (it works on the quadrature grid, where a lognormal field's
structure is) and samples with the probability-flow ODE; the report compares the samples' power
spectrum and the fraction of area above sigma_Q with held-out data and with Gaussian fields of the
same spectrum. Writes Mollweide maps and the spectra.

    python examples/06_fields_on_the_sphere.py          (SYMSCORE_SMALL=1 for a smoke run)
"""
import symscore as ss
from _common import output_folder, size
from symscore.experiments.fields import compare_fields, sample_fields, train_fields
from symscore.fields import SphericalHarmonics, field_data, gaussian_counterpart, whittle_matern_sde, whittle_matern_spectrum

out = output_folder(__file__)
L, kappa, alpha = size(8, 3), 4.0, 2.0
harmonics = SphericalHarmonics(L)                                   # torch-harmonics transforms, Gauss-Legendre grid
data = field_data("lognormal", L, size(20_000, 400), seed=0, kappa=kappa, alpha=alpha)   # (n, (L + 1)^2)
print(f"{data.shape[0]} lognormal fields, L = {L}: {harmonics.m} coefficients on a {harmonics.nlat} x {harmonics.nlon} grid")

sde = whittle_matern_sde(L, kappa, alpha)                           # an ordinary ss.SDE in coefficient space
model = train_fields(sde, data, steps=size(400, 5), progress=False, **size({}, {"width": 4, "depth": 1, "pilot_size": 256}))
samples = sample_fields(sde, model, size(1000, 50), n_steps=size(25, 5), seed=1)

held_out = field_data("lognormal", L, size(5000, 200), seed=1, kappa=kappa, alpha=alpha)
report = compare_fields(samples, held_out, L, kappa, alpha)
print("\n".join(report.lines()))
gaussian = gaussian_counterpart(held_out, L, samples.shape[0])
ss.plots.plot_field_maps({"data": held_out, "samples": samples, "gaussian, same C_l": gaussian}, L, out / "maps.png")
ss.plots.plot_power_spectra(report.spectra, out / "spectra.png", reference={"noise C_l": whittle_matern_spectrum(L, kappa, alpha)})
print(f"wrote maps.png, spectra.png to {out}/")
