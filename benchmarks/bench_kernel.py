"""Throughput of the score kernel against a bare numba Euler-Maruyama of X alone (same process).

For each case: path-steps per second of ``kernel.simulate`` (one path advancing one step, all m
coordinates and all variation processes), the ratio of its time to a hand-written numba EM loop
that only moves X (same parallel loop; its normals come from numba's np.random, the generator the kernels
used before the counter-based Philox stream of symscore.compiler.runtime), and
time(2N) / time(N) of the kernel (it must be linear in the number of steps).

    python benchmarks/bench_kernel.py [--quick]
"""
from __future__ import annotations

import argparse
import math

import numba
import numpy as np

import symscore as ss
from symscore.bench import best_of


@numba.njit(parallel=True, cache=True)
def bare_benes(x0, theta, dt, n_steps, seeds, out):
    m = x0.shape[1]
    a = theta / math.sqrt(m)
    sq = math.sqrt(dt)
    for p in numba.prange(x0.shape[0]):
        np.random.seed(seeds[p])
        x = x0[p].copy()
        for k in range(n_steps):
            drift = a * math.tanh(a * x.sum())
            for i in range(m):
                x[i] += drift * dt + np.random.standard_normal() * sq
        out[p] = x


@numba.njit(parallel=True, cache=True)
def bare_cubic(x0, s, dt, n_steps, seeds, out):
    sq = math.sqrt(dt)
    for p in numba.prange(x0.shape[0]):
        np.random.seed(seeds[p])
        x = x0[p].copy()
        for k in range(n_steps):
            for i in range(x.shape[0]):
                x[i] += -x[i] ** 3 * dt + s * np.random.standard_normal() * sq
        out[p] = x


@numba.njit(parallel=True, cache=True)
def bare_vp(x0, beta_min, beta_max, dt, n_steps, seeds, out):
    sq = math.sqrt(dt)
    for p in numba.prange(x0.shape[0]):
        np.random.seed(seeds[p])
        x = x0[p].copy()
        for k in range(n_steps):
            beta = beta_min + k * dt * (beta_max - beta_min)
            noise = math.sqrt(beta) * sq
            for i in range(x.shape[0]):
                x[i] += -0.5 * beta * x[i] * dt + noise * np.random.standard_normal()
        out[p] = x


def run_case(label, sde, bare, bare_args, n, n_steps, repeats):
    kernel = ss.compile(sde)
    x0 = np.random.default_rng(0).normal(scale=0.5, size=(n, sde.m))
    seeds = np.random.SeedSequence(0).generate_state(n, dtype=np.uint32)
    out = np.empty((n, sde.m))
    t_kernel = best_of(lambda: kernel.simulate(x0, [1.0], n_steps, seed=0), repeats)
    t_kernel_2n = best_of(lambda: kernel.simulate(x0, [1.0], 2 * n_steps, seed=0), repeats)
    t_bare = best_of(lambda: bare(x0, *bare_args, 1.0 / n_steps, n_steps, seeds, out), repeats)
    rate = n * n_steps / t_kernel
    return (label, sde.derive().structure, rate, n * n_steps / t_bare, t_kernel / t_bare, t_kernel_2n / t_kernel)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer paths (a smoke run)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    lib = ss.library
    cases = [
        ("coupled m=2 (Benes tanh(a.x))", lib.benes(m=2, theta=1.5), bare_benes, (1.5,), 40_000 // scale, 1000),
        ("separable m=64 (cubic)", lib.cubic(m=64), bare_cubic, (1.0,), 4_000 // scale, 1000),
        ("linear m=64 (VP)", lib.vp(m=64), bare_vp, (0.1, 20.0), 4_000 // scale, 1000),
    ]
    repeats = 5
    print(f"numba {numba.__version__}, {numba.config.NUMBA_NUM_THREADS} threads")
    header = f"{'case':32} {'structure':10} {'kernel path-steps/s':>20} {'bare EM path-steps/s':>21} {'kernel/bare':>12} {'t(2N)/t(N)':>11}"
    print(header)
    print("-" * len(header))
    for label, sde, bare, bare_args, n, n_steps in cases:
        row = run_case(label, sde, bare, bare_args, n, n_steps, repeats)
        print(f"{row[0]:32} {row[1]:10} {row[2]:20.3e} {row[3]:21.3e} {row[4]:12.2f} {row[5]:11.2f}")


if __name__ == "__main__":
    main()
