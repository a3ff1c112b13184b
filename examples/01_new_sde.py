"""A new SDE in ten lines: write the drift, get a score target, check it without any training.

The target's defining property is integration by parts, E[grad phi(X_t)] = E[phi(X_t) delta_t]
with delta_t = -target_t, for any smooth bounded phi; both sides are printed with their
standard errors.

    python examples/01_new_sde.py          (SYMSCORE_SMALL=1 for a smoke run)
"""
import numpy as np
import sympy as sp

import symscore as ss
from _common import size

x, y, t = sp.symbols("x y t")
sde = ss.SDE(drift=[-x**3 + 0.5 * y, -y - sp.sin(x)],               # a coupled, nonlinear drift
             diffusion=sp.Matrix([[1, 0], [0, sp.sqrt(1 + t)]]),    # sigma(t), m x d
             state=[x, y], time=t, name="mine")
print(sde.derive().structure, "drift; Hessian entries:", sde.derive().nonzero_hessian())
kernel = ss.compile(sde)                                             # numba, cached on disk
n = size(400_000, 20_000)
paths = kernel.simulate(np.full((n, 2), 0.5), times=[0.5], n_steps=size(400, 100), seed=0)
X, delta = paths.x[:, 0], -paths.target[:, 0]

phi = np.exp(-np.sum(X**2, axis=1) / 2)                              # a smooth bounded test function
lhs = -X * phi[:, None]                                              # grad phi
rhs = phi[:, None] * delta
for k, name in enumerate(("x", "y")):
    se = np.sqrt(lhs[:, k].var() / n + rhs[:, k].var() / n)
    print(f"d/d{name}: E[grad phi] = {lhs[:, k].mean():+.4f}   E[phi delta] = {rhs[:, k].mean():+.4f}   "
          f"(difference {lhs[:, k].mean() - rhs[:, k].mean():+.4f}, 2 SE {2 * se:.4f})")
