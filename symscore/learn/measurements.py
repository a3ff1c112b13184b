"""The values a :class:`~symscore.learn.model.ScoreModel` is built with that are measured on data.

A model is complete after its constructor: the trainer measures these first (the pilot batch of
:mod:`symscore.learn.preconditioning`, the calibration of :mod:`symscore.learn.stein`) and hands
them over as values; nothing must be set afterwards in a fixed order.

* :class:`Scales`: per-time mean and standard deviation of X_t and the output scale c_out(t) on a
  grid of times (the preconditioning of :mod:`symscore.learn.model`), with X_t's variance for the
  Gaussian skip.
* :class:`PriorData`: the data's moments and forward-simulated endpoints X_T, for the sampler's prior.
* :class:`SteinGain`: a linear correction kappa(t) (x - mu(t)) of the score, on its own times, of
  one kind: a model keeps one per kind (:data:`CORRECTION_KINDS`) and applies their sum
  (:func:`compose`), so the calibrations can be given in any order.

All three are tables over time read by :func:`interpolate`: piecewise linear in log t.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._errors import SymscoreError

__all__ = ["Scales", "PriorData", "SteinGain", "CORRECTION_KINDS", "compose", "interpolate"]


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


def _float32(value, device=None) -> torch.Tensor:
    """A float32 copy of a tensor (on its device) or of an array (on ``device``)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float32, copy=True)
    return torch.as_tensor(np.asarray(value), dtype=torch.float32, device=device)


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


#: The kinds of Stein correction a model keeps, each on its own times, the base first:
#: ``"forward"``, Stein's identity on forward paths (:mod:`symscore.learn.stein`, on the
#: preconditioning times), and ``"flow"``, the identity on the probability-flow ODE's own path
#: (:mod:`symscore.learn.calibration`, on a sampler's grid, measured with the forward one applied).
CORRECTION_KINDS = ("forward", "flow")
#: The model's buffers (times, gain) of each kind; a file that holds only ``stein_times`` and
#: ``stein_gain`` loads with that correction as its forward one.
CORRECTION_BUFFERS = {"forward": ("stein_times", "stein_gain"), "flow": ("flow_times", "flow_gain")}


@dataclass(frozen=True)
class SteinGain:
    """kappa(t) (G, m) on increasing times > 0 (G,) (or (1, m): constant): the linear correction
    kappa (x - mu(t)) a calibration adds to the score, and its ``kind`` (one of
    :data:`CORRECTION_KINDS`): ``"forward"`` from :mod:`symscore.learn.stein` on the
    preconditioning times, ``"flow"`` from :mod:`symscore.learn.calibration` on a sampler's own grid.
    A model keeps one correction of each kind and applies their sum (:func:`compose`).
    Stored as float32 tensors; validated on construction."""

    times: torch.Tensor
    gain: torch.Tensor
    kind: str = "forward"

    def __post_init__(self):
        if self.kind not in CORRECTION_KINDS:
            raise SymscoreError(f"kind: expected one of {', '.join(map(repr, CORRECTION_KINDS))}, got {self.kind!r}")
        times = self.times.detach().clone() if isinstance(self.times, torch.Tensor) else _float32(self.times)
        value = _float32(self.gain).to(times.device) if isinstance(self.gain, torch.Tensor) else _float32(
            self.gain, times.device)
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
    def zero(cls, m: int, times, kind: str = "forward") -> "SteinGain":
        """No correction."""
        return cls(times, torch.zeros(1, m), kind)

    def is_zero(self) -> bool:
        """Whether the correction changes nothing (reads the values: a GPU waits for them)."""
        return not bool(self.gain.abs().max() > 0)

    def on(self, times: np.ndarray) -> np.ndarray:
        """The gain read at ``times`` (K,), float64 (K, m), constant beyond the ends."""
        with torch.no_grad():
            return interpolate(torch.as_tensor(np.asarray(times, dtype=np.float64)),
                               self.times.detach().cpu().to(torch.float64),
                               self.gain.detach().cpu().to(torch.float64)).numpy().copy()

    def covers(self, times: np.ndarray) -> np.ndarray:
        """Which of ``times`` lie within this correction's first and last time (to float32's
        rounding of the times, relative 1e-5)."""
        first, last = self.times[0].item(), self.times[-1].item()
        return (times > first * (1 - 1e-5)) & (times < last * (1 + 1e-5))

    def buffers(self) -> dict:
        """The model's buffers of this correction's kind by name."""
        times_name, gain_name = CORRECTION_BUFFERS[self.kind]
        return {gain_name: self.gain, times_name: self.times}


def compose(corrections: dict) -> SteinGain:
    """The total of a model's corrections (a :class:`SteinGain` per kind; ``"forward"`` required),
    as one table: the correction a model carrying it alone, as its forward one, applies.

    The corrections add, each read on its own times (constant beyond its ends). Each later kind in
    :data:`CORRECTION_KINDS` (``"flow"``) is a refinement fitted for the total at its own times
    (a sampler's grid), so over its range the total's nodes are its times alone, outside it the
    forward correction's: the total is linear in log t between the refinement's times, as the
    sampler it was fitted on read it between steps (RK4's midpoints), rather than bending at
    forward nodes that fall between them. Only the values of each kind enter, never the order in
    which they were set; without a nonzero refinement the forward correction itself is returned."""
    base = corrections["forward"]
    refinements = [corrections[kind] for kind in CORRECTION_KINDS[1:]
                   if kind in corrections and not corrections[kind].is_zero()]
    if not refinements:
        return base
    nodes = base.times.detach().cpu().numpy().astype(np.float64)
    for refinement in refinements:
        own = refinement.times.detach().cpu().numpy().astype(np.float64)
        nodes = np.unique(np.concatenate([own, nodes[~refinement.covers(nodes)]]))
    return SteinGain(nodes, sum((refinement.on(nodes) for refinement in refinements), base.on(nodes)))
