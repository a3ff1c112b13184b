"""The variance and bias options of the Malliavin target: antithetic pairs and the Richardson target.

Exact checks first (the pairs' increments, the combination on one Brownian path), then what each is
for, measured: antithetic pairs cut the variance of batch means, Richardson cancels the weight's
first-order Euler bias (on the Benes SDE, whose residual at 4 steps is 30 standard errors).
"""
import numpy as np
import pytest

import symscore as ss
from conftest import assert_ulp_close
from symscore.learn.targets import make_target_source


def test_kernel_increments_are_the_reference_stream_and_what_simulate_draws(kernel):
    """numba's compiled Box-Muller against numpy's (the reference): the same Philox words, but log,
    sqrt, cos and sin of two libraries, so equal to rounding, not bit for bit (a CPU was seen where 3
    of these 1950 differed by 1 ulp). Bound: 4 ulps (log, cos/sin each within 1 ulp, sqrt and the
    products correctly rounded)."""
    kern = kernel("coupled3d")
    fast = kern.increments(50, 13, 0.02, seed=9, path_offset=5)
    assert_ulp_close(fast, ss.brownian_increments(9, 50, 13, 3, 0.02, path_offset=5), 4, "numba vs numpy increments")
    x0 = np.random.default_rng(0).normal(size=(6, 3))
    by_seed = kern.simulate(x0, [0.1, 0.26], 13, seed=9, path_offset=5)
    by_dw = kern.simulate(x0, [0.1, 0.26], 13, dW=kern.increments(6, 13, 0.02, seed=9, path_offset=5))
    # The draw inlined in the kernel's step loop and increments_kernel are two compiled functions, so
    # their increments agree to rounding, and that rounding flows through 13 steps: 4-ulp changes of
    # dW move these targets (|target| <= 12) by < 4e-15 (measured); another seed moves them by ~10.
    np.testing.assert_allclose(by_seed.target, by_dw.target, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, value", [("n", -1), ("n_steps", 0), ("dt", 0.0), ("seed", -2), ("path_offset", 1.5)])
def test_kernel_increments_refuse_bad_arguments_naming_them(kernel, name, value):
    arguments = dict(n=4, n_steps=5, dt=0.1, seed=0, path_offset=0) | {name: value}
    with pytest.raises(ss.SimulationInputError, match=name):
        kernel("coupled3d").increments(**arguments)


def test_antithetic_pairs_share_x0_and_mirror_the_increments():
    """A linear SDE from one x0: X_t - E[X_t | x0] and the target are odd in the increments, so each
    pair sums to 2 E[X_t | x0] and to zero target (to rounding); the odd rows' x0 is ignored."""
    sde = ss.library.ou(m=2)
    x0 = np.random.default_rng(1).normal(size=(8, 2))
    x, target = make_target_source("malliavin-antithetic", sde, 40).batch(x0, np.array([10, 40]), seed=4)
    # theta = 1, mu = 0: the Euler chain's mean after k steps of dt = 1 / 40 is (1 - dt)^k x0
    mean = (1 - 1 / 40) ** np.array([10, 40])[:, None, None] * x0[0::2]
    np.testing.assert_allclose((x[:, 0::2] + x[:, 1::2]) / 2, mean, atol=1e-12)
    np.testing.assert_allclose(target[:, 0::2] + target[:, 1::2], 0.0, atol=1e-9)
    assert np.abs(target[:, 0::2]).min() > 0  # not trivially zero


def test_antithetic_and_richardson_rows_do_not_depend_on_the_split_of_the_batch():
    """Multi-process training draws disjoint row slices of one global batch: any slice, even one
    starting inside a pair, equals those rows of the whole batch."""
    sde = ss.library.cauchy(m=2)
    x0 = np.random.default_rng(2).normal(size=(10, 2))
    for target in ("malliavin-antithetic", "malliavin-richardson"):
        source = make_target_source(target, sde, 30)
        whole = source.batch(x0, np.array([7, 30]), seed=5)
        for rows in (slice(0, 4), slice(3, 10), slice(5, 6)):
            part = source.batch_rows(x0, np.array([7, 30]), seed=5, rows=rows)
            for a, b in zip(whole, part):  # one kernel on other path offsets: bit for bit
                np.testing.assert_array_equal(a[:, rows], b)


def test_richardson_is_two_fine_weights_minus_one_coarse_on_one_brownian_path(kernel):
    sde = kernel("coupled2d").sde
    x0 = np.random.default_rng(3).normal(size=(5, 2))
    x, target = make_target_source("malliavin-richardson", sde, 20).batch(x0, np.array([6, 20]), seed=8)
    kern = ss.compile(sde)
    fine_dw = kern.increments(5, 40, sde.T / 40, seed=8)
    fine = kern.simulate(x0, [0.3, 1.0], 40, dW=fine_dw)
    coarse = kern.simulate(x0, [0.3, 1.0], 20, dW=fine_dw[:, 0::2] + fine_dw[:, 1::2])
    np.testing.assert_array_equal(x, fine.x.swapaxes(0, 1))  # the source's own kernel and increments
    np.testing.assert_allclose(target, (2 * fine.target - coarse.target).swapaxes(0, 1), rtol=1e-12, atol=1e-12)


def _bump_residual(x, target):
    value = np.exp(-0.5 * np.sum((x - 0.3) ** 2, axis=1) / 4)
    return -(x - 0.3) / 4 * value[:, None] + value[:, None] * target


def test_antithetic_pairs_cut_the_variance_of_a_batch_mean():
    """The integration-by-parts estimator's pair means vary at least 3x less than independent paths'
    at t = 0.1 on the Benes SDE (measured: about 200x; the weight is nearly odd in the noise there)."""
    sde = ss.library.benes(m=1)
    x0 = np.random.default_rng(4).normal(0.3, 0.5, size=(20_000, 1))
    x, target = make_target_source("malliavin-antithetic", sde, 100).batch(x0, np.array([10]), seed=6)
    e = _bump_residual(x[0], target[0])[:, 0]
    pair_variance = ((e[0::2] + e[1::2]) / 2).var()
    assert e.var() / (2 * pair_variance) > 3


def test_richardson_cancels_the_first_order_bias_of_the_weight():
    """Benes SDE from N(0.3, 0.5^2), t = T / 2, 4 coarse steps, 400 000 paths: the plain weight's
    integration-by-parts residual is about 0.041 (30 SE), the Richardson weight's 2.5x smaller, and
    halving the plain step removes about 80% of it (a first-order bias with a large second-order part)."""
    sde = ss.library.benes(m=1)
    x0 = np.random.default_rng(5).normal(0.3, 0.5, size=(400_000, 1))
    residual = {}
    for target in ("malliavin", "malliavin-richardson"):
        x, values = make_target_source(target, sde, 4).batch(x0, np.array([2]), seed=12)
        e = _bump_residual(x[0], values[0])[:, 0]
        residual[target] = (e.mean(), e.std() / np.sqrt(len(e)))
    plain, richardson = residual["malliavin"], residual["malliavin-richardson"]
    assert abs(plain[0]) > 10 * plain[1]
    assert abs(richardson[0]) < abs(plain[0]) / 1.5
