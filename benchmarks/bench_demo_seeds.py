"""How much the demo's figures move between training runs (``make demo`` repeated over seeds).

``make demo`` is one training run per model, so a ranking or an "x the noise floor" figure from it
is one draw. This script repeats :func:`symscore.demo.run_demo` for several seeds (the data, the
held-out set, the network's initialisation, the training paths and the sampler noise all change)
and prints each run's sliced W2 (the mean over the demo's sampler seeds, with its standard
error) over that run's noise floor, then per model and sampler the mean,
the range and how many runs are within 1.5x the floor.

Each row also prints two things sliced W2 on the checkerboard is sensitive to: the largest
deviation of a square's mass from 1/8 and the fraction of samples off the black squares.

    python benchmarks/bench_demo_seeds.py [--seeds 0 1 2] [--budget 300] [--width 128] [--out bench_demo_seeds]
        [--threads 2]
    (about 11 minutes per seed at the default budget on 2 cores)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from symscore import SymscoreError
from symscore.demo import run_demo, sample_key
from symscore.experiments import FLOOR, ratio_to_floor, seeds_summary, use_torch_threads


def square_masses(x: np.ndarray, squares: int = 4, size: float = 4.0) -> np.ndarray:
    """Fraction of the points in each black square of the checkerboard (``ss.data.checkerboard``)."""
    cell = 2 * size / squares
    index = np.floor((x + size) / cell).astype(int)
    inside = np.all((index >= 0) & (index < squares), axis=1)
    counts = np.zeros((squares, squares))
    np.add.at(counts, (index[inside, 0], index[inside, 1]), 1)
    black = (np.add.outer(np.arange(squares), np.arange(squares)) % 2) == 0
    return counts[black] / len(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per model and seed")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default 2, as for the figures in docs/results/demo.md): a clock budget "
                             "buys steps by the thread count")
    parser.add_argument("--out", default="bench_demo_seeds")
    parser.add_argument("--width", type=int, default=128,
                        help="MLP width (default 128, the network of the recorded 300 s runs; make demo uses 64)")
    args = parser.parse_args()
    try:
        use_torch_threads(args.threads)
    except SymscoreError as error:
        parser.error(f"--{error}")
    ratios: dict[str, list[float]] = {}
    for seed in args.seeds:
        out = Path(args.out) / f"seed{seed}"
        report = run_demo(out=out, budget=args.budget, seed=seed, width=args.width, progress=False,
                          print_fn=lambda line: None)
        saved = np.load(out / "samples.npz")
        floor = report.pop(FLOOR)
        lines = [f"seed {seed}: noise floor {floor['sliced_w2']['value']:.4f}, data's largest |mass - 1/8| "
                 f"{np.abs(square_masses(saved['held_out']) - 1 / 8).max():.3f}"]
        for row, figures in report.items():
            ratio = ratio_to_floor(figures, floor)
            ratios.setdefault(row, []).append(ratio)
            masses = square_masses(saved[sample_key(row)])
            error = figures["sliced_w2"]["standard_error"]
            lines.append(f"  {row:<24} sliced W2 {figures['sliced_w2']['value']:.4f} +- {error or float('nan'):.4f} "
                         f"({ratio:.2f} x floor)  "
                         f"largest |mass - 1/8| {np.abs(masses - 1 / 8).max():.3f}, off the squares "
                         f"{1 - masses.sum():.3f}  ({figures['steps']} steps, {figures['seconds']['train']:.0f} s)")
        print(*lines, sep="\n", flush=True)
    print(f"\n{'model, sampler':<24} {'mean x floor':>13} {'min':>6} {'max':>6} {'runs <= 1.5x':>13}")
    for row, summary in seeds_summary(ratios).items():
        print(f"{row:<24} {summary['mean']:13.2f} {summary['min']:6.2f} {summary['max']:6.2f} "
              f"{summary['within_1.5']:>7d} of {len(summary['ratios'])}")


if __name__ == "__main__":
    main()
