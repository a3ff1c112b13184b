"""Kernel mechanics: structure specialisation, record times, determinism, bad input, singular C."""
import numpy as np
import pytest
import sympy as sp

import symscore as ss
from conftest import brownian

t = sp.Symbol("t")


def test_separable_forced_through_coupled_path_gives_the_same_target(kernel):
    n, N = 500, 200
    x0 = np.random.default_rng(0).normal(size=(n, 3))
    dW = brownian(n, N, 3, 1.0, seed=1)
    separable = kernel("cubic3").simulate(x0, [0.5, 1.0], N, dW=dW)
    coupled = kernel("cubic3", variant=ss.Variant(force_coupled=True)).simulate(x0, [0.5, 1.0], N, dW=dW)
    assert kernel("cubic3").module.BLOCK0_LANES.shape == (3, 1)  # three 1-D lanes
    assert kernel("cubic3", variant=ss.Variant(force_coupled=True)).module.BLOCK0_LANES.shape == (1, 3)
    np.testing.assert_allclose(separable.x, coupled.x, rtol=0, atol=1e-12)
    np.testing.assert_allclose(separable.target, coupled.target, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["coupled2d", "benes1d", "vp2"])
def test_one_pass_equals_separate_runs_at_each_record_time(kernel, name):
    kern = kernel(name)
    n, N, times = 300, 400, [0.25, 0.5, 1.0]
    x0 = np.random.default_rng(4).normal(size=(n, kern.sde.m))
    dW = brownian(n, N, kern.sde.d, 1.0, seed=9)
    together = kern.simulate(x0, times, N, dW=dW)
    for r, tr in enumerate(times):
        steps = int(round(tr * N))
        alone = kern.simulate(x0, [tr], steps, dW=dW[:, :steps])
        np.testing.assert_allclose(together.target[:, r], alone.target[:, 0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(together.x[:, r], alone.x[:, 0], rtol=1e-12, atol=1e-12)


def test_paths_shapes_and_seed_determinism(kernel):
    kern = kernel("coupled2d")
    x0 = np.zeros((64, 2))
    a = kern.simulate(x0, [0.5, 1.0], 50, seed=3)
    b = kern.simulate(x0, [0.5, 1.0], 50, seed=3)
    c = kern.simulate(x0, [0.5, 1.0], 50, seed=4)
    assert a.t.shape == (2,) and a.x.shape == (64, 2, 2) and a.target.shape == (64, 2, 2)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.target, b.target)
    assert not np.allclose(a.x, c.x)
    # paths are independent: no two paths share their noise
    assert len(np.unique(a.x[:, 1, 0])) == 64


def test_seeded_increments_have_the_brownian_law(kernel):
    """With b = 0-like checks: VE has zero drift, so X_t - x0 ~ N(0, int sigma^2)."""
    sde = ss.SDE([sp.S.Zero], 2, [sp.Symbol("y")], t, name="scaled_bm")
    kern = ss.compile(sde)
    paths = kern.simulate(np.zeros((20000, 1)), [1.0], 10, seed=1)
    z = paths.x[:, 0, 0] / 2.0
    assert abs(z.mean()) < 4 / np.sqrt(20000) and abs(z.var() - 1) < 4 * np.sqrt(2 / 20000)
    # Brownian motion: the target is exactly -x / (4 t)
    np.testing.assert_allclose(paths.target[:, 0, 0], -paths.x[:, 0, 0] / 4.0, rtol=1e-12)


def test_second_process_reuses_the_cache(kernel):
    kern = ss.compile(kernel("coupled2d").sde)
    assert kern.was_cached and kern.path == kernel("coupled2d").path
    assert "Score kernel for the SDE `coupled2d`" in kern.source


def test_generated_source_is_readable_and_deterministic(kernel):
    source = kernel("coupled2d").source
    assert "# d b_0 / d x_1 = " in source and "tmp0 = " in source
    from symscore.compiler.codegen import render_source
    from symscore.compiler.ir import build_ir

    sde = kernel("coupled2d").sde
    assert render_source(sde, build_ir(sde.derive()), "numba", kernel("coupled2d").path.stem) == source


# -- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x0=np.zeros((4, 3))), r"x0: expected shape \(n, 2\)"),
        (dict(x0=np.zeros(2)), r"x0: expected shape \(n, 2\)"),
        (dict(x0=np.array([[0.0, np.nan]] * 4)), r"x0: expected finite values, row\(s\) \[0, 1, 2, 3\]"),
        (dict(times=[0.5, 0.25]), r"times: expected strictly increasing"),
        (dict(times=[0.0, 0.5]), r"times: every record time must lie in \(0, T\]"),
        (dict(times=[0.5, 2.0]), r"times: every record time must lie in \(0, T\]"),
        (dict(times=[0.33, 1.0]), r"record time 0.33 is not on the grid"),
        (dict(times=[]), r"times: expected a non-empty 1-D array"),
        (dict(n_steps=0), r"n_steps: expected an integer >= 1"),
        (dict(n_steps=10.5), r"n_steps: expected an integer >= 1"),
        (dict(dW=np.zeros((4, 10, 3))), r"dW: expected shape \(n, n_steps, d\) = \(4, 10, 2\)"),
        (dict(dW=np.zeros((4, 10, 2), dtype=int)), r"dW: expected a floating-point array"),
        (dict(seed=-1), r"seed: expected an integer >= 0"),
        (dict(ridge=-1.0), r"ridge: expected a finite number >= 0"),
    ],
)
def test_bad_simulate_input(kernel, kwargs, match):
    args = dict(x0=np.zeros((4, 2)), times=[0.5, 1.0], n_steps=10)
    args.update(kwargs)
    with pytest.raises(ss.SimulationInputError, match=match):
        kernel("coupled2d").simulate(**args)


def test_bad_compile_arguments(kernel):
    sde = kernel("coupled2d").sde
    with pytest.raises(ss.SymscoreError, match="backend: expected one of .numba., .torch."):
        ss.compile(sde, backend="jax")
    with pytest.raises(ss.SymscoreError, match="dtype"):
        ss.compile(sde, dtype="float16")
    with pytest.raises(ss.SymscoreError, match="sde: expected a symscore.SDE"):
        ss.compile("cubic")


def test_unprintable_function_names_expression_and_backend():
    x = sp.Symbol("x")
    sde = ss.SDE([-sp.besselj(0, x)], 1, [x], t, name="bessel")
    with pytest.raises(ss.UnsupportedExpressionError, match="numba backend cannot print besselj"):
        ss.compile(sde)


def test_vanishing_diffusion_raises_singular_malliavin_matrix():
    x = sp.Symbol("x")
    # sigma(t) = 0 up to t = 0.5: C_t = 0 at the first record time
    sde = ss.SDE([-x], sp.Piecewise((0, t < 0.5), (1, True)), [x], t, name="late_noise")
    kern = ss.compile(sde)
    with pytest.raises(ss.SingularMalliavinMatrixError,
                       match=r"singular or ill-conditioned .* on 10 paths, first at t = 0.25\. Failed paths by record "
                             r"time: t=0.25: 10\. To fix: .*ridge > 0"):
        kern.simulate(np.zeros((10, 1)), [0.25, 1.0], 100, seed=0)
    with pytest.warns(RuntimeWarning, match="their failed records are NaN"):
        paths = kern.simulate(np.zeros((10, 1)), [0.25, 1.0], 100, seed=0, on_failure="keep")
    assert np.isnan(paths.target[:, 0]).all() and np.isfinite(paths.target[:, 1]).all()
    assert paths.failed[:, 0].all() and not paths.failed[:, 1].any()
    # Tikhonov regularisation makes the target finite (and biased)
    assert np.isfinite(kern.simulate(np.zeros((10, 1)), [0.25], 25, ridge=1e-3).target).all()


def test_noise_that_reaches_no_coordinate_is_rejected_at_compile_time():
    x1, x2 = sp.symbols("x1 x2")
    sde = ss.SDE([-x1, -x2], sp.Matrix([[1], [0]]), [x1, x2], t, name="uncoupled")
    with pytest.raises(ss.SDESpecError, match="coordinate\\(s\\) x2 receive no noise"):
        ss.compile(sde)


def test_hypoelliptic_d_less_than_m_works():
    """d = 1 < m = 2, the drift carries the noise to x2: C_t is invertible, the target finite."""
    x1, x2 = sp.symbols("x1 x2")
    sde = ss.SDE([-x1, x1 - x2], sp.Matrix([[1], [0]]), [x1, x2], t, name="hypoelliptic")
    paths = ss.compile(sde).simulate(np.zeros((100, 2)), [0.5, 1.0], 100, seed=0)
    assert np.isfinite(paths.target).all()


def test_explosion_is_reported_not_returned_as_nan():
    x = sp.Symbol("x")
    sde = ss.SDE([x**3], 1, [x], t, name="explosive")
    with pytest.raises(ss.NonFiniteSimulationError, match="increase n_steps"):
        ss.compile(sde).simulate(np.full((10, 1), 3.0), [1.0], 10, seed=0)
