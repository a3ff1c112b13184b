"""The field recipe: learn random fields on the sphere, sample them, and judge the samples.

A field up to degree L is (L + 1)^2 spherical-harmonic coefficients and its forward SDE
(:func:`symscore.fields.whittle_matern_sde`) an ordinary SDE, so :func:`symscore.train` and
:func:`symscore.sample` work on fields unchanged. What fields need is the right defaults, and they
are collected here:

* the network: the spherical Fourier neural operator (``architecture="sfno"``,
  :mod:`symscore.learn.sfno`), which works on the quadrature grid where a non-Gaussian field's
  structure is, with Cameron-Martin preconditioning and the Gaussian skip
  (:mod:`symscore.learn.model`);
* the target: denoising score matching for the linear Whittle-Matern SDE (its transition is
  Gaussian, and the Malliavin target equals it there; a nonlinear per-coefficient drift falls back
  to the Malliavin target);
* record times log-spaced in [t_min, T] (equal resolution per decade of t: a field's score changes
  scale like t^-1/2 near the data);
* sampling: the probability-flow ODE by RK4 on a log-spaced grid (``spacing="log"``), which
  reaches the samples of a 100-step uniform grid in a quarter of the steps.

:func:`compare_fields` judges samples against held-out data by the two statistics of the results
pages: the angular power spectrum per degree (second moments) and the fraction of the area above
sigma_Q (a non-Gaussian statistic that the data's Gaussian counterpart, Gaussian fields with the
same spectrum, gets wrong).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import positive_int
from .._errors import SymscoreError
from .._memory import reuse_large_allocations
from ..fields import gaussian_counterpart, pixel_statistic, pixel_std, power_spectrum
from ..fields.sde import whittle_matern_spectrum
from ..learn.model import ScoreModel
from ..learn.samplers import sample
from ..learn.train import train
from ..spec.sde import SDE

__all__ = ["FIELD_NETWORK", "FIELD_TRAINING", "field_record_times", "train_fields", "sample_fields", "FieldReport",
           "compare_fields", "reuse_large_allocations"]

#: The network of field models (keywords of :func:`symscore.train`).
FIELD_NETWORK = {"architecture": "sfno", "width": 16, "depth": 4, "preconditioning": "cameron-martin",
                 "gaussian_skip": True}
#: The optimisation of field models: 64 fields per step at 4 record times each (256 rows), record
#: times on a grid of 300 steps from t_min = 0.02, and the moments of X_t measured on 8192 forward
#: paths (the Gaussian skip's variance of the single degree-0 coefficient from the default 2048 is
#: off by about 4%, which the samples' spectrum inherits).
FIELD_TRAINING = {"batch_size": 64, "n_times": 4, "n_steps": 300, "t_min": 0.02, "pilot_size": 8192, "lr": 5e-3}


def field_record_times(T: float, n_steps: int = 300, t_min: float = 0.02, count: int = 80) -> np.ndarray:
    """About ``count`` record times log-spaced in [t_min, T], on the grid of ``n_steps`` steps."""
    if not (0 < t_min < T):
        raise SymscoreError(f"t_min: expected 0 < t_min < T = {T}, got {t_min!r}")
    dt = T / positive_int(n_steps, "n_steps")
    steps = np.unique(np.round(np.geomspace(t_min, T, positive_int(count, "count")) / dt).astype(int))
    return steps[steps >= np.ceil(t_min / dt - 1e-9)] * dt


def train_fields(sde: SDE, data, *, steps: int | None = None, budget: float | None = None, seed: int = 0,
                 progress: bool = True, **overrides) -> ScoreModel:
    """Train a field model with the recipe's defaults (module docstring) for ``steps`` steps or
    ``budget`` seconds (one of them); ``overrides`` are any other :func:`symscore.train` keywords
    and replace the defaults. Returns the EMA model."""
    if not isinstance(sde, SDE):
        raise SymscoreError(f"sde: expected a symscore.SDE, got {type(sde).__name__}")
    if (steps is None) == (budget is None):
        raise SymscoreError("steps, budget: give exactly one of them")
    options = FIELD_NETWORK | FIELD_TRAINING | overrides
    options.setdefault("target", "dsm" if sde.derive().is_linear else "malliavin")
    if options["target"] == "dsm":
        options.setdefault("backend", "torch")  # no kernel runs; the default would compile a numba one for nothing
    if options["t_min"] is not None:
        options.setdefault("times", field_record_times(sde.T, options["n_steps"], options["t_min"]))
    length = {"steps": steps} if steps is not None else {"budget": budget}
    return train(sde, data, seed=seed, progress=progress, **length, **options)


def sample_fields(sde: SDE, model, n: int, n_steps: int = 25, seed: int = 0, method: str = "ode") -> np.ndarray:
    """n fields (n, (L + 1)^2) from ``model``: the probability-flow ODE (RK4) on ``n_steps`` log-spaced steps."""
    return sample(sde, model, n, n_steps, method=method, seed=seed, spacing="log")


@dataclass(frozen=True)
class FieldReport:
    """Samples against held-out data (:func:`compare_fields`).

    Attributes:
        L, threshold: the degree and sigma_Q, the threshold of the pixel statistic.
        spectra: label -> (C_l (L + 1,), its standard error) for ``"data"``, ``"samples"``.
        ratio, ratio_error: C_l(samples) / C_l(data) per degree and its standard error (delta method
            on both sets' empirical variances: a non-Gaussian field's per-degree power is heavy-tailed).
        fractions: label -> (mean fraction of the area above sigma_Q, its standard error) for
            ``"data"``, ``"samples"`` and ``"gaussian, same C_l"`` (the data's Gaussian counterpart).
        fractions_below: the same for the area below -sigma_Q. Reported, not part of the
            tolerance: it is the statistic that tells a field with a floor (a lognormal one, a
            thresholded one, whose area above sigma_Q is close to a Gaussian field's) from a
            Gaussian one.
    """

    L: int
    threshold: float
    spectra: dict
    ratio: np.ndarray
    ratio_error: np.ndarray
    fractions: dict
    fractions_below: dict

    @property
    def spectrum_deviation(self) -> float:
        """max_l |ratio_l - 1|."""
        return float(np.abs(self.ratio - 1).max())

    @property
    def fraction_gap(self) -> tuple[float, float]:
        """(samples' fraction - data's, its standard error)."""
        (ours, our_error), (theirs, their_error) = self.fractions["samples"], self.fractions["data"]
        return ours - theirs, float(np.hypot(our_error, their_error))

    @property
    def floor_recovered(self) -> float:
        """1 - |below(samples) - below(data)| / |below(gaussian) - below(data)| for the fractions below
        -sigma_Q: the share of the Gaussian counterpart's excess area below -sigma_Q that the samples
        do not have (1: as the data, 0: as Gaussian fields of the data's spectrum)."""
        data, samples, gaussian = (self.fractions_below[k][0] for k in ("data", "samples", "gaussian, same C_l"))
        return 1.0 - abs(samples - data) / abs(gaussian - data)

    def meets(self, spectrum_tolerance: float = 0.1, fraction_se: float = 4.0, fraction_relative: float = 0.1) -> bool:
        """The stated tolerance: the spectrum ratio within ``spectrum_tolerance`` of 1 at every
        degree, and the fraction above sigma_Q within ``fraction_se`` standard errors plus
        ``fraction_relative`` of the data's value."""
        gap, error = self.fraction_gap
        return (self.spectrum_deviation <= spectrum_tolerance
                and abs(gap) <= fraction_se * error + fraction_relative * self.fractions["data"][0])

    def as_dict(self) -> dict:
        """Plain numbers for a JSON report."""
        gap, error = self.fraction_gap
        return {"L": self.L, "threshold_sigma_q": self.threshold,
                "spectrum": {label: {"C_l": mean.tolist(), "standard_error": se.tolist()}
                             for label, (mean, se) in self.spectra.items()},
                "spectrum_ratio_samples_to_data": self.ratio.tolist(),
                "spectrum_ratio_standard_error": self.ratio_error.tolist(),
                "max_abs_spectrum_deviation": self.spectrum_deviation,
                "fraction_above_sigma_q": {label: {"value": mean, "standard_error": se}
                                           for label, (mean, se) in self.fractions.items()},
                "fraction_below_minus_sigma_q": {label: {"value": mean, "standard_error": se}
                                                 for label, (mean, se) in self.fractions_below.items()},
                "fraction_gap_in_standard_errors": gap / error, "floor_recovered": self.floor_recovered,
                "meets_tolerance": self.meets()}

    def lines(self) -> list[str]:
        """The report as text: the spectrum ratio per degree, then the pixel statistic."""
        out = [f"{'l':>3} {'C_l data':>11} {'C_l samples':>12} {'ratio':>7} {'+-':>6}"]
        data, samples = self.spectra["data"][0], self.spectra["samples"][0]
        for l in range(self.L + 1):
            out.append(f"{l:>3} {data[l]:11.3e} {samples[l]:12.3e} {self.ratio[l]:7.3f} {self.ratio_error[l]:6.3f}")
        for label, (mean, se) in self.fractions.items():
            out.append(f"fraction of area above sigma_Q = {self.threshold:.3f}: {label:<18} {mean:.4f} +- {se:.4f}")
        for label, (mean, se) in self.fractions_below.items():
            out.append(f"fraction of area below -sigma_Q:         {label:<18} {mean:.4f} +- {se:.4f}")
        out.append(f"share of the Gaussian counterpart's excess below -sigma_Q the samples avoid: {self.floor_recovered:.2f}")
        gap, error = self.fraction_gap
        out.append(f"spectrum: max |ratio - 1| = {self.spectrum_deviation:.3f} (tolerance 0.1); pixels: samples - data = "
                   f"{gap:+.4f} = {gap / error:+.1f} SE (tolerance 4 SE + 10% = "
                   f"{4 * error + 0.1 * self.fractions['data'][0]:.4f}); {'meets' if self.meets() else 'misses'} the tolerance")
        return out


def _mean_and_error(values: np.ndarray):
    return values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])


def compare_fields(samples, held_out, L: int, kappa: float = 4.0, alpha: float = 2.0, seed: int = 0,
                   gaussian=None) -> FieldReport:
    """Judge ``samples`` (n, (L + 1)^2) against ``held_out`` data of the same shape (the module
    docstring's two statistics; the threshold sigma_Q is that of the Whittle-Matern noise with
    ``kappa``, ``alpha``). ``gaussian``: the data's Gaussian counterpart, when the caller has drawn
    it (for its maps); by default ``seed`` draws it here, as many fields as samples."""
    samples, held_out = np.asarray(samples, dtype=np.float64), np.asarray(held_out, dtype=np.float64)
    for name, value in (("samples", samples), ("held_out", held_out)):
        if value.ndim != 2 or value.shape[1] != (L + 1) ** 2 or value.shape[0] < 2:
            raise SymscoreError(f"{name}: expected at least 2 fields of (L + 1)^2 = {(L + 1) ** 2} coefficients, got "
                                f"shape {value.shape}")
    whittle_matern_spectrum(L, kappa, alpha)  # checks kappa and alpha
    ours, theirs = power_spectrum(samples, L), power_spectrum(held_out, L)
    spectra = {"data": _mean_and_error(theirs), "samples": _mean_and_error(ours)}
    ratio = spectra["samples"][0] / spectra["data"][0]
    ratio_error = ratio * np.sqrt(ours.var(0, ddof=1) / (len(ours) * ours.mean(0) ** 2)
                                  + theirs.var(0, ddof=1) / (len(theirs) * theirs.mean(0) ** 2))
    threshold = pixel_std(L, kappa, alpha)
    if gaussian is None:
        gaussian = gaussian_counterpart(held_out, L, len(samples), seed=seed)
    sets = (("data", held_out), ("samples", samples), ("gaussian, same C_l", gaussian))
    fractions, below = ({label: tuple(float(v) for v in _mean_and_error(pixel_statistic(sign * fields, L, threshold)))
                         for label, fields in sets} for sign in (1.0, -1.0))
    return FieldReport(L, threshold, spectra, ratio, ratio_error, fractions, below)
