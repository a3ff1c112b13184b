"""The allocator and the field network: one training pass with and without reuse_large_allocations.

The spherical Fourier network's activations at L = 32 are tens to hundreds of MB per tensor; glibc
maps and unmaps such blocks on every allocation unless told otherwise
(:func:`symscore._memory.reuse_large_allocations`). This script times the network's forward and
backward pass (width 16, depth 4, float32) in two fresh processes, one with the allocator left as
it is and one with it changed (the setting is process-wide, so they cannot share a process), and
prints the seconds and their ratio per (L, rows).

    python benchmarks/bench_allocator.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CASES = ((16, 256), (32, 128), (32, 256))

CHILD = """
import json, sys, time, torch
from symscore._memory import reuse_large_allocations
from symscore.learn.sfno import SphericalFourierNetwork
if sys.argv[1] == "reuse":
    reuse_large_allocations()
torch.set_num_threads(int(sys.argv[3]))
out = {}
for L, rows in json.loads(sys.argv[2]):
    torch.manual_seed(0)
    net = SphericalFourierNetwork((L + 1) ** 2, 16, 16, 4, torch.nn.SiLU)
    z, embedding, metric = torch.randn(rows, (L + 1) ** 2), torch.randn(rows, 16), torch.rand((L + 1) ** 2) + 0.1
    times = []
    for repeat in range(int(sys.argv[4]) + 1):
        start = time.perf_counter()
        net(z, embedding, metric).square().mean().backward()
        times.append(time.perf_counter() - start)
    out[f"{L},{rows}"] = sorted(times[1:])[len(times[1:]) // 2]  # the median after a warm-up pass
print(json.dumps(out))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    results = {}
    for mode in ("default", "reuse"):
        done = subprocess.run([sys.executable, "-c", CHILD, mode, json.dumps(CASES), str(args.threads),
                               str(args.repeats)], capture_output=True, text=True, check=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    print("| L | rows | forward + backward s, allocator as is | with reuse_large_allocations | ratio |")
    print("|---|---|---|---|---|")
    for L, rows in CASES:
        key = f"{L},{rows}"
        before, after = results["default"][key], results["reuse"][key]
        print(f"| {L} | {rows} | {before:.3f} | {after:.3f} | {before / after:.2f}x |")


if __name__ == "__main__":
    main()
