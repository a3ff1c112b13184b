"""The score network: an MLP s_theta(x, t) with a sinusoidal time embedding and preconditioning.

Scores of diffusion models change scale by orders of magnitude over t (|grad log p_t| ~ t^-1/2
near the data for VP, t^-1 for sub-VP), and so does the regression target. The model therefore
works in normalised units:

    s_theta(x, t) = c_out(t) * F_theta( (x - mu(t)) / std(t), embed(t) )

where mu(t), std(t) are the per-time mean and standard deviation of X_t and c_out(t) the per-time
root mean square of the regression target, all measured on a pilot batch by :func:`symscore.train`
and stored on the model (piecewise linear in t). Regressing target / c_out(t) keeps the loss O(1)
at every t, which is the time-weighted MSE with weight lambda(t) = c_out(t)^-2.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..compiler.cache import atomic_write
from .._errors import SymscoreError
from .._version import __version__

__all__ = ["ScoreModel"]

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}
FILE_FORMAT = "symscore.ScoreModel/1"
#: Buffers set from data (pilot batch and prior data), saved with the weights.
DATA_BUFFERS = ("precond_times", "x_mean", "x_std", "out_scale", "data_mean", "data_cov", "endpoints")


def _interpolate(t: torch.Tensor, grid: torch.Tensor, values: torch.Tensor, log_values: bool = False) -> torch.Tensor:
    """Values (G, m) on increasing times grid (G,) at t (n,), piecewise linear in log t (in log of the
    values too for scales), constant beyond the ends. Scales vary like powers of t, so this is
    accurate on a coarse geometric grid."""
    if grid.numel() == 1:
        return values.expand(t.shape[0], -1)
    log_grid = torch.log(grid)
    log_t = torch.log(t.clamp(grid[0], grid[-1]))
    right = torch.searchsorted(log_grid, log_t).clamp(1, grid.numel() - 1)
    left = right - 1
    weight = ((log_t - log_grid[left]) / (log_grid[right] - log_grid[left])).unsqueeze(1)
    if log_values:
        return torch.exp(torch.log(values[left]) * (1 - weight) + torch.log(values[right]) * weight)
    return values[left] * (1 - weight) + values[right] * weight


class SinusoidalEmbedding(nn.Module):
    """Sinusoidal features of log-time: tau = log(t / t0) / log(T / t0) in [0, 1] (t0 = 1e-4 T), then
    [tau, sin(pi f_k tau), cos(pi f_k tau)] with f_k geometric from 1 to 64.

    Scores change on a logarithmic time scale (their size goes like a power of t near 0), so equal
    steps in log t deserve equal resolution; features of t itself at high frequency would alias on
    the training grid of record times.
    """

    def __init__(self, dim: int, horizon: float):
        super().__init__()
        self.register_buffer("frequencies", torch.logspace(0.0, math.log10(64.0), (dim - 1) // 2))
        self.horizon, self.floor = horizon, 1e-4 * horizon

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        tau = torch.log(t.clamp_min(self.floor) / self.floor) / math.log(self.horizon / self.floor)
        phase = math.pi * tau.unsqueeze(1) * self.frequencies
        return torch.cat([tau.unsqueeze(1), torch.sin(phase), torch.cos(phase)], dim=1)


class ScoreModel(nn.Module):
    """A score network for an m-dimensional state.

    Args:
        m: state dimension.
        width, depth: hidden width and number of hidden layers of the MLP.
        activation: one of ``silu`` (default), ``gelu``, ``tanh``, ``relu``, ``softplus``.
        embedding_dim: size of the sinusoidal time embedding (even).
        T: time horizon of the SDE (scales the embedding).
        t_min: the smallest time the model was trained on (samplers stop there by default).

    Call it as ``model(x, t)`` with x of shape (n, m) and t a scalar or shape (n,), numpy or torch:
    the result is (n, m) of the same kind (numpy float64 for numpy input).
    """

    def __init__(self, m: int, width: int = 128, depth: int = 3, activation: str = "silu",
                 embedding_dim: int = 32, T: float = 1.0, t_min: float = 0.0):
        super().__init__()
        for name, value, low in (("m", m, 1), ("width", width, 1), ("depth", depth, 1), ("embedding_dim", embedding_dim, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SymscoreError(f"{name}: expected an integer >= {low}, got {value!r}")
        if embedding_dim % 2:
            raise SymscoreError(f"embedding_dim: expected an even number, got {embedding_dim}")
        if activation not in ACTIVATIONS:
            raise SymscoreError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if not (0 < float(T) < math.inf) or not (0 <= float(t_min) < float(T)):
            raise SymscoreError(f"T, t_min: expected 0 <= t_min < T, got T={T!r}, t_min={t_min!r}")
        self.config = {"m": m, "width": width, "depth": depth, "activation": activation,
                       "embedding_dim": embedding_dim, "T": float(T), "t_min": float(t_min)}
        self.m, self.T, self.t_min = m, float(T), float(t_min)
        self.embedding = SinusoidalEmbedding(embedding_dim, float(T))
        layers, size = [], m + 1 + 2 * ((embedding_dim - 1) // 2)
        for _ in range(depth):
            layers += [nn.Linear(size, width), ACTIVATIONS[activation]()]
            size = width
        layers.append(nn.Linear(size, m))
        self.net = nn.Sequential(*layers)
        self.set_preconditioning(torch.tensor([float(T)]), torch.zeros(1, m), torch.ones(1, m), torch.ones(1, m))
        self.set_prior_data(torch.zeros(m), torch.zeros(m, m), torch.zeros(0, m))
        self.loss_history: list[float] = []

    # -- buffers set from data ---------------------------------------------------------------
    def set_preconditioning(self, times, x_mean, x_std, out_scale) -> None:
        """Per-time mean and std of X_t and scale of the output, on increasing times > 0 (G,) -> (G, m)."""
        values = {"precond_times": times, "x_mean": x_mean, "x_std": x_std, "out_scale": out_scale}
        for name, value in values.items():
            value = torch.as_tensor(np.asarray(value), dtype=torch.float32)
            if not torch.isfinite(value).all():
                raise SymscoreError(f"{name}: the preconditioning must be finite")
            self.register_buffer(name, value)
        if (self.precond_times <= 0).any() or (self.x_std <= 0).any() or (self.out_scale <= 0).any():
            raise SymscoreError("x_std, out_scale: expected positive scales")

    def set_prior_data(self, data_mean, data_cov, endpoints) -> None:
        """Data moments and forward-simulated endpoints X_T, kept for the sampler's prior."""
        for name, value in (("data_mean", data_mean), ("data_cov", data_cov), ("endpoints", endpoints)):
            self.register_buffer(name, torch.as_tensor(np.asarray(value), dtype=torch.float64))

    # -- evaluation --------------------------------------------------------------------------
    def _times(self, t, n: int, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        if t.ndim == 0:
            return t.expand(n)
        if t.shape != (n,):
            raise SymscoreError(f"t: expected a scalar or shape ({n},), got shape {tuple(t.shape)}")
        return t

    def preconditioned(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_theta, c_out(t)) so that s_theta = c_out * F_theta (training regresses target / c_out)."""
        t = self._times(t, x.shape[0], x)
        grid = self.precond_times.to(x.dtype)
        mean = _interpolate(t, grid, self.x_mean.to(x.dtype))
        std = _interpolate(t, grid, self.x_std.to(x.dtype), log_values=True)
        features = torch.cat([(x - mean) / std, self.embedding(t).to(x.dtype)], dim=1)
        return self.net(features), _interpolate(t, grid, self.out_scale.to(x.dtype), log_values=True)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        raw, scale = self.preconditioned(x, t)
        return raw * scale

    def __call__(self, x, t):
        if isinstance(x, torch.Tensor):
            if x.ndim != 2 or x.shape[1] != self.m:
                raise SymscoreError(f"x: expected shape (n, {self.m}), got {tuple(x.shape)}")
            return super().__call__(x, t)
        array = np.asarray(x, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != self.m:
            raise SymscoreError(f"x: expected an array of shape (n, {self.m}), got shape {array.shape}")
        parameter = next(self.parameters())
        with torch.no_grad():
            out = super().__call__(torch.as_tensor(array, dtype=parameter.dtype, device=parameter.device),
                                   torch.as_tensor(np.asarray(t, dtype=np.float64), dtype=parameter.dtype,
                                                   device=parameter.device))
        return out.cpu().numpy().astype(np.float64)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the model to ``path`` atomically (a temporary file renamed over the target)."""
        path = Path(path)
        if path.is_dir():
            raise SymscoreError(f"path: expected a file name, got the folder {str(path)!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FILE_FORMAT, "version": __version__, "config": self.config,
                   "state_dict": self.state_dict(), "loss_history": list(map(float, self.loss_history))}
        atomic_write(path, lambda stream: torch.save(payload, stream))
        return path

    @classmethod
    def load(cls, path, map_location="cpu") -> "ScoreModel":
        """Read a model written by :meth:`save`; a damaged or foreign file raises SymscoreError."""
        payload = load_torch_file(path, map_location)
        if not isinstance(payload, dict) or payload.get("format") != FILE_FORMAT:
            raise SymscoreError(f"path: {str(path)!r} is not a symscore ScoreModel file")
        return cls.from_state(payload["config"], payload["state_dict"], payload.get("loss_history", []))

    @classmethod
    def from_state(cls, config: dict, state_dict: dict, loss_history=()) -> "ScoreModel":
        """A model built from its config and a state dict (weights and the data-measured buffers)."""
        model = cls(**config)
        for name in DATA_BUFFERS:  # measured on data: their shapes differ from a fresh model's
            model.register_buffer(name, state_dict[name].detach().clone())
        model.load_state_dict(state_dict)
        model.loss_history = list(loss_history)
        return model

    def extra_repr(self) -> str:
        return f"T={self.T}, t_min={self.t_min}"


def load_torch_file(path, map_location="cpu"):
    """torch.load with weights_only; a missing, truncated or corrupt file raises SymscoreError."""
    path = Path(path)
    if not path.is_file():
        raise SymscoreError(f"path: no such file {str(path)!r}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError for damaged files
        raise SymscoreError(f"path: {str(path)!r} is truncated or corrupt and cannot be read ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from exc
