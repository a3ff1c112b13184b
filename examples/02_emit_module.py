"""Emit a standalone kernel module and use it without symscore.

The module imports only numpy and numba. Here it is the Benes SDE dX = 1.5 tanh(1.5 X) dt + dB,
whose score from X_0 = x0 is known exactly; the binned conditional mean of the target is
compared with it.

    python examples/02_emit_module.py [OUT]   (SYMSCORE_SMALL=1 for a smoke run)
"""
import importlib.util

import numpy as np

import symscore as ss
from _common import output_folder, size

out = output_folder(__file__)
path = out / "benes_kernel.py"
ss.emit(ss.library.benes(m=1, theta=1.5), backend="numba", path=path)
print(f"wrote {path} ({len(path.read_text().splitlines())} lines)")

# From here on only the emitted file is used, as in someone else's code base.
spec = importlib.util.spec_from_file_location("benes_kernel", path)
benes_kernel = importlib.util.module_from_spec(spec)
spec.loader.exec_module(benes_kernel)

n, x0, t_end = size(200_000, 20_000), 0.3, 1.0
times, x, target = benes_kernel.simulate(np.full((n, 1), x0), [t_end], size(500, 100), seed=0)
edges = np.linspace(-2.5, 2.5, 11)
bins = np.digitize(x[:, 0, 0], edges)
print(f"{'bin centre':>10} {'E[target | X]':>14} {'exact score':>12} {'2 SE':>7}")
for b in range(1, len(edges)):
    inside = bins == b
    if inside.sum() < 50:
        continue
    centre = (edges[b - 1] + edges[b]) / 2
    values = target[inside, 0, 0]
    exact = ss.library.benes_score(x[inside, 0], t_end, [x0]).mean()
    print(f"{centre:10.2f} {values.mean():14.3f} {exact:12.3f} {2 * values.std() / np.sqrt(inside.sum()):7.3f}")
