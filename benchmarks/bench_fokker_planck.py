"""Accuracy, convergence order and cost of ss.truth.fokker_planck against closed forms.

Each case is an SDE with m = 1 or 2 whose law p_t is known exactly (the cases of
tests/test_truth_fokker_planck.py, their closed forms written again here):

* ``ou``, ``vp`` (1-D and 2-D) from Gaussian mixtures, the correlated-noise OU (D_12 = 0.8) and the
  critically damped Langevin (``cld``, D = diag(0, 4), hypoelliptic): linear SDEs, so p_t is the
  mixture carried by the exact moments (ss.truth.linear_mixture);
* ``benes``, dX = theta tanh(theta X) dt + dB from p_0 proportional to cosh(theta x) N(x; mu, s^2):
  p_t proportional to cosh(theta y) N(y; mu, s^2 + t) (ss.library.benes_mixture_score / _sample);
* ``gbm``, dX = mu X dt + s X dB from a lognormal p_0 (a callable density): log X_t ~
  N(a + (mu - s^2 / 2) t, b^2 + s^2 t), a state-dependent sigma whose div D enters the flux.

Each is solved on 2-3 grids (cells per axis). Table 1 gives, per grid and time, the p_t-weighted
relative L2 error of the score, sqrt(E|s_fp - s|^2 / E|s|^2) over 20000 exact draws from p_t (seed
10 + k at the k-th time), the observed order log(e_coarse / e_fine) / log(h_coarse / h_fine) between
successive grids (2 for a second-order scheme), the solver's own ``error_estimate`` (against a solve
with half the cells per axis; about 3x the error where the scheme is second order) and its ratio to
the true error, mass - 1, ``solution.method`` and the wall-clock seconds of the ``fokker_planck`` call
(the half-cells solve behind ``error_estimate`` included). Table 2 gives the deliberately wrong solves
of the tests (a dropped div D, first-order upwinding on the noiseless axis, a dropped D_12) and the
error each leaves, beside the right solve on the same grid.

Run: python benchmarks/bench_fokker_planck.py [--quick]   (full: a few minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import sympy as sp

import symscore as ss
from symscore.truth import GaussianMixture, fokker_planck, linear_mixture

x1, x2, t = sp.symbols("x1 x2 t")
P0_1D = GaussianMixture([0.4, 0.6], [[-1.5], [1.0]], [[[0.2]], [[0.3]]])
P0_2D = GaussianMixture([0.5, 0.5], [[-1.0, 0.5], [1.0, -0.3]],
                        [[[0.3, 0.1], [0.1, 0.2]], [[0.25, -0.05], [-0.05, 0.3]]])
BOX_1D, BOX_2D, BOX_CLD = (-7.0, 7.0), ((-6.0, 6.0), (-6.0, 6.0)), ((-5.0, 5.0), (-7.0, 7.0))
TIMES_1D, TIMES_2D = (0.1, 0.5, 1.0), (0.25, 0.5, 1.0)
BENES = dict(theta=1.5, mean=0.3, std=0.5)
GBM = dict(mu=0.1, s=0.4, a=0.0, b=0.2)
N_DRAWS = 20_000


def cld() -> ss.SDE:
    """Critically damped Langevin: dx = v dt, dv = (-x - 2 v) dt + 2 dW (D = diag(0, 4))."""
    return ss.SDE([x2, -x1 - 2 * x2], sp.Matrix([[0], [2]]), [x1, x2], t, name="cld")


def ou_correlated() -> ss.SDE:
    """dX = -X dt + sigma dW, sigma = [[1, 0], [0.8, 0.6]]: D = [[1, 0.8], [0.8, 1]]."""
    return ss.SDE([-x1, -x2], sp.Matrix([[1.0, 0.0], [0.8, 0.6]]), [x1, x2], t, name="ou_correlated")


def ou_uncorrelated() -> ss.SDE:
    """The correlated OU with its cross term dropped: D = diag(1, 1) (a deliberately wrong SDE)."""
    return ss.SDE([-x1, -x2], 1.0, [x1, x2], t, name="ou_uncorrelated")


def benes_p0() -> GaussianMixture:
    """cosh(theta x) N(x; mean, std^2), normalised: the mixture of N(mean +- theta std^2, std^2)."""
    theta, mean, std = BENES["theta"], BENES["mean"], BENES["std"]
    return GaussianMixture(np.exp([theta * mean, -theta * mean]),
                           [[mean + theta * std**2], [mean - theta * std**2]], [[[std**2]], [[std**2]]])


def lognormal(mean_log: float, var_log: float):
    """The density of exp(N(mean_log, var_log)) on (n, 1) points (0 at x <= 0)."""
    def density(x):
        x = np.asarray(x)[:, 0]
        out = np.zeros(x.shape)
        y = x[x > 0]
        out[x > 0] = np.exp(-(np.log(y) - mean_log) ** 2 / (2 * var_log)) / (y * np.sqrt(2 * np.pi * var_log))
        return out
    return density


class Exact:
    """Exact draws from p_t and its score: ``sample(n, t, seed)`` and ``score(x, t)``."""

    def __init__(self, sample, score):
        self.sample, self.score = sample, score


def linear_exact(sde, p0, times) -> Exact:
    solution = linear_mixture(sde, p0, times)
    return Exact(solution.sample, solution.score)


def benes_exact() -> Exact:
    mean, std, theta = [BENES["mean"]], BENES["std"], BENES["theta"]
    return Exact(lambda n, tv, seed: ss.library.benes_mixture_sample(n, tv, mean, std, theta, seed=seed),
                 lambda y, tv: ss.library.benes_mixture_score(y, tv, mean, std, theta))


def gbm_exact() -> Exact:
    """log X_t ~ N(m_t, v_t), m_t = a + (mu - s^2 / 2) t, v_t = b^2 + s^2 t: score -(1 + (log y - m_t) / v_t) / y."""
    mu, s, a, b = GBM["mu"], GBM["s"], GBM["a"], GBM["b"]

    def moments(tv):
        return a + (mu - s**2 / 2) * tv, b**2 + s**2 * tv

    def sample(n, tv, seed):
        m_t, v_t = moments(tv)
        return np.exp(m_t + np.sqrt(v_t) * np.random.default_rng(seed).standard_normal((n, 1)))

    def score(y, tv):
        m_t, v_t = moments(tv)
        return -(1 + (np.log(y) - m_t) / v_t) / y
    return Exact(sample, score)


def cases(quick: bool) -> list:
    """(name, sde, p0, bounds, times, cells per axis of each grid, exact)."""
    one, two, two_cld = ((100, 200), (96, 128), (112, 160)) if quick else \
        ((100, 200, 400), (96, 144, 192), (112, 168, 224))
    gbm = ss.library.gbm(m=1, mu=GBM["mu"], s=GBM["s"])
    out = []
    for name in ("ou", "vp"):
        sde = getattr(ss.library, name)(m=1)
        out.append((f"{name} 1-D", sde, P0_1D, BOX_1D, TIMES_1D, one, linear_exact(sde, P0_1D, TIMES_1D)))
    out += [("benes 1-D", ss.library.benes(m=1, theta=BENES["theta"]), benes_p0(), (-8.0, 9.0), TIMES_2D,
             tuple(3 * n // 2 for n in one), benes_exact()),
            ("gbm 1-D", gbm, lognormal(GBM["a"], GBM["b"] ** 2), (0.0, 8.0), (0.25, 0.5),
             tuple(2 * n for n in one), gbm_exact())]
    for name, sde, box, cells in (("ou 2-D", ss.library.ou(m=2), BOX_2D, two),
                                  ("vp 2-D", ss.library.vp(m=2), BOX_2D, two),
                                  ("cld 2-D", cld(), BOX_CLD, two_cld),
                                  ("ou_corr 2-D", ou_correlated(), BOX_2D, two)):
        out.append((name, sde, P0_2D, box, TIMES_2D, cells, linear_exact(sde, P0_2D, TIMES_2D)))
    return out


def score_errors(fp, exact: Exact, times, n: int) -> np.ndarray:
    """(K,) sqrt(E|s_fp - s|^2 / E|s|^2) over n exact draws from p_t (seed 10 + k at the k-th time)."""
    errors = []
    for k, tv in enumerate(times):
        x = exact.sample(n, tv, seed=10 + k)
        s, e = fp.score(x, tv), exact.score(x, tv)
        errors.append(np.sqrt(np.mean(np.sum((s - e) ** 2, axis=1)) / np.mean(np.sum(e**2, axis=1))))
    return np.array(errors)


def solve(sde, p0, times, cells, bounds, **options):
    """(solution, seconds, warnings as short tags) of one fokker_planck call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        fp = fokker_planck(sde, p0, times, cells=cells, bounds=bounds, **options)
        seconds = time.perf_counter() - start
    tags = sorted({"p<0" if "negative" in str(w.message) else "est>tol" for w in caught
                   if issubclass(w.category, RuntimeWarning)})
    return fp, seconds, ",".join(tags)


def accuracy_table(quick: bool, n: int) -> dict:
    print(f"1. score error against the closed form ({n} exact draws per time); order = log(e_prev / e) / "
          "log(h_prev / h); estimate = solution.error_estimate (half-cells solve); seconds include that solve\n")
    print("| case | cells | t | score error | order | estimate | est/err | mass - 1 | method | seconds | warn |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    right = {}
    for name, sde, p0, bounds, times, grids, exact in cases(quick):
        previous = None
        for cells in grids:
            fp, seconds, tags = solve(sde, p0, times, cells, bounds)
            errors = score_errors(fp, exact, times, n)
            right[(name, cells)] = errors
            for k, tv in enumerate(times):
                order = "" if previous is None else \
                    f"{np.log(previous[1][k] / errors[k]) / np.log(cells / previous[0]):.2f}"
                first = k == 0
                print(f"| {name} | {cells} | {tv:g} | {errors[k]:.2e} | {order} | {fp.error_estimate[k]:.2e} | "
                      f"{fp.error_estimate[k] / errors[k]:.2f} | {fp.mass[k] - 1:.1e} | {fp.method if first else ''} | "
                      f"{f'{seconds:.1f}' if first else ''} | {tags if first else ''} |", flush=True)
            previous = (cells, errors)
    return right


def wrong_table(quick: bool, n: int, right: dict) -> None:
    """The tests' deliberately wrong solves: each must leave an error far above the right solve's."""
    print(f"\n2. deliberately wrong solves against the same closed form ({n} draws); right = the correct "
          "solve on the same grid (table 1)\n")
    print("| variant | what is wrong | cells | score error at each t | right | seconds |")
    print("|---|---|---|---|---|---|")
    mu, s = GBM["mu"], GBM["s"]
    cells_cld, cells_cor, cells_gbm = (112, 96, 400) if quick else (224, 96, 400)
    variants = [
        ("gbm 1-D", "drift mu + s^2: the same as dropping -(div D) / 2 from the flux",
         ss.library.gbm(m=1, mu=mu + s**2, s=s), lognormal(GBM["a"], GBM["b"] ** 2), (0.0, 8.0), (0.25, 0.5),
         cells_gbm, {}, gbm_exact()),
        ("cld 2-D", 'noiseless="upwind": first-order upwinding on the position axis', cld(), P0_2D, BOX_CLD,
         TIMES_2D, cells_cld, {"noiseless": "upwind"}, linear_exact(cld(), P0_2D, TIMES_2D)),
        ("ou_corr 2-D", "SDE without its cross term (D = diag(1, 1), D_12 = 0.8 dropped)", ou_uncorrelated(),
         P0_2D, BOX_2D, TIMES_2D, cells_cor, {}, linear_exact(ou_correlated(), P0_2D, TIMES_2D)),
    ]
    for name, why, sde, p0, bounds, times, cells, options, exact in variants:
        fp, seconds, _ = solve(sde, p0, times, cells, bounds, estimate_error=False, **options)
        errors = score_errors(fp, exact, times, n)
        correct = right.get((name, cells))
        shown = ", ".join(f"{e:.2e}" for e in correct) if correct is not None else "-"
        print(f"| {name} | {why} | {cells} | {', '.join(f'{e:.2e}' for e in errors)} | {shown} | {seconds:.1f} |",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two grids per case, 5000 draws (a smoke run)")
    args = parser.parse_args()
    n = 5_000 if args.quick else N_DRAWS
    start = time.perf_counter()
    right = accuracy_table(args.quick, n)
    wrong_table(args.quick, n, right)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
