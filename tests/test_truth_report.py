"""score_error and target_bias against closed forms: exact scores give 0, known perturbations give
their computed error, the standard errors are honest, unbiased targets pass and biased ones fail.

Monte Carlo tolerances are in standard errors (z-scores) of the reports themselves, whose
honesty is tested separately (the spread of e(t) over seeds against its reported standard error;
chi2/dof near 1 for unbiased targets)."""
import json
import math

import numpy as np
import pytest
from scipy import stats

import symscore as ss
from symscore._errors import SymscoreError
from symscore.learn.targets import MalliavinSource, TargetSource
from symscore.spec.library import benes_mixture_sample, benes_mixture_score
from symscore.truth import (GaussianMixture, ScoreErrorReport, Solution, TargetBiasReport, score_error, solve,
                            target_bias)

# OU with theta = 1, sigma = sqrt(2): X_t = e^-t X_0 + N(0, (1 - e^-2t) I) (stationary law N(0, I))
MU0, S0 = np.array([0.8, -0.4]), np.array([[0.5, 0.1], [0.1, 0.3]])
BIMODAL = GaussianMixture([0.4, 0.6], [[-1.5], [1.2]], [[[0.2]], [[0.3]]])


def ou_moments(t):
    """(mean, covariance) of p_t for OU from N(MU0, S0), written out independently of the library."""
    decay = math.exp(-t)
    return decay * MU0, decay**2 * S0 + (1 - decay**2) * np.eye(2)


def ou_score(x, t):
    mean, cov = ou_moments(t)
    return -np.linalg.solve(cov, (x - mean).T).T


@pytest.fixture(scope="module")
def ou2():
    return ss.library.ou(m=2)


@pytest.fixture(scope="module")
def gaussian():
    return GaussianMixture([1.0], [MU0], [S0])


# -- score_error ---------------------------------------------------------------------------------------------
def test_the_exact_score_has_zero_error(ou2, gaussian):
    report = score_error(ou_score, ou2, gaussian, [0.0, 0.3, 1.0], n=4000)
    # the independent closed form and the library's mixture agree to rounding
    assert isinstance(report, ScoreErrorReport) and np.all(report.error < 1e-10)
    assert np.all(report.truth_error == 0) and report.truth_kind == "closed form"


def test_a_perturbed_score_has_its_computed_error(ou2, gaussian):
    """s = s* + c x on p_t = N(mu, S): E|c x|^2 = c^2 (|mu|^2 + tr S), E|s*|^2 = tr S^-1, so
    e = |c| sqrt((|mu|^2 + tr S) / tr S^-1). The estimate must be within 4 standard errors."""
    c, times = 0.2, [0.1, 0.5, 1.0]
    report = score_error(lambda x, t: ou_score(x, t) + c * x, ou2, gaussian, times, n=20000, seed=3)
    for k, t in enumerate(times):
        mean, cov = ou_moments(t)
        exact = abs(c) * math.sqrt((mean @ mean + np.trace(cov)) / np.trace(np.linalg.inv(cov)))
        assert abs(report.error[k] - exact) < 4 * report.standard_error[k], (t, report.error[k], exact)
        assert report.standard_error[k] < 0.01 * exact  # and the check has teeth: the error is well resolved
    # the scale column is sqrt(tr S^-1), to Monte Carlo accuracy
    assert report.score_scale[-1] == pytest.approx(math.sqrt(np.trace(np.linalg.inv(ou_moments(1.0)[1]))), rel=0.03)


def test_the_standard_error_is_honest(ou2, gaussian):
    """Over 100 seeds the spread of e(t) matches the mean reported standard error: the ratio's
    sampling error with 100 repeats is about 1 / sqrt(198) = 7% for Gaussian estimates (more for
    these, whose draws are squares of Gaussians: measured 0.98 and 1.00 over 400 seeds at n = 1000
    and 4000), so 1 +- 0.3. A standard error without the delta method's covariance term
    (sd(a) / (2 e mean(b) sqrt(n))) overstates it here by 70% (checked below), so the test can fail."""
    c, t, n = 0.3, 0.5, 1000
    reports = [score_error(lambda x, t: ou_score(x, t) + c * x, ou2, gaussian, [t], n=n, seed=s) for s in range(100)]
    estimates = np.array([r.error[0] for r in reports])
    reported = np.mean([r.standard_error[0] for r in reports])
    assert np.std(estimates, ddof=1) / reported == pytest.approx(1.0, abs=0.3)
    # the deliberately wrong standard error (numerator's variance alone) is off by more than the tolerance
    truth = solve(ou2, gaussian, [t])
    x = truth.sample(n, t, seed=0)
    a, b = ((c * x) ** 2).sum(1), (ou_score(x, t) ** 2).sum(1)
    naive = np.std(a, ddof=1) / (2 * math.sqrt(a.mean() / b.mean()) * b.mean() * math.sqrt(n))
    assert naive / reports[0].standard_error[0] > 1.3


def test_a_score_model_is_accepted_and_a_precomputed_truth_reused(ou2, gaussian):
    model = ss.ScoreModel(m=2, width=8, depth=1)
    truth = solve(ou2, gaussian, [0.5, 1.0])
    report = score_error(model, ou2, None, [0.5, 1.0], n=500, truth=truth)
    assert np.all(np.isfinite(report.error)) and np.all(report.error > 0)
    text = str(report)
    # two title lines, a blank, the header, the rule, a row per time
    assert text == report.table() and "e(t)" in text and len(text.splitlines()) == 3 + 2 + 2
    assert json.loads(json.dumps(report.to_dict()))["times"] == [0.5, 1.0]


@pytest.mark.parametrize("score, message", [
    (lambda x, t: x[:, :1], r"score: expected score\(x, t\) of shape \(100, 2\)"),
    (lambda x, t: np.full_like(x, np.nan), "score: expected finite values"),
    ("not a function", "score: expected a ScoreModel or a callable"),
])
def test_score_error_refuses_a_bad_score(ou2, gaussian, score, message):
    with pytest.raises(SymscoreError, match=message):
        score_error(score, ou2, gaussian, [0.5], n=100)


def test_score_error_refuses_bad_arguments(ou2, gaussian):
    with pytest.raises(SymscoreError, match="n: expected an integer >= 2"):
        score_error(ou_score, ou2, gaussian, [0.5], n=1)
    with pytest.raises(SymscoreError, match="times: expected increasing times"):
        score_error(ou_score, ou2, gaussian, [0.5, 0.2])
    with pytest.raises(SymscoreError, match="truth: expected a solution at every time"):
        score_error(ou_score, ou2, gaussian, [0.5, 0.7], truth=solve(ou2, gaussian, [0.5]))
    with pytest.raises(SymscoreError, match="p0: expected a mixture in m = 2"):
        score_error(ou_score, ou2, BIMODAL, [0.5])
    with pytest.raises(SymscoreError, match="p0: expected a GaussianMixture or a callable"):
        score_error(ou_score, ou2, "gaussian", [0.5])


# -- target_bias ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ou1():
    return ss.library.ou(m=1)


def assert_unbiased(report):
    """About 30 z-scores per time: max |z| < 4.5 (a false alarm under 1 in 1000 per report) and
    chi2/dof within 1 +- 0.7 (its sd is sqrt(2 / 30) = 0.26)."""
    assert np.all(report.max_abs_z < 4.5), report.table()
    assert np.all(np.abs(report.chi2_per_dof - 1) < 0.7), report.table()


def test_malliavin_and_dsm_are_unbiased_on_ou(ou1):
    """n_steps = 50: the Euler bias of X_t's law is about dt / 2 = 1% of the score, a tenth of a
    bin's standard error at 10^4 paths; dsm samples the exact transition (no bias at all)."""
    times = [0.2, 0.5, 1.0]
    truth = solve(ou1, BIMODAL, times)
    for target in ("malliavin", "dsm"):
        report = target_bias(ou1, BIMODAL, times, 50, target=target, n=10000, bins=30, backend="torch", truth=truth)
        assert isinstance(report, TargetBiasReport) and report.target == target
        assert [len(c) for c in report.bin_counts] == [30, 30, 30]  # equal-count bins: none skipped
        assert_unbiased(report)
        assert np.all(report.bias < 1.5 * report.noise_floor)  # bias/RMS s* reads the noise floor


def test_the_residual_at_each_path_removes_the_binning_error(ou1):
    """With 4 wide bins, s* varies across a bin: the deliberately wrong comparison of the bin's mean
    target with s* at the bin's mean X_t flags the unbiased dsm target (|z| ~ 8 at t = 0.2); the
    mean of target - s*(X_t) at each path's own X_t does not."""
    times = [0.2, 0.5]
    truth = solve(ou1, BIMODAL, times)
    report = target_bias(ou1, BIMODAL, times, 10, target="dsm", n=10000, bins=4, truth=truth)
    assert np.all(report.max_abs_z < 4.5)
    centre = (report.bin_mean_target[0] - truth.score(report.bin_centres[0], 0.2)) / report.bin_standard_error[0]
    assert np.abs(centre).max() > 5


def test_dsm_in_two_dimensions_bins_on_a_quantile_grid(ou2):
    p0 = GaussianMixture([0.5, 0.5], [[1.5, 1.0], [-1.5, -1.0]], [np.eye(2) * 0.25, np.eye(2) * 0.25])
    report = target_bias(ou2, p0, [0.25, 1.0], 20, target="dsm", n=20000, bins=5)
    assert report.bin_axes == (0, 1) and all(c.shape[1] == 2 for c in report.bin_cells)
    assert all(len(c) <= 25 and r.shape[1] == 2 for c, r in zip(report.bin_counts, report.bin_residual))
    assert sum(report.bin_counts[0]) <= 20000
    assert np.all(report.max_abs_z < 4.5) and np.all(np.abs(report.chi2_per_dof - 1) < 0.6)


class CorrelatedNoise(TargetSource):
    """A test double: X_t drawn from the exact p_t, target = s*(X_t) + noise whose coordinates have
    correlation 0.95, so unbiased, with strongly correlated z-scores within each bin."""

    def batch(self, x0, record_steps, seed):
        rng = np.random.default_rng(seed)
        xs, targets = [], []
        for k in record_steps:
            mean, cov = ou_moments(k * self.dt)
            x = rng.multivariate_normal(mean, cov, size=x0.shape[0])
            noise = rng.multivariate_normal(np.zeros(2), [[1.0, 0.95], [0.95, 1.0]], size=x0.shape[0])
            xs.append(x)
            targets.append(ou_score(x, k * self.dt) + noise)
        return np.stack(xs), np.stack(targets)


def test_the_chi_square_of_correlated_coordinates_holds_its_level(ou2, gaussian):
    """Over 1000 unbiased runs in 2-D with coordinate correlation 0.95, Hotelling's per-bin statistic
    rejects at p < 0.05 in 5% of runs (binomial 99.9% bound 0.072); summing the coordinates' z^2 as
    if independent, the deliberately wrong statistic, rejects in about 12% (its variance is 1 + 0.95^2
    times the chi-square's), above 0.09."""
    truth = solve(ou2, gaussian, [0.5])
    ours, naive = [], []
    for seed in range(1000):
        report = target_bias(ou2, gaussian, [0.5], 10, target=CorrelatedNoise(ou2, 10), n=1000, bins=3, seed=seed,
                             truth=truth)
        ours.append(report.p_value[0])
        z = report.z[0]
        naive.append(stats.chi2.sf(np.sum(z**2), z.size))
    assert np.mean(np.array(ours) < 0.05) < 0.072
    assert np.mean(np.array(naive) < 0.05) > 0.09


class ScaledMalliavin(MalliavinSource):
    """Deliberately wrong: the Malliavin target times 1.2 (conditional mean 1.2 s*)."""

    def batch_rows(self, x0, record_steps, seed, rows):
        x, target = super().batch_rows(x0, record_steps, seed, rows)
        return x, 1.2 * target


def test_a_scaled_target_is_detected(ou1):
    """1.2 s*: a bias of 0.2 |s*| ~ 0.2 against a bin standard error ~ 0.03 at 10^4 paths in 10 bins."""
    source = ScaledMalliavin(ou1, 50, backend="torch")
    report = target_bias(ou1, BIMODAL, [0.5, 1.0], 50, target=source, n=10000, bins=10)
    assert report.target == "ScaledMalliavin"
    assert np.all(report.max_abs_z > 10) and np.all(report.p_value < 1e-10)
    assert np.all(report.excess_bias() > 0.1)
    with pytest.raises(SymscoreError, match="target: the TargetSource was built for n_steps = 50"):
        target_bias(ou1, BIMODAL, [0.5], 20, target=source, n=100)


MEAN, STD, THETA = 0.3, 0.5, 1.5


class BenesTruth(Solution):
    """Benes from p_0 proportional to cosh(theta x) N(x; MEAN, STD^2): closed form at every t
    (symscore.library.benes_mixture_score / _sample)."""

    kind = "closed form"

    def score(self, x, t):
        return benes_mixture_score(x, t, [MEAN], STD, THETA)

    def sample(self, n, t, seed=0):
        return benes_mixture_sample(n, t, [MEAN], STD, THETA, seed)


def test_first_order_is_biased_on_benes_and_malliavin_is_not():
    """Benes' p_0 cosh(theta x) N(MEAN, STD^2) is the mixture of N(MEAN +- theta STD^2, STD^2) with
    weights proportional to exp(+- theta MEAN). The first-order ablation (a compiled kernel) drops
    the second variation: about 30% of the score at t = 1, over 10 standard errors at 2 10^4 paths;
    the full Malliavin weight at the same step count is within a fifth of that."""
    sde, times = ss.library.benes(m=1, theta=THETA), [0.5, 1.0]
    weights = np.exp([THETA * MEAN, -THETA * MEAN])
    p0 = GaussianMixture(weights, [[MEAN + THETA * STD**2], [MEAN - THETA * STD**2]], [STD**2, STD**2])
    grid = np.linspace(-2, 2, 9)[:, None]
    np.testing.assert_allclose(p0.score(grid), benes_mixture_score(grid, 0.0, [MEAN], STD, THETA), rtol=1e-12)
    truth = BenesTruth(sde, times)
    ablation = ss.compile(sde, backend="torch", variant=ss.Variant(first_order_only=True))
    first = target_bias(sde, p0, times, 40, target=ablation, n=20000, bins=10, truth=truth)
    full = target_bias(sde, p0, times, 40, target="malliavin", n=20000, bins=10, backend="torch", truth=truth)
    assert first.max_abs_z[-1] > 10 and first.excess_bias()[-1] > 0.2
    assert np.all(full.excess_bias() < first.excess_bias() / 5)


def test_compare_targets_names_the_least_biased_and_the_cost():
    """The first-order ablation against the full weight on Benes: the comparison names the full
    weight, counts the Richardson target's three passes and refuses malformed candidates."""
    sde, times = ss.library.benes(m=1, theta=THETA), [0.5, 1.0]
    p0 = GaussianMixture(np.exp([THETA * MEAN, -THETA * MEAN]), [[MEAN + THETA * STD**2], [MEAN - THETA * STD**2]],
                         [STD**2, STD**2])
    ablation = ss.compile(sde, backend="torch", variant=ss.Variant(first_order_only=True))
    comparison = ss.truth.compare_targets(sde, p0, times, 20, candidates=[(ablation, 40), ("malliavin", 40),
                                                                          ("malliavin-richardson", 20)],
                                          n=10000, backend="torch", truth=BenesTruth(sde, times))
    assert comparison.least_biased != 0 and comparison.unbiased.tolist() == [False, True, True]
    assert comparison.path_steps.tolist() == [40, 40, 60]
    cheaper = 1 if comparison.seconds[1] <= comparison.seconds[2] else 2  # the cheaper of the two unbiased ones
    assert comparison.cheapest_unbiased == cheaper and "least biased:" in str(comparison)
    assert comparison.to_dict()["candidates"][2] == {"target": "malliavin-richardson", "n_steps": 20}
    for bad, message in [([], "candidates: expected at least one"), ([("malliavin", 0)], "candidates: expected"),
                         (["malliavin"], "candidates: expected")]:
        with pytest.raises(SymscoreError, match=message):
            ss.truth.compare_targets(sde, p0, times, 20, candidates=bad, truth=BenesTruth(sde, times))


@pytest.mark.parametrize("kwargs, message", [
    ({"times": [0.5, 0.55]}, r"times: expected times on the grid k T / n_steps = k \* 0.1; \[0.55\] are not"),
    ({"times": [0.0, 0.5]}, "times: expected times > 0"),
    ({"bins": 1}, "bins: expected an integer >= 2"),
    ({"n": 1}, "n: expected an integer >= 2"),
    ({"n_steps": 0}, "n_steps: expected an integer >= 1"),
    ({"seed": -1}, "seed: expected an integer >= 0"),
    ({"target": "ssm"}, "target: 'ssm' has no regression target"),
    ({"target": "no-such-target"}, "no-such-target"),
    ({"target": 3.0}, "target: expected a registered target name"),
    ({"n": 30, "bins": 20}, "n: no bin of X_t at t = 0.5 holds 20 paths"),
    ({"truth": "exact"}, "truth: expected a symscore.truth Solution"),
])
def test_target_bias_refuses_bad_input(ou1, kwargs, message):
    arguments = {"times": [0.5], "n_steps": 10, "target": "dsm", "n": 200} | kwargs
    with pytest.raises(SymscoreError, match=message):
        target_bias(ou1, BIMODAL, **arguments)


def test_reports_print_serialise_and_plot(tmp_path, ou1, ou2):
    one = target_bias(ou1, BIMODAL, [0.5, 1.0], 10, target="dsm", n=2000)
    p0 = GaussianMixture([1.0], [MU0], [S0])
    two = target_bias(ou2, p0, [1.0], 10, target="dsm", n=2000)
    error = score_error(ou_score, ou2, p0, [0.5, 1.0], n=500)
    for report in (one, two, error):
        rows = [line for line in str(report).splitlines() if line.startswith("|")]
        assert len(rows) == 2 + report.times.size
        data = json.loads(json.dumps(report.to_dict()))
        assert data["times"] == report.times.tolist()
    assert len(one.z) == 2 and one.z[0].shape == one.bin_residual[0].shape
    assert ss.plots.plot_target_bias(one, tmp_path / "one.png").stat().st_size > 0
    assert ss.plots.plot_target_bias(two, tmp_path / "two.png").stat().st_size > 0
    assert ss.plots.plot_score_error(error, tmp_path / "error.png").stat().st_size > 0
