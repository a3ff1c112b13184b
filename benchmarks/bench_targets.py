"""Learned-score accuracy against wall-clock for the malliavin, ssm and local targets.

Problem: the 2-D Benes SDE dX = a tanh(a . X) dt + dB (coupled, nonlinear; |a| = 1.5) started from
p_0 proportional to cosh(a . x) N(x; mu, 0.5^2 I), whose score is known at every t:
a tanh(a . y) - (y - mu) / (0.25 + t) (symscore.library.benes_mixture_score).

Each target trains the same network (3 x 64, SiLU) with the same budget (steps, batch, record
times per step, seed). Checkpoints every `--every` steps carry the EMA weights; their file times
give the wall-clock. Printed: relative L2 error sqrt(E|s_theta - s|^2 / E|s|^2) over X_t ~ p_t at
t = 0.1, 0.5, 1.0 against seconds. Run: python benchmarks/bench_targets.py [--steps 3000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import symscore as ss

THETA, MEAN, STD, TIMES = 1.5, np.array([0.3, -0.2]), 0.5, (0.1, 0.5, 1.0)


def relative_l2(model, t, n=20_000):
    y = ss.library.benes_mixture_sample(n, t, MEAN, STD, THETA, seed=123)
    exact = ss.library.benes_mixture_score(y, t, MEAN, STD, THETA)
    return float(np.sqrt(((model(y, t) - exact) ** 2).sum() / (exact**2).sum()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    sde = ss.library.benes(m=2, theta=THETA)
    data = ss.library.benes_mixture_sample(50_000, 0.0, MEAN, STD, THETA, seed=1)
    ss.compile(sde)  # compile (or load) the kernel outside the timed region
    header = f"{'target':<10} {'step':>6} {'seconds':>8} " + " ".join(f"{f'err t={t:g}':>10}" for t in TIMES)
    print(header)
    for target in ("malliavin", "ssm", "local"):
        with tempfile.TemporaryDirectory() as folder:
            start = time.time()
            ss.train(sde, data, steps=args.steps, batch_size=args.batch_size, target=target, width=64, depth=3,
                     seed=0, checkpoint_dir=folder, checkpoint_every=args.every, keep_checkpoints=10**6,
                     progress=False)
            for path in sorted(Path(folder).glob("checkpoint_*.pt")):
                model = ss.load_checkpoint(path)
                errors = " ".join(f"{relative_l2(model, t):10.3f}" for t in TIMES)
                print(f"{target:<10} {int(path.stem.split('_')[1]):6d} {path.stat().st_mtime - start:8.1f} {errors}")


if __name__ == "__main__":
    main()
