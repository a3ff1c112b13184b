"""Built-in SDEs. Each is a plain function returning an :class:`~symscore.SDE`; nothing treats a
built-in specially, so a user's own SDE is no different.

Noise schedules use beta(t) = beta_min + t (beta_max - beta_min) on [0, T] (Song et al. 2021).
"""
from __future__ import annotations

import numpy as np
import sympy as sp

from .sde import SDE

__all__ = ["vp", "subvp", "ve", "ou", "cubic", "benes", "cauchy", "double_well", "benes_score",
           "benes_mixture_sample", "benes_mixture_score", "gbm", "gbm_score", "sinh_benes", "sinh_benes_score",
           "heavy_ou", "BUILTINS"]

t = sp.Symbol("t")


def _state(m: int) -> list[sp.Symbol]:
    return list(sp.symbols(f"x1:{m + 1}"))


def _linear_beta(beta_min, beta_max):
    bmin, bmax = sp.Symbol("beta_min"), sp.Symbol("beta_max")
    return bmin + t * (bmax - bmin), bmin * t + (bmax - bmin) * t**2 / 2, {"beta_min": beta_min, "beta_max": beta_max}


def vp(m: int = 2, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> SDE:
    """Variance-preserving SDE: dX = -beta(t) X / 2 dt + sqrt(beta(t)) dB (linear)."""
    x = _state(m)
    beta, _, params = _linear_beta(beta_min, beta_max)
    return SDE([-beta * xi / 2 for xi in x], sp.sqrt(beta), x, t, params, name="vp", T=T)


def subvp(m: int = 2, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> SDE:
    """Sub-VP SDE: dX = -beta X / 2 dt + sqrt(beta (1 - exp(-2 int_0^t beta))) dB (linear)."""
    x = _state(m)
    beta, integral, params = _linear_beta(beta_min, beta_max)
    sigma = sp.sqrt(beta * (1 - sp.exp(-2 * integral)))
    return SDE([-beta * xi / 2 for xi in x], sigma, x, t, params, name="subvp", T=T)


def ve(m: int = 2, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> SDE:
    """Variance-exploding SDE: dX = sigma_min (sigma_max/sigma_min)^t sqrt(2 log(sigma_max/sigma_min)) dB."""
    x = _state(m)
    smin, smax = sp.symbols("sigma_min sigma_max")
    sigma = smin * (smax / smin) ** t * sp.sqrt(2 * sp.log(smax / smin))
    return SDE([sp.S.Zero] * m, sigma, x, t, {"sigma_min": sigma_min, "sigma_max": sigma_max}, name="ve", T=T)


def ou(m: int = 2, theta: float = 1.0, mu: float = 0.0, sigma: float = float(np.sqrt(2.0)), T: float = 1.0) -> SDE:
    """Ornstein-Uhlenbeck SDE: dX = -theta (X - mu) dt + sigma dB; stationary N(mu, sigma^2 / (2 theta))."""
    x = _state(m)
    th, mu_s, s = sp.symbols("theta mu s")
    return SDE([-th * (xi - mu_s) for xi in x], s, x, t, {"theta": theta, "mu": mu, "s": sigma}, name="ou", T=T)


def cubic(m: int = 2, s: float = 1.0, T: float = 1.0) -> SDE:
    """Cubic-drift SDE: dX = -X^3 dt + s dB per coordinate (separable, nonlinear)."""
    x = _state(m)
    s_sym = sp.Symbol("s")
    return SDE([-xi**3 for xi in x], s_sym, x, t, {"s": s}, name="cubic", T=T)


def benes(m: int = 1, theta: float = 1.5, T: float = 1.0) -> SDE:
    """Benes SDE: dX = a tanh(a . X) dt + dB with a = theta (1, ..., 1) / sqrt(m), so |a| = theta.

    For m = 1 this is dX = theta tanh(theta X) dt + dB. It is the Doob h-transform of Brownian motion
    with h(t, x) = exp(-|a|^2 t / 2) cosh(a . x), so from X_0 = x0 the score is known exactly
    (:func:`benes_score`). Coupled for m >= 2.
    """
    x = _state(m)
    theta_s = sp.Symbol("theta")
    a = theta_s / sp.sqrt(m)
    inner = a * sum(x)
    return SDE([a * sp.tanh(inner) for _ in x], 1, x, t, {"theta": theta}, name="benes", T=T)


def benes_score(y, t_value: float, x0, theta: float = 1.5) -> np.ndarray:
    """Exact score of :func:`benes` from X_0 = x0: a tanh(a . y) - (y - x0) / t.

    Args:
        y: (n, m) points; t_value: time > 0; x0: (m,) initial point; theta: as in :func:`benes`.
    """
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    m = y.shape[1]
    a = np.full(m, theta / np.sqrt(m))
    return a * np.tanh(y @ a)[:, None] - (y - np.asarray(x0, dtype=np.float64)) / t_value


def benes_mixture_sample(n: int, t_value: float, mean, std: float, theta: float = 1.5, seed: int = 0) -> np.ndarray:
    """Samples of p_t for :func:`benes` started from p_0(x) proportional to cosh(a . x) N(x; mean, std^2 I).

    The h-transform keeps this family closed: p_t(y) is proportional to cosh(a . y) N(y; mean, v I)
    with v = std^2 + t, i.e. the two-component mixture of N(mean +- v a, v I) with weights
    proportional to exp(+- a . mean). ``t_value = 0`` samples the data law p_0 itself.
    """
    mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
    m = mean.size
    a = np.full(m, theta / np.sqrt(m))
    v = std**2 + t_value
    rng = np.random.default_rng(seed)
    plus = rng.uniform(size=n) < 1 / (1 + np.exp(-2 * a @ mean))
    centre = np.where(plus[:, None], mean + v * a, mean - v * a)
    return centre + np.sqrt(v) * rng.standard_normal((n, m))


def benes_mixture_score(y, t_value: float, mean, std: float, theta: float = 1.5) -> np.ndarray:
    """Exact score of :func:`benes` from the p_0 of :func:`benes_mixture_sample`:
    a tanh(a . y) - (y - mean) / (std^2 + t)."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    a = np.full(y.shape[1], theta / np.sqrt(y.shape[1]))
    return a * np.tanh(y @ a)[:, None] - (y - np.asarray(mean, dtype=np.float64)) / (std**2 + t_value)


def cauchy(m: int = 2, k: float = 1.0, s: float = 1.0, a: float = 0.0, beta_min: float = 1.0,
           beta_max: float = 25.0, T: float = 1.0) -> SDE:
    """Heavy-tailed SDE: b_i = -k beta(t) (x_i - a) / (1 + (x_i - a)^2), sigma = s sqrt(beta(t)).

    Its stationary law for fixed beta is Cauchy-like (density proportional to (1 + (x - a)^2)^(-k/s^2)).
    """
    x = _state(m)
    beta, _, params = _linear_beta(beta_min, beta_max)
    k_s, s_s, a_s = sp.symbols("k s a")
    drift = [-k_s * beta * (xi - a_s) / (1 + (xi - a_s) ** 2) for xi in x]
    return SDE(drift, s_s * sp.sqrt(beta), x, t, params | {"k": k, "s": s, "a": a}, name="cauchy", T=T)


def double_well(m: int = 2, s: float = 1.0, T: float = 1.0) -> SDE:
    """Double-well SDE: dX = (X - X^3) dt + s dB per coordinate, the gradient flow of (x^2 - 1)^2 / 4."""
    x = _state(m)
    s_sym = sp.Symbol("s")
    return SDE([xi - xi**3 for xi in x], s_sym, x, t, {"s": s}, name="double_well", T=T)


# -- state-dependent diffusion sigma(t, x) ----------------------------------------------------------
def gbm(m: int = 1, mu: float = 0.0, s: float = 0.5, T: float = 1.0) -> SDE:
    """Geometric Brownian motion per coordinate: dX_i = mu X_i dt + s X_i dB_i (Ito), for X_i > 0.

    From X_0 = x0, log X_t ~ N(log x0 + (mu - s^2 / 2) t, s^2 t): the score is :func:`gbm_score`
    (per path, with B_t the path's Brownian motion, -(s t + B_t) / (s t X_t)).
    """
    x = _state(m)
    mu_s, s_s = sp.symbols("mu s")
    return SDE([mu_s * xi for xi in x], sp.diag(*[s_s * xi for xi in x]), x, t, {"mu": mu, "s": s}, name="gbm", T=T)


def gbm_score(y, t_value: float, x0, mu: float = 0.0, s: float = 0.5) -> np.ndarray:
    """Exact score of :func:`gbm` from X_0 = x0 (y > 0): -(1 + (log(y / x0) - (mu - s^2/2) t) / (s^2 t)) / y."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    z = np.log(y / np.asarray(x0, dtype=np.float64)) - (mu - s**2 / 2) * t_value
    return -(1 + z / (s**2 * t_value)) / y


def sinh_benes(theta: float = 1.5, T: float = 1.0) -> SDE:
    """The 1-D Benes SDE seen through x = sinh(z): a Lamperti image with sigma(x) = sqrt(1 + x^2),

        dX = [sqrt(1 + X^2) theta tanh(theta asinh X) + X / 2] dt + sqrt(1 + X^2) dB,

    so Z = asinh(X) is the Benes SDE dZ = theta tanh(theta Z) dt + dB and the score is known
    exactly (:func:`sinh_benes_score`).
    """
    x = sp.Symbol("x1")
    theta_s = sp.Symbol("theta")
    sigma = sp.sqrt(1 + x**2)
    drift = sigma * theta_s * sp.tanh(theta_s * sp.asinh(x)) + x / 2
    return SDE([drift], sigma, [x], t, {"theta": theta}, name="sinh_benes", T=T)


def sinh_benes_score(y, t_value: float, x0, theta: float = 1.5) -> np.ndarray:
    """Exact score of :func:`sinh_benes` from X_0 = x0: (score_Z(asinh y) - sigma'(y)) / sigma(y) with
    score_Z the Benes score and sigma(y) = sqrt(1 + y^2)."""
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    sigma = np.sqrt(1 + y**2)
    score_z = benes_score(np.arcsinh(y), t_value, np.arcsinh(np.asarray(x0, dtype=np.float64)), theta)
    return (score_z - y / sigma) / sigma


def heavy_ou(m: int = 2, theta: float = 1.0, s: float = 1.0, T: float = 1.0) -> SDE:
    """A mean-reverting forward process whose noise grows with |x|, per coordinate:

        dX_i = -theta X_i dt + s sqrt(1 + X_i^2) dB_i.

    Its stationary law has density proportional to (1 + x^2)^-(1 + theta / s^2) (power tails, a
    scaled Student t with 1 + 2 theta / s^2 degrees of freedom): a forward process that forgets the
    data like an OU process but spreads it onto heavy tails, nonlinear in its diffusion.
    """
    x = _state(m)
    theta_s, s_s = sp.symbols("theta s")
    return SDE([-theta_s * xi for xi in x], sp.diag(*[s_s * sp.sqrt(1 + xi**2) for xi in x]), x, t,
               {"theta": theta, "s": s}, name="heavy_ou", T=T)


#: Built-in SDEs by name (the registry the command line and SPEC strings use).
BUILTINS = {f.__name__: f for f in (vp, subvp, ve, ou, cubic, benes, cauchy, double_well, gbm, sinh_benes, heavy_ou)}
