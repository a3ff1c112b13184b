"""Integration by parts on coupled nonlinear drifts: E[grad phi(X_t)] = E[phi(X_t) delta_t] = -E[phi target].

Checked for two bounded test functions and two record times of one pass, per coordinate, within
4 standard errors of the Monte Carlo mean of grad phi + phi * target.
"""
import numpy as np
import pytest


def gauss_bump(x):
    c = 0.3 * np.arange(1, x.shape[1] + 1)
    value = np.exp(-0.5 * np.sum((x - c) ** 2, axis=1))
    return value, -(x - c) * value[:, None]


def sine_wave(x):
    a = np.array([1.0, -0.7, 0.4])[: x.shape[1]]
    value = np.sin(x @ a + 0.2)
    return value, np.cos(x @ a + 0.2)[:, None] * a


@pytest.mark.parametrize("name, n_paths", [("coupled2d", 100_000), ("coupled3d", 60_000)])
def test_integration_by_parts(kernel, name, n_paths):
    kern = kernel(name)
    m = kern.sde.m
    x0 = np.random.default_rng(3).normal(scale=0.5, size=(n_paths, m))
    paths = kern.simulate(x0, [0.4, 0.8], 320, seed=7)
    for r in range(2):
        x, target = paths.x[:, r], paths.target[:, r]
        for phi in (gauss_bump, sine_wave):
            value, grad = phi(x)
            residual = grad + value[:, None] * target
            mean, se = residual.mean(axis=0), residual.std(axis=0, ddof=1) / np.sqrt(n_paths)
            assert np.all(np.abs(mean) <= 4 * se), (
                f"{name} t={paths.t[r]} {phi.__name__}: residual {mean} vs 4 SE {4 * se}")
            # the identity must be informative: grad phi is clearly non-zero
            assert np.any(np.abs(grad.mean(axis=0)) > 10 * se)
