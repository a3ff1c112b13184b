"""What a sampler step pays for the time: a ScoreModel called with one time for every row.

A sampler evaluates the score at one t for all n rows. The model interpolates its per-time
preconditioning (mean, std, variance, output scale, Stein gain) and embeds t; given t as an
expanded scalar (stride 0, what ``ScoreModel(x, t)`` with a float and the samplers pass) it does
that once and broadcasts, given a materialised (n,) tensor it does it per row. This prints the
time per call of both, in the same process, and their ratio, for the demo's model (m = 2, MLP
3 x 128) and a field model (L = 16, m = 289, width 256), float32 on the CPU.

    python benchmarks/bench_sampler_time.py [--n 4000] [--repeat 50] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import symscore as ss
from symscore.fields import field_data, whittle_matern_sde


def per_call(model, x, t, repeat):
    with torch.no_grad():
        model(x, t)
        start = time.perf_counter()
        for _ in range(repeat):
            model(x, t)
    return (time.perf_counter() - start) / repeat


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    demo = ss.train(ss.library.cauchy(m=2), np.random.default_rng(0).uniform(-2, 2, (2000, 2)), steps=1,
                    width=128, depth=3, batch_size=64, pilot_size=256, progress=False)
    fields = ss.train(whittle_matern_sde(16), field_data("gaussian", 16, 2000), steps=1, width=256, batch_size=64,
                      pilot_size=256, preconditioning="cameron-martin", gaussian_skip=True, progress=False)
    print(f"{'model':<22} {'per-row t (ms)':>15} {'one t (ms)':>11} {'ratio':>6}")
    for name, model in (("demo, m = 2", demo), ("field L = 16, m = 289", fields)):
        x = torch.randn(args.n, model.m)
        rows = per_call(model, x, torch.full((args.n,), 0.3), args.repeat)
        shared = per_call(model, x, 0.3, args.repeat)
        print(f"{name:<22} {1e3 * rows:>15.2f} {1e3 * shared:>11.2f} {rows / shared:>6.2f}")


if __name__ == "__main__":
    main()
