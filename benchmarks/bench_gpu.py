"""Path-steps/s of the triton and torch kernels on a GPU, against a bare torch Euler-Maruyama of X.

Cases (the issue's): the coupled 2-D Benes drift and the separable 64-D cubic drift, float32 and
float64, n paths x n_steps steps, one record time (the target at T). The baseline, run in the same
process on the same device, is a plain torch Euler-Maruyama loop of X alone with torch.randn
increments (no variation processes, no weight); the ratio kernel time / baseline time says what the
score target costs on top of simulating the SDE. Each figure is the best of ``--repeats`` timed
runs after a warm-up run (compilation), with ``torch.cuda.synchronize``.

    python benchmarks/bench_gpu.py [--n 1000000] [--steps 1000]
    TRITON_INTERPRET=1 python benchmarks/bench_gpu.py --device cpu --n 256 --steps 8   # a dry run, no GPU
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

import symscore as ss


def timed(run, device, repeats: int) -> float:
    run()
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def bare_euler(case: str, x0: torch.Tensor, n_steps: int, T: float) -> torch.Tensor:
    """X alone: Benes dX = a tanh(a . X) dt + dB, or cubic dX = -X^3 dt + dB, torch.randn increments."""
    dt, x = T / n_steps, x0.clone()
    a = 1.5 / math.sqrt(x.shape[1])
    for _ in range(n_steps):
        drift = a * torch.tanh(a * x.sum(dim=1, keepdim=True)) if case == "benes" else -x * x * x
        x = x + drift * dt + torch.randn_like(x) * math.sqrt(dt)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--backends", nargs="+", default=["triton", "torch"])
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU (or --device cpu with TRITON_INTERPRET=1)")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}; n = {args.n} paths, {args.steps} steps, best of {args.repeats}")
    print(f"{'case':14} {'dtype':8} {'backend':8} {'seconds':>9} {'path-steps/s':>13} {'ratio to bare EM':>17}")
    cases = {"benes m=2": ("benes", ss.library.benes(m=2)), "cubic m=64": ("cubic", ss.library.cubic(m=64))}
    for label, (case, sde) in cases.items():
        for dtype in ("float32", "float64"):
            x0 = torch.as_tensor(np.random.default_rng(0).normal(scale=0.5, size=(args.n, sde.m)),
                                 dtype=getattr(torch, dtype), device=device)
            bare = timed(lambda: bare_euler(case, x0, args.steps, sde.T), device, args.repeats)
            work = args.n * args.steps
            for backend in args.backends:
                kernel = ss.compile(sde, backend=backend, dtype=dtype, device=device)
                seconds = timed(lambda: kernel.simulate(x0, [sde.T], args.steps, seed=1, on_failure="keep"),
                                device, args.repeats)
                print(f"{label:14} {dtype:8} {backend:8} {seconds:9.4f} {work / seconds:13.3e} {seconds / bare:17.2f}")
            print(f"{label:14} {dtype:8} {'bare EM':8} {bare:9.4f} {work / bare:13.3e} {1.0:17.2f}")


if __name__ == "__main__":
    main()
