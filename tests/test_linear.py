"""Linear SDEs from a deterministic x0: the target is the exact Gaussian score, per path.

For b = B(t) x + c(t), X_t | x0 ~ N(mu_t, Sigma_t) with mu' = B mu + c, Sigma' = B Sigma + Sigma B^T +
sigma sigma^T, so grad log p_t(y | x0) = -Sigma_t^{-1} (y - mu_t). The kernel's target equals it up to
the Euler error, which must shrink at first order in dt.
"""
import numpy as np
import pytest
import sympy as sp

from conftest import FACTORIES, brownian, coarsen


def gaussian_moments(sde, x0, t_end, n_sub=1000):
    """mu_t (n, m) and Sigma_t (m, m) at t_end by RK4 on the moment ODEs (exact to ~1e-12)."""
    der = sde.derive()
    B_fn = sp.lambdify(sde.time, der.jacobian.xreplace(sde.params), "numpy")
    c_expr = (sde.drift - der.jacobian * sp.Matrix(sde.state)).xreplace(sde.params)
    c_fn = sp.lambdify(sde.time, c_expr, "numpy")
    s_fn = sp.lambdify(sde.time, sde.bound_diffusion(), "numpy")

    def rhs(time, mu, cov):
        B = np.array(B_fn(time), dtype=float).reshape(sde.m, sde.m)
        c = np.array(c_fn(time), dtype=float).reshape(sde.m)
        s = np.array(s_fn(time), dtype=float).reshape(sde.m, sde.d)
        return mu @ B.T + c, B @ cov + cov @ B.T + s @ s.T

    mu, cov, h = np.array(x0, dtype=float), np.zeros((sde.m, sde.m)), t_end / n_sub
    for k in range(n_sub):
        s0 = k * h
        k1 = rhs(s0, mu, cov)
        k2 = rhs(s0 + h / 2, mu + h / 2 * k1[0], cov + h / 2 * k1[1])
        k3 = rhs(s0 + h / 2, mu + h / 2 * k2[0], cov + h / 2 * k2[1])
        k4 = rhs(s0 + h, mu + h * k3[0], cov + h * k3[1])
        mu = mu + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        cov = cov + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return mu, cov


@pytest.mark.parametrize("name", ["vp2", "ou2", "linear_coupled"])
def test_linear_target_is_the_gaussian_score_with_first_order_error(kernel, name):
    sde = FACTORIES[name]()
    n, T = 2000, 1.0
    times = np.array([0.25, 0.5, 1.0])
    rng = np.random.default_rng(11)
    x0 = rng.normal(size=(n, sde.m))
    dW_fine = brownian(n, 800, sde.d, T, seed=5)
    moments = [gaussian_moments(sde, x0, tr) for tr in times]
    errors = []
    for factor in (4, 2, 1):  # 200, 400, 800 steps of the same Brownian path
        paths = kernel(name).simulate(x0, times, 800 // factor, dW=coarsen(dW_fine, factor))
        err = []
        for r, (mu, cov) in enumerate(moments):
            exact = -np.linalg.solve(cov, (paths.x[:, r] - mu).T).T
            err.append(np.mean(np.abs(paths.target[:, r] - exact)) / np.mean(np.abs(exact)))
        errors.append(np.array(err))
    coarse, mid, fine = errors
    assert np.all(fine < 0.02), f"relative error at 800 steps {fine}"
    for a, b in ((coarse, mid), (mid, fine)):
        ratio = a / b
        assert np.all((ratio > 1.6) & (ratio < 2.5)), f"not first order: error ratios {ratio} ({a} -> {b})"
