"""The Malliavin paper's grid (arXiv 2503.16917 v3, Section 4) at a fixed wall-clock budget per cell.

SDEs {cauchy + malliavin, cauchy + first-order (the ablation without the second variation), VP,
sub-VP, VE with dsm and malliavin} x datasets {checkerboard, Swiss roll, 8 Gaussians}; sliced W2,
W2, MMD^2 and energy distance against held-out data, each next to its noise floor. Settings and
the scaled-down network: :mod:`symscore.paper`. Same as ``symscore bench paper``.

With --tails: the heavy-tail comparison instead, cauchy + malliavin against vp + dsm on a 2-D
Student t with 2 degrees of freedom at equal training time (quantiles of |x| to 0.999 against
their exact values; :func:`symscore.paper.run_heavy_tails`).

Run: python benchmarks/paper.py [--budget 40] [--quick] [--out paper] [--threads 2]   (about 22 minutes on 2 cores)
     python benchmarks/paper.py --tails [--budget 120] [--out paper_tails] (about 6 minutes)
"""
from __future__ import annotations

import argparse

import torch

from symscore.paper import run_heavy_tails, run_paper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=None,
                        help="training seconds per cell (default 40; 120 with --tails)")
    parser.add_argument("--tails", action="store_true", help="the heavy-tail comparison instead of the grid")
    parser.add_argument("--quick", action="store_true", help="10 steps per cell: a smoke run")
    parser.add_argument("--out", default=None, help="output folder (default paper, or paper_tails)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default 2, as for the README's figures): a clock budget "
                             "buys steps by the thread count")
    parser.add_argument("--sampler-seeds", type=int, default=1,
                        help="sample sets per cell and sampler: metrics are their means with standard errors")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads: expected a positive integer, got {args.threads}")
    torch.set_num_threads(args.threads)
    if args.tails:
        run_heavy_tails(out=args.out or "paper_tails", budget=args.budget or 120.0, quick=args.quick, seed=args.seed)
    else:
        run_paper(out=args.out or "paper", budget=args.budget or 40.0, quick=args.quick, seed=args.seed,
                  sampler_seeds=args.sampler_seeds)


if __name__ == "__main__":
    main()
