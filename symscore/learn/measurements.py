"""The values a :class:`~symscore.learn.model.ScoreModel` is built with that are measured on data.

A model is complete after its constructor: the trainer measures these first (the pilot batch of
:mod:`symscore.learn.preconditioning`, the calibration of :mod:`symscore.learn.stein`) and hands
them over as values; nothing must be set afterwards in a fixed order.

* :class:`Scales`: per-time mean and standard deviation of X_t and the output scale c_out(t) on a
  grid of times (the preconditioning of :mod:`symscore.learn.model`), with X_t's variance for the
  Gaussian skip.
* :class:`PriorData`: the data's moments and forward-simulated endpoints X_T, for the sampler's prior.
* :class:`SteinGain`: a linear correction kappa(t) (x - mu(t)) of the score, on its own times.

All three are tables over time read by :func:`interpolate`: piecewise linear in log t.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._errors import SymscoreError

__all__ = ["Scales", "PriorData", "SteinGain", "interpolate"]


def interpolate(t: torch.Tensor, grid: torch.Tensor, values: torch.Tensor, log_values=False) -> torch.Tensor:
    """Values (G, m) on increasing times grid (G,) at t (n,), piecewise linear in log t (in log of the
    values too for scales), constant beyond the ends. Scales vary like powers of t, so this is
    accurate on a coarse geometric grid. ``log_values`` is a bool, or a bool tensor (m,) naming the
    columns that are scales (several tables in one call: one search of the grid)."""
    if grid.numel() == 1 or values.shape[0] == 1:
        return values.expand(t.shape[0], -1)
    if t.shape[0] > 1 and t.stride(0) == 0:  # one time for every row (a sampler's step): one row's work
        return interpolate(t[:1], grid, values, log_values).expand(t.shape[0], -1)
    log_grid = torch.log(grid)
    log_t = torch.log(t.clamp(grid[0], grid[-1]))
    right = torch.searchsorted(log_grid, log_t).clamp(1, grid.numel() - 1)
    left = right - 1
    weight = ((log_t - log_grid[left]) / (log_grid[right] - log_grid[left])).unsqueeze(1)
    if isinstance(log_values, torch.Tensor):  # per column; the unselected branch's values are discarded
        logged = torch.where(log_values, torch.log(values), values)
        mixed = logged[left] * (1 - weight) + logged[right] * weight
        return torch.where(log_values, torch.exp(mixed), mixed)
    if log_values:
        return torch.exp(torch.log(values[left]) * (1 - weight) + torch.log(values[right]) * weight)
    return values[left] * (1 - weight) + values[right] * weight


def _float32(value) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value), dtype=torch.float32)


@dataclass(frozen=True)
class Scales:
    """Per-time mean and std of X_t and the output scale, on increasing times > 0 (G,) -> (G, m);
    ``x_var`` the per-coordinate variance of X_t (the Gaussian skip's; default x_std^2).
    Stored as float32 tensors (the model's buffers); validated on construction."""

    times: torch.Tensor
    x_mean: torch.Tensor
    x_std: torch.Tensor
    out_scale: torch.Tensor
    x_var: torch.Tensor | None = None

    def __post_init__(self):
        x_var = np.asarray(self.x_std) ** 2 if self.x_var is None else self.x_var
        values = {"times": self.times, "x_mean": self.x_mean, "x_std": self.x_std, "out_scale": self.out_scale,
                  "x_var": x_var}
        for name, value in values.items():
            value = _float32(value)
            if not torch.isfinite(value).all():
                raise SymscoreError(f"{name}: the preconditioning must be finite")
            object.__setattr__(self, name, value)
        if (self.times <= 0).any() or (self.x_std <= 0).any() or (self.out_scale <= 0).any() or (self.x_var <= 0).any():
            raise SymscoreError("x_std, out_scale, x_var: expected positive scales")

    @classmethod
    def neutral(cls, m: int, T: float) -> "Scales":
        """Mean 0 and unit scales at the single time T: an unmeasured model's."""
        return cls(torch.tensor([float(T)]), torch.zeros(1, m), torch.ones(1, m), torch.ones(1, m))

    def buffers(self) -> dict:
        """The model's buffers by name."""
        return {"precond_times": self.times, "x_mean": self.x_mean, "x_std": self.x_std,
                "out_scale": self.out_scale, "x_var": self.x_var}


@dataclass(frozen=True)
class PriorData:
    """Data moments (m,), (m, m) and forward-simulated endpoints X_T (N, m), kept for the sampler's
    prior (float64 tensors)."""

    data_mean: torch.Tensor
    data_cov: torch.Tensor
    endpoints: torch.Tensor

    def __post_init__(self):
        for name in ("data_mean", "data_cov", "endpoints"):
            object.__setattr__(self, name, torch.as_tensor(np.asarray(getattr(self, name)), dtype=torch.float64))

    @classmethod
    def empty(cls, m: int) -> "PriorData":
        """No data: zero moments, no endpoints (the sampler then needs ``data=`` or a prior)."""
        return cls(torch.zeros(m), torch.zeros(m, m), torch.zeros(0, m))

    def buffers(self) -> dict:
        return {"data_mean": self.data_mean, "data_cov": self.data_cov, "endpoints": self.endpoints}


@dataclass(frozen=True)
class SteinGain:
    """kappa(t) (G, m) on increasing times > 0 (G,) (or (1, m): constant): the linear correction
    kappa (x - mu(t)) a calibration adds to the score (:mod:`symscore.learn.stein` on the
    preconditioning times, :mod:`symscore.learn.calibration` on a sampler's own grid).
    Stored as float32 tensors; validated on construction."""

    times: torch.Tensor
    gain: torch.Tensor

    def __post_init__(self):
        times = torch.as_tensor(np.asarray(self.times), dtype=torch.float32) if not isinstance(
            self.times, torch.Tensor) else self.times.detach().clone()
        value = torch.as_tensor(np.asarray(self.gain), dtype=torch.float32, device=times.device)
        if times.ndim != 1 or not torch.isfinite(times).all() or (times <= 0).any() or (times.diff() <= 0).any():
            shown = ", ".join(f"{time:.4g}" for time in times.flatten()[:6].tolist())
            shown += ", ..." if times.numel() > 6 else ""
            raise SymscoreError(f"times: expected increasing positive finite times of shape (G,), got shape "
                                f"{tuple(times.shape)}: [{shown}]")
        if value.ndim != 2 or value.shape[0] not in (1, times.numel()) or not torch.isfinite(value).all():
            raise SymscoreError(f"gain: expected finite values of shape (1 or {times.numel()}, m), "
                                f"got shape {tuple(value.shape)}")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "gain", value)

    @classmethod
    def zero(cls, m: int, times) -> "SteinGain":
        """No correction."""
        return cls(times, torch.zeros(1, m))

    def on(self, times: np.ndarray) -> np.ndarray:
        """The gain read at ``times`` (K,), float64 (K, m): a new table to refine (calibrate_flow)."""
        with torch.no_grad():
            return interpolate(torch.as_tensor(times), self.times.detach().cpu().to(torch.float64),
                               self.gain.detach().cpu().to(torch.float64)).numpy().copy()

    def buffers(self) -> dict:
        return {"stein_gain": self.gain, "stein_times": self.times}
