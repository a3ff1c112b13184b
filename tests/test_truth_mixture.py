"""Gaussian mixtures and the exact p_t of a linear SDE (ss.truth), against independent formulas."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

import symscore as ss
from symscore import SymscoreError
from symscore.truth import GaussianMixture

CORRELATED = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [0.8, -0.2]],
                             [[[0.3, 0.1], [0.1, 0.2]], [[0.15, -0.05], [-0.05, 0.4]]])


def test_density_integrates_to_one_and_the_score_is_its_log_gradient():
    # the trapezoid rule converges geometrically for smooth densities decaying inside the box
    axis = np.linspace(-7, 7, 281)
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    total = integrate.trapezoid(integrate.trapezoid(CORRELATED.density(grid).reshape(281, 281), axis), axis)
    assert abs(total - 1) < 1e-10
    points, h = CORRELATED.sample(50, seed=3), 1e-5
    for j in range(2):
        step = np.zeros(2)
        step[j] = h
        central = (CORRELATED.log_density(points + step) - CORRELATED.log_density(points - step)) / (2 * h)
        np.testing.assert_allclose(CORRELATED.score(points)[:, j], central, rtol=1e-6, atol=1e-6)
    far = np.array([[40.0, -30.0]])  # responsibilities in log space: finite far in the tail
    assert np.isfinite(CORRELATED.score(far)).all() and CORRELATED.density(far)[0] == 0.0


def test_samples_have_the_mixture_moments():
    """Mean and covariance of 10^5 draws within 5 standard errors of mean() and covariance()."""
    x = CORRELATED.sample(100_000, seed=1)
    se = np.sqrt(np.diag(CORRELATED.covariance()) / x.shape[0])
    assert np.all(np.abs(x.mean(0) - CORRELATED.mean()) < 5 * se)
    np.testing.assert_allclose(np.cov(x, rowvar=False), CORRELATED.covariance(), atol=0.01)


def test_kernel_density_is_one_component_per_point_at_scotts_bandwidth():
    data = np.random.default_rng(0).normal(size=(500, 2))
    kde = GaussianMixture.kernel_density(data)
    h = 500 ** (-1 / 6)
    assert kde.n_components == 500
    np.testing.assert_allclose(kde.covs[0], np.cov(data, rowvar=False) * h**2)
    assert GaussianMixture.kernel_density(data, max_components=100).n_components == 100


@pytest.mark.parametrize("args, message", [
    (([0.5, -0.5], [[0.0], [1.0]], [1.0, 1.0]), "weights: expected a non-empty 1-D array of non-negative"),
    (([1.0], [[0.0, 1.0, 2.0]], [[[1.0]]]), r"covs: expected a finite array of shape \(1, 3, 3\)"),
    (([1.0], [[np.nan]], [1.0]), "means: expected a finite array"),
    (([1.0], [[0.0, 0.0]], [[[1.0, 0.5], [0.4, 1.0]]]), "covs: expected symmetric"),
    (([1.0], [[0.0, 0.0]], [[[1.0, 2.0], [2.0, 1.0]]]), "covs: expected positive definite matrices; component 0"),
])
def test_bad_mixtures_are_refused_naming_the_argument(args, message):
    with pytest.raises(SymscoreError, match=message):
        GaussianMixture(*args)


def test_bad_points_and_counts_are_refused():
    with pytest.raises(SymscoreError, match=r"x: expected an array of shape \(n, 2\)"):
        CORRELATED.score(np.zeros((3, 3)))
    with pytest.raises(SymscoreError, match="x: expected finite values; rows \\[1\\]"):
        CORRELATED.density(np.array([[0.0, 0.0], [np.inf, 0.0]]))
    with pytest.raises(SymscoreError, match="n: expected an integer >= 1"):
        CORRELATED.sample(0)


def test_linear_mixture_is_the_ou_formula_in_three_dimensions():
    """OU dX = -theta X dt + s dB per coordinate: X_t = e^(-theta t) X_0 + N(0, s^2 (1 - e^(-2 theta t)) / (2 theta)),
    applied by hand to each component of a correlated 3-D mixture."""
    theta, s = 1.0, np.sqrt(2.0)
    sde = ss.library.ou(m=3, theta=theta, sigma=s)
    rng = np.random.default_rng(4)
    factors = rng.normal(size=(2, 3, 3)) * 0.3
    p0 = GaussianMixture([0.5, 0.5], rng.normal(size=(2, 3)), factors @ np.swapaxes(factors, 1, 2) + 0.05 * np.eye(3))
    solution = ss.truth.solve(sde, p0, [0.25, 1.0])
    assert solution.kind == "closed form" and np.all(solution.mass == 1) and np.all(solution.error_estimate == 0)
    for t in (0.25, 1.0):
        decay = np.exp(-theta * t)
        want = GaussianMixture(p0.weights, decay * p0.means,
                               decay**2 * p0.covs + s**2 * (1 - decay**2) / (2 * theta) * np.eye(3))
        x = want.sample(200, seed=2)
        np.testing.assert_allclose(solution.score(x, t), want.score(x), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(solution.density(x, t), want.density(x), rtol=1e-9)
    # deliberately wrong: the transition without its mean decay (mu_k instead of e^-t mu_k) is far off
    wrong = GaussianMixture(p0.weights, p0.means, decay**2 * p0.covs + s**2 * (1 - decay**2) / (2 * theta) * np.eye(3))
    assert np.abs(wrong.score(x) - solution.score(x, 1.0)).max() > 0.1


def test_solve_picks_the_closed_form_only_where_it_exists():
    p0 = GaussianMixture([1.0], [[0.0]], [0.5])
    assert ss.truth.solve(ss.library.vp(m=1), p0, [0.5]).kind == "closed form"
    assert ss.truth.solve(ss.library.cubic(m=1), p0, [0.5]).kind == "Fokker-Planck"
    with pytest.raises(SymscoreError, match="sde: the closed form needs a linear SDE with sigma\\(t\\); 'cubic'"):
        ss.truth.linear_mixture(ss.library.cubic(m=1), p0, [0.5])
    with pytest.raises(SymscoreError, match="needs m <= 2"):
        ss.truth.solve(ss.library.cubic(m=3), GaussianMixture([1.0], [[0.0, 0.0, 0.0]], [np.eye(3)]), [0.5])
    with pytest.raises(SymscoreError, match="cells: an option of the Fokker-Planck grid, but 'ou' from this p0 has "
                                            "a closed form"):
        ss.truth.solve(ss.library.ou(m=1), p0, [0.5], cells=400)
    assert ss.truth.solve(ss.library.ou(m=1), p0, [0.5], method="fokker-planck", cells=400).kind == "Fokker-Planck"
    with pytest.raises(SymscoreError, match="method: expected 'auto', 'closed form' or 'fokker-planck'"):
        ss.truth.solve(ss.library.ou(m=1), p0, [0.5], method="grid")
    with pytest.raises(SymscoreError, match="p0: expected a mixture in m = 2 dimensions"):
        ss.truth.linear_mixture(ss.library.ou(m=2), p0, [0.5])
    with pytest.raises(SymscoreError, match=r"times: expected increasing times in \[0, T = 1\]"):
        ss.truth.solve(ss.library.ou(m=1), p0, [0.5, 0.2])
    solution = ss.truth.solve(ss.library.ou(m=1), p0, [0.5])
    with pytest.raises(SymscoreError, match="t: expected one of the solution's times"):
        solution.score(np.zeros((2, 1)), 0.3)
