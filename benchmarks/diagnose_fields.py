"""Where a learned field score loses the samples' variance: a diagnostic for the fields' spectrum gap.

The probability-flow ODE from the prior at T carries the whole score's error; this script splits it.
Given a trained ScoreModel of a field SDE and held-out data, it prints:

1. Stein's identity E[(X_i - mu_i) s_i(X_t)] = -1 per degree on the *forward marginal* at several t
   (data forward-simulated to t; a score whose average is off makes the ODE's variance drift).
2. Stretches: the ODE started from forward-simulated states of X_t0 (``sample(start=, t_start=)``)
   and stopped at t_end, its spectrum against the forward-simulated data at t_end, and its amplitude
   spread (:func:`symscore.fields.amplitude_spread`, how much fields differ in overall brightness,
   which the spectrum does not see). With a perfect score every ratio is 1 and the spread is the
   data's; a stretch that starts late and still ends near both is learned well.
3. The same from the *Gaussian counterpart* of the states at t0 (Gaussian fields with their spectrum
   per degree): how much the score below t0 depends on the states' non-Gaussian structure.
4. The full path from T: spectrum ratio and pixel quantiles (right tail) against forward data at t.
5. The calibration slope of the learned non-Gaussian part (models with the Gaussian skip): with
   r = s_theta - skip and y = target - skip on fresh forward paths, slope(t) = E[y . Q r] / E[r . Q r].
   The target is the score plus noise of mean zero given X_t, so if s_theta = skip + k (s - skip) the
   slope is 1 / k: above 1, the learned residual is too weak on average at t; 1 is calibrated.
   Then the same in pixel space by bins of the state's pixel value: where along the pixel
   distribution the residual is too weak (> 1) or too strong (< 1). Then per degree, where the
   pooled slope hides a single coefficient such as degree 0.
6. With ``--samples`` (the samples of the full recipe, e.g. ``demo_fields/samples.npy``): the
   distribution of the degree-0 coefficient, the field's sphere mean, in samples and held-out data:
   quantiles in units of the data's standard deviation, skewness, and the share of C_0 that the
   largest 1% of fields carry, and the amplitude spread. It says whether a low C_0 is a narrower
   bulk or a missing tail.

    python benchmarks/diagnose_fields.py MODEL.pt DATA.npy [--L 16] [--n 1000] [--t-end 0.02]
        [--sections 1 2 4 5] [--n-steps 300] [--samples SAMPLES.npy]

DATA.npy holds held-out fields (n', (L + 1)^2); the first n start the stretches, the next 2n are the
reference. Measured figures are in docs/results/fields.md.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import symscore as ss
from symscore.fields import (SphericalHarmonics, amplitude_spread, gaussian_counterpart, power_spectrum,
                             whittle_matern_sde)
from symscore.learn.targets import make_target_source
from symscore.learn.numeric_sde import NumericSDE

STEP = 0.01  # the ODE's step in t (the test's 300 steps over T = 3)


def forward(sde, fields, t, seed):
    """Euler-simulated X_t from the given fields (exact in law for the linear field SDE up to O(dt))."""
    n_steps = max(1, int(round(t / 1e-3)))
    return NumericSDE(sde).euler(fields, [n_steps], t / n_steps, np.random.default_rng(seed))[0]


def ode(sde, model, states, t_start, t_end):
    n_steps = max(1, int(round((t_start - t_end) / STEP)))
    return ss.sample(sde, model, len(states), n_steps, method="ode", start=states, t_start=t_start, t_end=t_end)


def spectrum_ratio(samples, reference, L):
    return power_spectrum(samples, L).mean(0) / power_spectrum(reference, L).mean(0)


def row(name, per_degree, mean=None, shown=(0, 1, 2, 4, 8, 12, 16), extra=None):
    """A Markdown row: the mean (over degrees unless given), the values at a few degrees and, if
    given, one more cell."""
    mean = per_degree.mean() if mean is None else mean
    cells = f"| {name} | {mean:.3f} | " + " ".join(f"{per_degree[l]:.2f}" for l in shown if l < len(per_degree)) + " |"
    return cells if extra is None else f"{cells} {extra} |"


def pixel_tails(sde, model, reference, times, n, L, sampled=None, q=(0.01, 0.5, 0.99, 0.999, 0.9999)) -> str:
    """A Markdown table: pixel quantiles of full-path ODE states and of forward data at each t
    (``sampled``: full-path states already drawn, by t, so they are not drawn again)."""
    harmonics = SphericalHarmonics(L)
    lines = ["| t | states | " + " | ".join(f"q {p:g}" for p in q) + " |", "|---|---|" + "---|" * len(q)]
    for t in times:
        ours = (sampled or {}).get(t)
        if ours is None:
            ours = ss.sample(sde, model, n, int(round((sde.T - t) / STEP)), method="ode", seed=2, t_end=t)
        for name, fields in (("full-path ODE", ours), ("forward data", forward(sde, reference, t, seed=6))):
            values = np.quantile(harmonics.synthesis(fields).ravel(), q)
            lines.append(f"| {t:g} | {name} | " + " | ".join(f"{v:.2f}" for v in values) + " |")
    return "\n".join(lines)


PIXEL_BINS = (-np.inf, 0.0, 1.0, 2.0, 3.0, 4.0, np.inf)  # the state's pixel value, in units of its std


def _slope(pairs) -> tuple[float, float]:
    """(slope, SE) of sum(a) / sum(b) from per-path rows (a, b): delta method over paths."""
    a, b = np.concatenate(pairs).T
    slope = a.mean() / b.mean()
    return slope, np.sqrt(np.var(a - slope * b, ddof=1) / len(a)) / b.mean()


def _residuals(sde, model, fields, times, n_steps, seed, chunk):
    """Per chunk of ``fields`` and record time: (k, states x, target y, skip, residual s_theta - skip),
    the targets the Malliavin kernel's (float64 numpy)."""
    source = make_target_source("malliavin", sde, n_steps)
    record_steps = np.round(np.asarray(times) / source.dt).astype(int)
    rng = np.random.default_rng(seed)
    for start in range(0, len(fields), chunk):
        x, y = (np.asarray(a) for a in source.batch(fields[start:start + chunk], record_steps, int(rng.integers(2**31))))
        for k, t in enumerate(times):
            states = torch.as_tensor(x[k], dtype=torch.float32)
            with torch.no_grad():
                skip = model.baseline(states, t).double().numpy()
                residual = model(states, t).double().numpy() - skip
            yield k, x[k], y[k], skip, residual


def residual_slopes(sde, model, fields, times, n_steps, L, seed=7, chunk=2048):
    """The calibration slope of s_theta - skip against the Malliavin target minus the skip at each t
    (section 5 of the module docstring): pooled over coefficients, then in pixel space (both
    synthesised after multiplying by Q, the drift the ODE uses) by bins of the state's own pixel
    value. A bin is a function of X_t, so the target stays unbiased within it and each bin's slope is
    a calibration of its own; standard errors by the delta method over paths.

    Returns (slopes, errors, size): (len(times), 1 + len(PIXEL_BINS) - 1) arrays, column 0 pooled
    and then one column per bin, and E r . Q r per t.
    """
    harmonics = SphericalHarmonics(L)
    metric = model.metric.cpu().numpy()
    rows = [[[] for _ in PIXEL_BINS] for _ in times]  # per t: pooled, then one list per bin
    for k, x, y, skip, residual in _residuals(sde, model, fields, times, n_steps, seed, chunk):
        rows[k][0].append(np.stack([(metric * (y - skip) * residual).sum(1), (metric * residual**2).sum(1)], axis=1))
        pixels = harmonics.synthesis(x).reshape(len(x), -1)
        bins = np.digitize((pixels - pixels.mean()) / pixels.std(), PIXEL_BINS[1:-1])
        drift = harmonics.synthesis(metric * residual).reshape(bins.shape)
        noisy = harmonics.synthesis(metric * (y - skip)).reshape(bins.shape)
        for j in range(len(PIXEL_BINS) - 1):
            inside = bins == j
            rows[k][1 + j].append(np.stack([(noisy * drift * inside).sum(1), (drift**2 * inside).sum(1)], axis=1))
    estimates = np.array([[_slope(column) for column in per_t] for per_t in rows])  # (K, 1 + bins, 2)
    size = np.array([np.concatenate(per_t[0])[:, 1].mean() for per_t in rows])
    return estimates[..., 0], estimates[..., 1], size


def degree_slopes(sde, model, fields, times, n_steps, L, degrees, seed=7, chunk=2048):
    """The same calibration slope per degree l in ``degrees`` (the pooled slope weighs degree l by its
    2 l + 1 coefficients, so a single degree-0 coefficient can be off without showing there).

    Returns (slopes, errors): (len(times), len(degrees)) arrays."""
    of_degree = SphericalHarmonics(L).degrees
    rows = [[[] for _ in degrees] for _ in times]
    for k, _, y, skip, residual in _residuals(sde, model, fields, times, n_steps, seed, chunk):
        for j, degree in enumerate(degrees):
            inside = of_degree == degree
            rows[k][j].append(np.stack([((y - skip) * residual)[:, inside].sum(1), (residual**2)[:, inside].sum(1)],
                                       axis=1))
    estimates = np.array([[_slope(column) for column in per_t] for per_t in rows])
    return estimates[..., 0], estimates[..., 1]


def slopes_table(times, slopes, errors, size) -> str:
    """The two Markdown tables of section 5 from :func:`residual_slopes`' arrays."""
    cell = lambda k, j: f"{slopes[k, j]:.3f} +- {errors[k, j]:.3f}"  # noqa: E731
    lines = ["| t | slope (pooled) | E r . Q r |", "|---|---|---|"]
    lines += [f"| {t:g} | {cell(k, 0)} | {size[k]:.4g} |" for k, t in enumerate(times)]
    names = [f"[{lo:g}, {hi:g})" for lo, hi in zip(PIXEL_BINS[:-1], PIXEL_BINS[1:])]
    lines += ["", "| t | " + " | ".join(f"pixels in {name} sd" for name in names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {t:g} | " + " | ".join(cell(k, 1 + j) for j in range(len(names))) + " |" for k, t in enumerate(times)]
    return "\n".join(lines)


QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def sphere_mean_table(held, samples) -> str:
    """Section 6: the degree-0 coefficient of held-out data and samples (module docstring)."""
    scale = held[:, 0].std()
    lines = ["| fields | C_0 | skewness | C_0 share of the top 1% | " + " | ".join(f"q {q:g}" for q in QUANTILES)
             + " | amplitude spread |", "|---|---|---|---|" + "---|" * len(QUANTILES) + "---|"]
    for name, fields in (("held-out data", held), ("samples", samples)):
        a = fields[:, 0]
        power = np.sort(a**2)[::-1]
        skewness = np.mean((a - a.mean()) ** 3) / a.std() ** 3
        top = power[:max(1, len(a) // 100)].sum() / power.sum()
        lines.append(f"| {name} | {power.mean():.3e} | {skewness:.2f} | {top:.3f} | "
                     + " | ".join(f"{v:.2f}" for v in np.quantile(a, QUANTILES) / scale)
                     + f" | {amplitude_spread(fields):.3f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("data")
    parser.add_argument("--L", type=int, default=16)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--t-end", type=float, default=0.02)
    parser.add_argument("--starts", type=float, nargs="+", default=[2.0, 1.0, 0.5])
    parser.add_argument("--sections", type=int, nargs="+", default=[1, 2, 4, 5],
                        help="1 Stein, 2 stretches (with 3), 4 full path and pixels, 5 residual slopes, 6 the sphere mean "
                             "(with --samples)")
    parser.add_argument("--n-steps", type=int, default=300, help="Euler steps of the targets over [0, T] (section 5)")
    parser.add_argument("--samples", default=None, help="samples of the full recipe (.npy): adds section 6")
    args = parser.parse_args()
    if args.samples is None and 6 in args.sections:
        parser.error("--sections 6: needs --samples, the samples whose sphere mean it compares")
    L, n, t_end = args.L, args.n, args.t_end
    sde = whittle_matern_sde(L)
    # section 6 reads only the samples and the data (a variant's model need not load here)
    model = ss.ScoreModel.load(args.model) if set(args.sections) - {6} else None
    held = np.load(args.data)
    if held.shape[0] < 3 * n:
        raise SystemExit(f"data: need at least 3 n = {3 * n} held-out fields, got {held.shape[0]}")
    starts, reference = held[:n], held[n:3 * n]
    degrees = SphericalHarmonics(L).degrees

    if 1 in args.sections:
        print("## 1. Stein's identity on the forward marginal (per degree; -1 is exact)\n")
        print("| t | mean | degrees 0 1 2 4 8 12 16 |\n|---|---|---|")
        for t in (0.02, 0.1, 0.5, 1.0, 2.0):
            x = forward(sde, reference, t, seed=1)
            with torch.no_grad():
                s = np.asarray(model(x, t))
            stein = ((x - x.mean(0)) * s).mean(0)
            per_degree = np.array([stein[degrees == l].mean() for l in range(L + 1)])
            print(row(f"{t:g}", per_degree, mean=stein.mean()))
    if 2 in args.sections or 4 in args.sections:
        stretches_and_full_path(args, sde, model, starts, reference)
    if 5 in args.sections and not model.gaussian_skip:
        print("\n## 5. skipped: the calibration slopes need a model trained with gaussian_skip=True")
    elif 5 in args.sections:
        print("\n## 5. Calibration slope of the learned non-Gaussian part (1 is calibrated; > 1 too weak)\n")
        times = (0.1, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
        fields = held[:max(n, 8192)]
        print(slopes_table(times, *residual_slopes(sde, model, fields, times, args.n_steps, L)))
        degrees = tuple(sorted({0, 1, 2, 4, 8, L} & set(range(L + 1))))
        slopes, errors = degree_slopes(sde, model, fields, times, args.n_steps, L, degrees)
        print("\n| t | " + " | ".join(f"degree {l}" for l in degrees) + " |\n|---|" + "---|" * len(degrees))
        for k, t in enumerate(times):
            print(f"| {t:g} | " + " | ".join(f"{slopes[k, j]:.3f} +- {errors[k, j]:.3f}" for j in range(len(degrees))) + " |")
    if args.samples is not None:
        print("\n## 6. The sphere mean (degree 0): samples against held-out data (quantiles in data standard deviations)\n")
        print(sphere_mean_table(held, np.load(args.samples)))


def stretches_and_full_path(args, sde, model, starts, reference):
    """Sections 2-4: the ODE's stretches, the Gaussian counterpart, the full path and its pixels."""
    L, n, t_end = args.L, args.n, args.t_end
    target = forward(sde, reference, t_end, seed=2)
    print(f"\n## 2-3. The ODE from states of X_t0 to t_end = {t_end:g}: spectrum ratio to forward data\n")
    print(f"| start | mean | degrees 0 1 2 4 8 12 16 | amplitude spread (forward data: {amplitude_spread(target):.3f}) |\n"
          "|---|---|---|---|")

    def judged(name, ended):
        return row(name, spectrum_ratio(ended, target, L), extra=f"{amplitude_spread(ended):.3f}")

    if 2 in args.sections:
        for t0 in args.starts:
            states = forward(sde, starts, t0, seed=3)
            print(judged(f"forward data at t0 = {t0:g}", ode(sde, model, states, t0, t_end)))
        t0 = args.starts[len(args.starts) // 2]
        states = gaussian_counterpart(forward(sde, reference, t0, seed=4), L, n, seed=5)
        print(judged(f"Gaussian counterpart at t0 = {t0:g}", ode(sde, model, states, t0, t_end)))
    full = ss.sample(sde, model, n, int(round((sde.T - t_end) / STEP)), method="ode", seed=2, t_end=t_end)
    print(judged(f"prior at T = {sde.T:g} (the full path)", full))

    if 4 in args.sections:
        print("\n## 4. Pixel quantiles (the right tail carries the lognormal's variance)\n")
        print(pixel_tails(sde, model, reference, (1.0, 0.5, t_end), n, L, sampled={t_end: full}))


if __name__ == "__main__":
    main()
