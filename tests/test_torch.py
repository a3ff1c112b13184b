"""torch backend: parity with numba, float32, devices, bad input (CUDA tests skip without a GPU)."""
import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symscore as ss
from conftest import brownian

t = sp.Symbol("t")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def parity(sde, n=400, n_steps=200, device="cpu", numba_kernel=None):
    x0 = np.random.default_rng(1).normal(scale=0.7, size=(n, sde.m))
    dW = brownian(n, n_steps, sde.d, sde.T, seed=2)
    reference = (numba_kernel or ss.compile(sde)).simulate(x0, [sde.T / 2, sde.T], n_steps, dW=dW)
    other = ss.compile(sde, backend="torch", device=device).simulate(x0, [sde.T / 2, sde.T], n_steps, dW=dW,
                                                                      as_numpy=True)
    return reference, other


@pytest.mark.parametrize("name", ["vp2", "cubic3", "benes2d", "coupled2d", "linear_coupled"])
def test_numba_and_torch_agree_to_1e10(kernel, name):
    reference, other = parity(kernel(name).sde, numba_kernel=kernel(name))
    # shared dW, but two implementations of the arithmetic (numba's libm, torch's vectorised
    # functions) whose last-place differences grow over 200 steps: to rounding
    np.testing.assert_allclose(other.x, reference.x, rtol=0, atol=1e-10)
    np.testing.assert_allclose(other.target, reference.target, rtol=1e-10, atol=1e-10)


coefficient = st.integers(-2, 2).map(lambda k: sp.Rational(k, 4))


@st.composite
def polynomial_sdes(draw):
    """Random polynomial drifts in 1-3 dimensions, damped by -x_i^3 so that Euler stays stable."""
    m = draw(st.integers(1, 3))
    x = sp.symbols(f"x1:{m + 1}")
    drift = []
    for i in range(m):
        linear = sum(draw(coefficient) * xj for xj in x)
        quadratic = sum(draw(coefficient) * x[j] * x[k] for j in range(m) for k in range(j, m))
        drift.append(-x[i] ** 3 + linear + quadratic / 2 + draw(coefficient) * t)
    sigma = sp.Matrix(m, m, lambda i, j: 1 if i == j else draw(coefficient) / 2)
    return ss.SDE(drift, sigma, list(x), t, name=f"poly{m}d")


@pytest.mark.slow  # six numba compiles; test_reference's random corpus checks every backend in make test
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(polynomial_sdes())
def test_parity_on_random_polynomial_drifts(sde):
    reference, other = parity(sde, n=200, n_steps=100)
    np.testing.assert_allclose(other.target, reference.target, rtol=1e-10, atol=1e-10)


def test_float32_against_float64(kernel):
    """float32 targets: median relative error below 1e-5, 99th percentile below 1e-3 (measured 3e-7, 2e-5)."""
    sde = kernel("coupled2d").sde
    x0 = np.random.default_rng(3).normal(size=(2000, 2))
    dW = brownian(2000, 200, 2, 1.0, seed=4)
    double = ss.compile(sde, backend="torch").simulate(x0, [0.5, 1.0], 200, dW=dW, as_numpy=True)
    single = ss.compile(sde, backend="torch", dtype="float32").simulate(x0, [0.5, 1.0], 200, dW=dW)
    assert single.target.dtype == torch.float32
    rel = np.abs(single.target.numpy() - double.target) / (np.abs(double.target) + 1e-3)
    assert np.median(rel) < 1e-5 and np.quantile(rel, 0.99) < 1e-3, (np.median(rel), np.quantile(rel, 0.99))


def test_torch_seed_determinism_and_tensor_output(kernel):
    kern = ss.compile(kernel("benes2d").sde, backend="torch")
    a = kern.simulate(np.zeros((100, 2)), [0.5, 1.0], 50, seed=5)
    b = kern.simulate(torch.zeros(100, 2), [0.5, 1.0], 50, seed=5)
    assert isinstance(a.target, torch.Tensor) and a.target.shape == (100, 2, 2) and a.t.shape == (2,)
    assert torch.equal(a.target, b.target)
    assert not torch.equal(a.x, kern.simulate(np.zeros((100, 2)), [0.5, 1.0], 50, seed=6).x)


def test_torch_reports_singular_malliavin_matrix():
    x = sp.Symbol("x")
    sde = ss.SDE([-x], sp.Piecewise((0, t < 0.5), (1, True)), [x], t, name="late_noise")
    with pytest.raises(ss.SingularMalliavinMatrixError):
        ss.compile(sde, backend="torch").simulate(np.zeros((10, 1)), [0.25, 1.0], 100)


def test_bad_torch_arguments(kernel):
    sde = kernel("coupled2d").sde
    with pytest.raises(ss.SymscoreError, match="dtype: the torch backend supports 'float64' or 'float32'"):
        ss.compile(sde, backend="torch", dtype="float16")
    with pytest.raises(ss.SymscoreError, match="device: expected 'cpu', 'cuda' or a torch.device"):
        ss.compile(sde, backend="torch", device="gpu0")
    with pytest.raises(ss.SymscoreError, match="compile: torch.compile applies to backend='torch' only"):
        ss.compile(sde, compile=True)
    kern = ss.compile(sde, backend="torch")
    with pytest.raises(ss.SimulationInputError, match=r"dW: expected shape \(n, n_steps, d\) = \(4, 10, 2\)"):
        kern.simulate(np.zeros((4, 2)), [1.0], 10, dW=torch.zeros(4, 10, 3))
    with pytest.raises(ss.SimulationInputError, match="dW: expected a floating-point tensor"):
        kern.simulate(np.zeros((4, 2)), [1.0], 10, dW=torch.zeros(4, 10, 2, dtype=torch.int64))
    with pytest.raises(ss.SimulationInputError, match=r"x0: expected shape \(n, 2\)"):
        kern.simulate(torch.zeros(4, 3), [1.0], 10)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_a_clear_error(kernel):
    with pytest.raises(ss.SymscoreError, match="device: cuda was requested but torch.cuda.is_available"):
        ss.compile(kernel("coupled2d").sde, backend="torch", device="cuda")


@cuda
@pytest.mark.parametrize("name", ["vp2", "cubic3", "coupled2d"])
def test_cuda_parity(kernel, name):
    reference, other = parity(kernel(name).sde, device="cuda", numba_kernel=kernel(name))
    np.testing.assert_allclose(other.target, reference.target, rtol=1e-10, atol=1e-10)
