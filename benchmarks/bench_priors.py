"""How far the stationary prior is from the true law of X_T, per built-in separable SDE.

The reverse-time sampler starts from a prior at T. For a separable drift, ``prior="auto"`` takes the
stationary law of the SDE frozen at T; it is exact only if X_T has mixed. This script measures the
sliced 2-Wasserstein distance between forward-simulated endpoints X_T of the checkerboard data and
samples of that prior, next to the noise floor (two independent sets of endpoints).

    python benchmarks/bench_priors.py [--n 5000] [--steps 400]
"""
from __future__ import annotations

import argparse

import numpy as np

import symscore as ss
from symscore.metrics import sliced_wasserstein


def endpoints(sde, data, n_steps, seed):
    kernel = ss.compile(sde)
    return kernel.simulate(data, [sde.T], n_steps, seed=seed).x[:, 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    data = ss.data.checkerboard(args.n, seed=0)
    cases = [("cubic(s=1.5)", ss.library.cubic(s=1.5)), ("cubic(s=1)", ss.library.cubic(s=1.0)),
             ("double_well", ss.library.double_well()), ("cauchy", ss.library.cauchy())]
    print(f"checkerboard, {args.n} points, {args.steps} Euler steps to T; sliced W2 (500 projections)")
    print(f"{'SDE':14} {'prior':34} {'SW2(X_T, prior)':>16} {'noise floor':>12}")
    for label, sde in cases:
        x_t, x_t2 = endpoints(sde, data, args.steps, 1), endpoints(sde, data, args.steps, 2)
        prior = ss.make_prior(sde)
        draws = prior.sample(args.n, np.random.default_rng(3))
        distance = sliced_wasserstein(x_t, draws).value
        floor = sliced_wasserstein(x_t, x_t2).value
        print(f"{label:14} {repr(prior)[:34]:34} {distance:16.3f} {floor:12.3f}")


if __name__ == "__main__":
    main()
