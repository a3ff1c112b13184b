"""The learned score of a spherical field, with and without Cameron-Martin preconditioning.

Data: a two-component Gaussian mixture of fields, x0 = +-mu + N(0, diag a) with equal weights,
where mu is one fixed Whittle-Matern field of (kappa, alpha) = (4, 2.5) and a_l = C_l(4, 2.5)
(smoother than the noise). The forward SDE dX = -X dt + sqrt(2) dW^Q, Q of (kappa, alpha) = (4, 2),
keeps it a mixture: X_t = +-e^-t mu + N(0, diag v_t), v_t = a e^-2t + C (1 - e^-2t), so the score

    s(x, t) = -(x - e^-t (r_+ - r_-) mu) / v_t,   r_+- the posterior weights of the components,

is exact, bimodal (the Gaussian skip is not the answer), and the errors of a learned s_hat are
measured exactly, averaged over fresh X_t at the times t in TIMES:

    Euclidean:       E |s_hat - s|^2 / E |s|^2
    Cameron-Martin:  E (s_hat - s)^T Q (s_hat - s) / E s^T Q s     (= E |Q^1/2 (s_hat - s)|^2 / ...)

The Euclidean error is dominated by the top degrees, whose scores grow like l^(2 alpha); the
Cameron-Martin error weighs every coefficient alike in the units of the noise. Each of the
preconditionings of :func:`symscore.train` ("euclidean" = none, "coordinate" = measured per
coordinate, "cameron-martin" = Q) trains with the same seed, steps, network and Gaussian skip;
a last row is Cameron-Martin without the skip (width 256 < m from L = 16 on).

    python benchmarks/bench_fields.py [--L 8 16 32] [--steps 1500] [--runs cameron-martin:skip ...]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import symscore as ss
from symscore.fields import SphericalHarmonics, whittle_matern_sde, whittle_matern_spectrum
from symscore.learn.model import PRECONDITIONINGS

TIMES = (0.05, 0.2, 0.5, 1.0, 2.0)
RUNS = (("euclidean", True), ("coordinate", True), ("cameron-martin", True), ("cameron-martin", False))


class Mixture:
    """x0 = +-mu + N(0, diag a) and its exact score under the forward SDE."""

    def __init__(self, L, seed=0):
        degrees = SphericalHarmonics(L).degrees
        self.a = whittle_matern_spectrum(L, 4.0, 2.5)[degrees]
        self.q = whittle_matern_spectrum(L)[degrees]
        self.mu = np.random.default_rng(seed).standard_normal(degrees.size) * np.sqrt(2 * self.a)

    def sample(self, n, t, rng):
        sign = rng.choice([-1.0, 1.0], size=(n, 1))
        v = self.variance(t)
        return sign * np.exp(-t) * self.mu + rng.standard_normal((n, self.mu.size)) * np.sqrt(v)

    def variance(self, t):
        return self.a * np.exp(-2 * t) + self.q * (1 - np.exp(-2 * t))

    def score(self, x, t):
        v, mean = self.variance(t), np.exp(-t) * self.mu
        logit = 2 * (x @ (mean / v))  # log r_+ - log r_-
        weight = np.tanh(logit / 2)[:, None]  # r_+ - r_-
        return -(x - weight * mean) / v


def score_errors(model, mixture, n=4000, seed=1):
    """(Euclidean, Cameron-Martin) relative squared errors of ``model`` averaged over TIMES."""
    rng = np.random.default_rng(seed)
    euclid, cm = [], []
    for t in TIMES:
        x = mixture.sample(n, t, rng)
        exact = mixture.score(x, t)
        error = model(x, t) - exact
        euclid.append(np.mean(np.sum(error**2, 1)) / np.mean(np.sum(exact**2, 1)))
        cm.append(np.mean(np.sum(mixture.q * error**2, 1)) / np.mean(np.sum(mixture.q * exact**2, 1)))
    return float(np.mean(euclid)), float(np.mean(cm))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--runs", nargs="+", default=[f"{mode}:{'skip' if skip else 'noskip'}" for mode, skip in RUNS],
                        help="preconditioning:skip|noskip pairs (default: all four)")
    args = parser.parse_args()
    runs = []
    for run in args.runs:
        mode, _, skip = run.partition(":")
        if mode not in PRECONDITIONINGS or skip not in ("skip", "noskip"):
            parser.error(f"--runs: expected preconditioning:skip or preconditioning:noskip with a preconditioning "
                         f"of {', '.join(PRECONDITIONINGS)}, got {run!r}")
        runs.append((mode, skip == "skip"))
    print(f"{'L':>3} {'m':>5} {'preconditioning':>16} {'skip':>5} {'Euclidean':>10} {'Cameron-Martin':>15} {'train s':>8}")
    for L in args.L:
        sde, mixture = whittle_matern_sde(L), Mixture(L)
        data = mixture.sample(20_000, 0.0, np.random.default_rng(2))
        for mode, skip in runs:
            start = time.perf_counter()
            model = ss.train(sde, data, steps=args.steps, batch_size=args.batch, width=256, seed=0, t_min=0.02,
                             n_steps=150, preconditioning=mode, gaussian_skip=skip, progress=False)
            seconds = time.perf_counter() - start
            euclid, cm = score_errors(model, mixture)
            print(f"{L:>3} {sde.m:>5} {mode:>16} {str(skip):>5} {euclid:>10.4f} {cm:>15.4f} {seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
