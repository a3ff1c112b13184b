"""The pilot batch: the per-time scales a ScoreModel is built with, measured on forward paths.

Before the first step the trainer simulates one pilot batch of ``pilot_size`` paths to 24 record
times geometric in t (the scales vary like powers of t) and measures there the mean and standard
deviation of X_t and the size of the target: the :class:`~symscore.learn.measurements.Scales` of
the model's preconditioning (:mod:`symscore.learn.model`), with the data's moments and the
endpoints X_T for the sampler's prior (:class:`~symscore.learn.measurements.PriorData`).
"""
from __future__ import annotations

import numpy as np
import torch

from .._errors import SymscoreError
from .measurements import PriorData, Scales

__all__ = ["cameron_martin_metric", "measured_scales", "measure", "to_host"]


def cameron_martin_metric(sde) -> np.ndarray:
    """The diagonal of Q with sigma sigma^T = 2 Q, for a constant diagonal sigma (else an error)."""
    sigma = sde.bound_diffusion()
    entries = sigma.todok()
    if sigma.rows != sigma.cols or any(i != j for i, j in entries) or len(entries) != sde.m:
        raise SymscoreError("preconditioning: 'cameron-martin' needs a square diagonal diffusion sigma with "
                            "every diagonal entry non-zero (sigma sigma^T = 2 Q)")
    metric = np.empty(sde.m)
    for (i, _), entry in entries.items():
        if not entry.is_number:
            raise SymscoreError(f"preconditioning: 'cameron-martin' needs a constant diffusion; sigma[{i}, {i}] = "
                                f"{entry} depends on {', '.join(sorted(map(str, entry.free_symbols)))}")
        metric[i] = float(entry) ** 2 / 2.0
    return metric


def measured_scales(preconditioning, x, values, metric):
    """(G, m) std of X_t and output scale from pilot samples x, values (G, n, m) (module docstring
    of :mod:`symscore.learn.model`); values None: the ssm loss, scaled like a Gaussian's score."""
    root = np.sqrt(metric) if preconditioning == "cameron-martin" else np.ones(x.shape[2])
    if preconditioning == "coordinate":
        x_std = np.maximum(x.std(axis=1), 1e-3 * max(1.0, float(np.abs(x).max())))
    else:  # one scale for all coordinates, in the units of Q^1/2 (of 1 for euclidean)
        spread = np.sqrt(np.mean((x / root).var(axis=1), axis=1, keepdims=True))
        x_std = np.maximum(spread, 1e-12) * root
    if values is None:
        return x_std, 1.0 / x_std
    if preconditioning == "coordinate":
        out_scale = np.sqrt(np.mean(values**2, axis=1))
        return x_std, np.maximum(out_scale, 1e-6 * out_scale.max())
    out_scale = np.sqrt(np.mean((values * root) ** 2, axis=(1, 2)))[:, None]
    return x_std, np.maximum(out_scale, 1e-6 * out_scale.max()) / root


def measure(source, data, candidates, pilot_size: int, seed: int, preconditioning: str, gaussian_skip: bool,
            metric: np.ndarray) -> tuple[Scales, PriorData]:
    """(Scales, PriorData) from a pilot batch of ``source`` (a target source) started at ``data``
    points: per-time mean and std of X_t and the output scale at record steps geometric between
    the ``candidates``' ends (the whole grid's last step included), the data's moments and X_T.
    With ``gaussian_skip`` the output scale is that of the target minus the Gaussian skip, which is
    what the network then learns."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31]))
    x0 = data[rng.choice(data.shape[0], size=min(pilot_size, data.shape[0]), replace=False)]
    # geometric in t: the scales vary like powers of t (the model interpolates in log t)
    record_steps = np.unique(np.append(np.geomspace(candidates[0], candidates[-1], 24).round().astype(int),
                                       source.n_steps))
    x, values = (to_host(a) for a in source.batch(x0, record_steps, int(rng.integers(2**31 - 1))))
    x_var = np.maximum(x.var(axis=1), 1e-12 * max(1.0, float(np.abs(x).max())) ** 2)
    if gaussian_skip and values is not None:  # the network learns the target minus the skip
        values = values + (x - x.mean(axis=1, keepdims=True)) / x_var[:, None, :]
    x_std, out_scale = measured_scales(preconditioning, x, values, metric)
    times = record_steps * source.dt
    scales = Scales(times, x.mean(axis=1), x_std, out_scale, x_var)
    return scales, PriorData(data.mean(axis=0), np.atleast_2d(np.cov(data.T)), x[-1])


def to_host(array):
    """A numpy array of a numpy array or tensor (None stays None)."""
    return array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else array
