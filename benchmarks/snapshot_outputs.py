"""Snapshot every kernel's output, to show that a refactoring leaves the numbers alone.

    python benchmarks/snapshot_outputs.py --write DIR     # before the change
    python benchmarks/snapshot_outputs.py --check DIR     # after it: max relative difference per case

With fixed x0 and Brownian increments, every SDE of the reference suite (the built-ins, the
hand-written coupled, hypoelliptic, lane-constant and field SDEs) runs on the numba and torch
kernels; so do the variants (one component, first order only, dropped terms, a time-weighted
covering field), the loop form, the emitted standalone modules and, small, the triton kernel in
Triton's CPU interpreter. ``--check`` fails (exit 1) where X or the target moved by more than
``--rtol`` (default 1e-12, relative to the largest entry of the case).
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TRITON_INTERPRET", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402

import symscore as ss  # noqa: E402
from test_reference import SDES  # noqa: E402


def _compile(sde, backend="numba", form="auto", **variant):
    """A kernel with the given variant, through ``ss.Variant`` where it exists."""
    if not variant:
        return ss.compile(sde, backend=backend, form=form)
    if hasattr(ss, "Variant"):
        return ss.compile(sde, backend=backend, form=form, variant=ss.Variant(**variant))
    return ss.compile(sde, backend=backend, form=form, **{f"_{k}": v for k, v in variant.items()})


def _inputs(sde, n=24, n_steps=32, seed=0):
    rng = np.random.default_rng(seed)
    times = [sde.T * f for f in (0.25, 0.5, 1.0)]
    x0 = rng.normal(scale=0.8, size=(n, sde.m))
    dW = rng.standard_normal((n, n_steps, sde.d)) * np.sqrt(times[-1] / n_steps)
    return x0, times, n_steps, dW


def _run(kernel, sde, **inputs):
    x0, times, n_steps, dW = _inputs(sde, **inputs)
    paths = kernel.simulate(x0, times, n_steps, dW=dW, as_numpy=True, on_failure="keep")
    return np.concatenate([np.asarray(paths.x).ravel(), np.asarray(paths.target).ravel()])


def _emitted(sde, backend):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"emitted_{backend}.py"
        ss.emit(sde, backend=backend, path=path)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        x0, times, n_steps, dW = _inputs(sde)
        _, x, target = module.simulate(x0, times, n_steps, dW=dW)
        return np.concatenate([np.asarray(x).ravel(), np.asarray(target).ravel()])


def cases():
    """(name, thunk) for every snapshot."""
    for name, factory in SDES.items():
        for backend in ("numba", "torch"):
            yield f"{name}/{backend}", lambda f=factory, b=backend: _run(_compile(f(), b), f())
    variants = [("coupled2d", {"force_coupled": True}), ("cubic3", {"force_coupled": True}),
                ("coupled2d", {"first_order_only": True}), ("benes1d", {"first_order_only": True}),
                ("builtin_gbm", {"drop": ("P",)}), ("builtin_gbm", {"drop": ("RPsi",)}),
                ("rational3d", {"covering_weight": "t + dt"}), ("builtin_cauchy", {"covering_weight": "1 + t**2/2"})]
    for name, variant in variants:
        for backend in ("numba", "torch"):
            label = ",".join(f"{k}={v}" for k, v in variant.items())
            yield f"{name}/{backend}/{label}", (lambda f=SDES[name], b=backend, v=variant: _run(_compile(f(), b, **v), f()))
    for name in ("coupled3d", "rational3d", "builtin_gbm", "benes2d", "field_l2", "linear_coupled"):
        for backend in ("numba", "torch"):
            yield f"{name}/{backend}/loop", lambda f=SDES[name], b=backend: _run(_compile(f(), b, form="loop"), f())
    for backend in ("numba", "torch"):
        yield f"coupled3d/{backend}/loop,first_order_only", (
            lambda b=backend: _run(_compile(SDES["coupled3d"](), b, form="loop", first_order_only=True), SDES["coupled3d"]()))
        yield f"builtin_gbm/{backend}/loop,drop=P", (
            lambda b=backend: _run(_compile(SDES["builtin_gbm"](), b, form="loop", drop=("P",)), SDES["builtin_gbm"]()))
    for name in ("coupled2d", "builtin_cauchy", "lane_constants4d"):
        for backend in ("numba", "torch"):
            yield f"{name}/{backend}/emitted", lambda f=SDES[name], b=backend: _emitted(f(), b)
    if importlib.util.find_spec("triton") is not None:
        for name in ("coupled2d", "builtin_gbm", "lane_constants4d"):
            yield f"{name}/triton", lambda f=SDES[name]: _run(_compile(f(), "triton"), f(), n=8, n_steps=8)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path)
    group.add_argument("--check", type=Path)
    parser.add_argument("--rtol", type=float, default=1e-12)
    parser.add_argument("--only", default="", help="run only the cases whose name contains this text")
    args = parser.parse_args(argv)
    worst, failed = 0.0, []
    for name, thunk in cases():
        if args.only not in name:
            continue
        file = (args.write or args.check) / (name.replace("/", "__").replace("=", "-").replace(" ", "") + ".npy")
        value = thunk()
        if args.write:
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(file, value)
            print(f"wrote {name}: {value.size} numbers", flush=True)
            continue
        before = np.load(file)
        scale = max(np.nanmax(np.abs(before)), 1e-300)
        same_nan = np.array_equal(np.isnan(before), np.isnan(value))
        diff = float(np.nanmax(np.abs(value - before)) / scale) if same_nan else float("inf")
        worst = max(worst, diff)
        status = "ok" if diff <= args.rtol else "MOVED"
        if diff > args.rtol:
            failed.append(name)
        print(f"{status:5s} {name}: max relative difference {diff:.2e}", flush=True)
    if args.check:
        print(f"worst {worst:.2e} over all cases; {len(failed)} moved beyond {args.rtol:g}: {failed}")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
