"""Non-Gaussian fields with an exact score (global brightness, or a bright blob): does the field recipe learn them?

A Gaussian scale mixture of fields: x0 = s g with g ~ N(0, Q) (the Whittle-Matern noise's own law)
and s one of ``--amplitudes`` with probabilities ``--weights`` (two, 1/2 each, by default), scaled
so that E s^2 = 1. Every coefficient shares s, so a field is dim or bright all over: the hypothesis
this tests is that the field network cannot represent such global structure, which would explain
why the lognormal samples' sphere mean misses its upper tail (docs/results/fields.md, where the
answer is: it can). The sphere mean's kurtosis is 3 E s^4 / (E s^2)^2 = 4.9 with the default
amplitudes (the lognormal family's: 4.6), but it is symmetric where the lognormal's is skewed.

Under the forward SDE dX = -X dt + sqrt(2) dW^Q, X_t given s is N(e^-t mu_s Y_00, v_s(t) Q) with
v_s(t) = s^2 e^-2t + 1 - e^-2t (mu_s = 0 unless ``--shift``), so the score is exact:

    grad log p_t(x) = -sum_s w_s(x) Q^-1 (x - e^-t mu_s Y_00) / v_s(t),
    w_s proportional to p_s exp(-(x - e^-t mu_s Y_00).Q^-1 (x - e^-t mu_s Y_00) / (2 v_s) - m log(v_s) / 2).

The script trains the field recipe (:func:`symscore.experiments.fields.train_fields`) on 20 000
exact draws for ``--steps`` steps, samples 1000 fields with the recipe's ODE and with the same ODE
on the exact score (the sampler's own error), and prints

1. the spectrum ratio to 10 000 held-out draws at degree 0 and over degrees 1-L, the fraction of
   the area above sigma_Q and the amplitude spread (:func:`symscore.fields.amplitude_spread`, how
   much fields differ in overall brightness), for both samplers;
2. the learned score's relative squared error against the exact one per t, at degree 0 and over
   all coefficients (Cameron-Martin norm), and the Gaussian skip's alone.

    python benchmarks/bench_field_brightness.py [--L 16] [--steps 500] [--amplitudes 0.5 1.5]
        [--weights 0.5 0.5] [--shift 0] [--family scale|blobs] [--heights 2 5]
        [--height-weights 0.7 0.3] [--width 0.6] [--places 12] [--lattice]

With ``--shift`` the bright component's fields are also brighter on average (module class), so
the sphere mean is skewed as a lognormal field's is; the score stays exact (a Gaussian mixture with
different means and covariances). ``--family blobs`` is :class:`BlobMixture` instead: a Gaussian
field plus, most of the time, one bright bump at one of ``--places`` fixed places, so the structure
is local in pixels and the sphere mean rises with the bump, as in a lognormal field, and the score
is still exact (1 + places x heights Gaussian components of covariance Q). Few places make a law
tied to places on the sphere, which a rotation-equivariant network cannot learn from far away (at
large t a faint bump at a known place means more than one elsewhere); ``--places 1000 --lattice``
spreads them evenly, a nearly stationary law like the data's families.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import symscore as ss
from symscore.experiments.fields import compare_fields, sample_fields, train_fields
from symscore.fields import (SphericalHarmonics, amplitude_spread, pixel_std, whittle_matern_sde,
                             whittle_matern_spectrum)

TIMES = (0.05, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5)


class ScaleMixture:
    """x0 = s g + mu_s Y_00, g ~ N(0, Q): amplitude s in ``amplitudes`` with probabilities
    ``weights`` (rescaled to E s^2 = 1), and with ``shift`` a mean along the sphere mean tied to the
    amplitude, mu_s = shift (s^2 - 1) sqrt(Q_00) (zero on average): bright fields are also brighter
    on average, which skews the sphere mean (shift 0: symmetric)."""

    def __init__(self, L: int, amplitudes=(0.5, 1.5), weights=(0.5, 0.5), shift: float = 0.0):
        self.L = L
        self.q = whittle_matern_spectrum(L)[SphericalHarmonics(L).degrees]
        self.p = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        amplitudes = np.asarray(amplitudes, dtype=np.float64)
        self.s = amplitudes / np.sqrt(np.sum(self.p * amplitudes**2))
        self.mu = float(shift) * (self.s**2 - 1) * np.sqrt(self.q[0])  # (S,) mean of coefficient 0

    def _variance(self, t: float) -> np.ndarray:
        return self.s**2 * np.exp(-2 * t) + 1 - np.exp(-2 * t)  # v_s(t): X_t given s is N(e^-t mu_s, v_s Q)

    def sample(self, n: int, t: float, rng) -> np.ndarray:
        k = rng.choice(len(self.s), size=n, p=self.p)
        out = rng.standard_normal((n, self.q.size)) * np.sqrt(self._variance(t)[k, None] * self.q)
        out[:, 0] += np.exp(-t) * self.mu[k]
        return out

    def score(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        v = self._variance(t)  # (S,)
        centred = x[:, None, :].repeat(len(v), axis=1)  # (n, S, m)
        centred[:, :, 0] -= np.exp(-t) * self.mu
        quadratic = (centred**2 / self.q).sum(-1)  # (n, S)
        log_weight = np.log(self.p) - quadratic / (2 * v) - 0.5 * self.q.size * np.log(v)
        weight = np.exp(log_weight - log_weight.max(1, keepdims=True))
        weight /= weight.sum(1, keepdims=True)
        return -np.einsum("ns,nsm->nm", weight / v, centred) / self.q


class BlobMixture:
    """x0 = a b_k + g, g ~ N(0, Q): a Gaussian field plus, with probability ``1 - p_none``, one bump
    b_k of height ``a`` (in units of sigma_Q) at one of ``places`` fixed points (equally likely;
    random, seeded, or with ``lattice`` a Fibonacci lattice, near-uniform), a drawn from
    ``heights`` with ``height_weights``. The structure is pointwise (a bright blob) and
    the sphere mean rises with the blob's height, as in a lognormal field, yet the law is a Gaussian
    mixture of K components N(m_c, Q), so the score is exact:

        grad log p_t(x) = -Q^-1 (x - e^-t sum_c w_c(x) m_c),  w_c proportional to p_c exp(-|x - e^-t m_c|_Q^2 / 2).
    """

    def __init__(self, L: int, places: int = 12, heights=(2.0, 5.0), height_weights=(0.7, 0.3), p_none: float = 0.4,
                 width: float = 0.6, seed: int = 0, lattice: bool = False):
        harmonics = SphericalHarmonics(L, nlat=4 * (L + 1), nlon=8 * (L + 1))
        self.L = L
        self.q = whittle_matern_spectrum(L)[SphericalHarmonics(L).degrees]
        lat, lon = np.radians(harmonics.lat)[:, None], np.radians(harmonics.lon)[None, :]
        grid = np.stack(np.broadcast_arrays(np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)), -1)
        if lattice:  # a Fibonacci lattice: near-uniform, so with many places the law is nearly stationary
            height = 1 - (2 * np.arange(places) + 1) / places
            angle = np.pi * (3 - np.sqrt(5)) * np.arange(places)
            ring = np.sqrt(1 - height**2)
            points = np.stack([ring * np.cos(angle), ring * np.sin(angle), height], axis=1)
        else:
            points = np.random.default_rng(seed).standard_normal((places, 3))
            points /= np.linalg.norm(points, axis=1, keepdims=True)
        bumps = harmonics.analysis(np.exp((np.einsum("abk,ck->cab", grid, points) - 1) / width**2))  # (places, m)
        bumps *= pixel_std(L) / harmonics.synthesis(bumps[:1]).max()  # a bump of height 1 reaches sigma_Q
        heights, height_weights = np.asarray(heights, float), np.asarray(height_weights, float) / np.sum(height_weights)
        self.means = np.concatenate([np.zeros((1, bumps.shape[1]))] + [h * bumps for h in heights])  # (K, m)
        self.p = np.concatenate([[p_none]] + [np.full(places, (1 - p_none) * w / places) for w in height_weights])

    def sample(self, n: int, t: float, rng) -> np.ndarray:
        c = rng.choice(len(self.p), size=n, p=self.p)
        return np.exp(-t) * self.means[c] + rng.standard_normal((n, self.q.size)) * np.sqrt(self.q)

    def score(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        centres = np.exp(-t) * self.means  # (K, m)
        # |x - centre|_Q^2 less its x-only part (the same for every component), without an (n, K, m) array
        distance = (centres**2 / self.q).sum(-1) - 2 * (x / self.q) @ centres.T  # (n, K)
        log_weight = np.log(self.p) - distance / 2
        weight = np.exp(log_weight - log_weight.max(1, keepdims=True))
        weight /= weight.sum(1, keepdims=True)
        return -(x - weight @ centres) / self.q


def score_errors(model, mixture, n: int = 2000, seed: int = 1):
    """For a :class:`ScaleMixture` or :class:`BlobMixture`, per t: relative squared errors in the
    Cameron-Martin norm, sum q (s - exact)^2 / sum q exact^2, of the learned score at degree 0 and
    over all coefficients, then of the Gaussian skip alone."""
    rng, rows = np.random.default_rng(seed), []
    for t in TIMES:
        x = mixture.sample(n, t, rng)
        exact = mixture.score(x, t)
        with torch.no_grad():
            learned = model(x, t)
            skip = model.baseline(torch.as_tensor(x, dtype=torch.float32), t).double().numpy()
        relative = lambda s, columns=slice(None): (np.sum(mixture.q[columns] * (s - exact)[:, columns] ** 2)  # noqa: E731
                                                   / np.sum(mixture.q[columns] * exact[:, columns] ** 2))
        rows.append((t, relative(learned, slice(0, 1)), relative(learned), relative(skip, slice(0, 1)), relative(skip)))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--L", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--amplitudes", type=float, nargs="+", default=[0.5, 1.5])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.5, 0.5])
    parser.add_argument("--shift", type=float, default=0.0, help="the sphere mean's shift with the amplitude")
    parser.add_argument("--family", choices=("scale", "blobs"), default="scale",
                        help="scale: the scale mixture; blobs: a Gaussian field plus a bump at one of --places places")
    parser.add_argument("--heights", type=float, nargs="+", default=[2.0, 5.0], help="blobs: bump heights / sigma_Q")
    parser.add_argument("--height-weights", type=float, nargs="+", default=[0.7, 0.3], help="blobs: their weights")
    parser.add_argument("--width", type=float, default=0.6, help="blobs: the bump's angular standard deviation (rad)")
    parser.add_argument("--places", type=int, default=12, help="blobs: the fixed places a bump can be at (random ones are seed 0's)")
    parser.add_argument("--lattice", action="store_true",
                        help="blobs: the places on a Fibonacci lattice (near-uniform: with many, a nearly stationary law)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for values, weights in (("amplitudes", "weights"), ("heights", "height_weights")):
        if len(getattr(args, values)) != len(getattr(args, weights)):
            parser.error(f"--{weights.replace('_', '-')}: expected one weight per entry of --{values}")
        if min(getattr(args, values)) <= 0 or min(getattr(args, weights)) < 0 or sum(getattr(args, weights)) <= 0:
            parser.error(f"--{values}, --{weights.replace('_', '-')}: expected positive values and non-negative "
                         "weights that do not all vanish")
    if args.places < 1 or args.width <= 0:
        parser.error(f"--places, --width: expected at least 1 place and a positive width, got {args.places} and "
                     f"{args.width}")
    L, sde = args.L, whittle_matern_sde(args.L)
    mixture = (ScaleMixture(L, args.amplitudes, args.weights, args.shift) if args.family == "scale"
               else BlobMixture(L, args.places, args.heights, args.height_weights, width=args.width,
                                lattice=args.lattice))
    data = mixture.sample(20_000, 0.0, np.random.default_rng(args.seed))
    held_out = mixture.sample(10_000, 0.0, np.random.default_rng(args.seed + 1))
    start = time.perf_counter()
    model = train_fields(sde, data, steps=args.steps, seed=args.seed, progress=False)
    seconds = time.perf_counter() - start
    exact = ss.sample(sde, mixture.score, args.samples, 25, method="ode", seed=args.seed + 2, spacing="log",
                      data=data, t_end=model.t_min)
    a = held_out[:, 0]
    described = (f"scale mixture of fields, amplitudes {mixture.s.round(3).tolist()} with probabilities "
                 f"{mixture.p.round(3).tolist()}, sphere-mean shifts {mixture.mu.round(4).tolist()}"
                 if args.family == "scale" else f"a Gaussian field plus a bump, {len(mixture.p)} components")
    print(f"{described}, L = {L} (held-out sphere mean: skewness {np.mean((a - a.mean())**3) / a.std()**3:.2f}); "
          f"{args.steps} steps in {seconds:.0f} s\n")
    print("| sampler | ratio l = 0 (SE) | l = 1-L mean (range) | fraction above sigma_Q: data / samples (SE) "
          "| amplitude spread: data / samples |")
    print("|---|---|---|---|---|")
    for name, samples in (("learned score, ODE", sample_fields(sde, model, args.samples, seed=args.seed + 2)),
                          ("exact score, same ODE", exact)):
        report = compare_fields(samples, held_out, L)
        rest = report.ratio[1:]
        (data_fraction, _), (ours, error) = report.fractions["data"], report.fractions["samples"]
        print(f"| {name} | {report.ratio[0]:.3f} ({report.ratio_error[0]:.3f}) | {rest.mean():.3f} "
              f"({rest.min():.2f}-{rest.max():.2f}) | {data_fraction:.4f} / {ours:.4f} ({error:.4f}) "
              f"| {amplitude_spread(held_out):.3f} / {amplitude_spread(samples):.3f} |")
    print("\n| t | relative squared error, degree 0 | all coefficients | the Gaussian skip alone, degree 0 | all |\n"
          "|---|---|---|---|---|")
    for t, degree0, pooled, skip0, skip in score_errors(model, mixture):
        print(f"| {t:g} | {degree0:.3f} | {pooled:.3f} | {skip0:.3f} | {skip:.3f} |")


if __name__ == "__main__":
    main()
