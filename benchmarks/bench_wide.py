"""Wide coupled drifts: cold compile time and throughput of the loop form against torch.func autodiff.

The drift b = theta tanh(theta . x) - x / 2 (diffusion I, |theta| = 1.5) couples every coordinate,
so the unrolled form grows as O(m^4) terms; symscore builds it in the loop form from m = 5 on
(``LOOP_FORM_TERMS``). The loop form's kernel (symscore/compiler/dense.py) is compiled once for
every SDE; its first build, in a fresh cache folder, is printed first. Then for each m:

* the cold build: derivation + code generation + numba compilation of the SDE's own code, to a
  first simulate, in a fresh process whose cache holds only the loop-form kernel (what every SDE
  after the first sees);
* path-steps/s of the numba kernel and of a torch.func implementation of the same weight (J and H
  of the drift by ``torch.func.jacfwd``, vmapped over paths, at every step and the same recursion
  in batched einsums) in the same process, their ratio, and the largest per-path difference of
  their targets with shared increments (they compute the same weight);
* the floating-point operations per path-step of the loop form (:func:`flops_per_path_step`, a
  count of what the kernel does), the GFLOP/s they make and their fraction of the machine's
  measured matrix-product peak;
* with ``--before DIR`` (a checkout of an earlier version, ``git worktree add DIR REV``), the
  same build (in a fresh cache) and throughput of that version, in fresh processes of this run.

and, for a separable drift (-x^3, m = 64), the kernel against torch.func on the per-coordinate weight.

    python benchmarks/bench_wide.py [--quick] [--m 8 16 32] [--before DIR] [--separable 64]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import sympy as sp

import symscore as ss
from symscore.bench import best_of


def theta_of(m: int) -> np.ndarray:
    theta = np.random.default_rng(0).normal(size=m)
    return 1.5 * theta / np.linalg.norm(theta)


def wide_sde(m: int) -> ss.SDE:
    """b = theta tanh(theta . x) - x / 2 with a fixed random theta, sigma = I."""
    x = sp.symbols(f"x1:{m + 1}")
    theta = [sp.Float(v) for v in theta_of(m)]
    s = sum(a * xi for a, xi in zip(theta, x))
    return ss.SDE([a * sp.tanh(s) - xi / 2 for a, xi in zip(theta, x)], 1, list(x), sp.Symbol("t"), name=f"wide{m}")


def ridge_drift(theta):
    """x -> theta tanh(theta . x) - x / 2 on a (w,) tensor (the drift of wide_sde)."""
    import torch

    theta = torch.as_tensor(theta, dtype=torch.float64)
    return lambda x: theta * torch.tanh(theta @ x) - x / 2


def torch_func_targets(x0, dW, dt, drift):
    """The same weight with J and H of ``drift`` ((w,) -> (w,)) from torch.func (sigma = I): X, target
    at the last step."""
    import torch
    from torch.func import jacfwd, vmap

    jac = vmap(jacfwd(drift))
    hess = vmap(jacfwd(jacfwd(drift)))
    X = torch.as_tensor(x0)
    dW = torch.as_tensor(dW)
    n, m = X.shape
    eye = torch.eye(m, dtype=torch.float64).expand(n, m, m)
    Y, Yi, C, M = eye.clone(), eye.clone(), torch.zeros(n, m, m, dtype=torch.float64), torch.zeros_like(X)
    Zh, Q, R = (torch.zeros(n, m, m, m, dtype=torch.float64) for _ in range(3))
    with torch.no_grad():
        for k in range(dW.shape[1]):
            drift_b, J, H = vmap(drift)(X), jac(X), hess(X)
            A = Yi  # sigma = I
            S = A @ A.transpose(1, 2)
            Ht = torch.einsum("nia,njac->nijc", C, Zh) - Q
            Q = Q + torch.einsum("nia,njac->nijc", S, Zh) * dt
            R = R + (torch.einsum("nija,nac->nijc", Ht, S) + torch.einsum("nja,nica->nijc", S, Ht)) * dt
            Zh = Zh + torch.einsum("nip,npqr,nqa,nrc->niac", Yi, H, Y, Y) * dt
            M = M + torch.einsum("nil,nl->ni", A, dW[:, k])
            C = C + S * dt
            Y, Yi = Y + J @ Y * dt, Yi - Yi @ J * dt
            X = X + drift_b * dt + dW[:, k]
        Cinv = torch.linalg.inv(C)
        g = torch.einsum("nij,nj->ni", Cinv, M)
        v = torch.einsum("njjc->nc", Zh) - torch.einsum("nij,nijc->nc", Cinv, Q)
        rho = torch.einsum("nij,nijc->nc", Cinv, R)
        g = g + v - torch.einsum("nij,nj->ni", Cinv, rho)
        return X.numpy(), -torch.einsum("nia,ni->na", Yi, g).numpy()


COLD = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {bench!r})
sys.path.insert(0, {tree!r})
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]  # the tree, not the install
import numpy as np
from bench_wide import wide_sde
import symscore as ss
assert ss.__file__.startswith({tree!r}), ss.__file__
sde = wide_sde({m})
kernel = ss.compile(sde)
kernel.simulate(np.zeros((2, {m})), [1.0], 4)
print(time.perf_counter() - t0)
"""

THROUGHPUT = """
import sys
sys.path.insert(0, {bench!r})
sys.path.insert(0, {tree!r})
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]  # the tree, not the install
import numpy as np
from bench_wide import wide_sde, inputs
import symscore as ss
from symscore.bench import best_of
assert ss.__file__.startswith({tree!r}), ss.__file__
x0, dW, n_steps = inputs({m}, {quick})
kernel = ss.compile(wide_sde({m}))
print(best_of(lambda: kernel.simulate(x0, [1.0], n_steps, dW=dW), 3))
"""


def _run(script: str, tree: str, cache: str) -> float:
    """The number a script prints, run in a fresh process on the symscore of ``tree`` with ``cache``
    as the symscore and numba cache folder."""
    env = {**os.environ, "SYMSCORE_CACHE_DIR": cache, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": tree}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.split()[-1])


def cold_build(m: int, tree: str, cache: str) -> float:
    """Seconds from nothing to a first simulate of wide_sde(m), in a fresh process, with ``cache``."""
    return _run(COLD.format(bench=BENCH, m=m, tree=tree), tree, cache)


def inputs(m: int, quick: bool):
    """(x0, dW, n_steps) of the throughput runs: the same arrays in every process."""
    n, n_steps = (256, 20) if quick else ((2000, 100) if m <= 8 else (512, 50))
    x0 = np.random.default_rng(1).normal(scale=0.5, size=(n, m))
    return x0, ss.brownian_increments(0, n, n_steps, m, 1.0 / n_steps), n_steps


def flops_per_path_step(w: int, e: int, terms: int) -> int:
    """Floating-point operations of one step of one path of the loop form for sigma(t) with H as
    ``terms`` rank-one terms (a multiply-add counts 2), as symscore/compiler/dense.py performs them:
    A = Yi sigma and S = A A^T (w^2 e + w (w + 1) e / 2 multiply-adds); R's increment, the product
    F = Ht S (w^4) and R += (F + F^T) dt (3 w^2 (w + 1) / 2 operations); per rank-one term, its three
    vectors and C_{k+1} Y^T v (4 w^2 multiply-adds) and the whole outer products into Ht and Zh
    (2 w^3 multiply-adds and 2 w^2 products); Y and Yi (2 w^3 multiply-adds); M, X, C (2 w e + w^2
    multiply-adds)."""
    multiply_adds = w * w * e + w * (w + 1) * e // 2 + w**4 + terms * 4 * w * w + 2 * w**3 + 2 * w * e + w * w
    return 2 * multiply_adds + 3 * w * w * (w + 1) // 2 + terms * (4 * w**3 + 2 * w * w)


def machine_peak() -> float:
    """Measured float64 GFLOP/s of a large matrix product (numpy's BLAS on every core): the
    practical peak the fractions are stated against."""
    a = np.random.default_rng(0).normal(size=(2048, 2048))
    seconds = best_of(lambda: a @ a, 3)
    return 2 * 2048**3 / seconds / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer paths and steps (a smoke run)")
    parser.add_argument("--m", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--before", default=None,
                        help="a checkout of an earlier symscore (git worktree add DIR REV): its build and "
                             "throughput are measured in the same run, in fresh processes")
    parser.add_argument("--separable", type=int, default=64, help="m of the separable case (0: skip it)")
    args = parser.parse_args()
    import numba
    import torch

    here = os.path.dirname(os.path.dirname(os.path.abspath(ss.__file__)))
    peak = machine_peak()
    print(f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); float64 matrix-product peak {peak:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as engine_cache:
        # the loop form's kernel is compiled once for every SDE: once here, in a fresh folder
        engine = cold_build(5, here, engine_cache)
        print(f"first build on a fresh cache (the loop-form kernel compiled and cached, m = 5): {engine:.1f} s")
        header = (f"{'m':>3} {'version':>7} {'cold build s':>12} {'numba path-steps/s':>19} "
                  f"{'torch.func path-steps/s':>24} {'numba/torch.func':>17} {'GFLOP/s':>8} {'of peak':>8} "
                  f"{'max |diff|':>11}")
        print(header)
        print("-" * len(header))
        for m in args.m:
            report(m, args, here, engine_cache, peak)
    if args.separable:
        separable(args.separable, args.quick)


def report(m: int, args, here: str, engine_cache: str, peak: float):
    """The rows of m: this version (its build with the loop-form kernel cached, as every SDE after the
    first sees it) and, with --before, the earlier one (its build in a fresh cache)."""
    x0, dW, n_steps = inputs(m, args.quick)
    rate = x0.shape[0] * n_steps
    t0 = time.perf_counter()
    _, reference = torch_func_targets(x0, dW, 1.0 / n_steps, ridge_drift(theta_of(m)))
    t_func = time.perf_counter() - t0
    flops = flops_per_path_step(m, m, 1)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        shutil.copytree(engine_cache, cache, dirs_exist_ok=True)
        cold = cold_build(m, here, cache)
    kernel = ss.compile(wide_sde(m))
    t_numba = best_of(lambda: kernel.simulate(x0, [1.0], n_steps, dW=dW), 3)
    diff = float(np.max(np.abs(kernel.simulate(x0, [1.0], n_steps, dW=dW).target[:, -1] - reference)))
    rows.append(("after", cold, t_numba, diff))
    if args.before:
        with tempfile.TemporaryDirectory() as cache:
            cold_before = cold_build(m, args.before, cache)
            t_before = _run(THROUGHPUT.format(bench=BENCH, m=m, tree=args.before, quick=args.quick), args.before,
                            cache)
        rows.append(("before", cold_before, t_before, float("nan")))
    for version, cold, seconds, diff in rows:
        gflops = rate * flops / seconds / 1e9
        print(f"{m:>3} {version:>7} {cold:>12.1f} {rate / seconds:>19.3e} {rate / t_func:>24.3e} "
              f"{t_func / seconds:>17.1f} {gflops:>8.2f} {gflops / peak:>8.1%} {diff:>11.1e}", flush=True)


BENCH = os.path.dirname(os.path.abspath(__file__))


def separable(m: int, quick: bool):
    """The separable cubic drift -x^3 (sigma = I) at m coordinates: the kernel's 64 unrolled 1-D lanes
    against torch.func on the same per-coordinate weight (J, H of the scalar drift by jacfwd, the
    1-D recursion batched over paths x coordinates)."""
    import torch

    n, n_steps = (256, 20) if quick else (4000, 200)
    sde = ss.library.cubic(m=m)
    x0 = np.random.default_rng(1).normal(scale=0.5, size=(n, m))
    dW = ss.brownian_increments(0, n, n_steps, m, 1.0 / n_steps)
    kernel = ss.compile(sde)
    t_numba = best_of(lambda: kernel.simulate(x0, [1.0], n_steps, dW=dW), 3)
    lanes_x0 = x0.reshape(n * m, 1)
    lanes_dW = np.ascontiguousarray(dW.transpose(0, 2, 1)).reshape(n * m, n_steps, 1)
    t0 = time.perf_counter()
    _, reference = torch_func_targets(lanes_x0, lanes_dW, 1.0 / n_steps, lambda x: -x**3)
    t_func = time.perf_counter() - t0
    diff = float(np.max(np.abs(kernel.simulate(x0, [1.0], n_steps, dW=dW).target[:, -1] - reference.reshape(n, m))))
    rate = n * n_steps
    print(f"separable cubic m = {m}: numba {rate / t_numba:.3e} path-steps/s, torch.func {rate / t_func:.3e} "
          f"(torch {torch.__version__}), numba/torch.func {t_func / t_numba:.1f}, max |diff| {diff:.1e}")


if __name__ == "__main__":
    main()
