"""Training a score network: the public names, gathered from the modules that do each job.

* :mod:`symscore.learn.config`: :class:`TrainConfig` (and the network's :class:`NetworkConfig`);
* :mod:`symscore.learn.trainer`: :class:`Trainer`, :func:`train`, the clock budget and the EMA;
* :mod:`symscore.learn.checkpoints`: checkpoint files and :func:`load_checkpoint`;
* :mod:`symscore.learn.preconditioning`: the pilot batch's scales (:func:`cameron_martin_metric`);
* :mod:`symscore.learn.stein`: Stein's identity on forward samples (:func:`calibrate_stein`);
* :mod:`symscore.learn.record_times`: the default t_min (:func:`choose_t_min`).
"""
from __future__ import annotations

from .checkpoints import load_checkpoint
from .config import NetworkConfig, TrainConfig
from .preconditioning import cameron_martin_metric
from .record_times import TMinChoice, choose_t_min
from .stein import calibrate_stein, measure_stein_gain
from .trainer import Trainer, seconds_per_step, steps_for_budget, train

__all__ = ["TrainConfig", "TMinChoice", "choose_t_min", "Trainer", "train", "load_checkpoint",
           "cameron_martin_metric", "calibrate_stein", "seconds_per_step", "steps_for_budget",
           "NetworkConfig", "measure_stein_gain"]
