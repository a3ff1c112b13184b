"""Wide coupled drifts: cold compile time and throughput of the loop form against torch.func autodiff.

The drift b = theta tanh(theta . x) - x / 2 (diffusion I, |theta| = 1.5) couples every coordinate,
so the unrolled form grows as O(m^4) terms; symscore builds it in the loop form from m = 5 on
(``LOOP_FORM_TERMS``). For each m this prints

* the cold build: derivation + code generation + numba compilation at first call, in a fresh
  cache folder (a subprocess, so nothing is shared with earlier runs);
* path-steps/s of the numba kernel (loop form), of the torch kernel (loop form on CPU), and of a
  torch.func implementation of the same weight: J and H of the drift by ``torch.func.jacfwd``
  (vmapped over paths) at every step and the same recursion in batched einsums, measured in the
  same process, and the ratio kernel / torch.func;
* the largest per-path difference between the numba kernel's target and the torch.func one with
  shared increments (they compute the same weight).

and, for a separable drift (-x^3, m = 64), the kernel against torch.func on the per-coordinate weight.

    python benchmarks/bench_wide.py [--quick] [--m 8 16] [--separable 64]
"""
from __future__ import annotations

import argparse
import os
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
import numpy as np
from bench_wide import wide_sde
import symscore as ss
sde = wide_sde({m})
kernel = ss.compile(sde)
kernel.simulate(np.zeros((2, {m})), [1.0], 4)
print(time.perf_counter() - t0, kernel.source.count("loop ("))
"""


def cold_build(m: int) -> tuple[float, bool]:
    """Seconds from nothing to a first simulate in a fresh process and cache folder; loop form used?"""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "SYMSCORE_CACHE_DIR": cache, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", COLD.format(bench=os.path.dirname(__file__), m=m)], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1]) > 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer paths and steps (a smoke run)")
    parser.add_argument("--m", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--separable", type=int, default=64, help="m of the separable case (0: skip it)")
    args = parser.parse_args()
    import numba
    import torch

    print(f"numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    header = (f"{'m':>3} {'cold build s':>12} {'form':>6} {'numba path-steps/s':>19} {'torch path-steps/s':>19} "
              f"{'torch.func path-steps/s':>24} {'numba/torch.func':>17} {'max |diff|':>11}")
    print(header)
    print("-" * len(header))
    for m in args.m:
        n, n_steps = (256, 20) if args.quick else ((2000, 100) if m <= 8 else (500, 50))
        cold, loop_form = cold_build(m)
        sde = wide_sde(m)
        x0 = np.random.default_rng(1).normal(scale=0.5, size=(n, m))
        dW = ss.brownian_increments(0, n, n_steps, m, 1.0 / n_steps)
        numba_kernel, torch_kernel = ss.compile(sde), ss.compile(sde, backend="torch")
        t_numba = best_of(lambda: numba_kernel.simulate(x0, [1.0], n_steps, dW=dW), 3)
        t_torch = best_of(lambda: torch_kernel.simulate(x0, [1.0], n_steps, dW=dW), 2)
        t0 = time.perf_counter()
        _, reference = torch_func_targets(x0, dW, 1.0 / n_steps, ridge_drift(theta_of(m)))
        t_func = time.perf_counter() - t0
        ours = numba_kernel.simulate(x0, [1.0], n_steps, dW=dW).target[:, -1]
        diff = float(np.max(np.abs(ours - reference)))
        rate = n * n_steps
        print(f"{m:>3} {cold:>12.1f} {'loop' if loop_form else 'unroll':>6} {rate / t_numba:>19.3e} "
              f"{rate / t_torch:>19.3e} {rate / t_func:>24.3e} {t_func / t_numba:>17.1f} {diff:>11.1e}")
    if args.separable:
        separable(args.separable, args.quick)


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
