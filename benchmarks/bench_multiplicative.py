"""Cost of a state-dependent diffusion: a 2-D coupled kernel with sigma(x) against bare Euler-Maruyama
of X and against the kernel of the same drift with sigma = I, all in one process.

Drift b = a tanh(a . x) (the coupled Benes drift, a = theta (1, 1) / sqrt(2)); sigma(x) =
diag(sqrt(1 + x_1^2), sqrt(1 + x_2^2)). The bare loop moves X only (same parallel loop, same per-path
seeding and normal generator as the kernel).

    python benchmarks/bench_multiplicative.py [--quick]
"""
from __future__ import annotations

import argparse
import math

import numba
import numpy as np
import sympy as sp

import symscore as ss
from symscore.bench import best_of


@numba.njit(parallel=True, cache=True)
def bare_multiplicative(x0, theta, dt, n_steps, seeds, out):
    a = theta / math.sqrt(2.0)
    sq = math.sqrt(dt)
    for p in numba.prange(x0.shape[0]):
        np.random.seed(seeds[p])
        x1, x2 = x0[p, 0], x0[p, 1]
        for k in range(n_steps):
            drift = a * math.tanh(a * (x1 + x2))
            n1, n2 = np.random.standard_normal() * sq, np.random.standard_normal() * sq
            x1, x2 = x1 + drift * dt + math.sqrt(1 + x1 * x1) * n1, x2 + drift * dt + math.sqrt(1 + x2 * x2) * n2
        out[p, 0], out[p, 1] = x1, x2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer paths (a smoke run)")
    args = parser.parse_args()
    n, n_steps, repeats, theta = (4_000 if args.quick else 40_000), 1000, 5, 1.5
    x1, x2, t = sp.symbols("x1 x2 t")
    a = theta / math.sqrt(2)
    drift = [a * sp.tanh(a * (x1 + x2))] * 2
    state_dependent = ss.SDE(drift, sp.diag(sp.sqrt(1 + x1**2), sp.sqrt(1 + x2**2)), [x1, x2], t, name="benes_sqrt")
    additive = ss.SDE(drift, 1, [x1, x2], t, name="benes_additive")
    x0 = np.random.default_rng(0).normal(scale=0.5, size=(n, 2))
    seeds = np.random.SeedSequence(0).generate_state(n, dtype=np.uint32)
    out = np.empty((n, 2))
    kernels = {name: ss.compile(sde) for name, sde in (("state-dependent", state_dependent), ("additive", additive))}
    seconds = {name: best_of(lambda k=k: k.simulate(x0, [1.0], n_steps, seed=0), repeats) for name, k in kernels.items()}
    bare = best_of(lambda: bare_multiplicative(x0, theta, 1.0 / n_steps, n_steps, seeds, out), repeats)
    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads; {n} paths x {n_steps} steps")
    print(f"{'':40} {'path-steps/s':>13} {'x bare EM (sigma(x))':>21} {'x additive kernel':>18}")
    for name in ("state-dependent", "additive"):
        rate = n * n_steps / seconds[name]
        print(f"{'kernel, ' + name + ' sigma':40} {rate:13.3e} {seconds[name] / bare:21.2f} "
              f"{seconds[name] / seconds['additive']:18.2f}")
    print(f"{'bare Euler-Maruyama of X, sigma(x)':40} {n * n_steps / bare:13.3e} {1.0:21.2f}")


if __name__ == "__main__":
    main()
