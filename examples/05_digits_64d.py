"""64-dimensional data: scikit-learn's 8 x 8 digits with a separable nonlinear forward SDE,

    dX_i = -(X_i + 3 tanh(X_i)) dt + 2 dB_i,   i = 1..64,

trained with the Malliavin target (the separable kernel runs 64 independent 1-D problems) and
sampled with the reverse SDE from the product of the per-pixel stationary laws. The drift grows
linearly at infinity: a superlinear one (-x^3) reverses to +x^3, which turns any error of the
learned score at large |x| into a blow-up. Writes a PNG grid of generated digits below real ones.

    python examples/05_digits_64d.py [OUT]   (SYMSCORE_SMALL=1 for a smoke run)
"""
import numpy as np
import sympy as sp

import symscore as ss
from _common import SMALL, output_folder, size

out = output_folder(__file__)
t = sp.Symbol("t")
pixels = sp.symbols("x1:65")
sde = ss.SDE([-(x + 3 * sp.tanh(x)) for x in pixels], 2, list(pixels), t, name="digits_tanh", T=1.5)
print(sde.derive().structure, "drift in", sde.m, "dimensions")

data = ss.data.digits()
model = ss.train(sde, data, steps=size(2000, 30), batch_size=size(256, 32), n_steps=size(100, 30),
                 width=size(256, 32), depth=3, lr=2e-3, progress=not SMALL)
generated = ss.sample(sde, model, size(400, 40), n_steps=size(500, 30), method="sde", seed=1)
grid = np.concatenate([data[:20], generated[:40]])
ss.plots.plot_digits(grid, out / "digits.png", columns=10)
# Two disjoint sets of real digits as the reference, and the noise floor of the metric between them.
reference = ss.data.digits(2 * len(generated), seed=3)
real_a, real_b = reference[: len(generated)], reference[len(generated):]
print(f"sliced W2 to {len(real_a)} real digits: generated {ss.metrics.sliced_wasserstein(generated, real_a).value:.3f}, "
      f"other real digits (noise floor) {ss.metrics.sliced_wasserstein(real_b, real_a).value:.3f}")
print(f"wrote {out / 'digits.png'} (first two rows: data, then generated)")
