"""The embedded default (``make demo``, ``symscore demo``).

:func:`run_demo` learns the checkerboard with the Malliavin paper's *nonlinear* forward SDE
(``cauchy``: dX = -beta(t) X / (1 + X^2) dt + sqrt(beta(t)) dB per coordinate, Malliavin target)
and, with the same network and wall clock, with the VP SDE (denoising target); samples both with
the reverse SDE and with predictor-corrector; writes PNGs, ``samples.npz`` (the held-out data and
each row's samples) and ``metrics.json`` to ``demo/`` and prints sliced W2 (and its ratio to the
noise floor), W2, MMD and energy distance against held-out data. It is an experiment of the
harness (:mod:`symscore.experiments`): two cells, trained, sampled over seeds and evaluated there.

:func:`run_benes_check` is the kernel-level check: conditional means of the Malliavin target of
the Benes SDE dX = theta tanh(theta X) dt + dB against its exact score, and against the
first-variation-only weight, which is wrong.

:func:`run_fields_demo` (``symscore demo --fields``) learns non-Gaussian random fields on the
sphere with the field recipe (:mod:`symscore.experiments.fields`: the spherical Fourier network,
the score in the Cameron-Martin geometry of Q), then writes Mollweide maps, power spectra and a
pixel statistic of data, samples and the data's Gaussian counterpart.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from . import metrics, plots
from ._checks import positive_float, positive_int
from .spec import library
from .compiler.build import compile
from .compiler.variant import Variant
from .experiments import FLOOR, Cell, Network, noise_floor, ratio_to_floor, run_cell
from .data import checkerboard

__all__ = ["run_demo", "run_benes_check", "run_fields_demo"]


def _binned(x, target, edges):
    which = np.digitize(x, edges)
    rows = []
    for b in range(1, len(edges)):
        sel = which == b
        rows.append((x[sel].mean(), target[sel].mean(), target[sel].std(ddof=1) / np.sqrt(sel.sum())))
    return np.array(rows)


def run_benes_check(n_paths: int = 200_000, n_steps: int = 500, theta: float = 1.5, x0: float = 0.3,
                    n_bins: int = 9, print_fn=print) -> dict:
    """Run the Benes demo and print the table; returns the figures (for tests)."""
    sde = library.benes(m=1, theta=theta)
    start = time.perf_counter()
    kernel = compile(sde)
    first_order = compile(sde, variant=Variant(first_order_only=True))
    compiled = time.perf_counter() - start
    start = time.perf_counter()
    paths = kernel.simulate(np.full((n_paths, 1), x0), [1.0], n_steps, seed=0)
    simulated = time.perf_counter() - start
    wrong = first_order.simulate(np.full((n_paths, 1), x0), [1.0], n_steps, seed=0)
    x = paths.x[:, 0, 0]
    edges = np.quantile(x, np.linspace(0.02, 0.98, n_bins + 1))
    full, naive = _binned(x, paths.target[:, 0, 0], edges), _binned(x, wrong.target[:, 0, 0], edges)
    # the score varies across a bin: average the exact score over the same paths
    exact = _binned(x, library.benes_score(x[:, None], 1.0, [x0], theta)[:, 0], edges)[:, 1]
    print_fn(f"Benes SDE dX = {theta} tanh({theta} X) dt + dB, X_0 = {x0}, t = 1: "
             f"{n_paths} paths x {n_steps} steps ({n_paths * n_steps / simulated / 1e6:.0f} M path-steps/s; "
             f"compile/load {compiled:.1f} s)")
    print_fn(f"{'y (bin mean)':>13} {'E[target|y]':>12} {'+-2 SE':>8} {'exact (bin)':>12} {'first-var only':>15}")
    for (y, est, se), ex, (_, bad, _) in zip(full, exact, naive):
        print_fn(f"{y:13.3f} {est:12.3f} {2 * se:8.3f} {ex:12.3f} {bad:15.3f}")
    err, err_naive = np.abs(full[:, 1] - exact).max(), np.abs(naive[:, 1] - exact).max()
    print_fn(f"max |estimate - exact| = {err:.3f} (Malliavin target), {err_naive:.3f} (second variation dropped)")
    return {"max_error": float(err), "max_error_first_order": float(err_naive)}


def _target_variance(model_sde, target, data, n_steps, seed):
    """Per-time variance of the regression target on a pilot batch (for the variance plot)."""
    from .learn.targets import make_target_source

    source = make_target_source(target, model_sde, n_steps)
    steps = np.unique(np.geomspace(1, n_steps, 12).round().astype(int))
    _, values = source.batch(data[:2000], steps, seed)
    return steps * source.dt, values.var(axis=1).mean(axis=1)


#: the demo's two cells: the paper's nonlinear forward SDE (no Gaussian transition, so only the
#: Malliavin target applies) and the linear reference with denoising score matching
DEMO_CELLS = (Cell("cauchy", "malliavin"), Cell("vp", "dsm"))


def sample_key(row: str) -> str:
    """The name of a report row's samples in ``samples.npz``: "cauchy + malliavin, pc" -> "cauchy_malliavin_pc"."""
    return row.replace(" + ", "_").replace(", ", "_")


#: seconds of training per model in ``make demo``: the whole run (two models, sampling, metrics)
#: fits in four minutes on 2 cores
DEMO_BUDGET = 85.0


def run_demo(out="demo", budget: float = DEMO_BUDGET, steps: int | None = None, batch_size: int = 256,
             n_samples: int = 5000, n_train: int = 20_000, n_steps: int = 250, sample_steps: int = 500, width: int = 64,
             depth: int = 3, activation: str = "relu", seed: int = 0, sampler_seeds: int = 3, eval_points: int = 2000,
             progress: bool = True, print_fn=print) -> dict:
    """Train cauchy/Malliavin and VP/DSM on the checkerboard for the same wall clock, sample each
    with the reverse SDE and with predictor-corrector, and compare against held-out data.

    Args:
        out: folder for the PNGs, ``samples.npz`` and ``metrics.json``.
        budget: seconds of training per model: the clock sets the step count
            (:func:`symscore.experiments.train_cell`), so the cosine schedule ends with the budget and
            both models get the same wall clock.
        steps: a fixed step count per model instead of ``budget`` (small smoke runs).
        n_steps: Euler steps over [0, T] of the training grid (t_min = 2 T / n_steps for both).
        sample_steps: reverse-time steps of each sampler.
        sampler_seeds: sample sets per row (sampler seeds seed + 2, seed + 3, ...) and data draws for
            the noise floor: each metric is their mean, with its standard error (one set's sliced W2
            varies by a third of the floor).
        eval_points: points per side of the quadratic-cost metrics (exact W2, MMD, energy; see
            :func:`symscore.metrics.evaluate`); sliced W2, the headline figure, uses all ``n_samples``.
        The other arguments size the data, the network (``width`` x ``depth`` MLP) and the batch. At
        this budget a 3 x 64 network beats 3 x 128: a step of the narrower one is cheaper, and the
        wider one is still far from trained (measured: cauchy + malliavin 1.45x the noise floor
        against 1.55x, 12 279 steps against 9172).

    Returns:
        ``{"<model>, <sampler>": {metric: {"value", "standard_error", "replicates", ...}, "steps": ...,
        "seconds": {...}}, "data (noise floor)": {...}}``.
    """
    sampler_seeds = positive_int(sampler_seeds, "sampler_seeds")
    budget = positive_float(budget, "budget")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data, held_out = checkerboard(n_train, seed=seed), checkerboard(n_samples, seed=seed + 1)
    network = Network(width=width, depth=depth, activation=activation, batch_size=batch_size)
    samples, models, report, variances = {}, {}, {}, {}
    started = time.perf_counter()
    for cell in DEMO_CELLS:
        run = run_cell(cell, data, network, n_steps=n_steps, budget=budget, steps=steps, seed=seed,
                       n_samples=n_samples, sample_steps=sample_steps,
                       sampler_seeds=[seed + 2 + j for j in range(sampler_seeds)], progress=progress)
        trained = run.trained
        models[cell.label] = trained.model
        for row, method, sets in run.rows():
            samples[row] = sets[0]
            report[row] = metrics.evaluate_replicates(sets, held_out, seed=seed, max_points=eval_points)
            report[row] |= {"steps": trained.steps, "seconds": {"train": round(trained.seconds, 1),
                                                                "sample": round(run.sampled.seconds[method], 1)}}
        variances[cell.label] = _target_variance(trained.sde, cell.target, data, n_steps, seed)
    # further data draws against the held-out one: the noise floor of each metric
    floor = noise_floor(checkerboard, n_samples, held_out, [seed + 3 + 1000 * j for j in range(sampler_seeds)],
                        seed=seed, max_points=eval_points)
    report[FLOOR] = floor
    plots.plot_samples(held_out, samples, out / "samples.png", limits=(-5, 5))
    np.savez_compressed(out / "samples.npz", held_out=held_out, **{sample_key(row): x for row, x in samples.items()})
    plots.plot_score_field(models, 0.1, out / "score_field.png", limits=(-4.5, 4.5))
    plots.plot_target_variance(variances, out / "target_variance.png")
    plots.plot_loss({label: model.loss_history for label, model in models.items()}, out / "loss.png")
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    print_fn(f"means over {sampler_seeds} sample set(s) per row")
    print_fn(f"{'model, sampler':<24} {'sliced W2':>10} {'+- SE':>7} {'x floor':>8} {'W2':>8} {'MMD^2':>10} "
             f"{'energy':>9} {'steps':>6} {'train s':>8}")
    for label, row in report.items():
        ratio = ratio_to_floor(row, floor)
        error = row["sliced_w2"]["standard_error"]
        print_fn(f"{label:<24} {row['sliced_w2']['value']:10.4f} {'-' if error is None else f'{error:.4f}':>7} "
                 f"{ratio:8.2f} {row['w2']['value']:8.4f} "
                 f"{row['mmd2']['value']:10.5f} {row['energy']['value']:9.4f} {row.get('steps', '-'):>6} "
                 f"{row.get('seconds', {}).get('train', float('nan')):8.1f}")
    best = min(samples, key=lambda row: report[row]["sliced_w2"]["value"])
    print_fn(f"best: {best} (sliced W2 {ratio_to_floor(report[best], floor):.2f} x the noise floor)")
    print_fn(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}/ "
             f"({time.perf_counter() - started:.0f} s in all)")
    return report


def run_fields_demo(out="demo_fields", L: int = 16, kind: str = "lognormal", budget: float | None = 240.0,
                    steps: int | None = None, n_train: int = 20_000, n_held_out: int = 10_000, n_samples: int = 1000,
                    sample_steps: int = 25, kappa: float = 4.0, alpha: float = 2.0, seed: int = 0, progress: bool = True,
                    print_fn=print, **overrides) -> dict:
    """Learn ``kind`` fields up to degree L with the field recipe (:mod:`symscore.experiments.fields`:
    the spherical Fourier network, Cameron-Martin preconditioning) for ``budget`` seconds of training
    (or ``steps`` steps), sample them with the probability-flow ODE and compare spectra and the
    fraction of area above sigma_Q with held-out data and with the data's Gaussian counterpart.
    Writes maps, spectra, the model, the samples and ``metrics.json`` to ``out``; returns the metrics.
    ``overrides`` go to :func:`~symscore.experiments.fields.train_fields`."""
    from ._memory import reuse_large_allocations
    from .experiments.fields import compare_fields, sample_fields, train_fields
    from .fields import field_data, gaussian_counterpart, whittle_matern_sde, whittle_matern_spectrum

    reuse_large_allocations()  # the grid's activations: see symscore._memory
    if steps is not None:
        budget = None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    sde = whittle_matern_sde(L, kappa, alpha)
    data = field_data(kind, L, n_train, seed=seed, kappa=kappa, alpha=alpha)
    held_out = field_data(kind, L, n_held_out, seed=seed + 1, kappa=kappa, alpha=alpha)
    drawn = time.perf_counter()
    model = train_fields(sde, data, steps=steps, budget=budget, seed=seed, progress=progress, **overrides)
    trained = time.perf_counter()
    samples = sample_fields(sde, model, n_samples, sample_steps, seed=seed + 2)
    sampled = time.perf_counter()
    gaussian = gaussian_counterpart(held_out, L, n_samples, seed=seed + 3)  # compared and mapped
    report = compare_fields(samples, held_out, L, kappa, alpha, gaussian=gaussian)
    seconds = {"data": round(drawn - start, 1), "train": round(trained - drawn, 1), "sample": round(sampled - trained, 1)}
    metrics = {"sde": sde.name, "L": L, "m": sde.m, "kind": kind, "kappa": kappa, "alpha": alpha,
               "network": dict(model.config), "steps": len(model.loss_history), **report.as_dict(), "seconds": seconds}
    model.save(out / "model.pt")
    np.save(out / "samples.npy", samples)
    plots.plot_field_maps({"data (held out)": held_out, "samples": samples, "gaussian, same C_l": gaussian}, L,
                          out / "maps.png")
    plots.plot_power_spectra(report.spectra, out / "spectra.png",
                             reference={"noise C_l (Whittle-Matern)": whittle_matern_spectrum(L, kappa, alpha)})
    plots.plot_loss({"cameron-martin": model.loss_history}, out / "loss.png")
    seconds["total"] = round(time.perf_counter() - start, 1)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print_fn(f"{kind} fields up to degree L = {L} (m = {sde.m} coefficients), Whittle-Matern noise kappa = {kappa}, "
             f"alpha = {alpha}; {metrics['steps']} training steps in {seconds['train']:.0f} s, {n_samples} samples in "
             f"{seconds['sample']:.0f} s, {seconds['total']:.0f} s in all")
    for line in report.lines():
        print_fn(line)
    print_fn(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}/")
    return metrics
