"""Truth in low dimension: the exact law p_t of an SDE's state, to measure scores and targets against.

* :class:`GaussianMixture`: initial laws with closed-form density, score and sampling.
* :func:`linear_mixture`: the exact p_t of a linear SDE from a mixture (any m).
* :func:`fokker_planck`: p_t of any SDE the parser accepts with m = 1 or 2, from a finite-volume
  solution of its Fokker-Planck equation (sigma(t, x) and degenerate noise included).
* :func:`solve`: the closed form where it exists, else the Fokker-Planck solution.
* :func:`score_error` and :func:`target_bias`: how far a learned score is from the truth, and how
  biased a regression target is at a chosen step count; :func:`compare_targets`: which target and
  step count to use at equal cost (``symscore check`` prints all three).
"""
from .finite_volume import FokkerPlanckSolution, fokker_planck
from .linear import LinearMixtureSolution, is_linear, linear_mixture
from .mixture import GaussianMixture
from .report import ScoreErrorReport, TargetBiasReport, TargetComparison, compare_targets, score_error, target_bias
from .selection import solve
from .solution import Solution

__all__ = ["GaussianMixture", "Solution", "LinearMixtureSolution", "FokkerPlanckSolution", "linear_mixture",
           "fokker_planck", "is_linear", "solve", "score_error", "target_bias", "ScoreErrorReport",
           "TargetBiasReport", "TargetComparison", "compare_targets"]
