"""Benes SDE dX = theta tanh(theta X) dt + dB from x0: grad log p_t(y) = theta tanh(theta y) - (y - x0)/t.

The binned conditional mean of the target must match the exact score; the first-variation-only
weight (second-variation terms dropped) must not.
"""
import numpy as np
import pytest

import symscore as ss
from symscore.spec.library import benes_score

THETA, X0, T_END = 1.5, 0.3, 1.0
N_PATHS, N_STEPS, N_BINS = 200_000, 500, 20
# Euler bias of the binned means at 500 steps, measured: below 0.01 (docs/math.md: about 0.01 at theta = 1.5).
DISCRETISATION_ALLOWANCE = 0.02


def binned_errors(paths, record):
    """Per-bin (estimate - exact, standard error), 20 equally populated bins of X_t (central 98%)."""
    x, target = paths.x[:, record, 0], paths.target[:, record, 0]
    edges = np.quantile(x, np.linspace(0.01, 0.99, N_BINS + 1))
    which = np.digitize(x, edges)
    rows = []
    for b in range(1, N_BINS + 1):
        sel = which == b
        exact = benes_score(x[sel, None], paths.t[record], [X0], THETA)[:, 0]
        diff = target[sel] - exact  # the exact score varies across the bin: compare per path
        rows.append((diff.mean(), diff.std(ddof=1) / np.sqrt(sel.sum())))
    return np.array(rows)


@pytest.fixture(scope="module")
def benes_runs(kernel):
    x0 = np.full((N_PATHS, 1), X0)
    times = [0.5, T_END]
    full = kernel("benes1d").simulate(x0, times, N_STEPS, seed=2024)
    first_order = kernel("benes1d", variant=ss.Variant(first_order_only=True)).simulate(x0, times, N_STEPS, seed=2024)
    return full, first_order


@pytest.mark.parametrize("record", [0, 1])
def test_target_matches_exact_benes_score(benes_runs, record):
    rows = binned_errors(benes_runs[0], record)
    bias, se = np.abs(rows[:, 0]), rows[:, 1]
    ok = bias <= 4 * se + DISCRETISATION_ALLOWANCE
    assert ok.sum() >= 15 and ok.all(), f"bins failing: bias {bias[~ok]}, se {se[~ok]}"


@pytest.mark.parametrize("record", [0, 1])
def test_first_variation_only_weight_is_wrong(benes_runs, record):
    rows = binned_errors(benes_runs[1], record)
    bias, se = np.abs(rows[:, 0]), rows[:, 1]
    failing = bias > 4 * se + DISCRETISATION_ALLOWANCE
    assert failing.sum() >= 5, "dropping the second variation should visibly bias the score"
    assert bias.max() > 0.2


# -- the control variate (docs/math.md, "Control variate") ---------------------------------------
class _Paths:
    """binned_errors' view of (K, n, 1) batch arrays."""

    def __init__(self, x, target, t):
        self.x, self.target, self.t = x.swapaxes(0, 1), target.swapaxes(0, 1), t


@pytest.fixture(scope="module")
def control_variate_runs(kernel, benes_runs):
    from symscore.learn.targets import leave_one_out_coefficient, make_target_source

    sde = kernel("benes1d").sde
    steps = np.array([N_STEPS // 2, N_STEPS])
    x0 = np.full((N_PATHS, 1), X0)
    source = make_target_source("malliavin-cv", sde, N_STEPS)
    x, cv = source.batch(x0, steps, seed=2024)
    weighted = source.weighted.simulate(x0, steps * source.dt, N_STEPS, seed=2024)
    # the wrong variant: a "control" from a weight that does not cover X_t (second variation dropped),
    # whose difference from w has a non-zero conditional mean
    plain, first = (p.target.swapaxes(0, 1) for p in benes_runs)
    wrong = plain + leave_one_out_coefficient(plain, plain - first) * (plain - first)
    t = benes_runs[0].t
    return {"cv": _Paths(x, cv, t), "weighted": weighted, "wrong": _Paths(x, wrong, t), "plain": plain, "cv_raw": cv}


@pytest.mark.parametrize("which", ["cv", "weighted"])
@pytest.mark.parametrize("record", [0, 1])
def test_time_weighted_and_control_variate_targets_match_exact_benes_score(control_variate_runs, which, record):
    rows = binned_errors(control_variate_runs[which], record)
    bias, se = np.abs(rows[:, 0]), rows[:, 1]
    ok = bias <= 4 * se + DISCRETISATION_ALLOWANCE
    assert ok.all(), f"bins failing: bias {bias[~ok]}, se {se[~ok]}"


def test_control_variate_built_from_a_non_covering_weight_is_biased(control_variate_runs):
    rows = binned_errors(control_variate_runs["wrong"], 1)
    bias, se = np.abs(rows[:, 0]), rows[:, 1]
    assert (bias > 4 * se + DISCRETISATION_ALLOWANCE).sum() >= 5


def test_control_variate_does_not_raise_the_variance(control_variate_runs):
    """c is variance-optimal, so the combined target's variance is at most the plain one's (up to
    the estimate of c): measured 1.0 at t = T/2 and about 1.01 at t = T on this 1-D problem."""
    plain, cv = control_variate_runs["plain"], control_variate_runs["cv_raw"]
    ratio = cv.var(axis=1)[:, 0] / plain.var(axis=1)[:, 0]
    assert np.all(ratio <= 1.0 + 1e-3), ratio


def test_control_variate_target_refuses_a_state_dependent_diffusion():
    import sympy as sp

    import symscore as ss
    from symscore.learn.targets import make_target_source

    x, t = sp.symbols("x t")
    gbm = ss.SDE([x / 2], sp.Matrix([[x / 3]]), [x], t, name="gbm_cv_target")
    with pytest.raises(ss.SymscoreError, match="target: 'malliavin-cv'.*sigma\\(t, x\\)"):
        make_target_source("malliavin-cv", gbm, 10)
