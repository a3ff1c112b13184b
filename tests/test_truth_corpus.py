"""The Malliavin target against a truth that does not share its scheme: Fokker-Planck solutions.

For random 1-D and 2-D SDEs of every noise kind the parser accepts (tests/truth_corpus.py), the
binned conditional mean of target - s*(X_t), with s* the Fokker-Planck score, must vanish within
its standard error plus an allowance for the Euler bias measured from the step count (the same
residual at half the steps on one Brownian path) and for the truth's own grid error; the allowances
are derived in ``BinnedCheck``. The threshold is the normal quantile at family-wise level 1e-3 over
all bins, coordinates and times (about 4.1 for 64 statistics).

Negative controls, in the default suite: the same check on deliberately wrong weights (first order
only, P dropped, RPsi dropped, the sign of R flipped) must fail by more than 10 standard errors.
Measured figures: docs/results/truth.md.
"""
from __future__ import annotations

import numpy as np
import pytest

import symscore as ss
from truth_corpus import NOISE_KINDS, TERMS, binned_check, corpus_case

TIMES = np.array([0.3, 1.0])

#: One case per noise kind in the default suite (the families rotate); the slow suite runs them all.
DEFAULT_CASES = [(1, "polynomial", "state"), (1, "transcendental", "time"), (1, "rational", "constant"),
                 (2, "transcendental", "state"), (2, "rational", "hypoelliptic")]
#: The truth must be known to this (its refinement estimate) for the check to have power.
RESOLVED = 0.05
ALL_CASES = [(m, family, noise) for m in (1, 2) for noise in NOISE_KINDS[m] for family in TERMS]


#: Fokker-Planck cells per axis: fine enough that the truth's error allowance stays below a
#: standard error (1-D 800: estimated score error <= 3e-3; 2-D 192 in the fast suite, 256 for the
#: whole corpus, whose kinetic draws need it)
CELLS = {1: 800, 2: 192}
CELLS_WHOLE = {1: 800, 2: 256}


_TRUTHS: dict = {}


def _truth(case, cells):
    """The Fokker-Planck truth of a corpus case, solved once per case and grid (its correct and wrong
    weights share it), or the error that says the grid does not resolve it."""
    key = (case.label, cells)
    if key not in _TRUTHS:
        try:
            _TRUTHS[key] = ss.truth.fokker_planck(case.sde, case.p0, TIMES, cells=cells)
        except ss.SymscoreError as error:  # "cells: ... does not resolve p_t"
            if not str(error).startswith("cells:"):
                raise
            _TRUTHS[key] = error
    return _TRUTHS[key]


def _check(case, variant=ss.Variant(), n=None, n_steps=None, seed=11, cells=CELLS):
    """The binned check of ``variant``'s target for a corpus case (torch kernels: no numba compile)."""
    m = case.sde.m
    n = n or (40_000 if m == 1 else 20_000)
    n_steps = n_steps or (100 if m == 1 else 50)
    truth = _truth(case, cells[m])
    if isinstance(truth, ss.SymscoreError):
        pytest.skip(f"{case.label}: {truth}")
    if truth.error_estimate.max() > RESOLVED:  # its allowance would let a wrong target through
        pytest.skip(f"{case.label}: the truth is not resolved at {cells[m]} cells (estimate "
                    f"{truth.error_estimate.max():.2g} > {RESOLVED})")
    kernel = ss.compile(case.sde, backend="torch", variant=variant)
    return binned_check(kernel, truth, case.p0.sample(n, seed), TIMES, n_steps, seed=seed + 1)


def _assert_unbiased(check, label):
    worst = check.worst()
    assert worst < check.threshold, (
        f"{label}: a bin mean of target - score lies {worst:.1f} SE beyond the Euler and grid allowances "
        f"(threshold {check.threshold:.1f})")


@pytest.mark.parametrize("m, family, noise", DEFAULT_CASES, ids=lambda v: str(v))
def test_the_target_matches_the_fokker_planck_truth(m, family, noise):
    case = corpus_case(m, family, noise, seed=0)
    _assert_unbiased(_check(case), case.label)


@pytest.mark.slow
@pytest.mark.parametrize("m, family, noise", ALL_CASES, ids=lambda v: str(v))
def test_the_target_matches_the_fokker_planck_truth_on_the_whole_corpus(m, family, noise):
    """Every family with every noise kind, drawn afresh (seed 1), on twice the default's paths."""
    case = corpus_case(m, family, noise, seed=1)
    _assert_unbiased(_check(case, n=2 * (40_000 if m == 1 else 20_000), cells=CELLS_WHOLE), case.label)


#: The deliberately wrong weights, on a 1-D and a coupled 2-D corpus case with sigma(x) (P and RPsi
#: exist only for a state-dependent sigma), the paths each needs, and whether the fast suite runs
#: it (the issue's four kinds are all there in 1-D, RPsi standing for the pair; the coupled second
#: variation through the first-order control). Dropping P moves the weight least (measured in 1-D:
#: 11 SE at 40 000 paths, 17 at 100 000; 6 in 2-D at 20 000); the others 25 to 126 SE.
ONE_D, TWO_D = (1, "polynomial", "state"), (2, "transcendental", "state")
WRONG = {"first order only": (ss.Variant(first_order_only=True), ONE_D, 40_000, True),
         "P dropped": (ss.Variant(drop="P"), ONE_D, 100_000, False),
         "RPsi dropped": (ss.Variant(drop="RPsi"), ONE_D, 40_000, True),
         "R with the wrong sign": (ss.Variant(negate="R"), ONE_D, 40_000, True),
         "first order only, coupled 2-D": (ss.Variant(first_order_only=True), TWO_D, 20_000, True),
         "RPsi dropped, coupled 2-D": (ss.Variant(drop="RPsi"), TWO_D, 20_000, False),
         "R with the wrong sign, coupled 2-D": (ss.Variant(negate="R"), TWO_D, 20_000, False)}


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if fast else pytest.mark.slow)
                                  for name, (*_, fast) in WRONG.items()])
def test_wrong_weights_miss_the_truth_by_more_than_10_standard_errors(name):
    variant, where, n, _ = WRONG[name]
    worst = _check(corpus_case(*where, seed=0), variant, n=n).worst()
    assert worst > 10, f"{name}: the check cannot tell this wrong weight apart (worst excess {worst:.1f} SE)"
