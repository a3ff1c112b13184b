"""The figures of the truth tests: the random corpus and the negative controls, per case.

For each SDE of the corpus in tests/truth_corpus.py (1-D and 2-D; polynomial, rational and
transcendental drifts; constant, sigma(t), sigma(x) and, in 2-D, kinetic hypoelliptic noise) the
Malliavin target's binned residual target - s*(X_t) against the Fokker-Planck truth, as in
tests/test_truth_corpus.py: the largest raw |z| over bins, coordinates and times, the largest
excess beyond the Euler and grid allowances (in standard errors) and the test's threshold; then
the deliberately wrong weights on the test's control SDEs with their excess (the test asks for
more than 10).

Run: python benchmarks/bench_truth_corpus.py [--seeds 0,1] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import symscore as ss

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the corpus lives with the tests
from test_truth_corpus import ALL_CASES, CELLS_WHOLE as CELLS, DEFAULT_CASES, RESOLVED, TIMES, WRONG  # noqa: E402
from truth_corpus import binned_check, corpus_case  # noqa: E402


def row(case, variant=ss.Variant(), n=None, seed=11):
    m = case.sde.m
    n = n or (40_000 if m == 1 else 20_000)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table shows the truth's error estimate itself
        try:
            truth = ss.truth.fokker_planck(case.sde, case.p0, TIMES, cells=CELLS[m])
        except ss.SymscoreError as error:  # the test skips these: the grid does not resolve p_t
            return f"| {case.label} | {n} | not resolved, skipped by the test ({error}) | | | | | |"
    solve = time.perf_counter() - start
    kernel = ss.compile(case.sde, backend="torch", variant=variant)
    check = binned_check(kernel, truth, case.p0.sample(n, seed), TIMES, 100 if m == 1 else 50, seed=seed + 1)
    raw = float(np.nanmax(np.abs(check.mean) / check.se))
    skipped = " (skipped by the test)" if truth.error_estimate.max() > RESOLVED else ""
    return (f"| {case.label} | {n} | {truth.error_estimate.max():.1e}{skipped} | {solve:.1f} | "
            f"{check.seconds:.1f} | {raw:.1f} | {check.worst():.1f} | {check.threshold:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1", help="corpus seeds (0 is the default suite's draw)")
    parser.add_argument("--quick", action="store_true", help="the default suite's cases and controls only")
    args = parser.parse_args()
    header = ("| case | paths | truth error | solve s | kernel s | max raw abs z | max excess | threshold |\n"
              "|---|---|---|---|---|---|---|---|")
    cases = DEFAULT_CASES if args.quick else ALL_CASES
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    print(f"## The Malliavin target on the corpus (record times {TIMES.tolist()})\n\n{header}")
    for seed in seeds:
        for m, family, noise in cases:
            print(row(corpus_case(m, family, noise, seed)), flush=True)
    print(f"\n## Deliberately wrong weights (the excess must exceed 10)\n\n{header}")
    for name, (variant, where, n, _) in WRONG.items():
        control = corpus_case(*where, 0)
        print(row(control, variant, n).replace(f"| {control.label} |", f"| {name} ({control.label}) |"), flush=True)


if __name__ == "__main__":
    main()
