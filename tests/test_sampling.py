"""Samplers, priors and the likelihood, checked with exact scores (no training involved)."""
import numpy as np
import pytest
from scipy import stats

import symscore as ss
from symscore.learn.linear_moments import LinearMoments
from symscore.learn.numeric_sde import NumericSDE
from symscore.learn.measurements import PriorData

MEAN0 = np.array([1.0, -0.5])
COV0 = np.array([[0.5, 0.2], [0.2, 0.3]])


def vp_moments(t, beta_min=0.1, beta_max=20.0):
    """Closed-form VP transition: Phi = exp(-B/2) I, Sigma = (1 - exp(-B)) I, B = int_0^t beta."""
    integral = beta_min * t + (beta_max - beta_min) * t**2 / 2
    return np.exp(-integral / 2), 1 - np.exp(-integral)


def vp_gaussian_score(x, t):
    phi, var = vp_moments(t)
    cov = phi**2 * COV0 + var * np.eye(2)
    return -np.linalg.solve(cov, (x - phi * MEAN0).T).T


def assert_data_moments(x, allowance):
    """Mean and covariance of samples x of p_{1e-3} (VP from the Gaussian data) within 4 standard
    errors (mean: sqrt(var/n); covariance entry: sqrt((S_ii S_jj + S_ij^2)/n)) plus ``allowance``."""
    n, target_cov = x.shape[0], COV0 + vp_moments(1e-3)[1] * np.eye(2)
    se_mean = np.sqrt(np.diag(target_cov) / n)
    se_cov = np.sqrt((np.outer(np.diag(target_cov), np.diag(target_cov)) + target_cov**2) / n)
    assert np.all(np.abs(x.mean(axis=0) - MEAN0) < 4 * se_mean + allowance)
    assert np.all(np.abs(np.cov(x.T) - target_cov) < 4 * se_cov + allowance)


def test_linear_moments_match_closed_form():
    phi, offset, cov = LinearMoments(ss.library.vp())([0.3, 1.0])
    for k, t in enumerate([0.3, 1.0]):
        p, v = vp_moments(t)
        np.testing.assert_allclose(phi[k], p * np.eye(2), rtol=1e-9)
        np.testing.assert_allclose(cov[k], v * np.eye(2), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(offset[k], 0, atol=1e-12)


def test_linear_moments_of_a_time_invariant_sde_by_the_exponential_match_rk4():
    """Constant B, c, sigma (a coupled 2-D OU with an offset and correlated noise): the matrix
    exponential (Van Loan) route equals the RK4 route, which a time-dependent SDE takes."""
    import sympy as sp
    x, y, t = sp.symbols("x y t")
    sde = ss.SDE([-x + 0.5 * y + 0.3, -0.2 * x - 2 * y - 1.0], sp.Matrix([[1.0, 0.0], [0.4, 0.7]]), [x, y], t,
                 T=1.5, name="coupled-ou")
    numeric = NumericSDE(sde)
    assert numeric.time_invariant and not NumericSDE(ss.library.vp()).time_invariant
    times = [0.0, 0.2, 0.9, 1.5]
    exact = LinearMoments(numeric)(times)
    numeric.time_invariant = False
    stepped = LinearMoments(numeric)(times)
    for a, b in zip(exact, stepped):
        np.testing.assert_allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("method, n_steps, allowance", [("sde", 400, 0.03), ("ode", 100, 0.005), ("pc", 400, 0.03)])
def test_exact_vp_score_recovers_data_moments(method, n_steps, allowance):
    """Gaussian data: p_T is Gaussian and the prior is exact, so samples must have the data's moments.

    Tolerance: 4 standard errors (mean: sqrt(var/n); covariance entry: sqrt((S_ii S_jj + S_ij^2)/n)) plus an
    allowance for the time discretisation (Euler-Maruyama at 400 steps: measured about 0.015).
    """
    n = 20_000
    data = np.random.default_rng(0).multivariate_normal(MEAN0, COV0, size=2000)
    x = ss.sample(ss.library.vp(), vp_gaussian_score, n, n_steps, method=method, seed=1, data=data, t_end=1e-3,
                  prior=ss.GaussianPrior(MEAN0 * vp_moments(1.0)[0], vp_moments(1.0)[0] ** 2 * COV0 +
                                         vp_moments(1.0)[1] * np.eye(2)))
    assert_data_moments(x, allowance)


def test_adaptive_ode_and_auto_prior_from_data():
    """The adaptive RK45 option, with the Gaussian prior built from the data moments (prior='auto')."""
    data = np.random.default_rng(0).multivariate_normal(MEAN0, COV0, size=50_000)
    x = ss.sample(ss.library.vp(), vp_gaussian_score, 5000, 50, method="ode", adaptive=True, data=data, t_end=1e-3)
    assert np.all(np.abs(x.mean(axis=0) - MEAN0) < 4 * np.sqrt(np.diag(COV0) / 5000) + 0.01)
    assert np.all(np.abs(np.cov(x.T) - COV0) < 0.04)


def benes_mixture_moments(t, mean, std, theta):
    """Mean and covariance of p_t for the Benes mixture family (library.benes_mixture_sample)."""
    m = len(mean)
    a = np.full(m, theta / np.sqrt(m))
    v = std**2 + t
    bias = np.tanh(a @ mean)  # w+ - w-
    return mean + v * a * bias, v * np.eye(m) + v**2 * np.outer(a, a) * (1 - bias**2)


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_exact_benes_score_recovers_initial_law(method):
    """Coupled nonlinear SDE (2-D Benes): from exact X_T samples and the exact score, the samples at
    t_end = 1e-3 have the known bimodal law: mean, covariance and the weight of the + mode."""
    theta, mean, std, n = 1.5, np.array([0.3, -0.1]), 0.5, 20_000
    sde = ss.library.benes(m=2, theta=theta)
    prior_points = ss.library.benes_mixture_sample(200_000, 1.0, mean, std, theta, seed=3)
    x = ss.sample(sde, lambda y, t: ss.library.benes_mixture_score(y, t, mean, std, theta), n, 400, method=method,
                  seed=4, prior=prior_points, t_end=1e-3)
    want_mean, want_cov = benes_mixture_moments(1e-3, mean, std, theta)
    se_mean = np.sqrt(np.diag(want_cov) / n)
    assert np.all(np.abs(x.mean(axis=0) - want_mean) < 4 * se_mean + 0.02)
    assert np.all(np.abs(np.cov(x.T) - want_cov) < 4 * np.sqrt(2 * np.max(want_cov) ** 2 / n) + 0.05)
    # P(a.X > 0) under the mixture of N(mean +- v a, v I) with weights w+- = e^(+-a.mean) / (2 cosh(a.mean))
    a, v = np.full(2, theta / np.sqrt(2)), std**2 + 1e-3
    w_plus = 1 / (1 + np.exp(-2 * a @ mean))
    spread = np.sqrt(v) * np.linalg.norm(a)
    p_plus = (w_plus * stats.norm.cdf((a @ mean + v * a @ a) / spread)
              + (1 - w_plus) * stats.norm.cdf((a @ mean - v * a @ a) / spread))
    assert abs(np.mean(x @ a > 0) - p_plus) < 4 * np.sqrt(p_plus * (1 - p_plus) / n) + 0.01


def _benes_law_holds(x, t_end, mean, std, theta):
    """Mean and covariance of samples x against the Benes mixture's p_{t_end} (4 SE plus slack)."""
    n = len(x)
    want_mean, want_cov = benes_mixture_moments(t_end, mean, std, theta)
    return bool(np.all(np.abs(x.mean(axis=0) - want_mean) < 4 * np.sqrt(np.diag(want_cov) / n) + 0.02)
                and np.all(np.abs(np.cov(x.T) - want_cov) < 4 * np.sqrt(2 * np.max(want_cov) ** 2 / n) + 0.05))


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_start_mid_path_from_exact_states(method):
    """sample(start=, t_start=): from exact X_0.5 states of the 2-D Benes mixture and the exact score,
    the samples at t_end = 1e-3 have the known law. States of X_1 declared as X_0.5 fail the same
    check, so it tells the start time apart."""
    theta, mean, std, n = 1.5, np.array([0.3, -0.1]), 0.5, 20_000
    sde = ss.library.benes(m=2, theta=theta)
    score = lambda y, t: ss.library.benes_mixture_score(y, t, mean, std, theta)  # noqa: E731
    for t_states, should_pass in ((0.5, True), (1.0, False)):
        states = ss.library.benes_mixture_sample(n, t_states, mean, std, theta, seed=3)
        x = ss.sample(sde, score, n, 200, method=method, seed=4, start=states, t_start=0.5, t_end=1e-3)
        assert _benes_law_holds(x, 1e-3, mean, std, theta) == should_pass


def test_start_at_t_is_the_prior_draw_given():
    """The probability-flow ODE from start= states at T equals the run that drew them from the prior."""
    sde, prior = ss.library.vp(), ss.GaussianPrior(np.zeros(2), np.eye(2))
    x_T = prior.sample(300, np.random.default_rng(5))
    drawn = ss.sample(sde, vp_gaussian_score, 300, 40, method="ode", seed=5, prior=prior, t_end=1e-3)
    given = ss.sample(sde, vp_gaussian_score, 300, 40, method="ode", start=x_T, t_end=1e-3)
    np.testing.assert_array_equal(drawn, given)


def test_start_bad_input():
    sde, states = ss.library.vp(), np.zeros((10, 2))
    for bad in (1e-3, 0.0, 1.5, True, "0.5"):  # t_end = 1e-3 < t_start <= T = 1
        with pytest.raises(ss.SymscoreError, match="t_start"):
            ss.sample(sde, vp_gaussian_score, 10, 10, start=states, t_start=bad, t_end=1e-3)
    with pytest.raises(ss.SymscoreError, match="t_start: .*needs start="):
        ss.sample(sde, vp_gaussian_score, 10, 10, t_start=0.5)
    with pytest.raises(ss.SymscoreError, match="start: expected n = 10 rows"):
        ss.sample(sde, vp_gaussian_score, 10, 10, start=np.zeros((9, 2)), t_start=0.5)
    with pytest.raises(ss.SymscoreError, match="start: the SDE has dimension m = 2"):
        ss.sample(sde, vp_gaussian_score, 10, 10, start=np.zeros((10, 3)), t_start=0.5)
    with pytest.raises(ss.SymscoreError, match="start: 1 row"):
        ss.sample(sde, vp_gaussian_score, 10, 10, start=np.where(np.arange(20).reshape(10, 2) == 5, np.nan, 0.0),
                  t_start=0.5)


def ou_score(x, t, theta=1.0, s=np.sqrt(2.0)):
    phi, var = np.exp(-theta * t), s**2 / (2 * theta) * (1 - np.exp(-2 * theta * t))
    cov = phi**2 * COV0 + var * np.eye(2)
    return -np.linalg.solve(cov, (x - phi * MEAN0).T).T


def test_log_likelihood_of_gaussian_data_under_ou_matches_closed_form():
    sde = ss.library.ou(m=2)
    x = np.random.default_rng(1).multivariate_normal(MEAN0, COV0, size=40)
    phi, var = np.exp(-1.0), 1 - np.exp(-2.0)
    prior = ss.GaussianPrior(phi * MEAN0, phi**2 * COV0 + var * np.eye(2))
    got = ss.log_likelihood(sde, ou_score, x, prior=prior, t_end=0.0)
    np.testing.assert_allclose(got, stats.multivariate_normal(MEAN0, COV0).logpdf(x), atol=1e-4)
    # Hutchinson's estimator is unbiased: with many probes it is close to the exact divergence
    rough = ss.log_likelihood(sde, ou_score, x[:10], prior=prior, t_end=0.0, exact_divergence=False, n_probes=64)
    assert np.abs(rough - got[:10]).mean() < 0.15


def test_stationary_priors():
    rng = np.random.default_rng(0)
    cubic = ss.make_prior(ss.library.cubic(m=1))
    assert cubic.kind == "stationary"
    x = cubic.sample(200_000, rng)
    # density exp(-x^4 / 2): E x^2 = sqrt(2) Gamma(3/4) / Gamma(1/4)
    from math import gamma, sqrt
    assert abs(np.mean(x**2) - sqrt(2) * gamma(0.75) / gamma(0.25)) < 0.005
    grid = np.linspace(-3, 3, 601)[:, None]
    np.testing.assert_allclose(np.trapezoid(np.exp(cubic.log_density(grid)), grid[:, 0]), 1.0, atol=1e-4)
    cauchy = ss.make_prior(ss.library.cauchy(m=2))
    assert "Student t(df=1" in repr(cauchy)
    y = cauchy.sample(100_000, rng)
    assert abs(np.median(np.abs(y[:, 0])) - 1.0) < 0.02  # |Cauchy(0, 1)| has median 1
    assert ss.make_prior(ss.library.vp()).kind == "gaussian"
    with pytest.raises(ss.SymscoreError, match="empirical prior"):
        ss.make_prior(ss.library.benes(m=2))


def test_auto_takes_the_stationary_law_only_where_the_endpoints_do_not_reject_it():
    """The cauchy SDE has not mixed at T = 1 from checkerboard data: its forward endpoints' body is
    Cauchy-like but they lie within |x| < 13, where the Cauchy law puts 1% beyond 60 (none of the
    expected 20 endpoints lie beyond its 1% quantiles): ``auto`` falls through to the endpoints.
    Endpoints drawn from the stationary law itself keep it; ``"stationary"`` asked for is kept."""
    from symscore.learn.priors import unmixed_coordinates
    from symscore.learn.samplers import forward_endpoints

    sde = ss.library.cauchy(m=2)
    endpoints = forward_endpoints(sde, ss.data.checkerboard(2048, seed=0), n_steps=250)
    prior = ss.make_prior(sde, endpoints=endpoints)
    assert prior.kind == "empirical"
    stationary = ss.make_prior(sde, "stationary", endpoints=endpoints)
    rejected = unmixed_coordinates(stationary, endpoints)
    assert [i for i, _, _ in rejected] == [0, 1] and all("0 endpoints beyond" in what for _, what, _ in rejected)
    mixed = stationary.sample(2048, np.random.default_rng(5))
    assert ss.make_prior(sde, endpoints=mixed).kind == "stationary" and not unmixed_coordinates(stationary, mixed)
    assert ss.make_prior(sde).kind == "stationary"  # nothing to test against


def test_empirical_prior_from_data_for_coupled_sde():
    sde = ss.library.benes(m=2)
    from symscore.learn.samplers import resolve_prior

    prior = resolve_prior(sde, None, "auto", data=np.zeros((100, 2)))
    assert prior.kind == "empirical" and prior.points.shape == (100, 2)
    with pytest.raises(ss.SymscoreError, match="needs a prior with a density"):
        ss.log_likelihood(sde, lambda x, t: -x, np.zeros((3, 2)), data=np.zeros((100, 2)))


def test_sampler_bad_input():
    sde = ss.library.vp()
    with pytest.raises(ss.SymscoreError, match="method"):
        ss.sample(sde, vp_gaussian_score, 10, 10, method="euler")
    with pytest.raises(ss.SymscoreError, match="t_end"):
        ss.sample(sde, vp_gaussian_score, 10, 10, t_end=1.0)
    with pytest.raises(ss.SymscoreError, match="score"):
        ss.sample(sde, "not callable", 10, 10)
    with pytest.raises(ss.SymscoreError, match="shape"):
        ss.sample(sde, lambda x, t: x[:, :1], 10, 10)
    with pytest.raises(ss.NonFiniteSimulationError, match="NaN"):
        ss.sample(sde, lambda x, t: x * np.nan, 10, 10)
    with pytest.raises(ss.SymscoreError, match="n:"):
        ss.sample(sde, vp_gaussian_score, 0, 10)
    with pytest.raises(ss.SymscoreError, match="prior"):
        ss.sample(sde, vp_gaussian_score, 10, 10, prior="uniform")


# -- device-resident sampling (torch; on the CPU here, the same code on a GPU) ----------------------
import torch  # noqa: E402


def vp_gaussian_score_torch(x, t):
    phi, var = vp_moments(t)
    cov = torch.as_tensor(phi**2 * COV0 + var * np.eye(2), dtype=x.dtype)
    return -torch.linalg.solve(cov, (x - phi * torch.as_tensor(MEAN0, dtype=x.dtype)).T).T


def _vp_prior():
    phi, var = vp_moments(1.0)
    return ss.GaussianPrior(MEAN0 * phi, phi**2 * COV0 + var * np.eye(2))


@pytest.mark.parametrize("method, n_steps, allowance", [("sde", 400, 0.03), ("pc", 400, 0.03)])
def test_device_samplers_recover_data_moments(method, n_steps, allowance):
    """The torch path (device='cpu', float64, torch.Generator noise) passes the host test's check."""
    n = 20_000
    x = ss.sample(ss.library.vp(), vp_gaussian_score_torch, n, n_steps, method=method, seed=1, t_end=1e-3,
                  prior=_vp_prior(), device="cpu")
    assert isinstance(x, np.ndarray) and x.dtype == np.float64
    assert_data_moments(x, allowance)


def test_device_ode_and_likelihood_equal_the_host_ones():
    """The probability-flow ODE (RK4) and the likelihood are deterministic given the prior draw: the
    torch path and the numpy path agree to rounding, for an exact score and for a ScoreModel (jvp)."""
    sde = ss.library.vp()
    host = ss.sample(sde, vp_gaussian_score, 500, 60, method="ode", seed=4, t_end=1e-3, prior=_vp_prior())
    device = ss.sample(sde, vp_gaussian_score_torch, 500, 60, method="ode", seed=4, t_end=1e-3, prior=_vp_prior(),
                       device="cpu")
    np.testing.assert_allclose(device, host, rtol=1e-10, atol=1e-12)
    model = ss.ScoreModel(2, width=16, depth=2, T=1.0, t_min=1e-3)
    x = np.random.default_rng(2).normal(size=(30, 2))
    for heavy in (False, True):  # heavy: Hutchinson probes instead of the exact divergence
        options = dict(prior=_vp_prior(), t_end=1e-2, adaptive=False, n_steps=40, exact_divergence=not heavy,
                       n_probes=4)
        host = ss.log_likelihood(sde, model, x, **options)
        on_device = ss.log_likelihood(sde, model, x, device="cpu", **options)
        np.testing.assert_allclose(on_device, host, rtol=1e-5, atol=1e-5)
    host = ss.sample(sde, model, 200, 30, method="ode", seed=3, prior=_vp_prior())
    np.testing.assert_allclose(ss.sample(sde, model, 200, 30, method="ode", seed=3, prior=_vp_prior(), device="cpu"),
                               host, rtol=1e-5, atol=1e-5)


def test_device_adaptive_ode_and_likelihood():
    """adaptive=True on a device: torchdiffeq's dopri5 against scipy's RK45 on the host (both to their
    tolerance), and the OU likelihood against its closed form."""
    sde = ss.library.vp()
    options = dict(method="ode", adaptive=True, seed=4, t_end=1e-3, prior=_vp_prior(), rtol=1e-7, atol=1e-7)
    host = ss.sample(sde, vp_gaussian_score, 400, 10, **options)
    on_device = ss.sample(sde, vp_gaussian_score_torch, 400, 10, device="cpu", **options)
    np.testing.assert_allclose(on_device, host, rtol=1e-4, atol=1e-4)
    ou = ss.library.ou(m=2)
    x = np.random.default_rng(1).multivariate_normal(MEAN0, COV0, size=40)
    phi, var = np.exp(-1.0), 1 - np.exp(-2.0)
    prior = ss.GaussianPrior(phi * MEAN0, phi**2 * COV0 + var * np.eye(2))

    def ou_score_torch(y, t):
        p, v = np.exp(-t), 1 - np.exp(-2 * t)
        cov = torch.as_tensor(p**2 * COV0 + v * np.eye(2), dtype=y.dtype)
        return -torch.linalg.solve(cov, (y - p * torch.as_tensor(MEAN0, dtype=y.dtype)).T).T

    got = ss.log_likelihood(ou, ou_score_torch, x, prior=prior, t_end=0.0, device="cpu")
    np.testing.assert_allclose(got, stats.multivariate_normal(MEAN0, COV0).logpdf(x), atol=1e-4)


def test_device_sampling_with_state_dependent_sigma():
    """GBM (sigma(x) = s x, so div D enters the reverse drift): the torch path's draws at t = 0.5
    from the exact law at T = 1 pass the KS test against the exact lognormal law at t = 0.5."""
    sde, x0 = ss.library.gbm(m=1), 1.0
    s = 0.5

    def score(y, t):
        return -(1 + (torch.log(y / x0) + s**2 * t / 2) / (s**2 * t)) / y

    prior = np.exp(np.random.default_rng(5).normal(-s**2 / 2, s, size=(4000, 1)))
    draws = ss.sample(sde, score, 4000, 400, method="sde", t_end=0.5, prior=prior, seed=2, device="cpu")
    exact = stats.lognorm(s=s * np.sqrt(0.5), scale=np.exp(-s**2 * 0.5 / 2))
    assert stats.kstest(draws[:, 0], exact.cdf).statistic < 0.026  # the 1% critical value for 4000 draws


def test_device_bad_input():
    sde = ss.library.vp()
    with pytest.raises(ss.SymscoreError, match="device: expected 'cpu', 'cuda' or a torch.device"):
        ss.sample(sde, vp_gaussian_score_torch, 10, 10, prior=_vp_prior(), device="tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(ss.SymscoreError, match="device: cuda was requested but torch.cuda.is_available"):
            ss.sample(sde, vp_gaussian_score_torch, 10, 10, prior=_vp_prior(), device="cuda")
    with pytest.raises(ss.SymscoreError, match="score: with a device, score.x, t. gets a tensor and must return one"):
        ss.sample(sde, lambda x, t: np.zeros((10, 2)), 10, 10, prior=_vp_prior(), device="cpu")
    with pytest.raises(ss.NonFiniteSimulationError, match="score: returned NaN"):
        ss.sample(sde, lambda x, t: x * float("nan"), 10, 10, prior=_vp_prior(), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_a_model_on_a_gpu_samples_there():
    model = ss.ScoreModel(2, width=16, depth=2, T=1.0, t_min=1e-3).to("cuda")
    x = ss.sample(ss.library.vp(), model, 1000, 50, method="sde", prior=_vp_prior())
    assert x.shape == (1000, 2) and np.isfinite(x).all()


def test_a_models_prior_is_resolved_once_per_statistics(monkeypatch):
    """sample() on a model resolves its auto prior (and its mixing test) once, not on every call;
    new endpoints on the model resolve it again."""
    import symscore.learn.samplers as samplers
    from symscore.learn.samplers import resolve_prior

    sde = ss.library.cauchy(m=2)
    rng = np.random.default_rng(0)
    model = ss.ScoreModel(2, prior_data=PriorData(np.zeros(2), np.eye(2), rng.standard_cauchy((512, 2))))
    calls = []
    real = samplers.make_prior
    monkeypatch.setattr(samplers, "make_prior", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = resolve_prior(sde, model)
    assert resolve_prior(sde, model) is first and len(calls) == 1
    model = ss.ScoreModel(2, prior_data=PriorData(np.zeros(2), np.eye(2), rng.standard_cauchy((512, 2)) + 5.0))
    assert resolve_prior(sde, model) is not first and len(calls) == 2
