"""The target's bias against wall clock, measured against the truth: plain weight and Richardson.

For each SDE, p_0 a two-component Gaussian mixture and its truth p_t (``ss.truth.solve``: the
Fokker-Planck solution on a fine grid, whose own score error is printed beside), the
``malliavin`` target at N = 25 ... 300 steps and ``malliavin-richardson`` at N = 25 ... 100 (3N
kernel steps per path: a fine pass of 2N and a coarse one of N on one Brownian path) are simulated
on the same number of paths; ``ss.truth.compare_targets`` bins the residual target - s*(X_t) and
reports, per candidate, the worst record time's excess bias (the RMS bin mean with the noise's share
removed, as a fraction of RMS s*), the largest |z| and the kernel's wall clock.

The SDEs: a cubic drift (1-D), a sin drift with state-dependent sigma(x) (1-D), a Benes-type coupled
tanh drift (2-D) and a corpus drift with diagonal sigma(x) (2-D).

Each figure is a mean over simulation seeds with its standard error (one seed's noise floor is
about 0.005 at 400 000 paths); the truth's own error (the RMS gap to its half-cells grid, on the
same scale) is printed beside.

Run: python benchmarks/bench_bias.py [--paths 400000] [--seeds 1,2,3] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import sympy as sp

import symscore as ss

TIMES = np.array([0.2, 0.6, 1.0])  # on every grid below (N a multiple of 5)
t = sp.Symbol("t")


def problems():
    """(name, sde, p0, Fokker-Planck cells) of the table."""
    x = sp.Symbol("x1")
    x1, x2 = sp.symbols("x1 x2")
    mixture_1d = ss.truth.GaussianMixture([0.4, 0.6], [[-0.8], [0.9]], [[[0.16]], [[0.12]]])
    mixture_2d = ss.truth.GaussianMixture([0.4, 0.6], [[-0.8, 0.3], [0.7, -0.4]],
                                          [0.16 * np.eye(2), np.array([[0.12, 0.03], [0.03, 0.1]])])
    return [
        ("cubic, sigma = 1 (1-D)", ss.SDE([-x**3], 1, [x], t, name="cubic1d"), mixture_1d, 1200),
        ("sin drift, sigma(x) (1-D)", ss.SDE([-x + sp.sin(2 * x)], sp.Rational(3, 4) * (1 + sp.tanh(x) / 2), [x], t,
                                             name="sin_sigma_x"), mixture_1d, 1200),
        ("Benes tanh, coupled (2-D)", ss.library.benes(m=2), mixture_2d, 320),
        ("rational drift, sigma(x) (2-D)", ss.SDE([-x1 + 3 * x1 / (2 * (1 + x1**2)), -x2 + (x1 - x2) / (1 + x1**2 + x2**2)],
                                                 sp.diag(sp.Rational(3, 4) * (1 + sp.sin(x1) / 3),
                                                         sp.Rational(3, 4) * (1 + sp.tanh(x1) / 3)),
                                                 [x1, x2], t, name="rational_sigma_x"), mixture_2d, 200),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=400_000)
    parser.add_argument("--seeds", default="1,2,3", help="simulation seeds: each figure is a mean over them")
    parser.add_argument("--quick", action="store_true", help="20000 paths, one seed, N up to 150, the 1-D SDEs only")
    args = parser.parse_args()
    paths = 20_000 if args.quick else args.paths
    seeds = [1] if args.quick else [int(s) for s in args.seeds.split(",")]
    plain_steps = (25, 50, 75, 150) if args.quick else (25, 50, 75, 150, 300)
    richardson_steps = (25, 50) if args.quick else (25, 50, 100)
    chosen = problems()[:2] if args.quick else problems()
    candidates = [("malliavin", n) for n in plain_steps] + [("malliavin-richardson", n) for n in richardson_steps]
    print(f"{paths} paths per candidate and seed, seeds {seeds}, record times {TIMES.tolist()}, numba backend; "
          "excess bias = worst time's sqrt(bias^2 - noise floor^2) / RMS s*, mean +- standard error over seeds\n")
    for name, sde, p0, cells in chosen:
        start = time.perf_counter()
        truth = ss.truth.fokker_planck(sde, p0, TIMES, cells=cells)
        solve_seconds = time.perf_counter() - start
        runs = [ss.truth.compare_targets(sde, p0, TIMES, plain_steps[0], candidates=candidates, n=paths, seed=seed,
                                         truth=truth) for seed in seeds]
        excess = np.array([run.excess_bias for run in runs])  # (seeds, candidates)
        seconds = np.array([run.seconds for run in runs])
        gap = np.array([[float(r.truth_gap.max()) for r in run.reports] for run in runs]).mean(0)
        spread = excess.std(0, ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else np.full(len(candidates), np.nan)
        print(f"## {name}: truth on a {'x'.join(map(str, truth.grid.shape))} grid in {solve_seconds:.1f} s, its "
              f"score's estimated error {truth.error_estimate.max():.1e}\n")
        print("| target | n_steps | steps/path | seconds | excess bias | truth error |\n|---|---|---|---|---|---|")
        for i, (target, n) in enumerate(candidates):
            print(f"| {target} | {n} | {int(runs[0].path_steps[i])} | {seconds[:, i].mean():.3g} | "
                  f"{excess[:, i].mean():.4f} +- {spread[i]:.4f} | {gap[i]:.4f} |")
        equal = []
        for n in richardson_steps:
            if ("malliavin", 3 * n) in candidates:
                plain, rich = candidates.index(("malliavin", 3 * n)), candidates.index(("malliavin-richardson", n))
                difference = excess[:, plain] - excess[:, rich]
                se = difference.std(ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else float("nan")
                equal.append(f"3N = {3 * n}: plain - Richardson {difference.mean():+.4f} +- {se:.4f}, wall clock "
                             f"ratio {seconds[:, rich].mean() / seconds[:, plain].mean():.2f}")
        print("\nat equal kernel steps per path: " + "; ".join(equal) + "\n")


if __name__ == "__main__":
    main()
