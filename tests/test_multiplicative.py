"""State-dependent diffusion sigma(t, x): the general weight of docs/math.md.

Exact first (per path against the dense reference, and GBM's closed form), then the mathematics
(binned conditional means against the exact Lamperti-Benes score, integration by parts), then the
reverse-time samplers (KS against the exact lognormal law). Every statistical check shows that a
deliberately wrong variant (no P, no RPsi, no div D) fails.
"""
from __future__ import annotations


import numpy as np
import pytest
import sympy as sp
from scipy import stats

import symscore as ss
from conftest import emitted_module
from reference import reference_simulate, relative_error

x1, x2, x3, t = sp.symbols("x1 x2 x3 t")


def full_2d():
    """Coupled drift, full sigma(x) with every entry state-dependent or constant."""
    return ss.SDE(drift=[-x1**3 + x2, -x2 / (1 + x1**2)],
                  diffusion=sp.Matrix([[sp.sqrt(1 + x1**2), sp.Rational(1, 5)], [x1 / 3, 1 + x2**2 / 4]]),
                  state=[x1, x2], time=t, name="full2d")


def rect_3d():
    """m = 3, d = 2: rectangular sigma(x) with rational, exponential and linear entries."""
    return ss.SDE(drift=[-x1 + sp.sin(x2), -x2, -x3 * (1 + x1**2) / 2],
                  diffusion=sp.Matrix([[1 + x2**2 / 2, 0], [0, sp.exp(-x1**2 / 4) + sp.Rational(1, 2)],
                                       [x3 / 2, 1]]),
                  state=[x1, x2, x3], time=t, name="rect3d")


CASES = {
    "gbm": (lambda: ss.library.gbm(m=2, mu=0.1, s=0.4), 1.0),
    "sinh_benes": (ss.library.sinh_benes, 0.0),
    "heavy_ou": (lambda: ss.library.heavy_ou(m=2), 0.0),
    "full2d": (full_2d, 0.0),
    "rect3d": (rect_3d, 0.0),
}


def _shared_inputs(sde, offset, n=40, n_steps=50, seed=1):
    rng = np.random.default_rng(seed)
    x0 = offset + 0.5 * rng.normal(size=(n, sde.m))
    dW = rng.normal(size=(n, n_steps, sde.d)) * np.sqrt(sde.T / n_steps)
    return x0, dW


# numba compiles twice per case (about 10 s each): one numba case in make test, four in test-slow
@pytest.mark.parametrize("name, backend", [
    *[(name, "torch") for name in sorted(CASES)],
    *[pytest.param(name, "numba", marks=() if name == "full2d" else pytest.mark.slow) for name in sorted(CASES)]])
def test_kernels_match_the_reference_per_path(name, backend):
    factory, offset = CASES[name]
    sde = factory()
    assert sde.derive().state_dependent_diffusion and sde.derive().diffusion_structure == "state-dependent"
    x0, dW = _shared_inputs(sde, offset)
    ref_x, ref_target = reference_simulate(sde, x0, [0.5, 1.0], 50, dW)
    for coupled in (False, True):
        paths = ss.compile(sde, backend=backend, variant=ss.Variant(force_coupled=coupled)).simulate(
            x0, [0.5, 1.0], 50, dW=dW, **({"as_numpy": True} if backend == "torch" else {}))
        assert relative_error(paths.x, ref_x) < 1e-12
        assert relative_error(paths.target, ref_target) < 1e-10, (name, backend, coupled)


@pytest.mark.parametrize("wrong", [{"drop": ("P",)}, {"drop": ("RPsi",)}, {"negate": ("R",)}])
def test_the_wrong_variants_match_their_reference_and_differ_from_the_full_weight(wrong):
    sde = full_2d()
    x0, dW = _shared_inputs(sde, 0.0)
    _, full = reference_simulate(sde, x0, [0.5, 1.0], 50, dW)
    _, wrong_target = reference_simulate(sde, x0, [0.5, 1.0], 50, dW, **wrong)
    paths = ss.compile(sde, backend="torch", variant=ss.Variant(**wrong)).simulate(x0, [0.5, 1.0], 50, dW=dW, as_numpy=True)
    assert relative_error(paths.target, wrong_target) < 1e-10
    assert relative_error(paths.target, full) > 0.1


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=pytest.mark.slow), "torch"])
def test_emitted_modules_match_the_reference(tmp_path, backend):
    sde = rect_3d()
    x0, dW = _shared_inputs(sde, 0.0)
    _, ref_target = reference_simulate(sde, x0, [0.5, 1.0], 50, dW)
    module = emitted_module(sde, tmp_path / f"rect3d_{backend}.py", backend)
    _, _, target = module.simulate(x0, [0.5, 1.0], 50, dW=dW)
    assert relative_error(np.asarray(target), ref_target) < 1e-10


def test_a_state_independent_sde_carries_no_diffusion_terms():
    """sigma(t) keeps the additive recursion: no G, Hs, K or P in the generated code."""
    source = ss.emit(ss.library.benes(m=2))
    assert "G_0" not in source and "P_0" not in source and "K_0" not in source
    assert not ss.library.benes(m=2).derive().state_dependent_diffusion


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_gbm_target_is_the_lognormal_score_per_path_at_first_order(backend):
    """-(s t + B_t) / (s t X_t) at two record times of one pass; the error halves with dt."""
    mu, s, n = 0.1, 0.4, 2000
    sde = ss.library.gbm(m=1, mu=mu, s=s)
    kernel = ss.compile(sde, backend=backend)
    errors = []
    for n_steps in (200, 400, 800):
        dW = np.random.default_rng(0).normal(size=(n, n_steps, 1)) * np.sqrt(1.0 / n_steps)
        paths = kernel.simulate(np.ones((n, 1)), [0.5, 1.0], n_steps, dW=dW,
                                **({"as_numpy": True} if backend == "torch" else {}))
        brownian = np.cumsum(dW[:, :, 0], axis=1)
        row = []
        for r, t_r in enumerate((0.5, 1.0)):
            b_t = brownian[:, int(round(t_r * n_steps)) - 1]
            exact = -(s * t_r + b_t) / (s * t_r * paths.x[:, r, 0])
            row.append(np.abs(paths.target[:, r, 0] - exact).mean())
        errors.append(row)
    errors = np.array(errors)
    assert np.all(errors[-1] < 1e-3), errors
    ratios = errors[:-1] / errors[1:]
    assert np.all((ratios > 1.6) & (ratios < 2.6)), ratios  # first order in dt


def _binned_bias(paths, r, t_r, x0):
    x, target = paths.x[:, r, 0], paths.target[:, r, 0]
    edges = np.quantile(x, np.linspace(0.02, 0.98, 21))  # 20 bins of about 4.8% of the paths
    which = np.digitize(x, edges) - 1
    rows = []
    for b in range(20):
        sel = which == b
        residual = target[sel] - ss.library.sinh_benes_score(x[sel, None], t_r, [x0])[:, 0]
        rows.append((abs(residual.mean()), residual.std(ddof=1) / np.sqrt(sel.sum())))
    return np.array(rows)


@pytest.mark.slow  # 200 000 paths x 400 steps; the integration-by-parts test below checks sigma(x) in make test
def test_lamperti_benes_binned_means_match_the_exact_score_and_the_wrong_weights_do_not():
    """20 bins per record time; tolerance 4 SE + an Euler-bias allowance (largest binned bias measured at 200, 400, 800 steps: 0.013)."""
    sde, x0, n, bias = ss.library.sinh_benes(), 0.3, 200_000, 0.02
    for drop in ((), ("P",), ("RPsi",)):
        paths = ss.compile(sde, variant=ss.Variant(drop=drop)).simulate(np.full((n, 1), x0), [0.5, 1.0], 400, seed=3)
        for r, t_r in enumerate((0.5, 1.0)):
            rows = _binned_bias(paths, r, t_r, x0)
            excess = rows[:, 0] - (4 * rows[:, 1] + bias)
            if not drop:
                assert np.all(excess <= 0), (t_r, rows)
            else:
                assert excess.max() > bias, (drop, t_r, rows)  # beyond 4 SE + twice the bias allowance


def gauss_bump(x):
    c = 0.3 * np.arange(1, x.shape[1] + 1)
    value = np.exp(-0.5 * np.sum((x - c) ** 2, axis=1))
    return value, -(x - c) * value[:, None]


@pytest.mark.parametrize("factory, n_paths", [(full_2d, 100_000), pytest.param(rect_3d, 60_000, marks=pytest.mark.slow)])
def test_integration_by_parts_with_state_dependent_sigma(factory, n_paths):
    sde = factory()
    x0 = np.random.default_rng(3).normal(scale=0.5, size=(n_paths, sde.m))
    for drop in ((), ("RPsi",)):
        paths = ss.compile(sde, variant=ss.Variant(drop=drop)).simulate(x0, [0.4, 0.8], 320, seed=7)
        worst = 0.0
        for r in range(2):
            value, grad = gauss_bump(paths.x[:, r])
            residual = grad + value[:, None] * paths.target[:, r]
            mean, se = residual.mean(axis=0), residual.std(axis=0, ddof=1) / np.sqrt(n_paths)
            worst = max(worst, float(np.max(np.abs(mean) / se)))
            assert np.any(np.abs(grad.mean(axis=0)) > 3 * se)  # informative: grad phi is resolved
        if not drop:
            assert worst <= 4, worst
        else:
            assert worst > 10, worst


def _gbm_draws(method, monkeypatch=None, **options):
    mu, s, x0, t_end = 0.0, 0.5, 1.0, 0.5
    sde = ss.library.gbm(m=1, mu=mu, s=s)
    rng = np.random.default_rng(0)
    prior = x0 * np.exp((mu - s**2 / 2) + s * rng.standard_normal((200_000, 1)))  # the exact law at T = 1
    draws = ss.sample(sde, lambda y, t_: ss.library.gbm_score(y, t_, [x0], mu, s), 4000, n_steps=400,
                      method=method, prior=prior, t_end=t_end, seed=1, **options)
    law = stats.lognorm(s=s * np.sqrt(t_end), scale=x0 * np.exp((mu - s**2 / 2) * t_end))
    return stats.kstest(draws[:, 0], law.cdf).statistic, 1.63 / np.sqrt(len(draws))  # 1% critical value


@pytest.mark.parametrize("method, options", [("sde", {}), ("ode", {}), ("pc", {"snr": 0.05})])
def test_samplers_recover_the_lognormal_law_with_the_exact_score(method, options):
    statistic, critical = _gbm_draws(method, **options)
    assert statistic < critical, (method, statistic, critical)


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_samplers_without_the_divergence_of_d_fail(method, monkeypatch):
    from symscore.learn.numeric_sde import NumericSDE

    monkeypatch.setattr(NumericSDE, "diffusion_divergence", lambda self, t_, x: np.zeros_like(x))
    statistic, critical = _gbm_draws(method)
    assert statistic > 3 * critical, (method, statistic)


def test_log_likelihood_of_gbm_matches_the_lognormal_density():
    mu, s, x0, t_end = 0.0, 0.5, 1.0, 0.5
    sde = ss.library.gbm(m=1, mu=mu, s=s)
    prior = x0 * np.exp((mu - s**2 / 2) + s * np.random.default_rng(0).standard_normal((10, 1)))
    law_T = stats.lognorm(s=s, scale=x0 * np.exp(mu - s**2 / 2))

    class LogNormalPrior(ss.Prior):
        has_density = True
        kind = "lognormal"

        def sample(self, n, rng):
            return prior[:n]

        def log_density(self, x):
            return law_T.logpdf(x[:, 0])

    y = np.array([[0.6], [0.9], [1.3], [2.0]])
    score = lambda z, t_: ss.library.gbm_score(z, t_, [x0], mu, s)  # noqa: E731
    got = ss.log_likelihood(sde, score, y, prior=LogNormalPrior(), t_end=t_end)
    expected = stats.lognorm(s=s * np.sqrt(t_end), scale=x0 * np.exp((mu - s**2 / 2) * t_end)).logpdf(y[:, 0])
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_targets_priors_and_specs_for_state_dependent_sigma(tmp_path):
    sde = ss.library.heavy_ou(m=1)
    with pytest.raises(ss.SymscoreError, match="'dsm' needs a linear SDE with sigma\\(t\\).*depends on the state"):
        ss.train(sde, np.zeros((50, 1)), steps=1, target="dsm", progress=False)
    data = np.random.default_rng(0).normal(size=(200, 1))
    for target in ("local", "ssm", "malliavin"):
        model = ss.train(sde, data, steps=3, batch_size=16, target=target, pilot_size=32, width=16, depth=1,
                         progress=False)
        assert np.isfinite(model.loss_history).all()
    assert ss.make_prior(sde, endpoints=data).kind == "empirical"  # neither Gaussian nor stationary
    (tmp_path / "mult.toml").write_text('name = "mult"\nstate = ["x"]\ndrift = ["-x"]\ndiffusion = "sqrt(1 + x**2)"\n')
    loaded = ss.load_spec(str(tmp_path / "mult.toml"))
    assert loaded.derive().state_dependent_diffusion
    assert "sqrt(1 + x**2)" in ss.to_toml(loaded) or "sqrt(x**2 + 1)" in ss.to_toml(loaded)


def test_the_derivation_writes_out_the_ito_steps_for_the_users_sigma():
    der = ss.library.sinh_benes().derive()
    titles = [title for title, _ in der.steps]
    for title in ("Derivatives of the diffusion", "First variation (Ito)", "Second variation (Ito)",
                  "Running integrals of a state-dependent diffusion"):
        assert title in titles
    markdown = der.to_markdown()
    assert r"\frac{x_{1}}{\sqrt{x_{1}^{2} + 1}}" in markdown  # G_1 of the user's sigma = sqrt(1 + x1^2)
    assert r"R\Psi_t" in markdown and "P_t[i; j, b]" in markdown and "\r" not in markdown
    assert der.to_latex().startswith("\\documentclass")


def test_a_diagonal_sigma_with_a_separable_drift_stays_one_dimensional_per_lane():
    from symscore.compiler.ir import build_ir

    derivation = ss.library.heavy_ou(m=4).derive()
    assert derivation.structure == "separable"
    assert [(block.width, len(block.lanes)) for block in build_ir(derivation).blocks] == [(1, 4)]


def test_a_path_where_sigma_vanishes_is_reported_like_any_failure():
    kernel = ss.compile(ss.library.gbm())  # sigma = s x: the path from x0 = 0 stays at 0 with C_t = 0
    with pytest.raises(ss.SingularMalliavinMatrixError, match="1 of 3 paths failed"):
        kernel.simulate(np.array([[1.0], [0.0], [2.0]]), [0.5, 1.0], 10)
    with pytest.warns(RuntimeWarning, match="dropped 1 of 3 paths"):
        paths = kernel.simulate(np.array([[1.0], [0.0], [2.0]]), [0.5, 1.0], 10, on_failure="drop")
    assert paths.target.shape == (2, 2, 1) and np.isfinite(paths.target).all()
