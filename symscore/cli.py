"""The ``symscore`` command line (click).

    symscore derive SPEC [--format markdown|latex] [-o FILE]
    symscore emit SPEC [--backend numba|torch] [-o FILE]
    symscore train SPEC --data NAME|FILE.npy --out DIR [--steps N ...]
    symscore sample DIR --n N --out FILE.npy [--plot PNG]
    symscore check SPEC [--run DIR] [--p0 DATA] [--times T1,T2] [--n-steps N] [--target NAME] [--paths N] [--cells N]
    symscore demo [--out DIR] [--budget S | --steps N] [--benes | --fields] [--quick]
    symscore bench SPEC [--backend numba|torch|all]
    symscore paper [--budget S] [--quick] [--out DIR] [--seeds 0,1,2] [--tails]

SPEC is a built-in name, ``path/to/file.py:object`` or a TOML file (:mod:`symscore.spec.parse`).
A bad SPEC or argument is reported in one line on standard error with exit status 1 (usage
errors: click's usage line and exit status 2); never a traceback.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

import click

from .spec import library
from ._errors import SymscoreError
from .compiler.backends import BACKENDS
from .spec.parse import load_spec, sde_from_toml, to_toml

__all__ = ["main"]

_SPEC_HELP = (f"SPEC is a built-in name ({', '.join(library.BUILTINS)}), path/to/file.py:object, "
              "or a TOML file (state, time, params, drift, diffusion as expression strings).")
MODEL_FILE, SDE_FILE, RUN_FILE, CHECKPOINTS = "model.pt", "sde.toml", "run.json", "checkpoints"


def _spec_doc(command):
    """Append the SPEC forms to a command's help (below its options, so click reads the result)."""
    command.__doc__ = command.__doc__.rstrip() + "\n\n    " + _SPEC_HELP + "\n"
    return command


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


class _Group(click.Group):
    """Turns symscore's own errors (and unreadable/unwritable files) into one line and exit 1."""

    #: Spellings of a command documented elsewhere that name another: ``symscore bench paper``
    #: (the project's design notes) is ``symscore paper``.
    ALIASES = {("bench", "paper"): ("paper",)}

    def parse_args(self, ctx, args):
        for spelling, command in self.ALIASES.items():
            if tuple(args[:len(spelling)]) == spelling:
                args = [*command, *args[len(spelling):]]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        saved, warnings.formatwarning = warnings.formatwarning, _one_line_warning
        try:
            return super().invoke(ctx)
        except SymscoreError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from None
        finally:
            warnings.formatwarning = saved


def _write_text(text: str, output: str | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    from .compiler.cache import atomic_write

    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text)
    click.echo(f"wrote {path}", err=True)


class _Registered(click.Choice):
    """A choice among the names of a registry (backends, targets, samplers, activations), read when
    needed: what is registered after this module is imported counts, and the learning layer's
    registries (which import torch) load only for the commands that use them."""

    def __init__(self, module: str, registry: str, extra: tuple[str, ...] = ()):
        self._source, self._extra = (module, registry), extra
        super().__init__(())

    @property
    def choices(self):
        import importlib

        module, registry = self._source
        return (*getattr(importlib.import_module(module), registry), *self._extra)

    @choices.setter
    def choices(self, value):  # click.Choice.__init__ assigns it; the registry is the source
        pass


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="symscore")
def main():
    """symscore: a symbolic-to-numeric score compiler for diffusion models with nonlinear SDEs.

    \b
    Examples:
      symscore derive cubic
      symscore derive mine.toml --format latex -o mine.tex
      symscore emit benes --backend torch -o benes_kernel.py
      symscore train cubic --data checkerboard --out runs/cubic
      symscore sample runs/cubic --n 5000 --out samples.npy --plot samples.png
      symscore check ou --run runs/ou
      symscore demo
      symscore bench cubic
      symscore paper --quick
    """
    from ._memory import reuse_large_allocations

    reuse_large_allocations()  # a command trains or samples for minutes: see symscore._memory


@main.command()
@click.argument("spec")
@click.option("--format", "fmt", type=click.Choice(["markdown", "latex"]), default="markdown", show_default=True,
              help="Markdown with $$ math, or a standalone LaTeX document (pdflatex).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
@_spec_doc
def derive(spec, fmt, output):
    """The derivation of the score target for SPEC, step by step, with its expressions substituted.

    \b
    Examples:
      symscore derive cubic
      symscore derive vp --format latex -o vp.tex && pdflatex vp.tex
      symscore derive examples/mine.toml -o mine.md
    """
    derivation = load_spec(spec).derive()
    _write_text(derivation.to_markdown() if fmt == "markdown" else derivation.to_latex(), output)


@main.command()
@click.argument("spec")
@click.option("--backend", type=_Registered("symscore.compiler.backends", "BACKENDS"), default="numba",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of standard output.")
@_spec_doc
def emit(spec, backend, output):
    """A standalone kernel module for SPEC (imports only numpy + numba, or torch).

    \b
    Examples:
      symscore emit cubic -o cubic_kernel.py
      symscore emit mine.toml --backend torch -o mine_kernel.py
    The module exposes simulate(x0, times, n_steps, seed=0) -> (times, x, target).
    """
    from .compiler.build import emit as emit_source

    _write_text(emit_source(load_spec(spec), backend=backend), output)


def _prepare_run_folder(out: Path, resume: bool, force: bool) -> None:
    if (out / MODEL_FILE).exists() and not (resume or force):
        raise SymscoreError(f"--out: {out} already holds {MODEL_FILE}; pass --resume to continue it, --force to "
                            "overwrite it, or choose another folder")
    out.mkdir(parents=True, exist_ok=True)


def _record_sde(sde, spec: str, out: Path, options: dict) -> None:
    from .compiler.cache import atomic_write

    try:
        atomic_write(out / SDE_FILE, to_toml(sde))
        stored = SDE_FILE
    except SymscoreError:  # a function outside the TOML whitelist: keep the SPEC string instead
        stored = None
    atomic_write(out / RUN_FILE, json.dumps({"spec": spec, "sde_file": stored, "options": options}, indent=2))


@main.command()
@click.argument("spec")
@click.option("--data", required=True, help="A dataset name (checkerboard, moons, swiss_roll, eight_gaussians, "
                                            "rings, digits) or a .npy file of shape (n, m).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run folder: model, SDE, checkpoints.")
@click.option("--steps", default=2000, show_default=True, help="Optimiser steps.")
@click.option("--batch-size", default=256, show_default=True, help="Paths (data points) per step.")
@click.option("--target", type=_Registered("symscore.learn.targets", "TARGETS"), default="malliavin",
              show_default=True, help="Regression target (dsm: linear SDEs only).")
@click.option("--n-steps", default=100, show_default=True, help="Euler steps over [0, T].")
@click.option("--width", default=128, show_default=True)
@click.option("--depth", default=3, show_default=True)
@click.option("--activation", type=_Registered("symscore.learn.model", "ACTIVATIONS"), default="silu", show_default=True)
@click.option("--lr", default=5e-3, show_default=True)
@click.option("--t-min", type=click.FloatRange(min=0), default=None,
              help="Smallest record time (a bias; bounds variance). Default: chosen from the SDE, 0.001 when the "
                   "noise acts on every coordinate, a few Euler steps when it reaches some only through the drift "
                   "(the reason is printed and stored in OUT/run.json).")
@click.option("--n-data", default=20_000, show_default=True, help="Rows drawn from a named dataset.")
@click.option("--seed", default=0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in OUT/checkpoints.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Train for this many seconds instead of --steps: the clock sets the step count and the "
                   "learning-rate schedule ends with the budget (equal-time comparisons). No checkpoints; "
                   "not with --resume or --nproc > 1.")
@click.option("--force", is_flag=True, help="Overwrite a model already in OUT.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--backend", type=_Registered("symscore.compiler.backends", "BACKENDS"), default="numba",
              show_default=True, help="Kernel backend of the malliavin target.")
@click.option("--device", default=None, help="torch device of the network, e.g. cuda (default: cpu); with "
              "--backend torch or triton the targets are simulated there too.")
@click.option("--nproc", default=1, show_default=True, type=click.IntRange(min=1),
              help="Training processes (torch.distributed: gloo on the CPU, nccl on CUDA), each with --batch-size "
                   "paths per step; also runs under an external torchrun.")
@_spec_doc
@click.pass_context
def train(ctx, spec, data, out, steps, batch_size, target, n_steps, width, depth, activation, lr, t_min, n_data, seed,
          resume, budget, force, quiet, backend, device, nproc):
    """Train a score network for SPEC on DATA; writes OUT/model.pt, OUT/sde.toml, OUT/run.json, checkpoints.

    \b
    Examples:
      symscore train cubic --data checkerboard --out runs/cubic --steps 4000 --n-steps 400
      symscore train vp --data moons --out runs/vp --target dsm
      symscore train mine.toml --data points.npy --out runs/mine
      symscore train cauchy --data moons --out runs/gpu --backend torch --device cuda
      symscore train cauchy --data checkerboard --out runs/timed --budget 300
    """
    from . import data as datasets
    from . import plots
    from .learn.distributed import launch, process_group
    from .learn.train import train as train_model

    if budget is not None and (resume or nproc > 1 or "WORLD_SIZE" in os.environ):
        raise click.BadParameter("a clock-driven run cannot be resumed or split over processes; pass --steps instead",
                                 param_hint="--budget")
    from .learn.record_times import choose_t_min

    sde, out = load_spec(spec), Path(out)
    choice = choose_t_min(sde, n_steps, t_min, target=target)  # a t_min the scheme cannot use fails here, at once
    array = datasets.load(data, n=n_data, seed=seed)
    if array.ndim == 2 and array.shape[1] != sde.m:  # the named datasets are 2-D (digits: 64-D)
        state = ", ".join(map(str, sde.state))
        raise SymscoreError(f"--data: {data} has {array.shape[1]} columns, but {sde.name!r} has m = {sde.m} "
                            f"coordinates ({state}); pass a .npy file of shape (n, {sde.m})")
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        _prepare_run_folder(out, resume, force)  # here, so that no rank refuses the folder after the others start
        ctx.exit(launch(nproc, _argv_of(ctx, drop=("nproc", "force")) + ["--force"]))
    # in a multi-process run (--nproc or torchrun) every rank trains; rank 0 alone writes files and output
    is_main = process_group(device).is_main
    checkpoints = None if budget is not None else out / CHECKPOINTS
    if is_main:
        _prepare_run_folder(out, resume, force)
        options = {"data": data, "steps": steps, "batch_size": batch_size, "target": target, "n_steps": n_steps,
                   "width": width, "depth": depth, "activation": activation, "lr": lr, "t_min": choice.t_min,
                   "t_min_reason": choice.reason, "seed": seed, "backend": backend, "budget": budget}
        _record_sde(sde, spec, out, options)
    model = train_model(sde, array, steps=steps, batch_size=batch_size, target=target, t_min=t_min,
                        checkpoint_dir=checkpoints, resume=checkpoints if resume else None, seed=seed,
                        n_steps=n_steps, width=width, depth=depth, activation=activation, lr=lr, progress=not quiet,
                        backend=backend, device=device, budget=budget)
    if not is_main:
        return
    model.save(out / MODEL_FILE)
    plots.plot_loss({spec: model.loss_history}, out / "loss.png")
    trained = (f"{len(model.loss_history)} steps in {budget:g} s" if budget is not None
               else f"checkpoints in {checkpoints}")
    click.echo(f"wrote {out / MODEL_FILE} (final loss {model.loss_history[-1]:.4f}), {out / SDE_FILE}, "
               f"{out / 'loss.png'}; {trained}\n{choice.reason}")


def _checked_device(device):
    """A torch.device from --device, or an error naming the option."""
    import torch

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise SymscoreError(f"--device: expected cpu, cuda or cuda:N, got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SymscoreError(f"--device: {device} was requested but torch.cuda.is_available() is False")
    return device


def _argv_of(ctx, drop=()) -> list[str]:
    """The command line of ``ctx``'s command with its parsed values, without the options ``drop``."""
    argv = [ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if param.name in drop or value is None or value is False:
            continue
        if isinstance(param, click.Argument):
            argv.append(str(value))
        elif param.is_flag:
            argv.append(param.opts[0])
        else:
            argv += [param.opts[0], str(value)]
    return argv


def _run_sde(run: Path):
    if (run / SDE_FILE).is_file():
        return sde_from_toml(run / SDE_FILE)
    if (run / RUN_FILE).is_file():
        return load_spec(json.loads((run / RUN_FILE).read_text())["spec"])
    raise SymscoreError(f"DIR: {run} has neither {SDE_FILE} nor {RUN_FILE}; expected a folder written by "
                        "'symscore train'")


@main.command()
@click.argument("run", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--n", "n", default=5000, show_default=True, help="Number of samples.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Samples as a .npy array (n, m).")
@click.option("--plot", type=click.Path(dir_okay=False), help="Also a PNG scatter of the first two coordinates.")
@click.option("--method", type=_Registered("symscore.learn.samplers", "SAMPLERS"), default="sde", show_default=True)
@click.option("--n-steps", default=500, show_default=True, help="Reverse-time steps.")
@click.option("--spacing", type=click.Choice(["uniform", "log"]), default="uniform", show_default=True,
              help="The time grid: uniform, or log (steps of equal ratio, fine near the end; fields).")
@click.option("--seed", default=0, show_default=True)
@click.option("--device", default=None, help="Step on this torch device (e.g. cuda: the model and the reverse-time "
              "iteration live there; float32). Default: numpy on the host.")
def sample(run, n, out, plot, method, n_steps, spacing, seed, device):
    """Draw samples from a model trained by 'symscore train' (DIR holds model.pt and sde.toml).

    \b
    Examples:
      symscore sample runs/cubic --n 5000 --out samples.npy --plot samples.png
      symscore sample runs/vp --n 1000 --out ode.npy --method ode --n-steps 100
      symscore sample runs/fields --n 1000 --out fields.npy --method ode --n-steps 25 --spacing log
      symscore sample runs/cubic --n 100000 --out big.npy --device cuda
    """
    import numpy as np

    from . import plots
    from .learn.model import ScoreModel
    from .learn.samplers import sample as draw

    run = Path(run)
    if not run.is_dir():
        raise SymscoreError(f"DIR: no such folder {str(run)!r}")
    out = Path(out)
    if out.suffix != ".npy":
        raise SymscoreError(f"--out: expected a .npy file name, got {str(out)!r}")
    sde, model = _run_sde(run), ScoreModel.load(run / MODEL_FILE)
    if device is not None:
        model = model.to(_checked_device(device))
    samples = draw(sde, model, n, n_steps, method=method, seed=seed, device=device, spacing=spacing)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, samples)
    wrote = [str(out)]
    if plot:
        if sde.m < 2:
            raise SymscoreError("--plot: the scatter plot needs m >= 2 coordinates")
        shown = "" if sde.m == 2 else f", coordinates 1-2 of {sde.m}"
        title = f"samples from {sde.name}\n({len(samples)}, {method} sampler, {n_steps} steps{shown})"
        wrote.append(str(plots.plot_samples(None, {title: samples}, plot, labels=sde.state[:2])))
    click.echo(f"wrote {', '.join(wrote)}")


#: The p_0 of ``symscore check`` without --run or --p0: two well-separated Gaussians in m dimensions,
#: N(+-1.5 u, 0.25 I) with u = (1, ..., 1) / sqrt(m), equal weights (6 standard deviations apart).
CHECK_P0_SHIFT, CHECK_P0_VARIANCE = 1.5, 0.25
#: Default record times of ``symscore check``: these fractions of T, moved onto the step grid.
CHECK_TIME_FRACTIONS = (0.1, 0.25, 0.5, 1.0)


def _initial_law(sde, run: Path | None, p0: str | None):
    """(GaussianMixture, description) for ``symscore check``: --p0 data or the run's data as a KDE,
    else the default two-component mixture."""
    import numpy as np

    from . import data as datasets
    from .truth import GaussianMixture

    if p0 is None and run is None:
        u = np.ones(sde.m) / np.sqrt(sde.m)
        mixture = GaussianMixture([0.5, 0.5], [CHECK_P0_SHIFT * u, -CHECK_P0_SHIFT * u],
                                  np.broadcast_to(CHECK_P0_VARIANCE * np.eye(sde.m), (2, sde.m, sde.m)))
        return mixture, (f"p_0: the default mixture 0.5 N(+{CHECK_P0_SHIFT} u, {CHECK_P0_VARIANCE} I) + "
                         f"0.5 N(-{CHECK_P0_SHIFT} u, {CHECK_P0_VARIANCE} I), u = (1, ..., 1) / sqrt({sde.m})")
    if p0 is None:
        options = json.loads((run / RUN_FILE).read_text()).get("options", {}) if (run / RUN_FILE).is_file() else {}
        if "data" not in options:
            raise SymscoreError(f"--run: {run / RUN_FILE} does not name the training data; pass --p0 NAME|FILE.npy")
        source, flag = options["data"], "--run"
        array = datasets.load(source, n=20_000, seed=options.get("seed", 0))
    else:
        source, flag = p0, "--p0"
        array = datasets.load(p0, n=20_000, seed=0)
    if array.ndim != 2 or array.shape[1] != sde.m:
        raise SymscoreError(f"{flag}: the data {source} has shape {array.shape}; expected (n, {sde.m}) for "
                            f"{sde.name!r}")
    mixture = GaussianMixture.kernel_density(array)
    what = "the run's training data" if p0 is None else "the data"
    return mixture, (f"p_0: a Gaussian kernel density estimate (KDE) of {what} ({source}, {mixture.n_components} "
                     "points, Scott's bandwidth), not the data itself")


def _record_times(text: str | None, sde, n_steps: int):
    import numpy as np

    if text is None:
        steps = sorted({max(1, round(f * n_steps)) for f in CHECK_TIME_FRACTIONS})
        return np.asarray(steps) * sde.T / n_steps
    try:
        return np.asarray([float(item) for item in text.split(",") if item.strip()])
    except ValueError:
        raise click.BadParameter(f"expected comma-separated times, got {text!r}", param_hint="--times") from None


@main.command()
@click.argument("spec")
@click.option("--run", "run", type=click.Path(file_okay=False), default=None,
              help="A folder written by 'symscore train': also the error of its model's score.")
@click.option("--p0", default=None, help="p_0 as a KDE of this data (a dataset name or a .npy file (n, m)). "
              "Default: with --run, a KDE of the run's training data; without, two Gaussians "
              "N(+-1.5 u, 0.25 I), u = (1, ..., 1) / sqrt(m).")
@click.option("--times", default=None, help="Comma-separated record times on the grid k T / n_steps  "
              "[default: about 0.1, 0.25, 0.5 and 1 T].")
@click.option("--n-steps", type=click.IntRange(min=1), default=None,
              help="Euler steps over [0, T]  [default: the run's, else 100].")
@click.option("--target", type=_Registered("symscore.learn.targets", "TARGETS"), default=None,
              help="The regression target to check  [default: the run's, else malliavin].")
@click.option("--paths", type=click.IntRange(min=2), default=20_000, show_default=True,
              help="Paths of the bias check, and draws of p_t per time for the score error.")
@click.option("--backend", type=_Registered("symscore.compiler.backends", "BACKENDS"), default=None,
              help="Kernel backend of the targets  [default: the run's, else numba].")
@click.option("--out", type=click.Path(file_okay=False), default="check", show_default=True,
              help="Folder for target_bias.png, score_error.png and check.json.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cells", type=click.IntRange(min=8), default=None,
              help="Fokker-Planck cells per axis (a finer truth)  [default: chosen from p_0 and a short simulation].")
@_spec_doc
def check(spec, run, p0, times, n_steps, target, paths, backend, out, seed, cells):
    """Check a regression target (and, with --run, a trained score) against the true p_t (m <= 2,
    or any m for a linear SDE from a Gaussian mixture).

    Prints the target's bias per record time (bin means of target - s*(X_t) in standard errors),
    then at equal cost (3 x n_steps kernel steps per path) the plain weight at 3 x n_steps and the
    Richardson target at n_steps, with their wall clock and the one to use, and with --run the
    relative L2 error of the model's score. p_0 with --run is a KDE of the training data (said in
    the output). The truth is the closed form for a linear SDE, else a Fokker-Planck solution.

    \b
    Examples:
      symscore check ou --paths 20000
      symscore check cauchy --n-steps 50 --target malliavin --out check_cauchy
      symscore check cubic --run runs/cubic --out runs/cubic/check
    """
    from . import plots
    from .learn.model import ScoreModel
    from .learn.targets import TARGETS
    from .truth import compare_targets, is_linear, score_error, solve

    sde = load_spec(spec)
    options = {}
    if run is not None:
        run = Path(run)
        if not run.is_dir():
            raise SymscoreError(f"--run: no such folder {str(run)!r}")
        trained = _run_sde(run)
        if trained.m != sde.m or trained.name != sde.name:
            raise SymscoreError(f"--run: {run} was trained on {trained.name!r} (m = {trained.m}), not on SPEC "
                                f"{sde.name!r} (m = {sde.m})")
        if (run / RUN_FILE).is_file():
            options = json.loads((run / RUN_FILE).read_text()).get("options", {})
    if sde.m > 2 and not is_linear(sde):
        raise SymscoreError(f"SPEC: {sde.name!r} is nonlinear with m = {sde.m}; its truth is a Fokker-Planck grid, "
                            "which needs m <= 2 (a linear SDE with sigma(t) has a closed form in any m)")
    n_steps = n_steps or int(options.get("n_steps", 100))
    backend = backend or options.get("backend", "numba")
    if target is None:
        target = options.get("target", "malliavin")
        target = target if TARGETS.lookup(target).has_target else "malliavin"
    p0, p0_text = _initial_law(sde, run, p0)
    record = _record_times(times, sde, n_steps)
    truth = solve(sde, p0, record, **({} if cells is None else {"method": "fokker-planck", "cells": cells}))
    estimate = "" if truth.kind == "closed form" else \
        f" (its score's estimated relative error: at most {truth.error_estimate.max():.2g})"
    click.echo(f"{sde.name}: m = {sde.m}; {p0_text}; truth: {truth.kind}{estimate}\n")

    candidates = [(target, n_steps), ("malliavin", 3 * n_steps), ("malliavin-richardson", n_steps)]
    if target != "malliavin":  # the user's target first, then the equal-cost pair of the plain weight
        candidates.insert(1, ("malliavin", n_steps))
    comparison = compare_targets(sde, p0, record, n_steps, candidates=list(dict.fromkeys(candidates)), n=paths,
                                 seed=seed, backend=backend, truth=truth)
    bias = comparison.reports[0]
    click.echo(bias.table() + "\n")
    click.echo(comparison.table())

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    wrote = [plots.plot_target_bias(bias, out / "target_bias.png")]
    result = {"spec": spec, "p0": p0_text, "target_bias": bias.to_dict(), "comparison": comparison.to_dict()}
    if run is not None:
        model = ScoreModel.load(run / MODEL_FILE)
        error = score_error(model, sde, p0, record, n=paths, seed=seed, truth=truth)
        click.echo(f"\nthe score of {run / MODEL_FILE} ({p0_text.split(';')[0]}):\n\n{error.table()}")
        wrote.append(plots.plot_score_error(error, out / "score_error.png"))
        result["score_error"] = error.to_dict()
    from .compiler.cache import atomic_write

    atomic_write(out / "check.json", json.dumps(result, indent=1))
    click.echo(f"\nwrote {', '.join(map(str, wrote))}, {out / 'check.json'}")


_QUICK_DEMO = {"steps": 60, "batch_size": 64, "n_samples": 300, "n_train": 1000, "sample_steps": 100, "width": 32,
               "depth": 2, "progress": False}
_QUICK_BENES = {"n_paths": 20_000, "n_steps": 200}
_QUICK_FIELDS = {"L": 4, "steps": 20, "batch_size": 16, "n_train": 500, "n_held_out": 500, "n_samples": 100,
                 "sample_steps": 10, "width": 8, "depth": 1, "pilot_size": 512, "progress": False}


@main.command()
@click.option("--out", default="demo", show_default=True, type=click.Path(file_okay=False),
              help="Folder for PNGs and metrics.json.")
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds of training per model (the checkerboard demo: 85; --fields: 240).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="A fixed number of training steps per model instead of --budget.")
@click.option("--benes", is_flag=True, help="Instead: the Benes kernel check (target against the exact score).")
@click.option("--fields", is_flag=True,
              help="Instead: lognormal random fields on the sphere (L = 16, the spherical Fourier network; maps, "
                   "spectra, a pixel statistic; about 6 min on 2 cores).")
@click.option("--degree", type=click.IntRange(min=1), default=None,
              help="--fields: the fields' degree L ((L + 1)^2 coefficients; 32: about 25 min with --budget 900) "
                   "[default: 16].")
@click.option("--quick", is_flag=True, help="Tiny sizes: a smoke run of seconds (figures are not meaningful).")
def demo(out, budget, steps, benes, fields, degree, quick):
    """Train cauchy/Malliavin and VP/DSM on the checkerboard for --budget seconds each, sample with
    the reverse SDE and predictor-corrector, and compare with held-out data (about 4 min on 2 cores).

    \b
    Examples:
      symscore demo
      symscore demo --out /tmp/demo --budget 60
      symscore demo --benes
      symscore demo --fields --out demo_fields
      symscore demo --fields --degree 32 --budget 900
      symscore demo --quick --out /tmp/smoke
    """
    from .demo import run_benes_check, run_demo, run_fields_demo

    if benes and fields:
        raise click.UsageError("--benes and --fields: choose one")
    if degree is not None and (quick or not fields):
        raise click.UsageError("--degree: only with --fields, and not with --quick (its degree is 4)")
    if fields:
        out = "demo_fields" if out == "demo" else out
        options = {"L": degree or 16, "steps": steps, "budget": budget or 240.0}
        run_fields_demo(out=out, **(_QUICK_FIELDS if quick else options))
    elif benes:
        run_benes_check(**(_QUICK_BENES if quick else {}))
    else:
        from .demo import DEMO_BUDGET

        run_demo(out=out, **(_QUICK_DEMO if quick else {"budget": budget or DEMO_BUDGET, "steps": steps}))


@main.command()
@click.argument("spec")
@click.option("--backend", type=_Registered("symscore.compiler.backends", "BACKENDS", ("all", "both")), default="all",
              show_default=True,
              help="A registered backend, or all of them ('both' is the old name of 'all').")
@click.option("--paths", "n_paths", default=10_000, show_default=True)
@click.option("--n-steps", default=200, show_default=True)
@click.option("--repeats", default=3, show_default=True, help="Best of this many timed runs (after a warm-up).")
@click.option("--device", default=None, help="torch device, e.g. cuda (default: cpu).")
@_spec_doc
def bench(spec, backend, n_paths, n_steps, repeats, device):
    """Throughput of the kernels for SPEC against a numpy Euler of X alone, in the same process.

    \b
    Examples:
      symscore bench cubic
      symscore bench benes --backend torch --device cuda --paths 1000000
    The Malliavin paper's grid is its own command: symscore paper.
    """
    from .bench import bench_kernel

    sde = load_spec(spec)
    backends = tuple(BACKENDS) if backend in ("all", "both") else (backend,)
    rows = bench_kernel(sde, backends, n_paths=n_paths, n_steps=n_steps, repeats=repeats, device=device)
    click.echo(f"{sde.name}: m = {sde.m}, d = {sde.d}, {sde.derive().structure}; {n_paths} paths x {n_steps} steps")
    click.echo(f"{'':36} {'seconds':>9} {'path-steps/s':>13} {'x baseline':>11}")
    for row in rows:
        click.echo(f"{row.label:36} {row.seconds:9.3f} {row.path_steps_per_second:13.3e} {row.ratio_to_baseline:11.2f}")


def _seeds(text: str) -> list[int]:
    """--seeds '0,1,2' as integers."""
    try:
        seeds = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint="--seeds") from None
    if not seeds:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint="--seeds")
    return seeds


def _names(text: str, flag: str) -> list[str]:
    """A comma-separated option as its non-empty items (none: an error naming the option)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise click.BadParameter(f"expected comma-separated names, got {text!r}", param_hint=flag)
    return names


@main.command()
@click.option("--budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Training seconds per cell  [default: 40; 120 with --tails].")
@click.option("--quick", is_flag=True, help="10 steps per cell: a smoke run of every code path, not a measurement.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder  [default: paper; paper_tails with --tails].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seeds the data, the training and the sampling of one run.")
@click.option("--seeds", default=None,
              help="Instead of --seed: training seeds, comma-separated (e.g. 0,1,2): the grid once per seed (in "
                   "OUT/seed_<k>/) and a summary of each row over the runs (seeds.md).")
@click.option("--datasets", default=None,
              help="Comma-separated datasets  [default: checkerboard,swiss_roll,eight_gaussians].")
@click.option("--cells", default=None,
              help="Comma-separated 'sde+target' cells, e.g. cauchy+malliavin,vp+dsm  [default: all 8].")
@click.option("--sampler-seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sample sets per cell and sampler (metrics are their means, with errors).")
@click.option("--tails", is_flag=True, help="Instead: cauchy + malliavin against vp + dsm on a heavy-tailed 2-D "
                                            "Student t (quantiles of |x| to 0.999).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads (a clock budget buys steps by the thread count; the recorded figures used 2) "
                   " [default: torch's own].")
@click.pass_context
def paper(ctx, budget, quick, out, seed, seeds, datasets, cells, sampler_seeds, tails, threads):
    """The Malliavin paper's grid: SDEs x targets x datasets at an equal training budget per cell;
    sliced W2, W2, MMD^2 and energy against held-out data and their noise floor (symscore.paper).

    \b
    Examples:
      symscore paper --budget 40 --out paper
      symscore paper --quick --out /tmp/paper
      symscore paper --datasets checkerboard --cells cauchy+malliavin,vp+dsm --budget 300 \\
          --seeds 0,1,2 --sampler-seeds 3      # the demo's comparison, over training seeds
      symscore paper --tails --budget 120
    """
    from .experiments import parse_cells, use_torch_threads
    from .paper import CELLS, PAPER_DATASETS, run_heavy_tails, run_paper, run_paper_seeds

    if seeds is not None and ctx.get_parameter_source("seed") is not click.core.ParameterSource.DEFAULT:
        raise click.UsageError("--seed and --seeds: choose one")
    if tails:
        given = [flag for flag, value in {"--seeds": seeds, "--datasets": datasets, "--cells": cells}.items()
                 if value is not None] + (["--sampler-seeds"] if sampler_seeds != 1 else [])
        if given:
            raise click.UsageError(f"{', '.join(given)}: not with --tails (its cells and data are fixed)")
    if threads is not None:
        use_torch_threads(threads)
    if tails:
        run_heavy_tails(out=out or "paper_tails", budget=120.0 if budget is None else budget, quick=quick, seed=seed,
                        print_fn=click.echo)
        return
    grid = {"budget": 40.0 if budget is None else budget, "quick": quick, "sampler_seeds": sampler_seeds,
            "datasets": PAPER_DATASETS if datasets is None else _names(datasets, "--datasets"),
            "cells": CELLS if cells is None else parse_cells(cells)}
    if seeds is None:
        run_paper(out=out or "paper", seed=seed, print_fn=click.echo, **grid)
    else:
        run_paper_seeds(seeds=_seeds(seeds), out=out or "paper", print_fn=click.echo, **grid)


if __name__ == "__main__":
    sys.exit(main())
