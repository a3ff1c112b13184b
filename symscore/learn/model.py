"""The score network: an MLP s_theta(x, t) with a sinusoidal time embedding and preconditioning.

Scores of diffusion models change scale by orders of magnitude over t (|grad log p_t| ~ t^-1/2
near the data for VP, t^-1 for sub-VP), and so does the regression target. The model therefore
works in normalised units:

    s_theta(x, t) = c_out(t) * F_theta( (x - mu(t)) / std(t), embed(t) )

where mu(t) is the per-time mean of X_t and std(t), c_out(t) are (m,) scales measured on a pilot
batch by :func:`symscore.train` (:mod:`symscore.learn.preconditioning`) and given to the model's
constructor as a :class:`~symscore.learn.measurements.Scales` (piecewise linear in log t). Regressing
target / c_out(t) keeps the loss O(1) at every t, which is the time-weighted MSE with weight
lambda(t) = c_out(t)^-2. How the scales vary across coordinates is the ``preconditioning``:

* ``"coordinate"`` (default): std(t) and c_out(t) per coordinate, the standard deviation of X_t
  and the root mean square of the target in each (a diagonal preconditioner measured on data).
* ``"euclidean"``: one scale for all coordinates: the plain Euclidean regression of the score.
  With coordinates of very different scales (a field's high degrees) the loss is dominated by
  the largest scores and the others are learned poorly.
* ``"cameron-martin"``: the geometry of the noise covariance Q (sigma sigma^T = 2 Q, diagonal and
  constant): std(t) = s(t) Q^1/2 and c_out(t) = c(t) Q^-1/2 with scalars s, c. The network's
  output c(t) Q^1/2 F_theta is then the score in the Cameron-Martin geometry, Q grad log p_t
  (:meth:`ScoreModel.cameron_martin_score`), and the loss is |Q^1/2 (s_theta - target)|^2 / c^2:
  every mode of a Q-Wiener-driven field counts alike, however large L is.

With ``gaussian_skip=True`` the network learns the difference from the score of the Gaussian with
X_t's per-coordinate mean and variance, -(x - mu(t)) / var(t) (measured on the same pilot batch):

    s_theta(x, t) = -(x - mu(t)) / var(t) + c_out(t) * F_theta(...)

That part is exact for Gaussian data and near T, where p_t is close to the Gaussian prior. It
matters where m exceeds the hidden width: an MLP narrower than m cannot pass x through, so
without the skip a field of m = 289 coefficients learns the linear score -x / var only in part
(slope -0.5 instead of -1 at the top degrees, measured), and the reverse SDE, whose contraction
rests on that slope, inflates the samples' variance many times over.

The network F_theta is one of three ``architecture`` choices:

* ``"mlp"``: a plain MLP on [z, embed(t)] (``depth`` hidden layers of ``width``);
* ``"resnet"``: the residual MLP of the toy experiments of the diffusion literature (the Malliavin
  paper's 6 blocks of width 4096 at small scale): an input layer, then ``depth`` pre-norm blocks
  h + W2 act(W1 act(LayerNorm h) + E_k e(t)) where e(t) is a learned projection of the time
  features given to every block, then LayerNorm, act and an output layer that starts at zero (so
  the model starts at the Gaussian skip, or at 0). Time enters every block rather than only the
  input, and the skip connections keep gradients O(1) with depth. It is opt-in: on the checkerboard
  with VP + DSM at 5 min on one CPU core, 256 x 4 blocks took 2754 steps against the 3 x 128 MLP's
  21540 and matched it (sliced W2 0.079 against 0.078), no better.
* ``"sfno"`` (fields of m = (L + 1)^2 coefficients only): a spherical Fourier neural operator
  (:mod:`symscore.learn.sfno`): synthesis to a grid, spectral convolutions and pointwise layers per
  pixel, analysis. It carries the part of the score that is non-Gaussian pixel by pixel, which an
  MLP on coefficients hardly learns. It replaces the spherical block of earlier versions
  (``spherical_channels``), whose files this version refuses to load.

Stein corrections are linear terms kappa(t) (x - mu(t)) that calibrations add to the score, one per
kind (:data:`~symscore.learn.measurements.CORRECTION_KINDS`): ``"forward"``, fitted on forward
paths after training (``train(..., stein_calibration=True)``), and ``"flow"``, fitted on the
probability-flow ODE's own path on top of the forward one
(:func:`symscore.learn.calibration.calibrate_flow`). Each lives on its own times; the model
applies their sum (:func:`~symscore.learn.measurements.compose`), and giving a correction
(:meth:`ScoreModel.set_correction`) replaces only the one of its kind, so the result does not
depend on the order in which the calibrations ran.
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
from .measurements import CORRECTION_BUFFERS, CORRECTION_KINDS, PriorData, Scales, SteinGain, compose, interpolate
from .sfno import SphericalFourierNetwork

__all__ = ["ScoreModel", "PRECONDITIONINGS", "ARCHITECTURES"]

ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU, "tanh": nn.Tanh, "relu": nn.ReLU, "softplus": nn.Softplus}
FILE_FORMAT = "symscore.ScoreModel/1"
#: Buffers set from data (pilot batch and prior data), saved with the weights.
DATA_BUFFERS = ("precond_times", "x_mean", "x_std", "out_scale", "data_mean", "data_cov", "endpoints", "x_var",
                "stein_gain", "stein_times", "flow_gain", "flow_times")
#: How the normalising scales vary across coordinates (module docstring).
PRECONDITIONINGS = ("coordinate", "euclidean", "cameron-martin")


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
        if t.ndim == 1 and t.shape[0] > 1 and t.stride(0) == 0:  # one time for every row: one row's work
            return self(t[:1]).expand(t.shape[0], -1)
        tau = torch.log(t.clamp_min(self.floor) / self.floor) / math.log(self.horizon / self.floor)
        phase = math.pi * tau.unsqueeze(1) * self.frequencies
        return torch.cat([tau.unsqueeze(1), torch.sin(phase), torch.cos(phase)], dim=1)


class MLP(nn.Sequential):
    """``depth`` hidden layers on the concatenation [z, embed(t)], then a linear output."""

    def __init__(self, m: int, time_features: int, width: int, depth: int, activation):
        layers, size = [], m + time_features
        for _ in range(depth):
            layers += [nn.Linear(size, width), activation()]
            size = width
        layers.append(nn.Linear(size, m))
        super().__init__(*layers)

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([z, embedding], dim=1))


class ResidualBlock(nn.Module):
    """h + W2 act(W1 act(LayerNorm h) + E e): a pre-norm residual block with a time input e."""

    def __init__(self, width: int, activation):
        super().__init__()
        self.norm, self.inner, self.time, self.outer = (nn.LayerNorm(width), nn.Linear(width, width),
                                                        nn.Linear(width, width), nn.Linear(width, width))
        self.act = activation()

    def forward(self, h: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return h + self.outer(self.act(self.inner(self.act(self.norm(h))) + self.time(time)))


class ResidualMLP(nn.Module):
    """Input layer on [z, embed(t)], ``depth`` :class:`ResidualBlock` s fed a learned time projection,
    LayerNorm, act and a zero-initialised output layer (module docstring)."""

    def __init__(self, m: int, time_features: int, width: int, depth: int, activation):
        super().__init__()
        self.inputs = nn.Linear(m + time_features, width)
        self.time = nn.Sequential(nn.Linear(time_features, width), activation())
        self.blocks = nn.ModuleList(ResidualBlock(width, activation) for _ in range(depth))
        self.norm, self.act, self.outputs = nn.LayerNorm(width), activation(), nn.Linear(width, m)
        nn.init.zeros_(self.outputs.weight)
        nn.init.zeros_(self.outputs.bias)

    def forward(self, z: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h, time = self.inputs(torch.cat([z, embedding], dim=1)), self.time(embedding)
        for block in self.blocks:
            h = block(h, time)
        return self.outputs(self.act(self.norm(h)))


#: The networks F_theta (module docstring), by ``architecture`` name.
ARCHITECTURES = {"mlp": MLP, "resnet": ResidualMLP, "sfno": SphericalFourierNetwork}


class ScoreModel(nn.Module):
    """A score network for an m-dimensional state.

    Args:
        m: state dimension.
        width, depth: hidden width and number of hidden layers (``"mlp"``) or residual blocks
            (``"resnet"``).
        architecture: ``"mlp"`` (default, and that of files without the key), ``"resnet"`` or
            ``"sfno"`` (module docstring).
        activation: one of ``silu`` (default), ``gelu``, ``tanh``, ``relu``, ``softplus``.
        embedding_dim: size of the sinusoidal time embedding (even).
        T: time horizon of the SDE (scales the embedding).
        t_min: the smallest time the model was trained on (samplers stop there by default).
        preconditioning: ``"coordinate"``, ``"euclidean"`` or ``"cameron-martin"`` (module
            docstring); the last needs ``metric``, the diagonal of Q.
        gaussian_skip: add the Gaussian score -(x - mu(t)) / var(t) of X_t's measured moments
            (module docstring).
        scales: the measured :class:`~symscore.learn.measurements.Scales` (default: mean 0 and unit
            scales, an unmeasured model).
        prior_data: the data's :class:`~symscore.learn.measurements.PriorData` for the sampler's
            prior (default: none).
        metric: the diagonal of Q (m,), positive: the Cameron-Martin metric of
            :meth:`cameron_martin_score` (default: ones).
        corrections: :class:`~symscore.learn.measurements.SteinGain` corrections, at most one of
            each kind (default: none; module docstring).

    Call it as ``model(x, t)`` with x of shape (n, m) and t a scalar or shape (n,), numpy or torch:
    the result is (n, m) of the same kind (numpy float64 for numpy input).
    """

    def __init__(self, m: int, width: int = 128, depth: int = 3, activation: str = "silu",
                 embedding_dim: int = 32, T: float = 1.0, t_min: float = 0.0, preconditioning: str = "coordinate",
                 gaussian_skip: bool = False, architecture: str = "mlp", *, scales: Scales | None = None,
                 prior_data: PriorData | None = None, metric=None, corrections=()):
        super().__init__()
        for name, value, low in (("m", m, 1), ("width", width, 1), ("depth", depth, 1),
                                 ("embedding_dim", embedding_dim, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SymscoreError(f"{name}: expected an integer >= {low}, got {value!r}")
        if embedding_dim % 2:
            raise SymscoreError(f"embedding_dim: expected an even number, got {embedding_dim}")
        if activation not in ACTIVATIONS:
            raise SymscoreError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if preconditioning not in PRECONDITIONINGS:
            raise SymscoreError(f"preconditioning: expected one of {', '.join(map(repr, PRECONDITIONINGS))}, "
                                f"got {preconditioning!r}")
        if architecture not in ARCHITECTURES:
            raise SymscoreError(f"architecture: expected one of {', '.join(map(repr, ARCHITECTURES))}, "
                                f"got {architecture!r}")
        if not (0 < float(T) < math.inf) or not (0 <= float(t_min) < float(T)):
            raise SymscoreError(f"T, t_min: expected 0 <= t_min < T, got T={T!r}, t_min={t_min!r}")
        self.config = {"m": m, "width": width, "depth": depth, "activation": activation,
                       "embedding_dim": embedding_dim, "T": float(T), "t_min": float(t_min)}
        if preconditioning != "coordinate":  # the defaults keep the config of earlier files
            self.config["preconditioning"] = preconditioning
        if architecture != "mlp":
            self.config["architecture"] = architecture
        self.architecture = architecture
        if not isinstance(gaussian_skip, bool):
            raise SymscoreError(f"gaussian_skip: expected True or False, got {gaussian_skip!r}")
        if gaussian_skip:
            self.config["gaussian_skip"] = True
        self.gaussian_skip = gaussian_skip
        self.preconditioning = preconditioning
        self.m, self.T, self.t_min = m, float(T), float(t_min)
        self.embedding = SinusoidalEmbedding(embedding_dim, float(T))
        time_features = 1 + 2 * ((embedding_dim - 1) // 2)
        self.net = ARCHITECTURES[architecture](m, time_features, width, depth, ACTIVATIONS[activation])
        self._register((scales or Scales.neutral(m, float(T))).buffers())
        self._register((prior_data or PriorData.empty(m)).buffers())
        metric = torch.ones(m) if metric is None else metric
        value = torch.as_tensor(np.asarray(metric), dtype=torch.float64)
        if value.shape != (m,) or not torch.isfinite(value).all() or (value <= 0).any():
            raise SymscoreError(f"metric: expected {m} positive finite numbers (the diagonal of Q), "
                                f"got shape {tuple(value.shape)}")
        self.register_buffer("metric", value)
        for kind in CORRECTION_KINDS:
            self.set_correction(SteinGain.zero(m, self.precond_times, kind))
        for correction in [corrections] if isinstance(corrections, SteinGain) else corrections:
            self.set_correction(correction)
        self.loss_history: list[float] = []

    def _register(self, buffers: dict) -> None:
        for name, value in buffers.items():
            self.register_buffer(name, value)

    # -- the measured values -------------------------------------------------------------------
    @property
    def scales(self) -> Scales:
        """The measured preconditioning (module docstring)."""
        return Scales(self.precond_times, self.x_mean, self.x_std, self.out_scale, self.x_var)

    @property
    def prior_data(self) -> PriorData:
        """The data's moments and endpoints kept for the sampler's prior."""
        return PriorData(self.data_mean, self.data_cov, self.endpoints)

    @property
    def corrections(self) -> dict[str, SteinGain]:
        """The Stein corrections by kind, each on its own times (zero where none was given)."""
        return {kind: SteinGain(getattr(self, CORRECTION_BUFFERS[kind][0]), getattr(self, CORRECTION_BUFFERS[kind][1]),
                                kind) for kind in CORRECTION_KINDS}

    @property
    def stein(self) -> SteinGain:
        """The total Stein correction kappa(t) the model applies, as one table (the corrections of
        every kind composed, :func:`~symscore.learn.measurements.compose`)."""
        return compose(self.corrections)

    def remeasure(self, scales: Scales, prior_data: PriorData, metric=None) -> "ScoreModel":
        """Replace the measured values at once (``scales``, ``prior_data``, ``metric``), keeping the
        weights and the Stein corrections (a later calibration replaces its own kind): how
        continued training gives a model the scales measured on its new run. Returns the model."""
        device = self.precond_times.device
        self._register({name: value.to(device) for name, value in (scales.buffers() | prior_data.buffers()).items()})
        if metric is not None:
            self.register_buffer("metric", torch.as_tensor(np.asarray(metric), dtype=torch.float64, device=device))
        return self

    def set_correction(self, correction: SteinGain) -> None:
        """Give the model ``correction`` (a :class:`~symscore.learn.measurements.SteinGain`),
        replacing only the correction of its kind; those of other kinds stay as they are (module
        docstring). The calibrations measure corrections as values
        (:func:`symscore.learn.stein.measure_stein_gain`,
        :func:`symscore.learn.calibration.measure_flow_gain`); this is how a model carries them to
        the samplers and to its file."""
        if not isinstance(correction, SteinGain):
            raise SymscoreError(f"correction: expected a SteinGain, got {type(correction).__name__}")
        if correction.gain.shape[1] != self.m:
            raise SymscoreError(f"gain: expected finite values of shape (1 or {correction.times.numel()}, {self.m}), "
                                f"got shape {tuple(correction.gain.shape)}")
        device = self.precond_times.device  # with the other buffers (a model moved to a GPU stays there)
        for name, value in correction.buffers().items():
            self.register_buffer(name, value.to(device))

    def set_stein_gain(self, gain, times=None) -> None:
        """Replace the model's forward Stein correction by kappa(t) (G, m) on increasing ``times`` > 0
        (G,), default ``precond_times`` (or (1, m), constant); a
        :class:`~symscore.learn.measurements.SteinGain` replaces the correction of its own kind
        (:meth:`set_correction`)."""
        if not isinstance(gain, SteinGain):
            gain = SteinGain(self.precond_times.detach().cpu() if times is None else times, gain)
        self.set_correction(gain)

    def _total_correction(self) -> SteinGain | None:
        """The total Stein correction on the model's device, or None when it is zero; composed
        again only when a correction's buffer changes.

        Reading a tensor's value into Python waits for a GPU, so ``forward`` must not do it on every
        call. The total is kept with the buffers it was composed from and their version counters:
        ``set_correction`` and ``.to()`` make new buffers, and ``load_state_dict``, an EMA update or
        any other in-place write bumps a counter."""
        buffers = [getattr(self, name) for kind in CORRECTION_KINDS for name in CORRECTION_BUFFERS[kind]]
        seen = getattr(self, "_stein_seen", None)
        if seen is None or any(old is not new or version != new._version
                               for (old, version), new in zip(seen[0], buffers)):
            total = compose(self.corrections)
            if total.is_zero():
                total = None
            elif total.times.device != buffers[0].device:
                total = SteinGain(total.times.to(buffers[0].device), total.gain)
            # the pairs keep references to the buffers, so their ids cannot be reused by new ones
            seen = self._stein_seen = ([(buffer, buffer._version) for buffer in buffers], total)
        return seen[1]

    def stein_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """(group of each coordinate (m,), size of each group): the coordinates a Stein gain pools.
        Under Cameron-Martin preconditioning those of equal noise variance (a field's 2 l + 1
        coefficients of degree l: an isotropic field's score treats them alike), else each alone.
        Groups are numbered by increasing noise variance: for a Whittle-Matern field, whose C_l falls
        with l, group 0 is degree L and the last group degree 0."""
        if self.preconditioning == "cameron-martin":
            _, groups = np.unique(self.metric.detach().cpu().numpy(), return_inverse=True)
        else:
            groups = np.arange(self.m)
        return groups, np.bincount(groups)

    # -- evaluation --------------------------------------------------------------------------
    def _times(self, t, n: int, like: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        if t.ndim == 0:
            return t.expand(n)
        if t.shape != (n,):
            raise SymscoreError(f"t: expected a scalar or shape ({n},), got shape {tuple(t.shape)}")
        return t

    def mean_at(self, t: torch.Tensor) -> torch.Tensor:
        """mu(t) (n, m): the mean of X_t at times t (n,) from the pilot, in t's dtype and on its
        device; the centre of the normalisation, the Gaussian skip and the Stein correction."""
        return interpolate(t, self.precond_times.to(t.dtype), self.x_mean.to(t.dtype))

    def preconditioned(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(F_theta, c_out(t)) so that s_theta = c_out * F_theta (training regresses target / c_out)."""
        t = self._times(t, x.shape[0], x)
        m, shape = self.m, self.x_mean.shape  # (G, m)
        # mu(t), sigma(t) and c_out(t) in one interpolation (one search of the grid), the same
        # arithmetic entry by entry as three calls; the last 2m columns are scales
        table = torch.cat([self.x_mean, self.x_std.broadcast_to(shape), self.out_scale.broadcast_to(shape)], dim=1)
        scales = interpolate(t, self.precond_times.to(x.dtype), table.to(x.dtype),
                              log_values=torch.arange(3 * m, device=table.device) >= m)
        mean, std, out_scale = scales[:, :m], scales[:, m:2 * m], scales[:, 2 * m:]
        z, embedding = (x - mean) / std, self.embedding(t).to(x.dtype)
        raw = self.net(z, embedding, self.metric) if self.architecture == "sfno" else self.net(z, embedding)
        return raw, out_scale

    def baseline(self, x: torch.Tensor, t) -> torch.Tensor | None:
        """The Gaussian skip -(x - mu(t)) / var(t), or None without ``gaussian_skip``."""
        if not self.gaussian_skip:
            return None
        t = self._times(t, x.shape[0], x)
        grid = self.precond_times.to(x.dtype)
        mean = self.mean_at(t)
        variance = interpolate(t, grid, self.x_var.to(x.dtype), log_values=True)
        return -(x - mean) / variance

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        raw, scale = self.preconditioned(x, t)
        baseline = self.baseline(x, t)
        score = raw * scale if baseline is None else raw * scale + baseline
        total = self._total_correction()
        if total is not None:
            times = self._times(t, x.shape[0], x)
            gain = interpolate(times, total.times.to(x.dtype), total.gain.to(x.dtype))
            score = score + gain * (x - self.mean_at(times))
        return score

    def cameron_martin_score(self, x, t):
        """Q s_theta(x, t): the score in the Cameron-Martin geometry of Q (the model's ``metric``),
        the vector field a Q-Wiener-driven reverse SDE uses (its drift is -x - 2 Q grad log p)."""
        score = self(x, t)
        if isinstance(score, torch.Tensor):
            return score * self.metric.to(score.dtype)
        return score * self.metric.cpu().numpy()

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
        """A model built from its config and a state dict (weights and the data-measured buffers).
        A config of an earlier version with a spherical block raises SymscoreError
        (:func:`check_removed_options`)."""
        model = cls(**check_removed_options(config))
        state_dict = complete_state(state_dict)
        for name in DATA_BUFFERS:  # measured on data: their shapes differ from a fresh model's
            model.register_buffer(name, state_dict[name].detach().clone())
        model.load_state_dict(state_dict)
        model.loss_history = list(loss_history)
        return model

    def extra_repr(self) -> str:
        return f"T={self.T}, t_min={self.t_min}"


#: Options of earlier versions' configs that this version no longer has, with the value that meant
#: "not used": the spherical block (``spherical_channels`` channels of ``spherical_depth``
#: pointwise layers), superseded by ``architecture="sfno"``.
REMOVED_OPTIONS = {"spherical_channels": 0, "spherical_depth": 1}


def check_removed_options(config: dict) -> dict:
    """``config`` without the options of :data:`REMOVED_OPTIONS`; one that used them raises SymscoreError.

    A file whose model had a spherical block (``spherical_channels`` > 0) cannot be loaded: its
    weights belong to a network this version does not build, and dropping them would load a
    different score silently. ``spherical_channels`` 0 (never written, accepted) or absent meant no
    block, so ``spherical_depth`` (written whenever it was not 1, with or without a block) changed
    nothing and is dropped. The config given is not modified."""
    channels = config.get("spherical_channels", 0)
    if channels != 0:
        depth = f", spherical_depth={config['spherical_depth']!r}" if "spherical_depth" in config else ""
        raise SymscoreError(f"config: this file's model has a spherical block (spherical_channels={channels!r}"
                            f"{depth}), which this version no longer has; the field network is "
                            f"architecture='sfno' -- retrain")
    return {key: value for key, value in config.items() if key not in REMOVED_OPTIONS}


def complete_state(state_dict: dict, prefix: str = "") -> dict:
    """A state dict of an earlier version with the buffers added since: ``x_var`` (the Gaussian
    skip's variance, x_std^2), ``stein_gain`` (zero) on ``stein_times`` (the preconditioning times),
    ``flow_gain`` (zero) on ``flow_times`` (the same; a file with one Stein correction holds it as
    the forward one) and ``metric`` (Q = I). ``prefix``: "module." for an EMA's state."""
    state_dict = dict(state_dict)
    if prefix + "x_var" not in state_dict:
        state_dict[prefix + "x_var"] = state_dict[prefix + "x_std"] ** 2
    for gain_name, times_name in (("stein_gain", "stein_times"), ("flow_gain", "flow_times")):
        if prefix + gain_name not in state_dict:
            state_dict[prefix + gain_name] = torch.zeros(1, state_dict[prefix + "x_std"].shape[-1])
        if prefix + times_name not in state_dict:  # before calibrate_flow, gains lived on the preconditioning times
            state_dict[prefix + times_name] = state_dict[prefix + "precond_times"].detach().clone()
    if prefix + "metric" not in state_dict:
        state_dict[prefix + "metric"] = torch.ones(state_dict[prefix + "x_std"].shape[-1], dtype=torch.float64)
    return state_dict


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
