"""Stein's identity on forward samples: a linear correction of a trained score, measured as a value.

:func:`measure_stein_gain` returns a :class:`~symscore.learn.measurements.SteinGain`, the
correction kappa(t) (x - mu(t)) that makes the score satisfy E[(X_i - mu_i) s_i(X_t)] = -1 on
forward paths, of kind ``"forward"``; ``train(..., stein_calibration=True)`` gives it to the model
it returns. :func:`symscore.learn.calibration.calibrate_flow` measures a ``"flow"`` correction on
top of it along a sampler's path; the model applies both (:mod:`symscore.learn.model`).
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .._checks import positive_int
from .._errors import SymscoreError
from .measurements import CORRECTION_KINDS, SteinGain
from .model import ScoreModel
from .preconditioning import to_host

__all__ = ["measure_stein_gain", "calibrate_stein"]


def measure_stein_gain(model: ScoreModel, source, data, n_paths: int = 8192, seed: int = 0) -> SteinGain:
    """The linear correction that makes ``model`` satisfy Stein's identity on forward samples.

    Every density satisfies E[(X_i - mu_i) d_i log p(X)] = -1 (integrate by parts), so a learned
    score should too, at every t and coordinate. A learned correction to the Gaussian skip can break
    it where the target is noisy (small t), and the probability-flow ODE carries the error into the
    samples' second moments: with b = -x and sigma sigma^T = 2 Q, d/dt E[X_i^2] = -2 E[X_i^2] -
    2 Q_i E[X_i s_i], so a score with E[X_i s_i] off by delta moves the variance by 2 Q_i delta per
    unit time (measured on lognormal fields at L = 8: delta up to 1.7 below t = 0.1, spectrum 6-16%
    low). This measures, at the model's preconditioning times, e_i(t) = E[(X_i - mu_i) s_i(X_t)] on
    ``n_paths`` forward paths from ``data`` for the model without any correction it carries (of any
    kind: the network's own score), and returns the Stein gain kappa(t) so that s + kappa (x - mu) satisfies the identity exactly on
    them. kappa is pooled over the coordinates :meth:`ScoreModel.stein_groups` pools (a field's
    2l + 1 coefficients of degree l under Cameron-Martin preconditioning, each coordinate alone
    otherwise). A linear correction cannot fix a wrong non-Gaussian part; it restores the second moments' dynamics.

    Returns the correction of kind ``"forward"`` on the model's preconditioning times
    (G = len(model.precond_times)); the model is left as it is.
    """
    n_paths = positive_int(n_paths, "n_paths", low=2)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 + 1]))
    # every path gets its own increments: a small data set is drawn with replacement
    x0 = data[rng.choice(data.shape[0], size=n_paths, replace=n_paths > data.shape[0])]
    times = model.precond_times.cpu().numpy().astype(np.float64)
    record_steps = np.round(times / source.dt).astype(int)
    if record_steps[0] < 1 or np.any(np.diff(record_steps) <= 0) or not np.allclose(record_steps * source.dt, times):
        raise SymscoreError("model: its preconditioning times are not on the target source's grid "
                            "(calibrate with the source it was trained with)")
    bare = copy.deepcopy(model)  # the score without the corrections the model may carry
    for kind in CORRECTION_KINDS:
        bare.set_correction(SteinGain.zero(model.m, model.precond_times.detach().cpu(), kind))
    parameter = next(model.parameters())
    mean = model.x_mean.cpu().numpy().astype(np.float64)
    moment, second = np.zeros((len(times), model.m)), np.zeros((len(times), model.m))
    chunk = 2048
    for start in range(0, x0.shape[0], chunk):  # bounded memory: (K, chunk, m) at a time
        x, _ = source.batch(x0[start:start + chunk], record_steps, int(rng.integers(2**31 - 1)))
        x = to_host(x)
        for k, t in enumerate(times):
            with torch.no_grad():
                score = bare(torch.as_tensor(x[k], dtype=parameter.dtype, device=parameter.device), float(t))
            centred = x[k] - mean[k]
            moment[k] += (centred * score.cpu().numpy()).sum(axis=0)
            second[k] += (centred**2).sum(axis=0)
    groups, size = model.stein_groups()
    gain = np.empty_like(moment)
    for k in range(len(times)):
        violation = -size - np.bincount(groups, weights=moment[k] / x0.shape[0])
        gain[k] = (violation / np.bincount(groups, weights=second[k] / x0.shape[0]))[groups]
    return SteinGain(model.precond_times.detach().cpu(), gain)


def calibrate_stein(model: ScoreModel, source, data, n_paths: int = 8192, seed: int = 0) -> np.ndarray:
    """Give ``model`` the forward correction :func:`measure_stein_gain` measures (replacing only its
    forward one: a flow correction stays, though it was measured on top of the forward one it had);
    returns the (G, m) gain it set."""
    correction = measure_stein_gain(model, source, data, n_paths, seed)
    model.set_correction(correction)
    return correction.gain.numpy().astype(np.float64)
