"""The ``stf`` target (the denoising target averaged over a reference set of data points).

The truth is the exact score of p_t when the data law is a finite set of points: p_t is then a
mixture of the Gaussian transitions N(Phi_t x0_i + o_t, Sigma_t), whose moments are computed here
independently of the source (closed forms for the OU process, the matrix exponential and Van Loan's
integral for a coupled linear SDE). The conditional mean of the target given X_t must be that score;
a variant without the row's own x0 in the reference set (a self-normalised importance estimate,
biased) must fail the same check.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.linalg import expm

import symscore as ss
from symscore.learn.targets import StableTargetSource, make_target_source

T_STEPS = 100
POINTS = np.array([[1.5, -0.5], [-0.4, 0.8], [0.3, 0.2], [-1.2, -1.0], [0.9, 1.4]])


def coupled_sde():
    x0, x1, t = sp.symbols("x0 x1 t")
    return ss.SDE([-x0 + sp.Rational(1, 2) * x1, -x1], sp.Matrix([[1, 0], [sp.Rational(2, 5), sp.Rational(4, 5)]]),
                  [x0, x1], t, name="coupled", T=1.0)


def transition(sde, t):
    """(Phi_t, Sigma_t) of dX = A X dt + G dB from its matrices, by expm and Van Loan's block exponential."""
    if sde.name == "ou":  # theta = 1, sigma = sqrt 2: Phi = e^-t, Sigma = 1 - e^-2t
        return np.exp(-t) * np.eye(2), (1 - np.exp(-2 * t)) * np.eye(2)
    A, G = np.array([[-1.0, 0.5], [0.0, -1.0]]), np.array([[1.0, 0.0], [0.4, 0.8]])
    block = expm(np.block([[-A, G @ G.T], [np.zeros((2, 2)), A.T]]) * t)
    phi = block[2:, 2:].T
    return phi, phi @ block[:2, 2:]


def mixture_score(x, points, phi, sigma):
    """grad log of (1 / N) sum_i N(x; Phi x0_i, Sigma)."""
    precision = np.linalg.inv(sigma)
    diff = x[:, None, :] - points @ phi.T  # (n, N, m)
    logits = -0.5 * np.einsum("nij,jk,nik->ni", diff, precision, diff)
    weights = np.exp(logits - logits.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    return -np.einsum("ni,nij,jk->nk", weights, diff, precision)


class WithoutOwnPoint(StableTargetSource):
    """The wrong variant: the reference set is only the independent draws (no row's own x0)."""

    def batch(self, x0, record_steps, seed):
        x, _ = super(StableTargetSource, self).batch(x0, record_steps, seed)
        draws = np.random.default_rng([seed, 1]).integers(0, len(self.data), self.reference_size)
        return x, np.stack([self.target(k, xk, None, self.data[draws]) for k, xk in zip(record_steps, x)])


def residual_moments(source, sde, step, batches=400, batch_size=16):
    """Mean of (target - exact score) * h(X_t) for h = 1, x_1, x_2, tanh(x_1 x_2), in standard errors."""
    rng = np.random.default_rng(7)
    phi, sigma = transition(sde, step * sde.T / T_STEPS)
    products = []
    for seed in range(batches):
        x0 = POINTS[rng.integers(0, len(POINTS), batch_size)]  # rows drawn from the data, as training does
        x, target = source.batch(x0, np.array([step]), seed)
        residual = target[0] - mixture_score(x[0], POINTS, phi, sigma)
        h = np.column_stack([np.ones(len(x0)), x[0], np.tanh(x[0, :, 0] * x[0, :, 1])])
        products.append((residual[:, :, None] * h[:, None, :]).reshape(len(x0), -1))
    products = np.concatenate(products)
    return products.mean(0) / (products.std(0, ddof=1) / np.sqrt(len(products)))


@pytest.mark.parametrize("sde", [ss.library.ou(m=2), coupled_sde()], ids=["ou", "coupled"])
def test_stf_target_has_the_exact_score_as_its_conditional_mean(sde):
    source = make_target_source("stf", sde, T_STEPS, data=POINTS)
    source.reference_size = 3  # few points: a biased weighting would show
    assert source.diagonal == (sde.name == "ou")
    for step in (20, 60):
        z = residual_moments(source, sde, step)
        assert np.abs(z).max() < 4.5, (step, z)


@pytest.mark.parametrize("sde", [ss.library.ou(m=2), coupled_sde()], ids=["ou", "coupled"])
def test_stf_target_without_the_rows_own_point_is_biased_and_fails(sde):
    source = WithoutOwnPoint(sde, T_STEPS, data=POINTS, reference_size=3)
    z = residual_moments(source, sde, 20)
    assert np.abs(z).max() > 8, z


def test_stf_target_is_the_dsm_target_near_zero_and_quieter_at_large_t():
    sde = ss.library.ou(m=2, T=3.0)
    dsm, stf = (make_target_source(name, sde, 3000, data=POINTS) for name in ("dsm", "stf"))
    x0 = POINTS[np.arange(40) % len(POINTS)]
    x, target = stf.batch(x0, np.array([1, 2500]), seed=4)
    x_dsm, target_dsm = dsm.batch(x0, np.array([1, 2500]), seed=4)
    np.testing.assert_array_equal(x, x_dsm)  # the same states: only the target differs
    # t = 0.001: the points are 0.9 or more apart, 20 noise standard deviations
    np.testing.assert_allclose(target[0], target_dsm[0], rtol=1e-9, atol=1e-9)
    # at t = 2.5 the dsm target's noise is about the score's size; stf averages it over the points
    phi, sigma = transition(sde, 2.5)
    exact = mixture_score(x[1], POINTS, phi, sigma)
    assert np.mean((target[1] - exact) ** 2) < 0.01 * np.mean((target_dsm[1] - exact) ** 2)


@pytest.mark.parametrize("sde", [ss.library.ou(m=2), ss.library.vp(m=2)], ids=["constant", "time-varying"])
def test_diagonal_transitions_match_the_dense_route(sde):
    """A diagonal SDE's moments in closed form (or RK4 on vectors) against the dense route's
    matrices (Van Loan's exponential, or RK4 on matrices), and the sources built on each."""
    from symscore.learn.linear_moments import LinearMoments

    moments, times = LinearMoments(sde), np.linspace(0, 1, 11)
    assert moments.diagonal
    phi, offset, variance = moments.diagonal_moments(times)
    moments.diagonal = False
    dense_phi, dense_offset, dense_cov = moments(times)
    np.testing.assert_allclose(dense_phi, np.stack([np.diag(p) for p in phi]), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dense_offset, offset, atol=1e-12)
    np.testing.assert_allclose(dense_cov, np.stack([np.diag(v) for v in variance]), rtol=1e-9, atol=1e-12)

    diagonal = make_target_source("stf", sde, T_STEPS, data=POINTS)
    dense = make_target_source("stf", sde, T_STEPS, data=POINTS)
    dense.diagonal, dense.phi = False, np.stack([np.diag(p) for p in diagonal.phi])
    dense.chol = np.stack([np.diag(c) for c in diagonal.chol])
    x0 = POINTS[[0, 1, 2, 2, 4]]
    for source in (diagonal, dense):
        source.reference_size = 3
    x, target = diagonal.batch(x0, np.array([5, 50]), seed=1)
    x_dense, target_dense = dense.batch(x0, np.array([5, 50]), seed=1)
    np.testing.assert_allclose(x_dense, x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(target_dense, target, rtol=1e-12, atol=1e-12)


def test_stf_trains_and_refuses_bad_input():
    sde = ss.library.vp(m=2)
    data = np.random.default_rng(0).standard_normal((256, 2))
    model = ss.train(sde, data, target="stf", steps=3, batch_size=16, pilot_size=64, n_steps=50, progress=False)
    assert len(model.loss_history) == 3 and np.isfinite(model.loss_history).all()
    with pytest.raises(ss.SymscoreError, match="'stf' averages over the training data and needs data"):
        make_target_source("stf", sde, 50)
    with pytest.raises(ss.SymscoreError, match="reference_size"):
        StableTargetSource(sde, 50, data=data, reference_size=0)
    with pytest.raises(ss.SymscoreError, match="'stf' needs a linear SDE"):
        ss.train(ss.library.cubic(m=2), data, target="stf", steps=3, batch_size=16, pilot_size=64, progress=False)


@pytest.mark.parametrize("sde", [ss.library.ou(m=2), coupled_sde()], ids=["diagonal", "dense"])
@pytest.mark.parametrize("name", ["dsm", "stf"])
def test_a_singular_transition_is_refused_by_name(sde, name):
    """Record step 0 (Sigma_0 = 0) on either route: a clear error, not NaN targets; bad data named."""
    source = make_target_source(name, sde, T_STEPS, data=POINTS)
    with pytest.raises(ss.SymscoreError, match="Sigma_t is singular at a record time; raise t_min"):
        source.batch(POINTS[:3], np.array([0, 5]), seed=0)
    if name == "stf":
        with pytest.raises(ss.SymscoreError, match="data"):
            make_target_source(name, sde, T_STEPS, data=POINTS[:, :1])
