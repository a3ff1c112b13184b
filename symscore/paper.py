"""The Malliavin paper's experiments (arXiv 2503.16917 v3, Section 4), at a fixed wall-clock budget.

The paper trains score networks on three 2-D toys (checkerboard, Swiss roll, 8 Gaussians; 8000
training points) with the VE, VP and sub-VP SDEs and with a nonlinear SDE whose stationary law is
Cauchy (symscore's ``cauchy``: per coordinate dX = -beta(t) X / (1 + X^2) dt + sqrt(beta(t)) dB,
beta linear from 1 to 25, T = 1, 250 Euler steps). :func:`run_paper` runs that grid:

* ``cauchy + malliavin``: the nonlinear SDE with the full Malliavin-Bismut target;
* ``cauchy + first-order``: the ablation, the same weight without the second variation (the
  ``first-order`` target: what the only public reproduction computes);
* ``vp``, ``subvp``, ``ve`` each with ``dsm`` (exact Gaussian transition) and ``malliavin``.

Every cell gets the same wall-clock budget of training on this machine: the clock sets the step
count (``symscore.train(budget=)`` re-plans the cosine schedule's horizon after every step from
the mean step time so far, so the schedule ends when the budget does). Each trained cell is
sampled with the reverse SDE (``sde``) and with predictor-corrector (``pc``: a Langevin corrector
step after each reverse step); sliced W2, W2, MMD^2 and the energy distance are measured against
held-out data, next to their noise floor: the same metric between two independent draws of the
data of the same sizes. Training, sampling over seeds and the evaluation are the experiment
harness's (:mod:`symscore.experiments`); this module chooses the cells, data and sizes, and
writes the tables and figures. On the command line: ``symscore paper``.

The network is scaled down and stated plainly: the paper used width 4096 x 6 residual blocks,
AdamW 2e-4, batch 2048; here the package's MLP (:class:`~symscore.learn.model.ScoreModel`),
3 x 128, ReLU (the demo's), batch 256, 4 record times per path, AdamW 5e-3 with warm-up and cosine
decay, EMA 0.999.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import metrics, plots
from ._checks import positive_float, positive_int
from ._errors import SymscoreError
from .data import DATASETS, student_t
from .experiments import (FLOOR, Cell, Network, flat_metrics, noise_floor, ratio_to_floor, run_cell, seeds_summary,
                          seeds_table)
from .learn.samplers import COMPARED_SAMPLERS

__all__ = ["Cell", "CELLS", "FLOOR", "PAPER_DATASETS", "SAMPLERS", "run_paper", "run_paper_seeds", "markdown_table",
           "run_heavy_tails",
           "student_t_radius_quantile"]

PAPER_DATASETS = ("checkerboard", "swiss_roll", "eight_gaussians")
#: Euler steps of the simulated targets: the paper's 250 on T = 1
N_STEPS = 250
#: the smallest training time, 2 dt for every cell: sub-VP's sigma(0) = 0 leaves the Malliavin matrix
#: C_t exactly 0 after one Euler step, so t = dt has no Malliavin target there
T_MIN = 2 / N_STEPS

CELLS = (Cell("cauchy", "malliavin"), Cell("cauchy", "first-order"), Cell("vp", "dsm"), Cell("vp", "malliavin"),
         Cell("subvp", "dsm"), Cell("subvp", "malliavin"), Cell("ve", "dsm"), Cell("ve", "malliavin"))
#: the scaled-down network and optimiser of every cell (module docstring)
NETWORK = Network(width=128, depth=3, activation="relu", batch_size=256, n_times=4)
QUICK = dict(steps=10, n_train=2000, n_eval=300, sample_steps=20)
#: the samplers every trained cell is measured with (:func:`symscore.learn.samplers.sample`)
SAMPLERS = COMPARED_SAMPLERS


def _run_cell(cell, data, budget, steps, seed, n_eval, sample_steps, sampler_seeds=1):
    """A cell of the grid trained and sampled with the paper's settings (sampler seeds seed + 3, seed + 4, ...)."""
    return run_cell(cell, data, NETWORK, n_steps=N_STEPS, t_min=T_MIN, budget=budget, steps=steps, seed=seed,
                    n_samples=n_eval, sample_steps=sample_steps, sampler_seeds=[seed + 3 + j for j in range(sampler_seeds)],
                    methods=SAMPLERS)


def _run_settings(budget, quick, n_train, n_eval, sample_steps, seed, sampler_seeds=1) -> dict:
    """The checked settings of a run (the quick ones when ``quick``), as written to its JSON."""
    budget = positive_float(budget, "budget")
    if quick:
        n_train, n_eval, sample_steps = QUICK["n_train"], QUICK["n_eval"], QUICK["sample_steps"]
    return {"budget_s": None if quick else budget, "quick": quick, "n_train": positive_int(n_train, "n_train"),
            "n_eval": positive_int(n_eval, "n_eval"), "sample_steps": positive_int(sample_steps, "sample_steps"),
            "n_steps": N_STEPS, "t_min": T_MIN, "seed": seed, "network": asdict(NETWORK),
            "sampler_seeds": positive_int(sampler_seeds, "sampler_seeds")}


def run_paper(out="paper", budget: float = 40.0, quick: bool = False, datasets=PAPER_DATASETS, cells=CELLS,
              n_train: int = 8000, n_eval: int = 3000, sample_steps: int = 500, seed: int = 0,
              sampler_seeds: int = 1, print_fn=print) -> dict:
    """Run the grid ``datasets`` x ``cells``; write ``results.md``, ``metrics.json`` and
    ``samples_<sampler>.png`` (a row per dataset, a column per cell).

    Args:
        out: output folder (created).
        budget: training seconds per cell (the clock sets the step count).
        quick: 10 steps per cell, 2000 training points, 300 samples and 20 reverse steps: a smoke
            run of every code path (for tests), not a measurement.
        datasets: names from :data:`symscore.data.DATASETS` (default: the paper's three).
        cells: :class:`Cell` s (default :data:`CELLS`).
        n_train, n_eval: training points; samples drawn and held-out points compared per cell.
        sample_steps: Euler steps of each sampler (the reverse SDE and predictor-corrector).
        seed: seeds data (seed, seed + 1, seed + 2 for train, held-out and noise-floor draws),
            training and sampling.
        sampler_seeds: sample sets per cell and sampler (and noise-floor draws): each metric is
            their mean, with ``<metric>_se`` its standard error when more than one (one set's
            sliced W2 varies by about a third of the floor on the checkerboard).

    Returns ``{dataset: {"<cell label>, <sampler>": {metric: value, "steps": int, "train_s": float}}}``
    with the noise floor under the label :data:`FLOOR` (``"data (noise floor)"``).
    """
    settings = _run_settings(budget, quick, n_train, n_eval, sample_steps, seed, sampler_seeds)
    sampler_seeds = settings["sampler_seeds"]
    steps = QUICK["steps"] if quick else None
    unknown = [name for name in datasets if name not in DATASETS or name == "digits"]
    if unknown or not datasets:
        raise SymscoreError(f"datasets: expected names among {', '.join(d for d in DATASETS if d != 'digits')}, "
                            f"got {list(datasets)!r}")
    if not cells or not all(isinstance(cell, Cell) for cell in cells):
        raise SymscoreError(f"cells: expected a non-empty sequence of symscore.paper.Cell, got {cells!r}")
    n_train, n_eval, sample_steps = settings["n_train"], settings["n_eval"], settings["sample_steps"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results, grids = {}, {method: {} for method in SAMPLERS}
    for name in datasets:
        draw = DATASETS[name]
        data, held_out = draw(n_train, seed=seed), draw(n_eval, seed=seed + 1)
        floor_seeds = [seed + 2 + 1000 * j for j in range(sampler_seeds)]
        results[name] = {FLOOR: flat_metrics(noise_floor(draw, n_eval, held_out, floor_seeds, seed=seed))}
        for method in SAMPLERS:
            grids[method][name] = {"data": held_out}
        for cell in cells:
            run = _run_cell(cell, data, budget, steps, seed, n_eval, sample_steps, sampler_seeds)
            taken, seconds = run.trained.steps, run.trained.seconds
            for label, method, sets in run.rows():
                grids[method][name][cell.label] = sets[0]
                results[name][label] = flat_metrics(metrics.evaluate_replicates(sets, held_out, seed=seed)) | {
                    "steps": taken, "train_s": round(seconds, 1)}
                print_fn(f"{name:<16} {label:<28} sliced W2 {results[name][label]['sliced_w2']:.4f} (floor "
                         f"{results[name][FLOOR]['sliced_w2']:.4f}), {taken} steps in {seconds:.0f} s")
    (out / "metrics.json").write_text(json.dumps({"settings": settings, "results": results}, indent=2))
    table = markdown_table(results)
    (out / "results.md").write_text(table + "\n")
    for method, grid in grids.items():
        plots.plot_sample_grid(grid, out / f"samples_{method}.png")
    print_fn(table)
    print_fn(f"wrote metrics.json, results.md, {', '.join(f'samples_{method}.png' for method in SAMPLERS)} to {out}/")
    return results


def run_paper_seeds(seeds=(0, 1, 2), out="paper", print_fn=print, **grid) -> dict:
    """:func:`run_paper` once per training seed (into ``out/seed_<k>/``), then how the comparison
    holds over seeds: for every dataset and row, sliced W2 over that run's noise floor per seed,
    their mean and range, and in how many runs the row is within 1.5x the floor. One training run
    is one draw (a row's ratio moves by a third between seeds on the checkerboard), so an
    equal-clock comparison that should hold in general is read here, not from one run.

    ``grid`` takes :func:`run_paper`'s other arguments (``budget``, ``datasets``, ``cells``,
    ``sampler_seeds``, ...). Writes ``seeds.md`` and ``seeds.json`` to ``out``; returns
    ``{dataset: {row: {"ratios": [...], "mean": ..., "min": ..., "max": ..., "within_1.5": count}}}``
    (:func:`symscore.experiments.seeds_summary`).
    """
    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise SymscoreError(f"seeds: expected distinct integers, got {seeds!r}")
    out = Path(out)
    runs = {seed: run_paper(out=out / f"seed_{seed}", seed=seed, print_fn=print_fn, **grid) for seed in seeds}
    summary = {name: seeds_summary({label: [ratio_to_floor(runs[seed][name][label], runs[seed][name][FLOOR])
                                            for seed in seeds]
                                    for label in rows if label != FLOOR})
               for name, rows in runs[seeds[0]].items()}
    lines = [f"sliced W2 over the noise floor, training seeds {', '.join(map(str, seeds))}", "",
             *seeds_table(summary, seeds, first_column="dataset")]
    table = "\n".join(lines)
    (out / "seeds.md").write_text(table + "\n")
    (out / "seeds.json").write_text(json.dumps({"seeds": seeds, "summary": summary}, indent=2))
    print_fn(table)
    return summary


def markdown_table(results: dict) -> str:
    """The results as one Markdown table, a row per (dataset, cell). Sliced W2 and W2 are biased
    upwards by the sample size: each also as a multiple of its noise floor. MMD^2 and the energy
    distance are unbiased (their floor is 0 up to noise, sometimes negative): compare them with
    the floor row's value instead."""
    lines = ["| dataset | SDE + target | sliced W2 (x floor) | W2 (x floor) | MMD^2 | energy | steps | train s |",
             "|---|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        floor = rows[FLOOR]
        for label, row in rows.items():
            errors = {k: f" +- {row[k + '_se']:.4f}" if k + "_se" in row else "" for k in ("sliced_w2", "w2")}
            ratios = [f"{row[k]:.4f}{errors[k]}" if label == FLOOR else
                      f"{row[k]:.4f}{errors[k]} ({row[k] / floor[k]:.1f}x)" for k in ("sliced_w2", "w2")]
            extra = f"{row['steps']} | {row['train_s']:.0f}" if "steps" in row else "- | -"
            lines.append(f"| {name} | {label} | {' | '.join(ratios)} | {row['mmd2']:.5f} | {row['energy']:.4f} "
                         f"| {extra} |")
    return "\n".join(lines)


# -- heavy tails ---------------------------------------------------------------------------------------------------
HEAVY_CELLS = (Cell("cauchy", "malliavin"), Cell("vp", "dsm"))
TAIL_LEVELS = (0.5, 0.9, 0.99, 0.999)


def student_t_radius_quantile(p, df: float = 2.0) -> np.ndarray:
    """The p-quantile of |x| for the 2-D Student t with ``df`` degrees of freedom (|x|^2 / 2 ~ F(2, df))."""
    import scipy.stats

    return np.sqrt(2 * scipy.stats.f.ppf(p, 2, df))


def _quantile_interval(radius: np.ndarray, p: float, z: float = 2.0) -> tuple[float, float, float]:
    """The empirical p-quantile of ``radius`` and a distribution-free interval: the order statistics
    at n p -+ z sqrt(n p (1 - p)) (the binomial count of points below the true quantile)."""
    ordered, n = np.sort(radius), len(radius)
    half = z * np.sqrt(n * p * (1 - p))
    low, high = (int(np.clip(round(n * p + k), 0, n - 1)) for k in (-half, half))
    return float(np.quantile(radius, p)), float(ordered[low]), float(ordered[high])


def run_heavy_tails(out="paper_tails", budget: float = 120.0, quick: bool = False, n_train: int = 8000,
                    n_eval: int = 20_000, sample_steps: int = 500, seed: int = 0, print_fn=print) -> dict:
    """cauchy + malliavin against vp + dsm on a 2-D Student t with 2 degrees of freedom, at the same
    training budget: quantiles of |x| (0.5 to 0.999) against their exact values with order-statistic
    intervals, and MMD^2 and the energy distance against held-out data with their noise floor
    (W2 is undefined: the data have no second moment). Writes ``tails.md``, ``tails.json``,
    ``tails.png``; returns ``{label: {...}}``."""
    settings = _run_settings(budget, quick, n_train, n_eval, sample_steps, seed)
    steps = QUICK["steps"] if quick else None
    n_train, n_eval, sample_steps = settings["n_train"], settings["n_eval"], settings["sample_steps"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data, held_out, floor = student_t(n_train, seed=seed), student_t(n_eval, seed=seed + 1), student_t(n_eval, seed=seed + 2)
    exact = student_t_radius_quantile(TAIL_LEVELS)
    panels, results = {"data": held_out}, {}
    sampled = [(FLOOR, floor, None, None)]
    for cell in HEAVY_CELLS:
        run = _run_cell(cell, data, budget, steps, seed, n_eval, sample_steps)
        sampled += [(label, sets[0], run.trained.steps, run.trained.seconds) for label, _, sets in run.rows()]
    for label, points, taken, seconds in sampled:
        radius = np.linalg.norm(points, axis=1)
        row = {f"q{p:g}": _quantile_interval(radius, p) for p in TAIL_LEVELS}
        row |= {name: float(metric) for name, metric in (("mmd2", metrics.mmd(points, held_out, seed=seed)),
                                                         ("energy", metrics.energy_distance(points, held_out, seed=seed)))}
        if taken is not None:
            row |= {"steps": taken, "train_s": round(seconds, 1)}
            panels[label] = points
        results[label] = row
    lines = ["| | " + " | ".join(f"q{p:g} of abs(x)" for p in TAIL_LEVELS) + " | MMD^2 | energy | steps | train s |",
             "|---" * (len(TAIL_LEVELS) + 5) + "|",
             "| exact | " + " | ".join(f"{q:.2f}" for q in exact) + " | | | | |"]
    for label, row in results.items():
        cells = " | ".join("{:.2f} [{:.2f}, {:.2f}]".format(*row[f"q{p:g}"]) for p in TAIL_LEVELS)
        extra = f"{row['steps']} | {row['train_s']:.0f}" if "steps" in row else "- | -"
        lines.append(f"| {label} | {cells} | {row['mmd2']:.5f} | {row['energy']:.4f} | {extra} |")
    table = "\n".join(lines)
    (out / "tails.json").write_text(json.dumps({"settings": settings, "exact": dict(zip(map(str, TAIL_LEVELS),
                                                                                        exact.tolist())),
                                                "results": results}, indent=2))
    (out / "tails.md").write_text(table + "\n")
    clipped = {label: np.clip(points, -30, 30) for label, points in panels.items()}
    plots.plot_sample_grid({"student t (clipped to 30)": clipped}, out / "tails.png")
    print_fn(table)
    print_fn(f"wrote tails.md, tails.json, tails.png to {out}/")
    return results
