"""Peak resident memory of ``kernel.simulate`` with and without ``chunk_size`` (one process per run).

The case of issue 10: 2e6 paths of the coupled 2-D Benes SDE, 10 record times, 20 Euler steps.
The returned x and target alone are 2 x n x K x m x 8 bytes = 610 MiB; with chunks the rest of
the peak is the interpreter, the libraries and O(chunk_size) of state.

    python benchmarks/bench_memory.py [--n 2000000] [--steps 20]
    python benchmarks/bench_memory.py --child numba 100000      (one run, prints a JSON line)
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(backend: str, chunk: int, n: int, n_steps: int) -> dict:
    import numpy as np

    import symscore as ss

    kernel = ss.compile(ss.library.benes(m=2), backend=backend)
    kernel.simulate(np.zeros((4, 2)), [1.0], 2)  # compile outside the measurement's interest
    x0 = np.random.default_rng(0).normal(size=(n, 2))
    times = np.linspace(0.1, 1.0, 10)
    start = time.perf_counter()
    paths = kernel.simulate(x0, times, n_steps, seed=0, chunk_size=chunk or None, as_numpy=True)
    seconds = time.perf_counter() - start
    returned = (paths.x.nbytes + paths.target.nbytes) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"backend": backend, "chunk": chunk, "n": n, "peak_mib": peak, "returned_mib": returned,
            "seconds": seconds, "finite": bool(np.isfinite(paths.target).all())}


def measure(backend: str, chunk: int, n: int, n_steps: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", backend, str(chunk), "--n", str(n),
                          "--steps", str(n_steps)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "CHUNK"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.n, args.steps)))
        return
    print(f"{args.n} paths, m = 2 (coupled Benes), 10 record times, {args.steps} steps; peak RSS per process")
    print(f"{'backend':8} {'chunk_size':>10} {'peak RSS MiB':>13} {'returned MiB':>13} {'seconds':>8}")
    for backend, chunk in (("numba", 0), ("numba", 100_000), ("torch", 100_000), ("torch", 0)):
        row = measure(backend, chunk, args.n, args.steps)
        print(f"{backend:8} {chunk or 'all':>10} {row['peak_mib']:13.0f} {row['returned_mib']:13.0f} "
              f"{row['seconds']:8.1f}")


if __name__ == "__main__":
    main()
