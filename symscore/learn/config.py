"""What shapes a training run: the network's configuration and the optimisation's, as frozen values.

:class:`NetworkConfig` holds the fields that decide the network (its size, activation,
architecture and preconditioning) and builds the :class:`~symscore.learn.model.ScoreModel` from
the measured values; :class:`TrainConfig` holds every argument of :func:`symscore.train` that
shapes the result (the network's fields among them, flat, as in the run record of checkpoints).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .._checks import positive_float, positive_int
from .._errors import SymscoreError
from .model import ACTIVATIONS, ARCHITECTURES, PRECONDITIONINGS, ScoreModel
from .sfno import sphere_degree
from .targets import TARGETS

__all__ = ["NetworkConfig", "TrainConfig", "NETWORK_FIELDS"]


@dataclass(frozen=True)
class NetworkConfig:
    """The network's shape: the ScoreModel arguments a run chooses (see :func:`symscore.train`).
    Validated by the model's constructor when :meth:`build` runs."""

    width: int = 128
    depth: int = 3
    activation: str = "silu"
    preconditioning: str = "coordinate"
    gaussian_skip: bool = False
    architecture: str = "mlp"

    def check(self, m: int) -> None:
        """Refuse a shape that cannot be built for m coordinates before anything is measured."""
        if self.architecture == "sfno" and sphere_degree(m) < 1:
            raise SymscoreError(f"architecture: 'sfno' needs m = (L + 1)^2 coefficients of a field with L >= 1, "
                                f"got m = {m}")
        if self.architecture == "sfno" and self.preconditioning != "cameron-martin":
            raise SymscoreError(f"architecture: 'sfno' needs preconditioning='cameron-martin' (it synthesises the "
                                f"field coloured by Q^1/2), got preconditioning={self.preconditioning!r}")

    def build(self, m: int, T: float, t_min: float, **measured) -> ScoreModel:
        """The ScoreModel of this shape with its measured values (``scales``, ``prior_data``,
        ``metric``: the keyword arguments of :class:`~symscore.learn.model.ScoreModel`)."""
        return ScoreModel(m, T=T, t_min=t_min, **asdict(self), **measured)

    @classmethod
    def of(cls, model: ScoreModel) -> "NetworkConfig":
        """The shape of an existing model."""
        return cls(width=model.config["width"], depth=model.config["depth"], activation=model.config["activation"],
                   preconditioning=model.preconditioning, gaussian_skip=model.gaussian_skip,
                   architecture=model.architecture)


#: The fields of :class:`TrainConfig` that are the network's.
NETWORK_FIELDS = tuple(field.name for field in fields(NetworkConfig))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run's result; validated on construction.

    The fields marked ``# network`` shape the network (:attr:`network`, a :class:`NetworkConfig`);
    the others the optimisation, the targets and the record times. The record stays one flat
    dict so that checkpoints keep their format.

    ``asdict(config)``, with the network's configuration and the SDE's fingerprint, is the run
    record stored in every checkpoint: a run resumes only from a checkpoint with the same record.
    The arguments are those of :func:`train`; ``t_min=None`` (the default) is resolved by
    :func:`choose_t_min` when a :class:`Trainer` starts, and the record holds the value used.
    """

    # the field order is that of the run record in checkpoints written so far (those of earlier
    # versions also hold spherical_channels and spherical_depth, options since removed: a run does
    # not resume from them, :func:`~symscore.learn.checkpoints.restore` names them as differing)
    steps: int = 2000
    batch_size: int = 256
    target: str = "malliavin"
    backend: str = "numba"
    t_min: float | None = None
    seed: int = 0
    times: tuple[float, ...] | None = None
    n_times: int = 4
    n_steps: int = 100
    width: int = 128  # network
    depth: int = 3  # network
    activation: str = "silu"  # network
    lr: float = 5e-3
    weight_decay: float = 1e-4
    ema_decay: float = 0.999
    clip_norm: float = 1.0
    ridge: float = 0.0
    pilot_size: int = 2048
    preconditioning: str = "coordinate"  # network
    gaussian_skip: bool = False  # network
    stein_calibration: bool = False
    architecture: str = "mlp"  # network

    @property
    def network(self) -> NetworkConfig:
        """The fields that shape the network (:class:`NetworkConfig`)."""
        return NetworkConfig(**{name: getattr(self, name) for name in NETWORK_FIELDS})

    def __post_init__(self):
        if self.target not in TARGETS:
            raise SymscoreError(f"target: expected one of {', '.join(map(repr, TARGETS))}, got {self.target!r}")
        if self.preconditioning not in PRECONDITIONINGS:
            raise SymscoreError(f"preconditioning: expected one of {', '.join(map(repr, PRECONDITIONINGS))}, "
                                f"got {self.preconditioning!r}")
        for name in ("gaussian_skip", "stein_calibration"):
            if not isinstance(getattr(self, name), bool):
                raise SymscoreError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if self.architecture not in ARCHITECTURES:
            raise SymscoreError(f"architecture: expected one of {', '.join(map(repr, ARCHITECTURES))}, "
                                f"got {self.architecture!r}")
        if self.activation not in ACTIVATIONS:
            raise SymscoreError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        checked = {
            "steps": positive_int(self.steps, "steps"), "batch_size": positive_int(self.batch_size, "batch_size"),
            "seed": positive_int(self.seed, "seed", low=0), "n_times": positive_int(self.n_times, "n_times"),
            "n_steps": positive_int(self.n_steps, "n_steps"), "pilot_size": positive_int(self.pilot_size, "pilot_size", 2),
            "t_min": None if self.t_min is None else positive_float(self.t_min, "t_min", allow_zero=True),
            "lr": positive_float(self.lr, "lr"),
            "weight_decay": positive_float(self.weight_decay, "weight_decay", allow_zero=True),
            "ema_decay": positive_float(self.ema_decay, "ema_decay", allow_zero=True),
            "clip_norm": positive_float(self.clip_norm, "clip_norm"),
            "ridge": positive_float(self.ridge, "ridge", allow_zero=True),
            "times": None if self.times is None else tuple(float(v) for v in np.ravel(self.times)),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)  # normalised (ints, floats, a tuple) on a frozen instance

    def record(self, sde, model: ScoreModel) -> dict:
        """The run record: ``asdict(self)`` with the network's configuration and the SDE's fingerprint."""
        record = asdict(self)
        record["times"] = None if self.times is None else list(self.times)
        return record | {"model": dict(model.config), "sde": sde.fingerprint()}
