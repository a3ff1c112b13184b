"""Learned random fields on the sphere: the field recipe per family and degree, with its figures.

For each (family, L) it runs ``symscore demo --fields`` (:func:`symscore.demo.run_fields_demo`:
the spherical Fourier network, Cameron-Martin preconditioning, a training budget in seconds, the
probability-flow ODE on 25 log-spaced steps) into ``OUT/<family>_L<L>/`` (maps.png, spectra.png,
metrics.json) and prints one summary row: the spectrum ratio samples / held-out data per degree
(mean, range, worst degree), the fraction of area above sigma_Q for data, samples and the data's
Gaussian counterpart with standard errors, whether both tolerances are met, and the seconds spent.

    python benchmarks/bench_field_network.py                          # lognormal and threshold at L = 16
    python benchmarks/bench_field_network.py --kinds lognormal --L 32 --budget 900 --samples 500
    python benchmarks/bench_field_network.py --with-stein             # also: the same model + Stein calibration

``--with-stein`` adds, for each run, the spectrum and pixel statistic after the forward Stein
calibration (:func:`symscore.learn.stein.calibrate_stein`, 8192 paths): whether the correction the
older networks needed still changes anything.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", nargs="+", default=["lognormal", "threshold"])
    parser.add_argument("--L", nargs="+", type=int, default=[16])
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per run")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--with-stein", action="store_true")
    parser.add_argument("--out", default="bench_field_network")
    args = parser.parse_args()

    from symscore.demo import run_fields_demo

    rows = []
    for kind in args.kinds:
        for L in args.L:
            folder = Path(args.out) / f"{kind}_L{L}"
            start = time.perf_counter()
            metrics = run_fields_demo(out=folder, L=L, kind=kind, budget=args.budget, n_samples=args.samples,
                                      seed=args.seed, progress=False)
            metrics["seconds"]["wall"] = round(time.perf_counter() - start, 1)
            if args.with_stein:
                metrics["stein"] = _with_stein(folder, metrics, kind, L, args)
            (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
            rows.append(metrics)
    print()
    print("| family | L | steps | train s | total s | spectrum ratio mean (range; worst l) | fraction above sigma_Q: "
          "data / samples / gaussian (SE) | gap | meets |")
    print("|---|---|---|---|---|---|---|---|---|")
    for metrics in rows:
        print(_row(metrics))
        if "stein" in metrics:
            print(_row(metrics["stein"] | {"kind": metrics["kind"] + " + Stein", "L": metrics["L"],
                                           "steps": metrics["steps"], "seconds": metrics["seconds"]}))


def _row(metrics: dict) -> str:
    ratio = np.asarray(metrics["spectrum_ratio_samples_to_data"])
    worst = int(np.argmax(np.abs(ratio - 1)))
    fractions = metrics["fraction_above_sigma_q"]
    data, ours, gaussian = (fractions[k] for k in ("data", "samples", "gaussian, same C_l"))
    return (f"| {metrics['kind']} | {metrics['L']} | {metrics['steps']} | {metrics['seconds']['train']:.0f} | "
            f"{metrics['seconds'].get('wall', metrics['seconds'].get('total', 0)):.0f} | {ratio.mean():.3f} "
            f"({ratio.min():.2f}-{ratio.max():.2f}; l = {worst}: {ratio[worst]:.2f}) | {data['value']:.4f} / "
            f"{ours['value']:.4f} / {gaussian['value']:.4f} ({data['standard_error']:.4f}, "
            f"{ours['standard_error']:.4f}) | {metrics['fraction_gap_in_standard_errors']:+.1f} SE | "
            f"{'yes' if metrics['meets_tolerance'] else 'no'} |")


def _with_stein(folder: Path, metrics: dict, kind: str, L: int, args) -> dict:
    """The run's model with the forward Stein calibration, sampled and judged the same way."""
    from symscore.experiments.fields import FIELD_TRAINING, compare_fields, sample_fields
    from symscore.fields import field_data, whittle_matern_sde
    from symscore.learn.model import ScoreModel
    from symscore.learn.stein import calibrate_stein
    from symscore.learn.targets import make_target_source

    sde = whittle_matern_sde(L)
    model = ScoreModel.load(folder / "model.pt")
    data = field_data(kind, L, 20_000, seed=args.seed)
    held_out = field_data(kind, L, 10_000, seed=args.seed + 1)
    calibrate_stein(model, make_target_source("dsm", sde, FIELD_TRAINING["n_steps"]), data, n_paths=8192,
                    seed=args.seed)
    samples = sample_fields(sde, model, args.samples, seed=args.seed + 2)
    return compare_fields(samples, held_out, L, seed=args.seed + 3).as_dict()


if __name__ == "__main__":
    main()
