"""ss.truth.fokker_planck against closed forms that share nothing with the finite-volume scheme.

* linear SDEs (OU, VP with beta(t), a correlated-noise OU, the critically damped Langevin) from Gaussian
  mixtures: the exact p_t is a mixture (ss.truth.linear_mixture, matrix exponentials / RK4);
* Benes, dX = theta tanh(theta X) dt + dB, from p_0 proportional to cosh(theta x) N(x; mu, s^2): by the
  h-transform p_t is proportional to cosh(theta y) N(y; mu, s^2 + t), the mixture of N(mu +- theta v, v),
  v = s^2 + t, with weights proportional to exp(+- theta mu) (ss.library.benes_mixture_score);
* GBM, dX = mu X dt + s X dB, from a lognormal p_0 (a callable density): log X_t ~ N(a + (mu - s^2/2) t,
  b^2 + s^2 t), a state-dependent sigma whose div D enters the flux.

The measure is the p_t-weighted relative L2 error of the score, sqrt(E|s_fp - s|^2 / E|s|^2), by Monte
Carlo over 20000 exact draws from p_t (the Monte Carlo spread of this ratio is a few percent of itself,
far below the factor-2 margins of the tolerances). Each tolerance is about 2-3 times the error measured
on the grid used (the figures are in the comments); the scheme is second order, so halving h cuts the
error about 4-fold and a wrong term (a dropped div D, a shifted drift, first-order upwinding) costs far
more than the margin (shown by the deliberately wrong variants below).
"""
import warnings

import numpy as np
import pytest
import sympy as sp

import symscore as ss
from symscore.truth import FokkerPlanckSolution, GaussianMixture, fokker_planck, linear_mixture

x1, x2, t = sp.symbols("x1 x2 t")
P0_1D = GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [[[0.2]], [[0.3]]])
P0_2D = GaussianMixture([0.5, 0.5], [[-1.0, 0.5], [1.0, -0.3]],
                        [[[0.3, 0.1], [0.1, 0.2]], [[0.25, -0.05], [-0.05, 0.3]]])
BOX_2D = ((-6.0, 6.0), (-6.0, 6.0))


def score_error(fp, exact_score, x, t_value):
    """sqrt(E|s_fp - s|^2 / E|s|^2) over the draws x of p_t."""
    s, e = fp.score(x, t_value), exact_score(x)
    return float(np.sqrt(np.mean(np.sum((s - e) ** 2, axis=1)) / np.mean(np.sum(e**2, axis=1))))


def density_error(fp, exact_density, x, t_value):
    """sqrt(E (p_fp - p)^2 / E p^2) over the draws x of p_t."""
    p, e = fp.density(x, t_value), exact_density(x)
    return float(np.sqrt(np.mean((p - e) ** 2) / np.mean(e**2)))


def closed_form_errors(fp, exact, times):
    errors = []
    for k, tv in enumerate(times):
        x = exact.sample(20000, tv, seed=10 + k)
        errors.append((score_error(fp, lambda y: exact.score(y, tv), x, tv),
                       density_error(fp, lambda y: exact.density(y, tv), x, tv)))
    return np.array(errors)


def cld() -> ss.SDE:
    """Critically damped Langevin: dx = v dt, dv = (-x - 2 v) dt + 2 dW (D = diag(0, 4), hypoelliptic)."""
    return ss.SDE([x2, -x1 - 2 * x2], sp.Matrix([[0], [2]]), [x1, x2], t, name="cld")


def ou_correlated() -> ss.SDE:
    """dX = -X dt + sigma dW with sigma = [[1, 0], [0.8, 0.6]]: D = [[1, 0.8], [0.8, 1]] (cross terms)."""
    return ss.SDE([-x1, -x2], sp.Matrix([[1.0, 0.0], [0.8, 0.6]]), [x1, x2], t, name="ou_correlated")


# -- linear SDEs in 1-D and 2-D: exact mixtures ---------------------------------------------------------
@pytest.mark.parametrize("name", ["ou", "vp"])
def test_one_dimensional_ou_and_vp_match_the_closed_form(name):
    sde = getattr(ss.library, name)(m=1)
    times = [0.0, 0.1, 0.5, 1.0]
    fp = fokker_planck(sde, P0_1D, times, cells=200, bounds=(-7.0, 7.0), estimate_error=False)
    assert isinstance(fp, FokkerPlanckSolution) and fp.kind == "Fokker-Planck"
    assert fp.method == ("expm" if name == "ou" else "BDF")  # vp's beta(t) makes the operator depend on t
    np.testing.assert_allclose(fp.mass, 1.0, atol=1e-10)  # zero-flux walls: mass conserved to solver tolerance
    errors = closed_form_errors(fp, linear_mixture(sde, P0_1D, times), times)
    # measured at 200 cells: score 1.4e-4 (t = 0), <= 1.2e-3 (t > 0); density <= 6e-4
    assert np.all(errors[:, 0] < 3e-3), errors
    assert np.all(errors[:, 1] < 2e-3), errors


@pytest.mark.parametrize("name, cells, tolerance", [
    ("ou", 128, 4e-3),   # measured <= 1.6e-3 (2 s on 2 busy cores, expm)
    ("vp", 96, 6e-3),    # measured <= 2.7e-3 (BDF; beta from 0.1 to 20)
])
def test_two_dimensional_ou_and_vp_match_the_closed_form(name, cells, tolerance):
    sde = getattr(ss.library, name)(m=2)
    times = [0.25, 0.5, 1.0]
    fp = fokker_planck(sde, P0_2D, times, cells=cells, bounds=BOX_2D, estimate_error=False)
    np.testing.assert_allclose(fp.mass, 1.0, atol=1e-10)
    errors = closed_form_errors(fp, linear_mixture(sde, P0_2D, times), times)
    assert np.all(errors[:, 0] < tolerance), errors
    assert np.all(errors[:, 1] < tolerance), errors
    assert fp.values.shape == (3, cells, cells) and len(fp.grid.centres) == 2


def test_critically_damped_langevin_hypoelliptic():
    """D = diag(0, 4): no noise on the position, exponential fitting there reduces to advection, done
    third order by default; pure upwinding (SG's own limit) is first order and visibly worse."""
    sde, times, box = cld(), [0.25, 0.5, 1.0], ((-5.0, 5.0), (-7.0, 7.0))
    exact = linear_mixture(sde, P0_2D, times)
    fp = fokker_planck(sde, P0_2D, times, cells=128, bounds=box, estimate_error=False)
    errors = closed_form_errors(fp, exact, times)
    assert np.all(errors[:, 0] < 4e-3), errors  # measured <= 1.5e-3 at 128^2
    upwind = fokker_planck(sde, P0_2D, times, cells=128, bounds=box, estimate_error=False, noiseless="upwind")
    upwind_errors = closed_form_errors(upwind, exact, times)
    assert np.all(upwind_errors[:, 0] > 1e-2), upwind_errors  # first order: measured 3.5e-2 .. 6e-2 at 192^2


def test_correlated_noise_cross_terms():
    """D_12 = 0.8: carried as diffusion along the grid diagonal (monotone, no negative p); measured
    score error 2.0e-2, 3.2e-2, 4.2e-2 at 128^2 (the stationary law is thin along x1 = -x2, std 0.32),
    4.2 times smaller at 192^2 (second order)."""
    sde, times = ou_correlated(), [0.25, 0.5, 1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no negative-density warning
        fp = fokker_planck(sde, P0_2D, times, cells=128, bounds=BOX_2D, estimate_error=False)
    errors = closed_form_errors(fp, linear_mixture(sde, P0_2D, times), times)
    assert np.all(errors[:, 0] < 0.08), errors
    assert fp.values.min() >= 0
    # the same SDE without its cross term (D = diag(1, 1)) is far off: the test sees D_12
    diagonal = ss.SDE([-x1, -x2], 1.0, [x1, x2], t, name="ou_uncorrelated")
    wrong = fokker_planck(diagonal, P0_2D, times, cells=96, bounds=BOX_2D, estimate_error=False)
    assert closed_form_errors(wrong, linear_mixture(sde, P0_2D, times), times)[-1, 0] > 0.3


# -- nonlinear drift, state-dependent sigma -------------------------------------------------------------
def test_benes_matches_its_h_transform():
    theta, mean, std = 1.5, 0.3, 0.5
    # p_0 proportional to cosh(theta x) N(x; mean, std^2) is the mixture of N(mean +- theta std^2, std^2)
    p0 = GaussianMixture(np.exp([theta * mean, -theta * mean]), [[mean + theta * std**2], [mean - theta * std**2]],
                         [[[std**2]], [[std**2]]])
    times = [0.25, 0.5, 1.0]
    fp = fokker_planck(ss.library.benes(m=1, theta=theta), p0, times, cells=300, bounds=(-8.0, 9.0),
                       estimate_error=False)
    for k, tv in enumerate(times):
        x = ss.library.benes_mixture_sample(20000, tv, [mean], std, theta, seed=k)
        error = score_error(fp, lambda y: ss.library.benes_mixture_score(y, tv, [mean], std, theta), x, tv)
        assert error < 1e-2, (tv, error)  # measured 3.7e-3, 4.1e-3, 3.8e-3 at 300 cells (9.3e-4 at 600)


def lognormal(mean_log, var_log):
    def density(x):
        x = np.asarray(x)[:, 0]
        out = np.zeros(x.shape)
        positive = x > 0
        out[positive] = np.exp(-(np.log(x[positive]) - mean_log) ** 2 / (2 * var_log)) / (
            x[positive] * np.sqrt(2 * np.pi * var_log))
        return out
    return density


@pytest.mark.parametrize("shift, fails", [(0.0, False), (0.4**2, True)])
def test_gbm_from_a_lognormal_callable_density(shift, fails):
    """GBM: D = s^2 x^2 depends on x, so the flux carries -(div D)/2 p. Dropping that term is the same as
    solving with mu + s^2 (the shifted variant), which must fail the tolerance."""
    mu, s, a, b = 0.1, 0.4, 0.0, 0.2
    times = [0.25, 0.5]
    fp = fokker_planck(ss.library.gbm(m=1, mu=mu + shift, s=s), lognormal(a, b**2), times, cells=400,
                       bounds=(0.0, 8.0), estimate_error=False)
    assert fp.method == "BDF"  # D = s^2 x^2 up to 10 makes ||t L|| large: BDF rather than expm_multiply
    errors = []
    for tv in times:
        m_t, v_t = a + (mu - s**2 / 2) * tv, b**2 + s**2 * tv
        x = np.exp(m_t + np.sqrt(v_t) * np.random.default_rng(3).standard_normal((20000, 1)))
        errors.append(score_error(fp, lambda y: -(1 + (np.log(y) - m_t) / v_t) / y, x, tv))
    if fails:
        assert min(errors) > 0.1, errors
    else:
        assert max(errors) < 1.5e-2, errors  # measured 5.0e-3, 6.3e-3 at 400 cells


# -- refinement and the error estimate ------------------------------------------------------------------
def test_error_shrinks_at_second_order_and_the_estimate_tracks_it():
    """OU 1-D, cells 100 -> 200 -> 400: measured errors at t = 0.5 of 3.6e-3, 9.1e-4, 2.3e-4 (ratio 4.0:
    order 2). The estimate |s_h - s_2h| is about 3 times the error for a second-order scheme
    (|s_2h - s| ~ 4 |s_h - s|); measured 3.0 - 3.3 at t > 0."""
    sde, times = ss.library.ou(m=1), [0.1, 0.5, 1.0]
    exact = linear_mixture(sde, P0_1D, times)
    errors, estimates = [], []
    for cells in (100, 200, 400):
        fp = fokker_planck(sde, P0_1D, times, cells=cells, bounds=(-7.0, 7.0))
        errors.append(closed_form_errors(fp, exact, times)[:, 0])
        estimates.append(fp.error_estimate)
        assert fp.coarse is not None and fp.coarse.grid.cells == (cells // 2,)
    errors, estimates = np.array(errors), np.array(estimates)
    ratios = errors[:-1] / errors[1:]
    assert np.all(ratios > 3.0) and np.all(ratios < 5.5), ratios
    assert np.all(estimates / errors > 1.0) and np.all(estimates / errors < 6.0), estimates / errors


def test_automatic_grid_and_sampling():
    """Default bounds and cells, then draws from the grid law against the exact mean and variance."""
    sde, times = ss.library.ou(m=1), [0.5, 1.0]
    fp = fokker_planck(sde, P0_1D, times)
    lo, hi = fp.grid.bounds[0]
    assert lo < -5 and hi > 5 and 200 <= fp.grid.cells[0] <= 2000 and fp.grid.cells[0] % 2 == 0
    assert np.all(fp.error_estimate < 0.01)
    exact = linear_mixture(sde, P0_1D, times).at(1.0)
    x = fp.sample(20000, 1.0, seed=4)
    assert x.shape == (20000, 1) and np.all((x > lo) & (x < hi))
    se = np.sqrt(exact.covariance()[0, 0] / 20000)
    assert abs(x.mean() - exact.mean()[0]) < 4 * se
    assert abs(x.var() / exact.covariance()[0, 0] - 1) < 4 * np.sqrt(2 / 20000) + 1e-3  # uniform-in-cell: + h^2/12
    assert fp.density(np.array([[lo - 1.0], [hi + 1.0]]), 1.0).tolist() == [0.0, 0.0]


def test_a_large_error_estimate_warns_naming_cells():
    with pytest.warns(RuntimeWarning, match="raise cells"):
        fokker_planck(ss.library.ou(m=1), P0_1D, [0.5], cells=100, bounds=(-7.0, 7.0), error_tolerance=1e-4)


# -- bad input ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small():
    return fokker_planck(ss.library.ou(m=1), P0_1D, [0.5, 1.0], cells=100, bounds=(-7.0, 7.0),
                         estimate_error=False)


@pytest.mark.parametrize("call, match", [
    (lambda: fokker_planck(ss.library.ou(m=3), GaussianMixture([1.0], [[0, 0, 0]], [np.eye(3)]), [0.5]),
     "sde: the Fokker-Planck grid handles m = 1 or 2"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_2D, [0.5]), "p0: expected a GaussianMixture in m = 1"),
    (lambda: fokker_planck(ss.library.ou(m=1), "normal", [0.5]), "p0: expected a GaussianMixture or a callable"),
    (lambda: fokker_planck(ss.library.ou(m=1), lambda x: np.ones((x.shape[0], 2)), [0.5], bounds=(-3, 3)),
     r"p0: expected values of shape"),
    (lambda: fokker_planck(ss.library.ou(m=1), lognormal(0.0, 0.04), [0.5]), "bounds: required for a callable"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [0.5], bounds=(-2.0, 2.0)), "bounds: the box .* holds"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [0.5], bounds=(3.0, 2.0)), "bounds: expected"),
    (lambda: fokker_planck(ss.library.ou(m=2), P0_2D, [0.5], bounds=(-3.0, 3.0)), r"bounds: expected \(\(lo1"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [0.5], cells=20, bounds=(-7.0, 7.0)),
     "cells: component 0 of p0 has"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [0.5], cells=4, bounds=(-7.0, 7.0)), "cells: expected"),
    (lambda: fokker_planck(ss.library.ou(m=1), lognormal(0.0, 0.0004), [0.5], cells=50, bounds=(0.0, 8.0)),
     "cells: the grid .* does not resolve p0"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [0.5, 1.5]), r"times: expected increasing times in \[0, T"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [-0.1, 0.5]), r"times: expected increasing times"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [0.5], method="euler"), "method: expected one of"),
    (lambda: fokker_planck(ss.library.vp(m=1), P0_1D, [0.5], method="expm"), "method: 'expm' needs"),
    (lambda: fokker_planck(ss.library.ou(m=1), P0_1D, [0.5], grid=3), "grid: not an option of fokker_planck"),
    (lambda: fokker_planck(ss.SDE([sp.sqrt(x1)], 1, [x1], t, name="root"), GaussianMixture([1.0], [[1.5]], [[[0.1]]]),
                           [0.5], cells=100, bounds=(-1.0, 4.0)), "sde: the coefficients of 'root' are not finite"),
])
def test_bad_input_raises_naming_the_argument(call, match):
    with pytest.raises(ss.SymscoreError, match=match):
        call()


def test_mass_reaching_the_edge_raises_naming_bounds():
    """p_0 fits (-2.5, 2.5), but by t = 1 the OU law (variance -> 1) leaks over the wall."""
    narrow = GaussianMixture([1.0], [[0.0]], [[[0.1]]])
    fokker_planck(ss.library.ou(m=1), narrow, [0.05], cells=200, bounds=(-2.5, 2.5), estimate_error=False)
    with pytest.raises(ss.SymscoreError, match="bounds: at t = 1 the outer two cell layers"):
        fokker_planck(ss.library.ou(m=1), narrow, [0.05, 1.0], cells=200, bounds=(-2.5, 2.5), estimate_error=False)


@pytest.mark.parametrize("call, match", [
    (lambda fp: fp.score([[0.0]], 0.7), "t: expected one of the solution's times"),
    (lambda fp: fp.density([[0.0]], 2.0), "t: expected one of the solution's times"),
    (lambda fp: fp.score(np.zeros((3, 2)), 0.5), r"x: expected an array of shape \(n, 1\)"),
    (lambda fp: fp.density([[np.nan]], 0.5), "x: expected finite values"),
    (lambda fp: fp.score([[0.0], [9.0]], 0.5), "x: 1 point.* outside the grid's bounds"),
    (lambda fp: fp.sample(0, 0.5), "n: expected an integer >= 1"),
])
def test_bad_queries_raise(small, call, match):
    with pytest.raises(ss.SymscoreError, match=match):
        call(small)


# -- heavier: 2-D refinement ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("make, box, cells, tolerance", [
    (lambda: ss.library.ou(m=2), BOX_2D, 96, 2e-3),
    (cld, ((-5.0, 5.0), (-7.0, 7.0)), 112, 2e-3),
    (ou_correlated, BOX_2D, 96, 4e-2),
])
def test_two_dimensional_refinement(make, box, cells, tolerance):
    """cells -> 2 cells per axis: the error falls by about 4 (measured ratios in the report)."""
    sde, times = make(), [0.25, 0.5, 1.0]
    exact = linear_mixture(sde, P0_2D, times)
    errors = [closed_form_errors(fokker_planck(sde, P0_2D, times, cells=n, bounds=box, estimate_error=False),
                                 exact, times)[:, 0] for n in (cells, 2 * cells)]
    assert np.all(errors[1] < tolerance), errors
    assert np.all(errors[0] / errors[1] > 2.8), errors


def test_a_full_state_dependent_diffusion_keeps_its_stationary_law():
    """D(x) = sigma sigma^T with every entry depending on x (off-diagonal ones included) and
    b = div D / 2 - D x / 2: the flux (b - div D / 2) p - D grad p / 2 vanishes for p = N(0, I), so
    N(0, I) is stationary and the score stays -x exactly. Measured: 6.3e-3 / 7.7e-3 at 64^2 cells,
    1.6e-3 / 2.0e-3 at 128^2 (second order). Deliberately wrong: the same without div D / 2 in b
    (the Stratonovich-looking slip) drifts away from N(0, I) by 6e-2 to 1e-1."""
    x1, x2, t = sp.symbols("x1 x2 t")
    sigma = sp.Matrix([[1 + 3 * sp.tanh(x2) / 10, 0], [2 * sp.sin(x1) / 5, sp.Rational(4, 5) + sp.exp(-x1**2) / 5]])
    D, x = sigma * sigma.T, [x1, x2]
    div_D = [sum(sp.diff(D[i, j], x[j]) for j in range(2)) for i in range(2)]
    restoring = [-sum(D[i, j] * x[j] for j in range(2)) / 2 for i in range(2)]
    p0 = GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    points = p0.sample(20000, seed=3)

    def error(drift, cells):
        solution = ss.truth.fokker_planck(ss.SDE(drift, sigma, x, t), p0, [0.5, 1.0], cells=cells,
                                          bounds=((-6, 6), (-6, 6)))
        return np.array([np.sqrt(np.mean(np.sum((solution.score(points, s) + points) ** 2, 1)) / 2)
                         for s in (0.5, 1.0)])

    right = [div_D[i] / 2 + restoring[i] for i in range(2)]
    coarse, fine = error(right, 64), error(right, 128)
    assert np.all(fine < 3e-3) and np.all(coarse / fine > 3.2)
    assert np.all(error(restoring, 64) > 0.05)


def test_a_drift_singular_at_the_origin_has_a_numeric_view_but_no_linear_parts():
    """b = 1/x - x with sigma = 1: b(t, 0) does not exist, which must not stop NumericSDE (the
    samplers and the Fokker-Planck truth use it); asking for the linear parts names the reason."""
    from symscore.learn.numeric_sde import NumericSDE

    x, t = sp.symbols("x t")
    numeric = NumericSDE(ss.SDE([1 / x - x], 1, [x], t, name="singular"))
    np.testing.assert_allclose(numeric.drift(0.0, np.array([[1.0], [2.0]])), [[0.0], [-1.5]])
    with pytest.raises(ss.SymscoreError, match="sde: 'singular' has no linear parts"):
        numeric.linear_parts(0.0)
