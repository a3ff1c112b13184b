"""Nonlinear forward SDE (cubic drift, Malliavin target) against VP (denoising score matching)
on the checkerboard: same network, same budget; samples, metrics and a picture.

    python examples/03_nonlinear_vs_vp.py [OUT]   (SYMSCORE_SMALL=1 for a smoke run)
"""
import json

import symscore as ss
from _common import output_folder, size

out = output_folder(__file__)
data, held_out = ss.data.checkerboard(20_000, seed=0), ss.data.checkerboard(size(5000, 300), seed=1)
runs = {"cubic + malliavin": (ss.library.cubic(m=2, s=1.5), "malliavin", size(400, 50)),
        "vp + dsm": (ss.library.vp(m=2), "dsm", 100)}
samples, report = {}, {}
for label, (sde, target, n_steps) in runs.items():
    model = ss.train(sde, data, steps=size(4000, 40), batch_size=size(256, 64), target=target, n_steps=n_steps,
                     activation="relu", width=size(128, 32), progress=False)
    samples[label] = ss.sample(sde, model, len(held_out), n_steps=size(500, 50), method="sde")
    report[label] = {name: m.value for name, m in ss.metrics.evaluate(samples[label], held_out).items()}
    print(f"{label:18} " + "  ".join(f"{name} {value:.4f}" for name, value in report[label].items()))
ss.plots.plot_samples(held_out, samples, out / "samples.png", limits=(-5, 5))
(out / "metrics.json").write_text(json.dumps(report, indent=2))
print(f"wrote {out / 'samples.png'} and {out / 'metrics.json'}")
