"""Variants of the field network that were measured against the spectrum gap at degree 0 and not kept.

Each variant is the field recipe (``symscore demo --fields``: :func:`symscore.demo.run_fields_demo`)
for a fixed number of steps with one change. The changes that are not options of the library are
applied here, for the length of one run, so the figures on the results page can be reproduced:

* ``base``: the recipe as it is.
* ``width32``: 32 channels per pixel instead of 16 (capacity).
* ``grid1.5``: a Gauss-Legendre grid of 1.5 (L + 1) latitudes instead of the exact L + 1 (less
  aliasing of the pointwise layers' output).
* ``balanced``: the denoising loss weighted by 1 / (2 l + 1) per coefficient of degree l
  (normalised to the same total), so that every degree, the single degree-0 coefficient included,
  weighs the same. Any positive weight per coordinate keeps the regression's minimiser the score.
* ``context``: each block also scales and shifts its channels by a small MLP of the channels'
  sphere means (and the time features), a global multiplicative path, rotation invariant, for
  structure such as a lognormal field's overall brightness (squeeze-and-excitation in the manner
  of image networks). Starts at zero.

    python benchmarks/ablate_field_network.py --variants base context --steps 500 [--kind threshold]

A variant lives only inside its run: a saved ``grid1.5`` model reloads on the exact grid (the
transforms are not part of its state) and a ``context`` model does not load at all, so read their
samples and metrics.json, not their model.pt.

Prints one row per variant: the spectrum ratio at degree 0 with its standard error, the ratios at
degrees 1-L, the pixel statistic and the seconds. ``--threads 1`` lets two runs share the machine.
"""
from __future__ import annotations

import argparse
import contextlib

import torch
from torch import nn

import symscore.learn.sfno as sfno
import symscore.learn.trainer as trainer
from symscore.demo import run_fields_demo
from symscore.fields import SphericalHarmonics
from symscore.learn.model import ARCHITECTURES


class ContextBlock(sfno.FieldBlock):
    """A :class:`~symscore.learn.sfno.FieldBlock` whose FiLM also reads the channels' sphere means."""

    def __init__(self, channels: int, L: int, time_features: int, activation, hidden: int):
        super().__init__(channels, L, time_features, activation, hidden)
        self.L = L
        self.context = nn.Sequential(nn.Linear(channels + time_features, channels), activation(),
                                     nn.Linear(channels, 2 * channels))
        nn.init.zeros_(self.context[-1].weight)
        nn.init.zeros_(self.context[-1].bias)

    def forward(self, u, transforms, embedding):
        nlat, n, channels, nlon = u.shape
        slots = transforms.grid_to_slots(u.reshape(nlat, n * channels, nlon))
        means = slots[self.L, 0].reshape(n, channels)  # order 0, degree 0: sqrt(4 pi) x the sphere mean
        spectral = self.spectral(slots.reshape(*slots.shape[:2], n, channels))
        spectral = transforms.slots_to_grid(spectral.reshape(slots.shape)).reshape(u.shape)
        scale, shift = self.film(embedding)[:, :, None].chunk(2, dim=1)
        global_scale, global_shift = self.context(torch.cat([means, embedding], dim=1))[:, :, None].chunk(2, dim=1)
        v = (spectral + self.local(u)) * (1 + scale + global_scale) + shift + global_shift
        return u + self.outer(self.act(self.inner(self.act(v))))


@contextlib.contextmanager
def _replaced(owner, name, value):
    """``owner.name`` (or ``owner[name]`` for a dict) set to ``value`` inside the block."""
    get, put = ((owner.__getitem__, owner.__setitem__) if isinstance(owner, dict)
                else ((lambda key: getattr(owner, key)), (lambda key, item: setattr(owner, key, item))))
    saved = get(name)
    put(name, value)
    try:
        yield
    finally:
        put(name, saved)


def _balanced_loss(L: int):
    degrees = torch.as_tensor(SphericalHarmonics(L).degrees, dtype=torch.float32)
    weight = 1.0 / (2 * degrees + 1)
    weight = weight * len(weight) / weight.sum()

    def loss(model, x, t, target, probes):
        raw, scale = model.preconditioned(x, t)
        baseline = model.baseline(x, t)
        if baseline is not None:
            target = target - baseline
        return (weight.to(raw.device) * (raw - target / scale) ** 2).sum(dim=1).mean()

    return loss


def _fine_grid(oversampling: float):
    class FineGrid(sfno.SphericalFourierNetwork):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("oversampling", oversampling)
            super().__init__(*args, **kwargs)
    return FineGrid


def variant(name: str, L: int):
    """(the context that applies variant ``name`` for one run, its train() overrides)."""
    if name == "base":
        return contextlib.nullcontext(), {}
    if name == "width32":
        return contextlib.nullcontext(), {"width": 32}
    if name == "grid1.5":
        return _replaced(ARCHITECTURES, "sfno", _fine_grid(1.5)), {}
    if name == "balanced":
        return _replaced(trainer, "_loss", _balanced_loss(L)), {}
    if name == "context":
        return _replaced(sfno, "FieldBlock", ContextBlock), {}
    raise SystemExit(f"--variants: unknown variant {name!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["base", "width32", "grid1.5", "balanced", "context"])
    parser.add_argument("--kind", default="lognormal")
    parser.add_argument("--L", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="ablate_field_network")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("| variant | steps (train s) | ratio l = 0 (SE) | l = 1-L mean (range) | fraction above sigma_Q: data / "
          "samples (SE) | gap |")
    print("|---|---|---|---|---|---|")
    for name in args.variants:
        context, overrides = variant(name, args.L)
        with context:
            metrics = run_fields_demo(out=f"{args.out}/{args.kind}_L{args.L}_{name}", L=args.L, kind=args.kind,
                                      steps=args.steps, seed=args.seed, progress=False, print_fn=lambda *_: None,
                                      **overrides)
        ratio, error = metrics["spectrum_ratio_samples_to_data"], metrics["spectrum_ratio_standard_error"]
        rest = ratio[1:]
        fractions = metrics["fraction_above_sigma_q"]
        print(f"| {name} | {metrics['steps']} ({metrics['seconds']['train']:.0f}) | {ratio[0]:.3f} ({error[0]:.3f}) | "
              f"{sum(rest) / len(rest):.3f} ({min(rest):.2f}-{max(rest):.2f}) | {fractions['data']['value']:.4f} / "
              f"{fractions['samples']['value']:.4f} ({fractions['samples']['standard_error']:.4f}) | "
              f"{metrics['fraction_gap_in_standard_errors']:+.1f} SE |", flush=True)


if __name__ == "__main__":
    main()
