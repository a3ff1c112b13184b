"""The Malliavin paper's grid (arXiv 2503.16917 v3, Section 4) at a fixed wall-clock budget per cell.

SDEs {cauchy + malliavin, cauchy + first-order (the ablation without the second variation), VP,
sub-VP, VE with dsm and malliavin} x datasets {checkerboard, Swiss roll, 8 Gaussians}; sliced W2,
W2, MMD^2 and energy distance against held-out data, each next to its noise floor. Settings and
the scaled-down network: :mod:`symscore.paper`. This script is ``symscore paper`` with torch's
thread count fixed at 2, as for the recorded figures (a clock budget buys steps by the thread
count); every option of ``symscore paper --help`` applies.

With --tails: the heavy-tail comparison instead, cauchy + malliavin against vp + dsm on a 2-D
Student t with 2 degrees of freedom at equal training time (quantiles of |x| to 0.999 against
their exact values; :func:`symscore.paper.run_heavy_tails`).

Run: python benchmarks/paper.py [--budget 40] [--quick] [--out paper] [--threads 2]   (about 22 minutes on 2 cores)
     python benchmarks/paper.py --tails [--budget 120] [--out paper_tails] (about 6 minutes)
"""
from __future__ import annotations

import sys

from symscore.cli import main

if __name__ == "__main__":
    # a later --threads on the command line wins over this default
    main(["paper", "--threads", "2", *sys.argv[1:]], prog_name="python benchmarks/paper.py")
