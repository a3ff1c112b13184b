"""Spherical fields: the harmonic transforms, Whittle-Matern SDE, data, preconditioning, sampling.

The transforms are checked exactly (identity, scipy's harmonics, quadrature orthonormality); the
SDE's lane-constant kernel against the dense reference in test_reference.py; sampling with the
exact score of Gaussian Whittle-Matern data against the closed-form per-degree variance, with a
tolerance from the chi-square law of the spectrum estimate (and a wrong score shown to fail).
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import sympy as sp
import torch

import symscore as ss
from symscore.fields import (FIELD_KINDS, SphericalHarmonics, X, amplitude_spread, coefficient_index, field_data,
                             pixel_statistic, pixel_std, power_spectrum, whittle_matern_sde, whittle_matern_spectrum)
from symscore.learn.calibration import calibrate_flow
from symscore.learn.measurements import interpolate as _interpolate
from symscore.learn.priors import GaussianPrior

from conftest import import_file


# -- transforms ------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", ["legendre-gauss", "equiangular"])
def test_synthesis_then_analysis_is_the_identity_at_l32(grid):
    sh = SphericalHarmonics(32, grid=grid)
    coeffs = np.random.default_rng(0).standard_normal((4, sh.m))
    back = sh.analysis(sh.synthesis(coeffs))
    assert np.abs(back - coeffs).max() < 1e-10
    tensor = torch.as_tensor(coeffs)  # torch in, torch out, same dtype
    assert torch.allclose(sh.analysis(sh.synthesis(tensor)), tensor, atol=1e-10, rtol=0)


def test_basis_is_scipys_real_harmonics_and_orthonormal():
    """Y_l0, sqrt 2 Re Y_l^m (m > 0), sqrt 2 Im Y_l^|m| (m < 0), scipy's Condon-Shortley phase."""
    L = 6
    sh = SphericalHarmonics(L, nlat=14, nlon=26)
    colatitude, longitude = np.radians(90.0 - sh.lat)[:, None], np.radians(sh.lon)[None, :]
    basis = sh.synthesis(np.eye(sh.m))
    for l in range(L + 1):
        for m in range(-l, l + 1):
            complex_y = scipy.special.sph_harm_y(l, abs(m), colatitude, longitude)
            expected = complex_y.real if m == 0 else np.sqrt(2) * (complex_y.real if m > 0 else complex_y.imag)
            assert np.abs(basis[coefficient_index(l, m)] - expected).max() < 1e-12, (l, m)
    gram = np.einsum("iab,jab,ab->ij", basis, basis, sh.weights)
    assert np.abs(gram - np.eye(sh.m)).max() < 1e-12
    assert abs(sh.weights.sum() - 4 * np.pi) < 1e-12
    assert sh.lat[0] > 0 > sh.lat[-1]  # row 0 is the north


def test_power_spectrum_per_degree():
    L = 3
    coeffs = np.zeros((2, (L + 1) ** 2))
    coeffs[0, coefficient_index(2, -1)] = 5.0  # C_2 = 25 / 5
    coeffs[1, [coefficient_index(1, m) for m in (-1, 0, 1)]] = 1.0
    spectrum = power_spectrum(coeffs, L)
    assert spectrum.shape == (2, L + 1)
    np.testing.assert_allclose(spectrum, [[0, 0, 5, 0], [0, 1, 0, 0]])
    # Gaussian fields a_lm ~ N(0, C_l): unbiased, relative standard error sqrt(2 / ((2 l + 1) n))
    C = whittle_matern_spectrum(16, 1.0, 2.0)
    n = 400
    draws = np.random.default_rng(1).standard_normal((n, 289)) * np.sqrt(C[SphericalHarmonics(16).degrees])
    ratio = power_spectrum(draws, 16).mean(axis=0) / C
    assert np.all(np.abs(ratio - 1) < 4.5 * np.sqrt(2 / ((2 * np.arange(17) + 1) * n)))


def test_bad_input_names_the_argument():
    sh = SphericalHarmonics(4)
    cases = [
        (lambda: SphericalHarmonics(0), "L"), (lambda: SphericalHarmonics(4, nlat=3), "nlat"),
        (lambda: SphericalHarmonics(4, nlon=7), "nlon"), (lambda: SphericalHarmonics(4, grid="healpix"), "grid"),
        (lambda: sh.synthesis(np.zeros(24)), "coeffs"), (lambda: sh.synthesis(np.full(25, np.nan)), "coeffs"),
        (lambda: sh.analysis(np.zeros((5, 9))), "grid"), (lambda: power_spectrum(np.zeros(10), 4), "coeffs"),
        (lambda: coefficient_index(2, 3), "m"),
        (lambda: whittle_matern_spectrum(4, alpha=1.0), "alpha"), (lambda: whittle_matern_spectrum(4, kappa=0), "kappa"),
        (lambda: whittle_matern_sde(4, drift=sp.Symbol("y") ** 2), "drift"),
        (lambda: field_data("stripes", 4, 10), "kind"), (lambda: field_data("gaussian", 4, 0), "n"),
    ]
    for call, name in cases:
        with pytest.raises(ss.SymscoreError, match=name):
            call()


# -- the SDE -----------------------------------------------------------------------------------------
def test_whittle_matern_sde_is_one_lane_constant_block():
    """(L + 1)^2 coefficients, noise sqrt(2 C_l), one 1-D block over all of them (lane constants)."""
    from symscore.compiler.ir import build_ir

    L = 8
    sde = whittle_matern_sde(L, kappa=2.0, alpha=1.5, drift=-X**3)
    assert (sde.m, sde.d) == (81, 81)
    C = whittle_matern_spectrum(L, 2.0, 1.5)
    assert float(sde.diffusion[coefficient_index(3, -2), coefficient_index(3, -2)]) == pytest.approx(np.sqrt(2 * C[3]))
    a = sp.Symbol("a_2_n1")
    assert sde.drift[coefficient_index(2, -1)] == -a - a**3
    der = sde.derive()
    assert der.structure == "separable"
    ir = build_ir(der)
    assert len(ir.blocks) == 1 and len(ir.blocks[0].lanes) == 81
    values = np.array(ir.blocks[0].constant_values)[:, 0]
    np.testing.assert_allclose(values, np.sqrt(2 * C[SphericalHarmonics(L).degrees]))
    assert whittle_matern_sde(L).derive().structure == "linear"


def test_l32_field_compiles_and_simulates_in_seconds(tmp_path, monkeypatch):
    """m = 1089: the lane-constant block keeps the generated module small. Its target's regression
    slope on X_t recovers the exact score -x / v_t of Gaussian data per degree."""
    L, t_rec = 32, 0.5
    sde = whittle_matern_sde(L)
    kernel = ss.compile(sde)
    noise = whittle_matern_spectrum(L)[SphericalHarmonics(L).degrees]
    data_var = 0.5 * noise
    x0 = np.random.default_rng(0).standard_normal((3000, sde.m)) * np.sqrt(data_var)
    paths = kernel.simulate(x0, [t_rec], 50, seed=1)
    variance = data_var * np.exp(-2 * t_rec) + noise * (1 - np.exp(-2 * t_rec))
    x, target = paths.x[:, 0], paths.target[:, 0]
    slope = (target * x).sum(0) / (x**2).sum(0)  # E[target x] / E[x^2] = -1 / v_t per coefficient
    np.testing.assert_allclose((slope * variance).mean(), -1.0, atol=0.01)


# -- data -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", FIELD_KINDS)
def test_field_data_is_seeded_finite_and_on_the_noise_scale(kind):
    a, b = field_data(kind, 8, 40, seed=3), field_data(kind, 8, 40, seed=3)
    assert a.shape == (40, 81) and np.array_equal(a, b) and np.isfinite(a).all()
    assert not np.array_equal(a, field_data(kind, 8, 40, seed=4))
    pixels = SphericalHarmonics(8).synthesis(a)
    assert np.sqrt(np.mean(pixels**2)) == pytest.approx(pixel_std(8), rel=0.15)


@pytest.mark.parametrize("kind", ["lognormal", "threshold", "blobs"])
def test_field_data_is_one_law_whatever_the_draw(kind):
    """Every draw is scaled by the same calibrated constant (not by its own pixel variance, whose
    sampling error is several percent for heavy tails): a draw of 1200 begins with the draw of 500
    of the same seed, batches included, and a large draw's pixel variance is sigma_Q^2."""
    small, large = field_data(kind, 6, 500, seed=7), field_data(kind, 6, 1200, seed=7)
    # one stream, but torch-harmonics' transforms see batches of 500 and of 1000 fields, and other
    # shapes may take other FFT/GEMM kernels (summation orders): to rounding (a wrong stream is O(1) off)
    np.testing.assert_allclose(small, large[:500], rtol=1e-12, atol=1e-12 * np.abs(large).max())
    pixels = SphericalHarmonics(6).synthesis(field_data(kind, 6, 4000, seed=8))
    assert np.sqrt(np.mean(pixels**2)) == pytest.approx(pixel_std(6), rel=0.03)
    assert abs(pixels.mean()) < 0.02 * pixel_std(6)  # the kinds are centred by their population means


def test_pixel_statistic_separates_lognormal_from_gaussian():
    n = 300
    gaussian, lognormal = field_data("gaussian", 8, n, seed=0), field_data("lognormal", 8, n, seed=0)
    g, ln = (pixel_statistic(fields, 8, threshold=pixel_std(8)) for fields in (gaussian, lognormal))
    se = np.hypot(g.std(ddof=1), ln.std(ddof=1)) / np.sqrt(n)
    assert abs(g.mean() - ln.mean()) > 5 * se


def test_amplitude_spread_of_gaussian_fields_is_the_delta_method_value():
    """For N(0, Q) fields the RMS above degree 0 is sqrt(P), P = sum_{l >= 1} q chi^2_1, so its
    coefficient of variation is CV(P) / 2 = sqrt(sum q^2 / 2) / sum q to first order (0.11 at L = 16;
    the next order is about -1%): 20 000 fields (standard error about 0.5%) meet it within 3%, and
    the coefficient of variation of P itself (twice it) does not. Lognormal fields are far wider."""
    L = 16
    q = whittle_matern_spectrum(L)[SphericalHarmonics(L).degrees][1:]
    fields = np.random.default_rng(0).standard_normal((20_000, (L + 1) ** 2)) * np.sqrt(np.r_[1.0, q])
    expected = np.sqrt(np.sum(q**2) / 2) / np.sum(q)
    assert abs(amplitude_spread(fields) - expected) < 0.03 * expected
    power = np.sum(fields[:, 1:] ** 2, axis=1)
    assert abs(power.std() / power.mean() - expected) > 0.5 * expected  # the wrong variant fails
    lognormal = field_data("lognormal", 8, 300, seed=0)
    assert amplitude_spread(lognormal) > 2 * amplitude_spread(field_data("gaussian", 8, 300, seed=0))


@pytest.mark.parametrize("coeffs", [np.ones(9), np.ones((1, 9)), np.zeros((4, 9)), np.full((3, 9), np.nan),
                                    np.ones((4, 3))])
def test_amplitude_spread_refuses_what_is_not_several_fields(coeffs):
    with pytest.raises(ss.SymscoreError, match="coeffs"):
        amplitude_spread(coeffs)


# -- exact-score sampling ----------------------------------------------------------------------------
def _gaussian_field_problem(L):
    sde = whittle_matern_sde(L)
    noise = whittle_matern_spectrum(L)[SphericalHarmonics(L).degrees]
    data_var = whittle_matern_spectrum(L, 3.0, 2.5)[SphericalHarmonics(L).degrees] * 30.0

    def variance(t):
        return data_var * np.exp(-2 * t) + noise * (1 - np.exp(-2 * t))

    return sde, noise, variance


@pytest.mark.parametrize("wrong", [False, True])
def test_exact_score_sampling_reproduces_the_spectrum_per_degree(wrong):
    """Probability-flow ODE (RK4, 200 steps: its error is far below the sampling error) from the
    exact Gaussian law at T with the exact score -x / v_t: the sample spectrum per degree equals
    v_l(t_end) within 4.5 standard errors, sqrt(2 / (n (2 l + 1))) relative. The stationary score
    -x / C_l (which ignores the data) must fail the same check."""
    L, n, t_end = 8, 2000, 0.003
    sde, noise, variance = _gaussian_field_problem(L)
    score = (lambda x, t: -x / noise) if wrong else (lambda x, t: -x / variance(t))
    prior = GaussianPrior(np.zeros(sde.m), np.diag(variance(sde.T)))
    samples = ss.sample(sde, score, n, 200, method="ode", seed=4, prior=prior, t_end=t_end)
    per_degree = variance(t_end)[[coefficient_index(l, 0) for l in range(L + 1)]]
    ratio = power_spectrum(samples, L).mean(axis=0) / per_degree
    tolerance = 4.5 * np.sqrt(2 / (n * (2 * np.arange(L + 1) + 1)))
    inside = np.abs(ratio - 1) < tolerance
    assert (not inside.all()) if wrong else inside.all(), (ratio, tolerance)


def _exact_gaussian_model(sde, data):
    """A ScoreModel that is exactly its Gaussian skip -(x - mu(t)) / var(t) (output layer zeroed),
    with Cameron-Martin preconditioning; mu and var from its 512-path pilot (a few percent off)."""
    model = ss.train(sde, data, steps=1, architecture="resnet", width=16, depth=1, batch_size=64, t_min=0.02,
                     n_steps=100, pilot_size=512, preconditioning="cameron-martin", gaussian_skip=True, progress=False)
    with torch.no_grad():
        model.net.outputs.weight.zero_()
        model.net.outputs.bias.zero_()
    return model


def test_flow_calibration_puts_the_samples_second_moments_back_on_the_forward_law():
    """Gaussian data with a closed-form variance v_l(t) per degree; a model that is its Gaussian
    skip plus a wrong linear term 0.3 (x - mu) / var (so the ODE inflates every degree about 6
    times). ``calibrate_flow`` on 1024 particles must bring the probability-flow ODE's spectrum back
    to v_l(t_min) within 4.5 standard errors: the sample's sqrt(2 / (n (2 l + 1))) and the forward
    reference's sqrt(2 / (n_paths (2 l + 1))), combined. The uncalibrated model fails the same check,
    and the gain it sets cancels the wrong term (to the pilot's few percent)."""
    L, n, n_paths, n_steps = 4, 3000, 8192, 60
    sde, _, variance = _gaussian_field_problem(L)
    data = np.random.default_rng(0).standard_normal((20_000, sde.m)) * np.sqrt(variance(0.0))
    model = _exact_gaussian_model(sde, data)
    model.set_stein_gain(0.3 / model.x_var.numpy())
    per_degree = variance(model.t_min)[[coefficient_index(l, 0) for l in range(L + 1)]]
    degrees = 2 * np.arange(L + 1) + 1
    tolerance = 4.5 * np.sqrt(2 / (n * degrees) + 2 / (n_paths * degrees))
    ratios = []
    for calibrate in (False, True):
        if calibrate:
            with warnings.catch_warnings():  # the unfitted check particles agree: no drift warning
                warnings.simplefilter("error", RuntimeWarning)
                gain = calibrate_flow(model, sde, data, n_steps, n=1024, seed=1, n_paths=n_paths, n_check=256)
            flow = model.corrections["flow"]  # the gain it returns, on the sampler's grid
            assert gain.shape == (n_steps + 1, sde.m) and flow.times.numel() == n_steps + 1
            np.testing.assert_array_equal(flow.gain.numpy(), gain)
            variance_there = _interpolate(flow.times, model.precond_times, model.x_var, log_values=True)
            # measured on top of the forward correction 0.3 / var, which it cancels up to the pilot's error
            assert np.abs(gain * variance_there.numpy() + 0.3).max() < 0.1
        samples = ss.sample(sde, model, n, n_steps, method="ode", seed=4)
        ratios.append(power_spectrum(samples, L).mean(axis=0) / per_degree)
    assert np.all(np.abs(ratios[0] - 1) > tolerance), ratios[0]
    assert np.all(np.abs(ratios[1] - 1) < tolerance), (ratios[1], tolerance)


def test_flow_calibration_reuses_the_first_stage_exactly(monkeypatch):
    """``calibrate_flow`` rebuilds the ODE's first RK4 stage from the score it measured and the gain
    change (the correction is linear in the gain) instead of calling the network again; the gain it
    sets must equal that of a run which evaluates every stage afresh."""
    sde, data, model = _small_field_model()
    fresh = copy.deepcopy(model)
    gain = calibrate_flow(model, sde, data, 12, n=64, n_paths=128)
    from symscore.learn import calibration
    plain_step = calibration.rk4_step
    monkeypatch.setattr(calibration, "rk4_step", lambda *args, k1=None: plain_step(*args))
    reference = calibrate_flow(fresh, sde, data, 12, n=64, n_paths=128)
    assert np.abs(reference).max() > 0.01  # a gain that matters
    np.testing.assert_allclose(gain, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


def _small_field_model():
    """(sde, lognormal data, a 20-step model at L = 2): a score far from linear, cheap to run."""
    sde = whittle_matern_sde(2)
    data = field_data("lognormal", 2, 400, seed=0)
    model = ss.train(sde, data, steps=20, width=16, depth=1, batch_size=32, n_steps=10, pilot_size=64,
                     progress=False, preconditioning="cameron-martin")
    return sde, data, model


def test_stein_groups_pool_a_fields_degrees_from_degree_l_down():
    """Under Cameron-Martin preconditioning the gain pools each degree's 2 l + 1 coefficients, the
    groups numbered by increasing C_l: degree L first, degree 0 last."""
    _, _, model = _small_field_model()
    groups, size = model.stein_groups()
    np.testing.assert_array_equal(size, [5, 3, 1])
    np.testing.assert_array_equal(groups, [2, 1, 1, 1, 0, 0, 0, 0, 0])  # coefficients ordered by degree


def test_flow_calibration_warns_when_its_gain_does_not_carry_over():
    """Fitted on 4 particles, the gain holds the identity on them and nowhere else: the unfitted
    check particles (``n_check``) drift by tens of percent, and the warning says so and asks for a
    larger n. (The Gaussian test above shows the quiet case.)"""
    sde, data, model = _small_field_model()
    with pytest.warns(RuntimeWarning, match=r"unfitted particles .* n = 4 particles; increase n"):
        calibrate_flow(model, sde, data, 12, n=4, n_paths=128, n_check=256)


def test_flow_calibration_bad_input_names_the_argument():
    sde = whittle_matern_sde(2)
    data = field_data("gaussian", 2, 200, seed=0)
    model = ss.train(sde, data, steps=1, width=8, depth=1, batch_size=16, n_steps=10, pilot_size=32, progress=False)
    for kwargs, name in ((dict(model=lambda x, t: -x), "model"), (dict(sde=whittle_matern_sde(3)), "sde"),
                         (dict(data=data[:, :4]), "data"), (dict(n=1), "n"), (dict(n_steps=0), "n_steps"),
                         (dict(n_paths=0), "n_paths"), (dict(t_end=5.0), "t_end"), (dict(n_check=1), "n_check"),
                         (dict(check_tolerance=0.0), "check_tolerance")):
        arguments = dict(model=model, sde=sde, data=data, n_steps=5, n=8, n_paths=16) | kwargs
        with pytest.raises(ss.SymscoreError, match=name):
            calibrate_flow(**arguments)


# -- Cameron-Martin preconditioning --------------------------------------------------------------------
def test_cameron_martin_preconditioning_scales_by_q(tmp_path):
    L = 4
    sde = whittle_matern_sde(L)
    data = field_data("gaussian", L, 500, seed=0)
    model = ss.train(sde, data, steps=3, batch_size=32, width=16, depth=1, progress=False,
                     preconditioning="cameron-martin", pilot_size=256)
    q = whittle_matern_spectrum(L)[SphericalHarmonics(L).degrees]
    np.testing.assert_allclose(model.metric.numpy(), q, rtol=1e-12)
    # input std and output scale: one scalar per time times Q^1/2 and Q^-1/2
    ratio_in = model.x_std.numpy() / np.sqrt(q)
    ratio_out = model.out_scale.numpy() * np.sqrt(q)
    np.testing.assert_allclose(ratio_in, ratio_in[:, :1].repeat(sde.m, 1), rtol=1e-5)
    np.testing.assert_allclose(ratio_out, ratio_out[:, :1].repeat(sde.m, 1), rtol=1e-5)
    x = data[:5]
    np.testing.assert_allclose(model.cameron_martin_score(x, 0.5), q * model(x, 0.5), rtol=1e-12)
    loaded = ss.ScoreModel.load(model.save(tmp_path / "m.pt"))
    assert loaded.preconditioning == "cameron-martin"
    np.testing.assert_allclose(loaded(x, 0.5), model(x, 0.5))
    euclidean = ss.train(sde, data, steps=2, batch_size=32, width=16, depth=1, progress=False,
                         preconditioning="euclidean", pilot_size=256)
    assert np.ptp(euclidean.x_std.numpy(), axis=1).max() == 0 and np.ptp(euclidean.out_scale.numpy(), axis=1).max() == 0


def test_cameron_martin_needs_a_constant_diagonal_diffusion():
    for sde in (ss.library.vp(m=2), ss.library.gbm(m=1)):  # sigma(t) and sigma(x)
        with pytest.raises(ss.SymscoreError, match="preconditioning"):
            ss.train(sde, np.zeros((10, sde.m)) + 0.5, steps=1, preconditioning="cameron-martin", progress=False)
    with pytest.raises(ss.SymscoreError, match="preconditioning"):
        ss.train(ss.library.ou(m=2), np.zeros((10, 2)), steps=1, preconditioning="riemannian", progress=False)


def test_field_plots_are_written(tmp_path):
    from symscore.plots import plot_field_maps, plot_power_spectra

    data = field_data("blobs", 6, 4)
    maps = plot_field_maps({"data": data, "samples": data[::-1]}, 6, tmp_path / "maps.png", resolution=24)
    spectra = plot_power_spectra({"data": (power_spectrum(data, 6).mean(0), power_spectrum(data, 6).std(0))},
                                 tmp_path / "spectra.png", reference={"C_l": whittle_matern_spectrum(6)})
    assert maps.stat().st_size > 5000 and spectra.stat().st_size > 5000


# -- files of the removed spherical block ----------------------------------------------------------------
def test_a_file_with_the_removed_spherical_block_is_refused(tmp_path):
    """Earlier versions' spherical block (``spherical_channels`` channels of ``spherical_depth``
    layers, replaced by ``architecture="sfno"``) is gone: a file whose model had one raises
    SymscoreError naming the key instead of loading without the block's weights (a different score),
    and the file is left as it was. A config that says there was no block (channels 0, or only a
    depth, which earlier versions wrote with or without a block) loads as the network it was."""
    L = 3
    model = ss.ScoreModel((L + 1) ** 2, width=8, depth=1, preconditioning="cameron-martin", gaussian_skip=True)
    path = model.save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"] = payload["config"] | {"spherical_channels": 4}
    payload["state_dict"] = payload["state_dict"] | {"spherical.filters_out": torch.ones(4, L + 1)}
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    before = old.read_bytes()
    with pytest.raises(ss.SymscoreError, match=r"config: this file's model has a spherical block "
                                               r"\(spherical_channels=4\).*architecture='sfno' -- retrain"):
        ss.ScoreModel.load(old)
    assert old.read_bytes() == before
    x = field_data("lognormal", L, 5, seed=0)
    for config in ({"spherical_channels": 0}, {"spherical_depth": 2}, {"spherical_channels": 0, "spherical_depth": 1}):
        payload = torch.load(path, weights_only=True)
        payload["config"] = payload["config"] | config
        torch.save(payload, old)
        loaded = ss.ScoreModel.load(old)
        assert loaded.config == model.config
        np.testing.assert_array_equal(loaded(x, 0.3), model(x, 0.3))
    with pytest.raises(TypeError, match="spherical_channels"):
        ss.ScoreModel((L + 1) ** 2, spherical_channels=2)


# -- the learned score (slow: trains for minutes) --------------------------------------------------------
# The field recipe (symscore.experiments.fields) at L = 16 for a fixed number of steps (about what
# the benchmark's 300 s budget took on 2 cores: 415 and 338 steps), judged by compare_fields: the
# fraction above sigma_Q within 4 SE plus 10% of the data's and (a known gap, strict xfail) the
# spectrum ratio within 0.1 of 1 at every degree, on 1000 samples against 10 000 held-out fields.
# Measured figures: docs/results/fields.md.
RECIPE_STEPS = 400
N_SAMPLES = 1000


def _learned(kind, seed, **overrides):
    from symscore.experiments.fields import compare_fields, sample_fields, train_fields

    L = 16
    sde = whittle_matern_sde(L)
    data, held_out = field_data(kind, L, 20_000, seed=seed), field_data(kind, L, 10_000, seed=seed + 1)
    model = train_fields(sde, data, steps=RECIPE_STEPS, seed=seed, progress=False, **overrides)
    report = compare_fields(sample_fields(sde, model, N_SAMPLES, seed=seed + 2), held_out, L, seed=seed + 3)
    print("\n".join(report.lines()))  # shown with pytest -s
    return report


@pytest.fixture(scope="module")
def recipe_reports():
    """recipe_reports(kind, seed) -> the FieldReport of the recipe, trained once per pair for this module."""
    cache = {}

    def get(kind, seed):
        if (kind, seed) not in cache:
            cache[kind, seed] = _learned(kind, seed)
        return cache[kind, seed]

    return get


RECIPE_RUNS = [("lognormal", 0), ("lognormal", 1), ("threshold", 0)]


@pytest.mark.slow
@pytest.mark.parametrize("kind, seed", RECIPE_RUNS)
def test_the_field_recipe_learns_the_pixel_statistic_at_l16(recipe_reports, kind, seed):
    """Two seeds of the lognormal family and one of the thresholded family: the fraction above
    sigma_Q within 4 SE plus 10% of the data's, and more than half of the Gaussian counterpart's
    excess area below -sigma_Q avoided, without any calibration after training (measured with the
    budget run of 415 / 338 steps, seed 0: -1.6 / -2.4 SE, 0.89 / 0.84; docs/results/fields.md)."""
    report = recipe_reports(kind, seed)
    gap, error = report.fraction_gap
    assert abs(gap) <= 4 * error + 0.1 * report.fractions["data"][0], report.lines()
    # the floor: the fraction above sigma_Q hardly tells thresholded fields from Gaussian ones
    assert report.floor_recovered > 0.5, report.lines()


SPECTRUM_GAP = pytest.mark.xfail(strict=True, reason="known gap: degree 0 about 28% low (both families), lognormal "
                                                     "degrees 1-16 5-12% low: the samples' sphere mean lacks the "
                                                     "data's tails, and no network variant measured changes it "
                                                     "(docs/results/fields.md)")


@pytest.mark.slow
@SPECTRUM_GAP
@pytest.mark.parametrize("kind, seed", RECIPE_RUNS)
def test_the_field_recipe_meets_the_spectrum_at_l16(recipe_reports, kind, seed):
    """The spectrum ratio within 0.1 of 1 at every degree. Strict: the day it passes, the marker
    must go."""
    report = recipe_reports(kind, seed)
    assert report.spectrum_deviation <= 0.1, report.lines()


@pytest.mark.slow
def test_an_mlp_on_coefficients_misses_the_pixel_statistic_at_l16():
    """The negative control: the same recipe and steps with an MLP on the coefficients (width 256)
    instead of the spherical network. Such MLPs learned next to nothing of the pixels' non-Gaussian
    part even with 1500 steps of 1024 fields (fraction above sigma_Q 0.150-0.155, the Gaussian
    counterpart's 0.158; docs/results/fields.md), so the pixel check must fail it."""
    report = _learned("lognormal", 0, architecture="mlp", width=256, depth=3)
    gap, error = report.fraction_gap
    assert gap > 4 * error + 0.1 * report.fractions["data"][0], report.lines()


def _benchmark(name):
    """A script of benchmarks/ as a module (they are scripts, not a package)."""
    return import_file(Path(__file__).parents[1] / "benchmarks" / f"{name}.py")


class _WeakenedMixtureScore:
    """A model-like exact score of bench_fields.Mixture with its non-Gaussian part scaled by k (a
    number, or one per coefficient): skip + k (score - skip), the skip being the Gaussian score of
    the mixture's per-coefficient moments. With the skip, calibration slopes read 1 / k."""

    def __init__(self, mixture, k):
        self.mixture, self.k = mixture, k
        self.metric = torch.as_tensor(mixture.q)

    def baseline(self, x, t):
        x, mixture = np.asarray(x, dtype=np.float64), self.mixture
        return torch.as_tensor(-x / (mixture.variance(t) + np.exp(-2 * t) * mixture.mu**2))

    def __call__(self, x, t):
        skip = self.baseline(x, t).numpy()
        return torch.as_tensor(skip + self.k * (self.mixture.score(np.asarray(x, dtype=np.float64), t) - skip))


def _central_gradient(log_density, x, t, step):
    """(n, m) central differences of log_density(x, t) (n,) with one step per coefficient."""
    columns = []
    for i, h in enumerate(step):
        shift = np.eye(x.shape[1])[i] * h
        columns.append((log_density(x + shift, t) - log_density(x - shift, t)) / (2 * h))
    return np.stack(columns, axis=1)


def test_degree_slopes_tell_the_one_weakened_degree():
    """benchmarks/diagnose_fields.py's per-degree slopes on the exact mixture score with the
    non-Gaussian part weakened by 0.7 at degree 8 only: degree 8 reads 1 / 0.7 = 1.43 and degrees 1
    and 4 read 1, each within 4 SE plus 2% (a slope that pooled the degrees would read about 1 at
    degree 8). Degree 0, one coefficient, has a standard error of about 0.15 at this size and is
    checked only for its shape."""
    diagnose, mixture = _benchmark("diagnose_fields"), _benchmark("bench_fields").Mixture(8)
    L, sde = 8, whittle_matern_sde(8)
    k = np.where(SphericalHarmonics(L).degrees == 8, 0.7, 1.0)

    fields = mixture.sample(2048, 0.0, np.random.default_rng(0))
    slopes, errors = diagnose.degree_slopes(sde, _WeakenedMixtureScore(mixture, k), fields, (0.5, 1.0), 300, L, degrees=(0, 1, 4, 8))
    assert slopes.shape == errors.shape == (2, 4)
    expected = np.array([1.0, 1.0, 1.0 / 0.7])
    assert np.all(np.abs(slopes[:, 1:] - expected) < 4 * errors[:, 1:] + 0.02 * expected), (slopes, errors)
    assert np.all(4 * errors[:, 3] + 0.02 / 0.7 < 1 / 0.7 - 1), errors  # degree 8 tells 1.43 from 1


@pytest.mark.parametrize("options", [{}, {"amplitudes": (0.7, 2.0), "weights": (0.8, 0.2), "shift": 1.0},
                                     {"amplitudes": (0.5, 1.0, 2.5), "weights": (0.3, 0.5, 0.2), "shift": 0.5}])
def test_the_scale_mixture_score_is_the_gradient_of_its_log_density(options):
    """benchmarks/bench_field_brightness.py's exact score against central differences of
    log p_t(x) = log sum_s p_s N(x; e^-t mu_s Y_00, v_s(t) Q) at L = 2 (nine coefficients) and several t, to
    1e-6 relative; the score with the prior's weights in place of the posterior's is off by more
    than 1%."""
    mixture = _benchmark("bench_field_brightness").ScaleMixture(2, **options)
    rng = np.random.default_rng(0)

    def log_density(x, t):
        v = mixture.s**2 * np.exp(-2 * t) + 1 - np.exp(-2 * t)
        centred = x[:, None, :] - np.exp(-t) * mixture.mu[:, None] * (np.arange(x.shape[1]) == 0)
        quadratic = (centred**2 / mixture.q).sum(-1)
        return scipy.special.logsumexp(np.log(mixture.p) - quadratic / (2 * v) - 0.5 * x.shape[-1] * np.log(v), axis=-1)

    for t in (0.05, 0.5, 2.0):
        x = mixture.sample(5, t, rng)
        numeric = _central_gradient(log_density, x, t, 1e-6 * np.sqrt(mixture.q))
        exact = mixture.score(x, t)
        scale = np.abs(numeric).max()
        assert np.abs(exact - numeric).max() < 1e-6 * scale, (t, exact, numeric)
    t = 0.05  # the wrong variant: the prior weights 1/2 in place of the posterior ones
    v = mixture.s**2 * np.exp(-2 * t) + 1 - np.exp(-2 * t)
    centred = x[:, None, :] - np.exp(-t) * mixture.mu[:, None] * (np.arange(x.shape[1]) == 0)
    unweighted = -np.einsum("s,nsm->nm", mixture.p / v, centred) / mixture.q
    assert np.abs(unweighted - mixture.score(x, t)).max() > 1e-2 * np.abs(mixture.score(x, t)).max()


@pytest.mark.parametrize("options", [{}, {"places": 200, "heights": (4.0, 10.0, 20.0), "height_weights": (0.6, 0.3, 0.1),
                                      "width": 0.35, "lattice": True}])
def test_the_blob_mixture_score_is_the_gradient_of_its_log_density(options):
    """The same for bench_field_brightness.BlobMixture (a Gaussian field plus a bump at one of 12
    random places, or at one of 200 on a lattice with bright bumps): its exact score against central
    differences of log sum_c p_c N(x; e^-t m_c, Q) at L = 2; the prior's weights in place of the
    posterior's are off by more than 1%."""
    mixture = _benchmark("bench_field_brightness").BlobMixture(2, **options)
    rng = np.random.default_rng(0)

    def log_density(x, t):
        distance = ((x[:, None, :] - np.exp(-t) * mixture.means) ** 2 / mixture.q).sum(-1)
        return scipy.special.logsumexp(np.log(mixture.p) - distance / 2, axis=-1)

    for t in (0.05, 0.5, 2.0):
        x = mixture.sample(5, t, rng)
        numeric = _central_gradient(log_density, x, t, 1e-6 * np.sqrt(mixture.q))
        assert np.abs(mixture.score(x, t) - numeric).max() < 1e-6 * np.abs(numeric).max(), t
    t = 0.05
    unweighted = -(x - np.exp(-t) * mixture.p @ mixture.means) / mixture.q
    assert np.abs(unweighted - mixture.score(x, t)).max() > 1e-2 * np.abs(mixture.score(x, t)).max()


@pytest.mark.parametrize("k", [1.0, 0.7])
def test_residual_slopes_recover_the_weakening_of_an_exact_score(k):
    """benchmarks/diagnose_fields.py section 5 on the exact score of a bimodal mixture of fields
    (bench_fields.Mixture, L = 8), its non-Gaussian part scaled by k: every slope, pooled and per
    pixel bin with enough pixels, is 1 / k within 4 SE plus 2%: the target is the Euler scheme's
    (dt = 0.01), whose O(dt) bias was measured at up to 0.5% at L = 16 (3.5% at t = 0.2 with dt =
    0.03). k = 0.7 (slope 1.43) shows the check tells a weakened score from the exact one."""
    diagnose, mixture = _benchmark("diagnose_fields"), _benchmark("bench_fields").Mixture(8)
    L, sde = 8, whittle_matern_sde(8)

    fields = mixture.sample(2048, 0.0, np.random.default_rng(0))
    slopes, errors, _ = diagnose.residual_slopes(sde, _WeakenedMixtureScore(mixture, k), fields, (0.5, 1.0), 300, L)
    assert slopes.shape == errors.shape == (2, len(diagnose.PIXEL_BINS))  # pooled, then one per bin
    enough = errors < 0.05  # the bright bins of a Gaussian-like mixture hold few pixels
    assert enough[:, :4].all(), errors
    assert np.all(np.abs(slopes - 1 / k)[enough] < (4 * errors + 0.02 / k)[enough]), (slopes, errors)

