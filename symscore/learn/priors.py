"""Priors: the law the reverse-time sampler starts from at t = T.

``make_prior(sde, ...)`` picks, in this order,

1. **gaussian** for linear drifts: X_T | X_0 ~ N(Phi_T X_0 + o_T, Sigma_T) (:class:`LinearMoments`),
   so with data mean mu_0 and covariance S_0 the prior is N(Phi_T mu_0 + o_T, Phi_T S_0 Phi_T^T + Sigma_T).
   Exact when the data are Gaussian, and as Phi_T -> 0 (VP, OU over long horizons) for any data.
2. **stationary** for separable drifts (each b_i depends on t and x_i only, sigma diagonal): per
   coordinate the stationary law of the SDE frozen at t = T, density proportional to
   exp(int 2 b_i(T, y) / sigma_ii(T)^2 dy). In one dimension every drift is a gradient, so this is
   exp(-2 U / s^2). A drift whose density is (1 + (y - a)^2 / c)^(-p) (the ``cauchy`` SDE) is
   recognised symbolically and sampled as a Student t (Cauchy when p = 1); otherwise the density
   is tabulated on a grid wide enough for its tails and sampled by the inverse CDF. This is exact
   only when X_T has mixed; a drift that does not confine (no normalisable density) falls through.
   With forward-simulated endpoints at hand (a trained model carries 2048), ``auto`` first tests
   that it has (:func:`unmixed_coordinates`: the body by Kolmogorov-Smirnov, the tails by counts
   beyond the law's 1% and 99% quantiles), and a rejection falls through to the endpoints. The
   ``cauchy`` SDE of the Malliavin paper has not mixed in its tails at T = 1 from 2-D toy data:
   the body matches (KS distance 0.06) but the largest of 2048 checkerboard endpoints is 13 where
   the Cauchy law puts 1% beyond 60; the reverse SDE cannot bring such points back (sliced W2 2.1
   against 0.10 on the checkerboard, measured).
3. **empirical** otherwise: forward-simulated data endpoints X_T (drawn with replacement). This
   is the law of X_T up to sampling error but carries no density (no log-likelihood).
"""
from __future__ import annotations

import logging

import numpy as np
import sympy as sp
from scipy import integrate, stats

from .._errors import SymscoreError
from .._registry import Registry
from .linear_moments import LinearMoments
from .numeric_sde import NumericSDE

__all__ = ["Prior", "GaussianPrior", "ProductPrior", "EmpiricalPrior", "make_prior", "PRIORS", "register_prior",
           "PriorNotApplicable"]

logger = logging.getLogger("symscore")


class Prior:
    """A law on R^m to start the reverse-time sampler from."""

    kind = ""
    has_density = True

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def log_density(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class GaussianPrior(Prior):
    """N(mean, cov)."""

    kind = "gaussian"

    def __init__(self, mean, cov):
        self.mean, self.cov = np.asarray(mean, dtype=np.float64), np.asarray(cov, dtype=np.float64)
        self._law = stats.multivariate_normal(self.mean, self.cov)

    def sample(self, n, rng):
        return self._law.rvs(size=n, random_state=rng).reshape(n, -1)

    def log_density(self, x):
        return np.atleast_1d(self._law.logpdf(x))

    def __repr__(self):
        return f"GaussianPrior(mean={np.round(self.mean, 4).tolist()}, cov diag={np.round(np.diag(self.cov), 4).tolist()})"


class _GridLaw:
    """A 1-D law given by its log density on a grid: inverse CDF by interpolation."""

    def __init__(self, grid, log_density):
        density = np.exp(log_density - log_density.max())
        cdf = integrate.cumulative_trapezoid(density, grid, initial=0.0)
        self.grid, self.cdf = grid, cdf / cdf[-1]
        self.log_norm = np.log(cdf[-1]) + log_density.max()
        self.log_pdf = log_density

    def ppf(self, u):
        return np.interp(u, self.cdf, self.grid)

    def logpdf(self, y):
        inside = (y >= self.grid[0]) & (y <= self.grid[-1])
        return np.where(inside, np.interp(y, self.grid, self.log_pdf) - self.log_norm, -np.inf)


class ProductPrior(Prior):
    """Independent coordinates, each a scipy frozen law or a tabulated :class:`_GridLaw`."""

    kind = "stationary"

    def __init__(self, laws, descriptions):
        self.laws, self.descriptions = laws, descriptions

    def sample(self, n, rng):
        u = rng.uniform(size=(n, len(self.laws)))
        return np.stack([law.ppf(u[:, i]) for i, law in enumerate(self.laws)], axis=1)

    def log_density(self, x):
        return sum(law.logpdf(x[:, i]) for i, law in enumerate(self.laws))

    def __repr__(self):
        return f"ProductPrior({'; '.join(self.descriptions)})"


class EmpiricalPrior(Prior):
    """Forward-simulated endpoints X_T, resampled with replacement (no density)."""

    kind = "empirical"
    has_density = False

    def __init__(self, points):
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[0] < 1 or not np.isfinite(points).all():
            raise SymscoreError(f"prior: expected a finite (n, m) array of endpoints, got shape {points.shape}")
        self.points = points

    def sample(self, n, rng):
        return self.points[rng.integers(self.points.shape[0], size=n)]

    def log_density(self, x):
        raise SymscoreError("prior: the empirical prior (forward-simulated endpoints) has no density; "
                            "log_likelihood needs a Gaussian or stationary prior")

    def __repr__(self):
        return f"EmpiricalPrior({self.points.shape[0]} endpoints)"


# -- the stationary law of a separable drift --------------------------------------------------
def _student_t(log_slope: sp.Expr, y: sp.Symbol):
    """If d/dy log p = -2 p (y - a) / (c + (y - a)^2), the Student t law it integrates to, else None."""
    numer, denom = sp.fraction(sp.cancel(sp.together(log_slope)))
    try:
        num_poly, den_poly = sp.Poly(numer, y), sp.Poly(denom, y)
    except sp.PolynomialError:
        return None
    if den_poly.degree() != 2 or num_poly.degree() != 1 or not all(c.is_number for c in den_poly.all_coeffs() + num_poly.all_coeffs()):
        return None
    A, B, C = (float(c) for c in den_poly.all_coeffs())
    n1, n0 = (float(c) / A for c in num_poly.all_coeffs())
    a = -B / (2 * A)
    c, p = C / A - a * a, -n1 / 2
    if c <= 0 or p <= 0.5 or abs(n0 - 2 * p * a) > 1e-12 * max(1.0, abs(n0)):
        return None
    df = 2 * p - 1  # (1 + (y-a)^2/c)^(-p) = Student t with df = 2p - 1 and scale sqrt(c / df)
    return stats.t(df=df, loc=a, scale=np.sqrt(c / df)), f"Student t(df={df:g}, loc={a:g}, scale={np.sqrt(c / df):g})"


def _tabulated(log_slope: sp.Expr, y: sp.Symbol, n_grid: int = 20001, drop: float = 60.0):
    """Tabulate exp(int_0^y log_slope) on a grid wide enough that the density falls by e^-drop."""
    slope = sp.lambdify(y, log_slope, "numpy")
    for half_width in 2.0 ** np.arange(1, 15):
        grid = np.linspace(-half_width, half_width, n_grid)
        values = np.broadcast_to(np.asarray(slope(grid), dtype=np.float64), grid.shape)
        if not np.isfinite(values).all():
            return None
        log_density = integrate.cumulative_trapezoid(values, grid, initial=0.0)
        log_density -= log_density[n_grid // 2]
        if max(log_density[0], log_density[-1]) < log_density.max() - drop:
            return _GridLaw(grid, log_density), f"tabulated on [-{half_width:g}, {half_width:g}]"
    return None


def stationary_prior(sde) -> ProductPrior | None:
    """The product of per-coordinate stationary laws at t = T, or None when a coordinate has none."""
    derivation = sde.derive()
    if not derivation.is_separable:
        return None
    drift, sigma = sde.bound_drift().xreplace({sde.time: sde.T}), sde.bound_diffusion().xreplace({sde.time: sde.T})
    laws, descriptions = [], []
    for i, xi in enumerate(sde.state):
        variance = sp.nsimplify(sigma[i, i] ** 2) if sigma[i, i].is_number else None
        if variance is None or float(variance) <= 0:
            return None
        log_slope = sp.simplify(2 * drift[i] / variance)
        found = _student_t(log_slope, xi) or _tabulated(log_slope, xi)
        if found is None:
            return None
        laws.append(found[0])
        descriptions.append(f"x{i + 1}: {found[1]}")
    return ProductPrior(laws, descriptions)


class PriorNotApplicable(SymscoreError):
    """A prior kind does not apply to this SDE (or lacks the data it needs); ``auto`` tries the next."""


#: Registered prior builders by kind, in the order ``kind="auto"`` tries them:
#: ``builder(sde, *, data_mean, data_cov, endpoints) -> Prior`` or raise :class:`PriorNotApplicable`.
PRIORS = Registry("prior")
#: Function decorator: register a prior builder under a kind (tried by ``auto`` in registration order).
register_prior = PRIORS.register


@register_prior("gaussian")
def gaussian_prior(sde, *, data_mean=None, data_cov=None, endpoints=None) -> Prior:
    """The exact Gaussian law of X_T of a linear SDE, from the data's mean and covariance (zero if unknown)."""
    derivation = sde.derive()
    if not derivation.is_linear:
        raise PriorNotApplicable(f"prior: 'gaussian' needs a linear SDE; {sde.name!r} is {derivation.structure}")
    m = sde.m
    mean0 = np.zeros(m) if data_mean is None else np.asarray(data_mean, dtype=np.float64)
    cov0 = np.zeros((m, m)) if data_cov is None else np.asarray(data_cov, dtype=np.float64)
    if data_mean is None:
        logger.info("prior: data moments unknown; using the law of X_T from X_0 = 0")
    return GaussianPrior(*LinearMoments(NumericSDE(sde)).marginal(sde.T, mean0, cov0))


#: Significance of the test that X_T has mixed (module docstring), over all coordinates.
MIXING_LEVEL = 1e-3
#: Tail levels of the exceedance counts in the mixing test (module docstring).
TAIL_LEVELS = (0.01, 0.99)


def unmixed_coordinates(prior: ProductPrior, endpoints) -> list[tuple[int, str, float]]:
    """(coordinate, what differs, p-value) of each coordinate where forward-simulated ``endpoints``
    reject the stationary ``prior`` at level :data:`MIXING_LEVEL` (Bonferroni over the tests).

    Per coordinate: a two-sample Kolmogorov-Smirnov test against a seeded draw from the law (the
    body), and for each of :data:`TAIL_LEVELS` a binomial test of how many endpoints lie beyond
    the law's quantile there (the tails, which KS hardly sees: a heavy-tailed law that has not
    mixed can match the endpoints' body to a KS distance of 0.06 and still put 1% of its mass
    four times beyond their largest value)."""
    endpoints = np.asarray(endpoints, dtype=np.float64)
    n, m = endpoints.shape
    draw = prior.sample(n, np.random.default_rng(0))
    level = MIXING_LEVEL / (m * (1 + len(TAIL_LEVELS)))
    rejected = []
    for i, law in enumerate(prior.laws):
        body = stats.ks_2samp(endpoints[:, i], draw[:, i])
        tests = [(f"KS distance {body.statistic:.3f}", body.pvalue)]
        for q in TAIL_LEVELS:
            quantile = float(law.ppf(q))
            beyond = int((endpoints[:, i] < quantile).sum() if q < 0.5 else (endpoints[:, i] > quantile).sum())
            expected = n * min(q, 1 - q)
            tests.append((f"{beyond} endpoints beyond the law's {q:g} quantile {quantile:.3g}, "
                          f"{expected:.1f} expected", stats.binomtest(beyond, n, min(q, 1 - q)).pvalue))
        what, pvalue = min(tests, key=lambda test: test[1])
        if pvalue < level:
            rejected.append((i, what, float(pvalue)))
    return rejected


@register_prior("stationary")
def stationary_product_prior(sde, *, endpoints=None, mixing_test: bool = False, **data) -> Prior:
    """The stationary product law of a separable, confining drift with diagonal sigma; with
    ``mixing_test`` (what ``auto`` asks) and endpoints, only if they do not reject it."""
    prior = stationary_prior(sde)
    if prior is None:
        raise PriorNotApplicable(f"prior: {sde.name!r} has no stationary product law at T (the drift is not "
                                 "separable, sigma is not diagonal, or the drift does not confine)")
    if mixing_test and endpoints is not None and len(endpoints) >= 2:
        rejected = unmixed_coordinates(prior, endpoints)
        if rejected:
            i, what, pvalue = rejected[0]
            message = (f"X_T of {sde.name!r} has not reached its stationary law at T = {sde.T} (x{i + 1}: {what} "
                       f"in {len(endpoints)} forward-simulated endpoints, p = {pvalue:.1e})")
            logger.info("prior: %s", message)
            raise PriorNotApplicable(f"prior: {message}")
    return prior


@register_prior("empirical")
def empirical_prior(sde, *, endpoints=None, **data) -> Prior:
    """The empirical law of forward-simulated data endpoints X_T (any SDE)."""
    if endpoints is None:
        raise PriorNotApplicable(f"prior: {sde.name!r} needs the empirical prior (forward-simulated data endpoints); "
                                 "pass a ScoreModel trained by ss.train, data=..., or prior=<(n, m) array of X_T samples>")
    logger.info("prior: empirical law of %d forward-simulated data endpoints X_T", len(endpoints))
    return EmpiricalPrior(endpoints)


def make_prior(sde, kind: str = "auto", *, data_mean=None, data_cov=None, endpoints=None) -> Prior:
    """The prior at t = T for ``sde``.

    Args:
        kind: a registered kind (``"gaussian"`` for linear SDEs, ``"stationary"`` for separable
            confining drifts, ``"empirical"``), or ``"auto"``: the first registered kind that applies,
            in that order (see the module docstring); ``auto`` takes the stationary law only if the
            endpoints, when given, do not reject it.
        data_mean, data_cov: moments of the data (Gaussian prior); zero when not known.
        endpoints: forward-simulated X_T of data points (empirical prior).
    """
    data = {"data_mean": data_mean, "data_cov": data_cov, "endpoints": endpoints}
    if kind != "auto":
        return PRIORS.lookup(kind, extra=("auto",))(sde, **data)
    for name, builder in PRIORS.items():
        try:
            return builder(sde, **data, **({"mixing_test": True} if name == "stationary" else {}))
        except PriorNotApplicable as exc:
            reason = exc
    raise reason
