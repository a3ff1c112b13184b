"""The experiment harness: equal-budget comparisons of forward SDEs and score targets.

Every experiment of the package (the demo, the Malliavin paper's grid, its heavy-tail comparison,
the benchmarks that repeat them over seeds) is the same four steps, written once here:

1. **what to compare** (:mod:`.spec`): :class:`Cell`, a built-in forward SDE and a regression
   target, and :class:`Network`, the network and optimiser every cell shares;
2. **train at equal budget** (:mod:`.training`): :func:`train_cell` trains one cell for a number
   of seconds (the clock sets the step count) or a fixed number of steps;
3. **sample over seeds** (:mod:`.sampling`): :func:`sample_over_seeds` draws one sample set per
   sampler and sampler seed (:func:`run_cell` does steps 2 and 3 in one call);
4. **evaluate against held-out data and the noise floor** (:mod:`.evaluation`): each metric's
   mean over the sample sets next to the same metric between independent draws of the data;
   :mod:`.report` summarises rows over training seeds.

An experiment is then a short function that chooses cells, data and sizes and writes its own
tables and figures (:mod:`symscore.demo`, :mod:`symscore.paper`).
"""
from .evaluation import FLOOR, flat_metrics, noise_floor, ratio_to_floor
from .report import seeds_summary, seeds_table
from .run import CellRun, run_cell
from .sampling import Sampled, sample_over_seeds
from .spec import Cell, Network, parse_cells
from .training import Trained, train_cell, use_torch_threads

__all__ = ["Cell", "Network", "parse_cells", "Trained", "train_cell", "use_torch_threads", "Sampled",
           "sample_over_seeds", "CellRun", "run_cell", "FLOOR", "noise_floor", "flat_metrics", "ratio_to_floor",
           "seeds_summary", "seeds_table"]
