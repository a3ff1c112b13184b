"""Failure detection inside the kernels, on_failure = raise | drop | keep, and chunked simulation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

import symscore as ss
from conftest import brownian

t = sp.Symbol("t")
BACKENDS = ["numba", "torch"]


@pytest.fixture(scope="module")
def explosive():
    """dX = X^3 dt + dB: paths started at 3 explode within a few Euler steps of 0.1, paths at 0 do not."""
    x = sp.Symbol("x")
    sde = ss.SDE([x**3], 1, [x], t, name="explosive")
    return {backend: ss.compile(sde, backend=backend) for backend in BACKENDS}


def _explosive_inputs():
    x0 = np.zeros((12, 1))
    x0[[1, 4, 5, 9]] = 3.0
    return x0, [0.1, 0.5, 1.0], 10, brownian(12, 10, 1, 1.0, seed=0) * 0.1


def _first_nonfinite_step(x0, dW, dt):
    """The first step after which a plain numpy Euler scheme of X, its Y = dX/dx0 or C is not finite."""
    x, y, c = x0[:, 0].copy(), np.ones(len(x0)), np.zeros(len(x0))
    first = np.full(len(x0), dW.shape[1] + 1)
    with np.errstate(all="ignore"):
        for k in range(dW.shape[1]):
            c = c + dt / y**2                     # C += (Yi sigma)^2 dt with Yi = 1 / Y
            x, y = x + x**3 * dt + dW[:, k, 0], y + 3 * x**2 * y * dt
            bad = ~np.isfinite(x + y + c) & (first > dW.shape[1])
            first[bad] = k + 1
    return first


@pytest.mark.parametrize("backend", BACKENDS)
def test_explosion_raises_with_count_time_and_remedy(explosive, backend):
    x0, times, n_steps, dW = _explosive_inputs()
    first = _first_nonfinite_step(x0, dW, 0.1)
    assert (first[[1, 4, 5, 9]] <= n_steps).all() and (first[[0, 2, 3]] > n_steps).all()
    with pytest.raises(ss.NonFiniteSimulationError) as info:
        explosive[backend].simulate(x0, times, n_steps, dW=dW)
    message = str(info.value)
    k = int(first.min())
    assert message.startswith("4 of 12 paths failed; X, Y or C became non-finite on 4 paths")
    assert f"first after step {k} (t = {k * 0.1:g})" in message
    assert "increase n_steps" in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_and_keep(explosive, backend):
    x0, times, n_steps, dW = _explosive_inputs()
    first = _first_nonfinite_step(x0, dW, 0.1)
    record_steps = np.array([1, 5, 10])
    expected_failed = record_steps[None, :] >= first[:, None]
    with pytest.warns(RuntimeWarning, match="dropped 4 of 12 paths"):
        dropped = explosive[backend].simulate(x0, times, n_steps, dW=dW, on_failure="drop", as_numpy=True)
    assert dropped.x.shape == (8, 3, 1) and np.isfinite(dropped.target).all() and not dropped.failed.any()
    with pytest.warns(RuntimeWarning, match="their failed records are NaN"):
        kept = explosive[backend].simulate(x0, times, n_steps, dW=dW, on_failure="keep", as_numpy=True)
    np.testing.assert_array_equal(kept.failed, expected_failed)
    assert np.isnan(kept.target[expected_failed]).all() and np.isfinite(kept.target[~expected_failed]).all()
    # the surviving paths are exactly the sound ones, unchanged
    np.testing.assert_array_equal(dropped.target, kept.target[~expected_failed.any(axis=1)])


def test_both_backends_report_the_same_failures(explosive):
    x0, times, n_steps, dW = _explosive_inputs()
    reports = []
    for backend in BACKENDS:
        with pytest.warns(RuntimeWarning) as record:
            explosive[backend].simulate(x0, times, n_steps, dW=dW, on_failure="keep")
        reports.append(str(record[0].message))
    assert reports[0] == reports[1]


def test_ill_conditioned_malliavin_matrix_is_flagged_and_threshold_is_honoured():
    """sigma = [[1, 1], [1, 1 + 1e-7]] and b = -x: C_t = c(t) sigma sigma^T, condition number ~ 1e15.
    (A drift that rotates the noise, such as -x1 + sin(x2) / 4, would make C_t well conditioned.)"""
    x1, x2 = sp.symbols("x1 x2")
    sigma = sp.Matrix([[1, 1], [1, 1 + sp.Rational(1, 10**7)]])
    kern = ss.compile(ss.SDE([-x1, -x2], sigma, [x1, x2], t, name="nearly_singular"))
    x0 = np.zeros((20, 2))
    with pytest.raises(ss.SingularMalliavinMatrixError, match=r"20 of 20 paths failed.*condition estimate >= 1e\+12"):
        kern.simulate(x0, [0.5, 1.0], 50, seed=0)
    with pytest.warns(RuntimeWarning, match="20 of 20 paths failed"):
        kept = kern.simulate(x0, [0.5, 1.0], 50, seed=0, on_failure="keep")
    assert kept.failed.all()
    assert np.isfinite(kern.simulate(x0, [0.5, 1.0], 50, seed=0, ridge=1e-3).target).all()


def test_hypoelliptic_scaling_is_not_mistaken_for_ill_conditioning():
    """d = 1 < m = 2: C_t has entries of order t, t^2, t^3 (2-norm condition ~ 1/t^4), but its
    Jacobi-scaled condition stays O(1): a small record time (10 Euler steps) is fine. (After one
    step the discrete C is exactly rank one: the noise reaches x2 from the second step on.)"""
    x1, x2 = sp.symbols("x1 x2")
    kern = ss.compile(ss.SDE([-x1, x1 - x2], sp.Matrix([[1], [0]]), [x1, x2], t, name="hypoelliptic"))
    paths = kern.simulate(np.zeros((50, 2)), [1e-2, 1.0], 1000, seed=0)
    assert np.isfinite(paths.target).all() and not paths.failed.any()


def test_bad_failure_arguments(explosive):
    x0, times, n_steps, dW = _explosive_inputs()
    with pytest.raises(ss.SimulationInputError, match="on_failure: expected one of 'raise', 'drop', 'keep'"):
        explosive["numba"].simulate(x0, times, n_steps, on_failure="ignore")
    with pytest.raises(ss.SimulationInputError, match="cond_max: expected a finite number >= 1"):
        explosive["numba"].simulate(x0, times, n_steps, cond_max=0.5)
    with pytest.raises(ss.SimulationInputError, match="chunk_size: expected an integer >= 1"):
        explosive["numba"].simulate(x0, times, n_steps, chunk_size=0)


def test_failure_check_costs_nothing_when_nothing_fails(kernel):
    """The check must not change a sound run: same paths as the reference comparison relies on."""
    paths = kernel("coupled2d").simulate(np.zeros((64, 2)), [0.5, 1.0], 50, seed=3)
    assert paths.failed.shape == (64, 2) and not paths.failed.any()


# -- chunks --------------------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_numba_chunks_give_the_same_paths_for_a_seed(kernel, chunk_size):
    kern = kernel("coupled2d")
    x0 = np.random.default_rng(1).normal(size=(100, 2))
    whole = kern.simulate(x0, [0.5, 1.0], 40, seed=11)
    chunked = kern.simulate(x0, [0.5, 1.0], 40, seed=11, chunk_size=chunk_size)
    np.testing.assert_array_equal(whole.x, chunked.x)
    np.testing.assert_array_equal(whole.target, chunked.target)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunks_with_given_increments_are_exact(backend):
    kern = ss.compile(ss.library.cauchy(), backend=backend)
    x0 = np.random.default_rng(2).normal(size=(90, 2))
    dW = brownian(90, 30, 2, 1.0, seed=4)
    whole = kern.simulate(x0, [0.5, 1.0], 30, dW=dW, as_numpy=True)
    chunked = kern.simulate(x0, [0.5, 1.0], 30, dW=dW, chunk_size=25, as_numpy=True)
    np.testing.assert_array_equal(whole.target, chunked.target)


@pytest.mark.slow
def test_two_million_paths_stay_under_one_gib():
    """Issue 10: 2e6 paths at m = 2 with 10 record times, peak resident memory < 1 GiB (numba)."""
    script = Path(__file__).parents[1] / "benchmarks" / "bench_memory.py"
    out = subprocess.run([sys.executable, str(script), "--child", "numba", "200000", "--n", "2000000"],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    assert row["finite"] and row["peak_mib"] < 1024, row
