"""The Malliavin target's variance against t, and its Euler bias at equal cost: plain, antithetic,
Richardson, control variate.

Three tables (issue 15, part 2), every figure a Monte Carlo estimate with its standard error.

1. Variance against t, on four SDEs (the paper's cauchy and VP from checkerboard points, the
   double well and the 1-D Benes SDE from N(0.3, 0.5^2) points), 250 Euler steps, one pass
   recording every t:
   * ``var``: tr Cov(target), the noise a regression averages out;
   * ``anti x``: the antithetic gain, Var(e) / (2 Var((e + e') / 2)), for the integration-by-parts
     estimator e = grad phi(X_t) + phi(X_t) target (phi a Gaussian bump) over pairs with increments
     dW and -dW from one x0: the factor by which pairs cut the variance of a batch mean at equal
     cost (1: no gain; the figure is averaged over coordinates).
2. Bias at equal cost: the integration-by-parts residual |E[e]| (RMS over coordinates, with the
   standard error of that RMS under zero bias) of the plain target at 3N steps against the
   Richardson target 2 w(dt / 2) - w(dt) on N coarse steps (3N steps of work: 2N fine + N coarse).
3. The control variate (target ``malliavin-cv``): the variance with and without it against t, and
   its gain for the IBP estimator's batch mean, with its cost (two kernel passes).

Run: python benchmarks/bench_variance.py [--paths 200000] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import symscore as ss
from symscore.learn.targets import make_target_source

TIMES = (0.05, 0.1, 0.25, 0.5, 1.0)
N_STEPS = 250


def problems(n: int):
    """(name, sde, x0) for the tables: the paper's two from checkerboard points, two nonlinear ones."""
    rng = np.random.default_rng(3)
    board = ss.data.checkerboard(n, seed=1)
    return [("cauchy", ss.library.cauchy(m=2), board),
            ("vp", ss.library.vp(m=2, beta_min=0.1, beta_max=20.0), board),
            ("double_well", ss.library.double_well(m=2), rng.normal(0.3, 0.5, size=(n, 2))),
            ("benes", ss.library.benes(m=1), rng.normal(0.3, 0.5, size=(n, 1)))]


def bump_residual(x, target):
    """e = grad phi(x) + phi(x) target for a Gaussian bump phi centred off the origin, (n, m)."""
    centre = 0.3 * np.arange(1, x.shape[1] + 1)
    value = np.exp(-0.5 * np.sum((x - centre) ** 2, axis=1) / 4)
    return -(x - centre) / 4 * value[:, None] + value[:, None] * target


def variance_table(n: int) -> None:
    print(f"1. variance of the target against t ({n} paths, {N_STEPS} steps; anti x: antithetic gain "
          "for a batch mean at equal cost)")
    print(f"{'sde':<12} " + " ".join(f"{f't={t:g} var':>12} {'anti x':>7}" for t in TIMES))
    for name, sde, x0 in problems(n):
        source = make_target_source("malliavin-antithetic", sde, N_STEPS)
        steps = np.array([round(t / sde.T * N_STEPS) for t in TIMES])
        x, target = source.batch(x0, steps, seed=11)
        cells = []
        for k in range(len(TIMES)):
            variance = np.cov(target[k].T).trace() if sde.m > 1 else target[k].var()
            e = bump_residual(x[k], target[k])
            pair_mean = (e[0::2] + e[1::2]) / 2
            gain = np.mean(e.var(axis=0) / (2 * pair_mean.var(axis=0)))
            cells.append(f"{variance:12.4g} {gain:7.2f}")
        print(f"{name:<12} " + " ".join(cells))


def residual_rms(x, target):
    """(RMS over coordinates of the mean IBP residual, its standard error under zero bias)."""
    e = bump_residual(x, target)
    mean, se = e.mean(axis=0), e.std(axis=0, ddof=1) / np.sqrt(len(e))
    return float(np.sqrt(np.mean(mean**2))), float(np.sqrt(np.mean(se**2)))


def bias_table(n: int, coarse_steps=(10, 20, 40)) -> None:
    print(f"\n2. integration-by-parts residual at t = T / 2 and T at equal cost ({n} paths; RMS over coordinates, "
          "(SE); seconds)")
    print(f"{'sde':<12} {'coarse N':>8} {'plain 3N':>22} {'richardson N':>22}")
    for name, sde, x0 in problems(n):
        for N in coarse_steps:
            cells = []
            for target, steps in (("malliavin", 3 * N), ("malliavin-richardson", N)):
                source = make_target_source(target, sde, steps)
                record = np.array([steps // 2, steps])
                start = time.perf_counter()
                x, values = source.batch(x0, record, seed=12)
                seconds = time.perf_counter() - start
                rms = [residual_rms(x[k], values[k]) for k in range(2)]
                cells.append(" ".join(f"{r:.4f}({s:.4f})" for r, s in rms) + f" {seconds:4.1f}s")
            print(f"{name:<12} {N:8d} {cells[0]:>30} {cells[1]:>30}")


def control_variate_table(n: int) -> None:
    print(f"\n3. the control variate w + c (w - w^a), a(r) = r, c left-one-out ({n} paths, {N_STEPS} steps): "
          "var = tr Cov(target) plain / with it; cv x = Var(e) / Var(e_cv) for the IBP estimator e; "
          "cost = seconds with / without")
    print(f"{'sde':<12} " + " ".join(f"{f't={t:g} var':>17} {'cv x':>5}" for t in TIMES) + f" {'cost':>6}")
    for name, sde, x0 in problems(n):
        steps = np.array([round(t / sde.T * N_STEPS) for t in TIMES])
        results = {}
        for target in ("malliavin", "malliavin-cv"):
            source = make_target_source(target, sde, N_STEPS)
            start = time.perf_counter()
            results[target] = (*source.batch(x0, steps, seed=11), time.perf_counter() - start)
        (x, plain, plain_s), (_, cv, cv_s) = results["malliavin"], results["malliavin-cv"]
        cells = []
        for k in range(len(TIMES)):
            var = [np.cov(v[k].T).trace() if sde.m > 1 else v[k].var() for v in (plain, cv)]
            gain = np.mean(bump_residual(x[k], plain[k]).var(axis=0) / bump_residual(x[k], cv[k]).var(axis=0))
            cells.append(f"{var[0]:8.4g}/{var[1]:<8.4g} {gain:5.3f}")
        print(f"{name:<12} " + " ".join(cells) + f" {cv_s / plain_s:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="20 000 paths, one coarse step count (a smoke run)")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.paths
    for _, sde, _ in problems(2):  # compile (or load) the kernels outside the timed regions
        ss.compile(sde)
    variance_table(n)
    bias_table(n, (10,) if args.quick else (10, 20, 40))
    control_variate_table(n)


if __name__ == "__main__":
    main()
