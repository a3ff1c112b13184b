"""The training loop: regress a score target on X_t with a :class:`ScoreModel`.

Every step draws ``batch_size`` data points x0, simulates fresh paths to ``n_times`` record times
drawn uniformly from the grid points k dt in [t_min, T] (or the user's ``times``), and takes one
AdamW step on the time-weighted MSE  mean_t c_out(t)^-2 |s_theta(X_t, t) - target_t|^2  (or the
sliced score matching loss for ``target="ssm"``). The learning rate follows a linear warm-up and
a cosine decay; an exponential moving average (EMA) of the weights is what :func:`train` returns.

Randomness is keyed by (seed, step): the data draw, the record times and the Brownian increments
of step k depend only on ``seed`` and k. With the optimiser, scheduler and EMA states in the
checkpoint, ``resume=`` therefore continues bit-identically on the same machine and thread count.

Bias knobs (both off or small by default):
* ``t_min``: no record time below t_min. The model is not trained on (0, t_min), and samplers
  stop at t_min, so samples follow p_{t_min}, not p_0 (for VP roughly data + N(0, beta_min t_min)).
  Its default comes from the SDE (:func:`choose_t_min`): 1e-3 when the noise acts on every
  coordinate from t = 0, else the Euler steps the scheme's Malliavin matrix needs (hypoelliptic).
* ``ridge``: Tikhonov lambda in (C_t + lambda I)^-1, which bounds the target's variance at small t
  at a bias O(lambda / lambda_min(C_t)) (malliavin target only).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import positive_float, positive_int
from .._errors import NonFiniteSimulationError, SymscoreError
from ..compiler.runtime import TimeGrid
from ..data import check_data, load
from ..spec.sde import SDE
from .checkpoints import Checkpoints, restore
from .config import NetworkConfig, TrainConfig
from .distributed import process_group
from .model import ScoreModel
from .preconditioning import cameron_martin_metric, measure
from .record_times import choose_t_min
from .stein import measure_stein_gain
from .targets import make_target_source

__all__ = ["Trainer", "train", "seconds_per_step", "steps_for_budget", "BUDGET_FIRST_HORIZON"]

#: Horizon a clock-driven run (``Trainer.run(budget=)``) assumes before its first step is timed.
BUDGET_FIRST_HORIZON = 2000


def _grid_steps(sde, config: TrainConfig):
    """Candidate record steps k (time k dt) of the grid with dt = T / n_steps, at or after t_min."""
    dt = sde.T / config.n_steps
    if config.times is None:
        first = max(1, math.ceil(config.t_min / dt - 1e-9))
        return np.arange(first, config.n_steps + 1)
    grid = TimeGrid.from_times(config.times, config.n_steps, sde.T, end=sde.T)
    if grid.times[0] < config.t_min:
        raise SymscoreError(f"times: record time {grid.times[0]} is below t_min = {config.t_min}")
    return grid.record_steps


def _check_data(sde, data) -> np.ndarray:
    if not isinstance(sde, SDE):
        raise SymscoreError(f"sde: expected a symscore.SDE, got {type(sde).__name__}")
    if isinstance(data, str | Path):
        data = load(data, n=None)
    return check_data(data, sde.m)


def _step_seeds(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, step]))


def _draw(rng, data, batch_size, candidates, n_times):
    x0 = data[rng.integers(data.shape[0], size=batch_size)]
    k = min(n_times, candidates.size)
    record_steps = np.sort(rng.choice(candidates, size=k, replace=False))
    return x0, record_steps, int(rng.integers(2**31 - 1))


def _rows(array, m: int, device) -> torch.Tensor:
    """(K, n, m) samples (numpy, or a tensor already on the device) as a float32 (K n, m) tensor,
    time-major like the repeated record times."""
    if isinstance(array, torch.Tensor):
        return array.reshape(-1, m).to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.ascontiguousarray(array).reshape(-1, m), dtype=torch.float32, device=device)


def _loss(model, x, t, target, probes):
    """Time-weighted MSE, or the sliced score matching loss with Rademacher ``probes`` when target is None."""
    if target is not None:
        raw, scale = model.preconditioned(x, t)
        baseline = model.baseline(x, t)
        if baseline is not None:
            target = target - baseline
        return ((raw - target / scale) ** 2).sum(dim=1).mean()
    x = x.requires_grad_(True)
    raw, scale = model.preconditioned(x, t)
    baseline = model.baseline(x, t)
    score = raw * scale if baseline is None else raw * scale + baseline
    v = probes.to(x.device)
    projected = (score * v).sum()
    grad = torch.autograd.grad(projected, x, create_graph=True)[0]
    weight = 1.0 / (scale**2).mean(dim=1)  # the same time weighting c_out(t)^-2
    return (weight * ((grad * v).sum(dim=1) + 0.5 * ((score * v).sum(dim=1)) ** 2)).mean()


def _schedule(steps: int):
    warmup = max(1, min(100, steps // 20))

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


class Trainer:
    """One training run: the network, its optimiser, scheduler and EMA, and the target source.

    ``step()`` takes one optimisation step and returns its loss; ``run()`` takes the remaining
    steps with a progress bar and checkpoints and returns the EMA model (``run(budget=seconds)``
    trains for a wall-clock budget instead); ``ema_model()`` is the EMA model at any time. The
    state after step k depends only on the config and k (randomness keyed by (seed, step)), so
    ``resume=`` continues a run bit-identically.

    Args:
        sde, data: the forward SDE and the (n, m) data (or a dataset name / ``.npy`` path).
        config: a :class:`TrainConfig`.
        model: an existing ScoreModel to continue training (its preconditioning is re-measured).
        checkpoint_dir, checkpoint_every, keep_checkpoints: see :func:`train`.
        resume: a checkpoint file or folder whose run record matches, to continue from.
        device: torch device of the network (default CPU).
    """

    def __init__(self, sde: SDE, data, config: TrainConfig, *, model: ScoreModel | None = None,
                 checkpoint_dir=None, checkpoint_every: int = 500, keep_checkpoints: int = 3, resume=None,
                 device=None):
        if not isinstance(config, TrainConfig):
            raise SymscoreError(f"config: expected a TrainConfig, got {type(config).__name__}")
        self.data = _check_data(sde, data)
        #: the smallest record time and why (a default chosen from the SDE's noise structure)
        self.t_min_choice = choose_t_min(sde, config.n_steps, config.t_min, config.times, config.target)
        config = replace(config, t_min=self.t_min_choice.t_min)
        self.sde, self.config = sde, config
        self.candidates = _grid_steps(sde, config)
        # several processes (torchrun, or symscore train --nproc): each simulates its share of a global batch
        self.group = process_group(device)
        if self.group.world_size > 1 and device is not None and torch.device(device).type == "cuda":
            device = torch.device("cuda", self.group.local_rank)
        # a torch or triton kernel simulates on the network's device (its targets never visit the host)
        self.source = make_target_source(config.target, sde, config.n_steps, backend=config.backend,
                                         ridge=config.ridge, device=None if config.backend == "numba" else device,
                                         data=self.data)
        if model is not None:
            if not isinstance(model, ScoreModel) or model.m != sde.m:
                raise SymscoreError(f"model: expected a ScoreModel with m = {sde.m}, got {model!r}")
            if model.preconditioning != config.preconditioning or model.gaussian_skip != config.gaussian_skip:
                raise SymscoreError(f"preconditioning, gaussian_skip: the model was built with "
                                    f"{model.preconditioning!r}, {model.gaussian_skip}, got "
                                    f"{config.preconditioning!r}, {config.gaussian_skip}")
            # a given network keeps its shape: the config (and so the run record) describes it
            config = self.config = replace(config, **vars(NetworkConfig.of(model)))
        config.network.check(sde.m)  # a shape error before the pilot's simulation, not after
        # the measured values first: the model is complete when it is built
        metric = cameron_martin_metric(sde) if config.preconditioning == "cameron-martin" else np.ones(sde.m)
        scales, prior_data = measure(self.source, self.data, self.candidates, config.pilot_size, config.seed,
                                     config.preconditioning, config.gaussian_skip, metric)
        torch.manual_seed(config.seed)
        if model is None:
            model = config.network.build(sde.m, sde.T, float(self.candidates[0] * sde.T / config.n_steps),
                                         scales=scales, prior_data=prior_data, metric=metric)
        else:  # its weights, re-measured
            model.remeasure(scales, prior_data, metric if config.preconditioning == "cameron-martin" else None)
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device)
        self.group.broadcast(self.model)
        # the run record names the global batch: a run resumes at another world size with the same one
        self.record = config.record(sde, model) | {"batch_size": config.batch_size * self.group.world_size}
        # foreach: one fused update over all parameters (torch picks it on CUDA only by default)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                           foreach=True)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(config.steps))
        self.ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=_ema_average(config.ema_decay))
        self.step_count = 0 if resume is None else restore(resume, self.record, model, self.ema, self.optimizer,
                                                             self.scheduler)
        self.checkpoints = (Checkpoints(checkpoint_dir, keep_checkpoints)
                            if checkpoint_dir is not None and self.group.is_main else None)
        self.checkpoint_every = positive_int(checkpoint_every, "checkpoint_every")
        self._generator = torch.Generator()

    def step(self) -> float:
        """One optimisation step on fresh paths; returns the loss (raises if it is not finite)."""
        config, step, group = self.config, self.step_count, self.group
        # every process draws the global batch; this one simulates its rows
        x0, record_steps, sim_seed = _draw(_step_seeds(config.seed, step), self.data,
                                           config.batch_size * group.world_size, self.candidates, config.n_times)
        rows = group.rows(config.batch_size)
        x, values = self.source.batch_rows(x0, record_steps, sim_seed, rows)
        t = np.repeat(record_steps * self.source.dt, config.batch_size)
        m, device = self.sde.m, self.device
        probes = None
        if values is None:  # sliced score matching: the global batch's Rademacher probes, this process's rows
            self._generator.manual_seed(sim_seed)
            probes = torch.randint(0, 2, (len(record_steps), x0.shape[0], m), generator=self._generator,
                                   dtype=torch.float32)[:, rows].reshape(-1, m) * 2 - 1
        loss = _loss(self.model, _rows(x, m, device), torch.as_tensor(t, dtype=torch.float32, device=device),
                     None if values is None else _rows(values, m, device), probes)
        if not torch.isfinite(loss):
            raise NonFiniteSimulationError(f"the loss became non-finite at step {step}: lower lr, raise t_min, "
                                           "or pass ridge > 0 to bound the target's variance")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        group.average_gradients(self.model.parameters())  # the gradient of the global batch's mean loss
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        value = float(group.average(loss.detach()))
        self.model.loss_history.append(value)
        self.step_count += 1
        if self.checkpoints is not None and (self.step_count % self.checkpoint_every == 0
                                             or self.step_count == config.steps):
            self.save_checkpoint()
        return value

    def save_checkpoint(self):
        """Write ``checkpoint_<step>.pt`` (atomically) to the checkpoint folder; prune older ones."""
        if self.checkpoints is None:
            raise SymscoreError("checkpoint_dir: this Trainer was made without a checkpoint folder")
        self.checkpoints.write(self.step_count, self.record, self.model, self.ema, self.optimizer, self.scheduler)

    def run(self, progress: bool = True, budget: float | None = None) -> ScoreModel:
        """The remaining steps up to ``config.steps`` (tqdm bar with the loss); returns the EMA model.

        With ``budget`` (seconds), the clock sets the step count instead: after every step the
        schedule's horizon is re-planned as the steps taken plus the remaining time over the mean
        seconds per step so far, and training stops when the budget is spent, so the cosine decay
        ends with the budget even when the step time drifts (a step count calibrated up front
        missed the demo's 300 s by up to 18% either way). ``config.steps`` then becomes the steps
        taken. Such a run depends on the clock, so it is not reproducible step for step: it
        refuses checkpoints, resumes and several processes (whose clocks would disagree)."""
        if budget is None:
            self._run_steps(progress)
        else:
            self._run_for(positive_float(budget, "budget"), progress)
        model = self.ema_model()
        if self.config.stein_calibration:
            model.set_stein_gain(measure_stein_gain(model, self.source, self.data, 4 * self.config.pilot_size,
                                                    self.config.seed))
        return model

    def _run_steps(self, progress):
        steps = self.config.steps
        bar = tqdm(range(self.step_count, steps), initial=self.step_count, total=steps,
                   disable=not (progress and self.group.is_main), desc=f"train[{self.config.target}]")
        for _ in bar:
            loss = self.step()
            if (self.step_count - 1) % 10 == 0:
                bar.set_postfix(loss=f"{loss:.4f}")

    def _run_for(self, budget, progress):
        if self.checkpoints is not None or self.step_count > 0 or self.group.world_size > 1:
            raise SymscoreError("budget: a clock-driven run cannot be checkpointed, resumed or split over "
                                "processes; pass a step count (steps_for_budget gives one) instead")
        # a provisional horizon for the first step's warm-up rate; each step's timing then replaces it
        self._set_horizon(BUDGET_FIRST_HORIZON)
        bar = tqdm(total=None, disable=not progress, desc=f"train[{self.config.target}, {budget:g} s]")
        start = time.perf_counter()
        while True:
            loss = self.step()
            bar.update()
            elapsed = time.perf_counter() - start
            planned = self.step_count + int((budget - elapsed) * self.step_count / max(elapsed, 1e-9))
            if elapsed >= budget or planned <= self.step_count:
                break
            self._set_horizon(planned)
            if self.step_count % 10 == 1:
                bar.set_postfix(loss=f"{loss:.4f}", planned=planned)
        bar.close()
        self.config = replace(self.config, steps=self.step_count)
        self.record = self.record | {"steps": self.step_count}

    def _set_horizon(self, steps: int):
        """Re-plan the schedule for ``steps`` steps in all, from the next step on."""
        factor = _schedule(steps)
        self.scheduler.lr_lambdas = [factor] * len(self.optimizer.param_groups)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * factor(self.scheduler.last_epoch)

    def ema_model(self) -> ScoreModel:
        """A copy of the network carrying the EMA weights (in eval mode)."""
        return _ema_model(self.model, self.ema)


def train(sde: SDE, data, steps: int = 2000, batch_size: int = 256, target: str = "malliavin",
          backend: str = "numba", t_min: float | None = None, checkpoint_dir=None, resume=None, seed: int = 0, *,
          times=None, n_times: int = 4, n_steps: int = 100, model: ScoreModel | None = None,
          width: int = 128, depth: int = 3, activation: str = "silu", lr: float = 5e-3,
          weight_decay: float = 1e-4, ema_decay: float = 0.999, clip_norm: float = 1.0, ridge: float = 0.0,
          checkpoint_every: int = 500, keep_checkpoints: int = 3, pilot_size: int = 2048,
          progress: bool = True, device=None, preconditioning: str = "coordinate",
          gaussian_skip: bool = False, stein_calibration: bool = False, architecture: str = "mlp",
          budget: float | None = None) -> ScoreModel:
    """Train a :class:`ScoreModel` on ``data`` for the forward SDE ``sde``; returns the EMA model.

    A thin wrapper: ``Trainer(sde, data, TrainConfig(...), ...).run(progress)``.

    Args:
        sde: the forward SDE.
        data: (n, m) array, a dataset name of :mod:`symscore.data` or a ``.npy`` path.
        steps, batch_size: optimiser steps, and data points (paths) per step and process: under
            torchrun (or ``symscore train --nproc N``) N processes share a global batch of
            N batch_size and follow one process with that batch (:mod:`symscore.learn.distributed`).
        target: a name in :data:`symscore.learn.targets.TARGETS`: ``"malliavin"`` (default, any
            SDE), ``"dsm"`` or ``"stf"`` (linear SDEs), ``"ssm"`` or ``"local"`` (see :mod:`symscore.learn.targets`).
        backend: kernel backend of the malliavin target (``"numba"``, ``"torch"`` or ``"triton"``).
        t_min: smallest record time (a bias; see the module docstring). Default: chosen from how the
            noise reaches the coordinates (:func:`choose_t_min`): 1e-3 when it acts on all of them
            directly, a few Euler steps when it reaches some only through the drift (hypoelliptic).
        checkpoint_dir: folder for ``checkpoint_<step>.pt`` files every ``checkpoint_every`` steps
            and at the end, written atomically; the newest ``keep_checkpoints`` are kept.
        resume: a checkpoint file, or a folder (its newest checkpoint), to continue from.
        seed: seeds the network initialisation and every random draw.
        times: fixed record times (on the grid of ``n_steps``) instead of uniform draws.
        n_times: record times per step (each path contributes one sample per time).
        n_steps: Euler steps over [0, T] (the grid of record times).
        model: an existing ScoreModel to continue training (its preconditioning is re-measured);
            otherwise one is built with ``width``, ``depth``, ``activation``.
        lr, weight_decay: AdamW; the rate warms up linearly, then decays by a cosine to 5% of ``lr``.
        ema_decay: EMA of the weights (the returned model); clip_norm: gradient-norm clipping.
        ridge: Tikhonov lambda of the malliavin target (a bias; off by default).
        progress: show a tqdm bar with the loss.
        device: torch device of the network (default CPU).
        preconditioning: ``"coordinate"`` (default), ``"euclidean"`` or ``"cameron-martin"``: how the
            network's input and output scales vary across coordinates; ``"cameron-martin"`` (for a
            constant diagonal sigma, sigma sigma^T = 2 Q) learns Q grad log p_t and weighs every
            mode of Q alike (:mod:`symscore.learn.model`).
        gaussian_skip: the network learns the difference from the Gaussian score of X_t's measured
            per-coordinate moments (:mod:`symscore.learn.model`); use it when m exceeds ``width``.
        stein_calibration: after training, give the returned model the linear correction that
            makes it satisfy Stein's identity E[(X_i - mu_i) s_i] = -1 on 4 ``pilot_size`` forward
            paths (:func:`~symscore.learn.stein.calibrate_stein`); it fixes the second moments the
            probability-flow ODE transports. Checkpoints hold the uncalibrated weights; a resumed run
            calibrates at its end.
        architecture: ``"mlp"`` (default), ``"resnet"``, residual blocks with the time fed to each
            (:mod:`symscore.learn.model`), or ``"sfno"`` for a field of (L + 1)^2 spherical-harmonic
            coefficients, a spherical Fourier neural operator (:mod:`symscore.learn.sfno`) that learns
            the score of fields non-Gaussian pixel by pixel, which an MLP on coefficients hardly does.
        budget: seconds of training instead of ``steps`` steps: the clock sets the step count and
            the cosine schedule ends with the budget (:meth:`Trainer.run`); for equal-time
            comparisons. Not with ``checkpoint_dir`` or ``resume``.
    """
    if budget is not None and (checkpoint_dir is not None or resume is not None):
        raise SymscoreError("budget: a clock-driven run cannot be checkpointed or resumed; pass steps instead")
    budget = None if budget is None else positive_float(budget, "budget")
    config = TrainConfig(steps=steps, batch_size=batch_size, target=target, backend=backend, t_min=t_min, seed=seed,
                         times=times, n_times=n_times, n_steps=n_steps, width=width, depth=depth,
                         activation=activation, lr=lr, weight_decay=weight_decay, ema_decay=ema_decay,
                         clip_norm=clip_norm, ridge=ridge, pilot_size=pilot_size, preconditioning=preconditioning,
                         gaussian_skip=gaussian_skip, architecture=architecture, stein_calibration=stein_calibration)
    trainer = Trainer(sde, data, config, model=model, checkpoint_dir=checkpoint_dir,
                      checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, resume=resume,
                      device=device)
    return trainer.run(progress, budget=budget)


def seconds_per_step(sde: SDE, data, config: TrainConfig, warmup: int = 10, timed: int = 10,
                     min_seconds: float = 3.0) -> float:
    """Seconds per optimisation step of ``config`` on this machine, from a throw-away run: ``warmup``
    untimed steps (kernel compilation, first allocations, the thread pool), then at least ``timed``
    steps and at least ``min_seconds`` of them. Steps of a few milliseconds timed ten at a time
    missed the demo's 300 s budget by 8-19% (50% once, with another job on the machine), hence
    the floor in seconds; the step time still drifts over minutes on a shared machine (the demo's
    runs then missed by up to 18% either way), so the actual time is reported next to the steps."""
    warmup, timed = positive_int(warmup, "warmup", low=0), positive_int(timed, "timed")
    min_seconds = positive_float(min_seconds, "min_seconds", allow_zero=True)
    trainer = Trainer(sde, data, replace(config, steps=warmup + timed))
    for _ in range(warmup):
        trainer.step()
    start, count = time.perf_counter(), 0
    while count < timed or time.perf_counter() - start < min_seconds:
        trainer.step()
        count += 1
    return (time.perf_counter() - start) / count


def steps_for_budget(sde: SDE, data, config: TrainConfig, budget: float, least: int = 20) -> int:
    """How many steps of ``config`` fit in ``budget`` seconds of training here (at least ``least``),
    so that a run's cosine schedule ends when its wall-clock budget does: equal-time comparisons."""
    budget = positive_float(budget, "budget")
    return max(positive_int(least, "least"), int(budget / seconds_per_step(sde, data, config)))


def _ema_average(decay: float):
    """EMA update with warm-up: the decay is min(decay, (1 + k) / (10 + k)) after k updates, so a
    short run is not dominated by its random initial weights."""

    def average(averaged: list, current: list, num_averaged) -> None:
        # every parameter in one fused call (AveragedModel's multi_avg_fn): a Python update per
        # tensor cost about a tenth of a small model's training step on the CPU
        rate = min(decay, (1 + float(num_averaged)) / (10 + float(num_averaged)))
        torch._foreach_lerp_(averaged, current, 1 - rate)  # averaged += (1 - rate) (current - averaged)

    return average


def _ema_model(model: ScoreModel, ema) -> ScoreModel:
    """A copy of ``model`` carrying the EMA weights (the EMA copy holds the same buffers)."""
    result = ScoreModel.from_state(model.config, ema.module.state_dict(), model.loss_history)
    return result.to(next(model.parameters()).device).eval()
