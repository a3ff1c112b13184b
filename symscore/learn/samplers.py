"""Reverse-time sampling and likelihoods from a learned (or exact) score s(x, t) ~ grad log p_t(x).

With D = sigma sigma^T the forward SDE dX = b dt + sigma dB has

* the reverse-time SDE   dX = [b - div D - D s] dt + sigma dB-bar   (run from T down to t_end), and
* the probability-flow ODE   dx/dt = f(t, x) = b - div D / 2 - D s / 2,  which moves p_T back to p_{t_end}
  deterministically; along it  d log p_t(x_t)/dt = -div f(t, x_t),  so
  log p_{t_end}(x) = log p_T(x_T) + int_{t_end}^T div f(t, x_t) dt  (Chen et al. 2018; Song et al. 2021).

div D (with (div D)_i = sum_j d_j D_ij) vanishes unless sigma depends on the state; then
div f = div b - (sum_ij d_i d_j D_ij) / 2 - (div D) . s / 2 - tr(D J_s) / 2.

``method="sde"`` is Euler-Maruyama on the reverse SDE (no noise on the last step), ``"ode"`` the
probability-flow ODE by fixed-step RK4 (or scipy's adaptive RK45 with ``adaptive=True``), and
``"pc"`` Euler-Maruyama predictor + Langevin corrector steps x += eps s + sqrt(2 eps) z with eps
set by the signal-to-noise ratio ``snr`` (Song et al. 2021, Algorithm 5).

Where the arrays live: with a :class:`ScoreModel` on a GPU (or any ``device=``), the samplers step
in torch on that device (float32 on CUDA, float64 on the CPU) with the SDE's coefficients as torch
functions (:class:`~symscore.learn.numeric_sde.NumericSDE` on that device) and a seeded ``torch.Generator``; the state
stays there and only the result comes back. Otherwise they step in float64 numpy on the host. The
algorithms are written once over both array types (the small helpers below dispatch); the adaptive
RK45 (``adaptive=True``) is scipy's on the host and torchdiffeq's dopri5 on a device.
"""
from __future__ import annotations

import hashlib
import logging
import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from .._checks import positive_int
from .._errors import NonFiniteSimulationError, SymscoreError
from .._registry import Registry
from .model import ScoreModel
from .numeric_sde import NumericSDE
from .priors import EmpiricalPrior, Prior, make_prior
from ..spec.sde import SDE
from ..data import check_data
from ..integrators import rk4

__all__ = ["sample", "log_likelihood", "resolve_prior", "time_grid", "SPACINGS", "SAMPLERS", "COMPARED_SAMPLERS", "register_sampler", "SamplerRun",
           "host_score_function", "resolve_t_end"]

logger = logging.getLogger("symscore")


@dataclass(frozen=True)
class SamplerRun:
    """What a sampler gets: the SDE's coefficients as functions, the checked score, the prior draw
    ``x`` (n, m), the decreasing time grid from t_start (T unless given) to t_end, the random generator and the method
    options. On the host (``device`` None) these are a host NumericSDE, numpy arrays and a numpy
    Generator; on a device a NumericSDE on that device, tensors there and a torch.Generator. A sampler returns the
    (n, m) samples as the same kind of array."""

    numeric: NumericSDE
    score_fn: object
    x: np.ndarray | torch.Tensor
    grid: np.ndarray
    rng: np.random.Generator | torch.Generator
    adaptive: bool = False
    rtol: float = 1e-5
    atol: float = 1e-5
    snr: float = 0.16
    n_corrector: int = 1
    device: torch.device | None = None


#: Registered samplers by name (the ``method=`` of :func:`sample` and the CLI): ``run -> (n, m) samples``.
SAMPLERS = Registry("method")
#: Function decorator: register ``sampler(run: SamplerRun) -> np.ndarray`` under a name.
register_sampler = SAMPLERS.register
#: The samplers a comparison reports (the demo, the paper grid): the reverse SDE and predictor-corrector.
COMPARED_SAMPLERS = ("sde", "pc")



# -- the array helpers: one algorithm, numpy on the host or torch on a device ---------------------
def _is_tensor(a) -> bool:
    return isinstance(a, torch.Tensor)


def _finite_rows(a):
    """Per row: all entries finite."""
    return torch.isfinite(a).all(dim=1) if _is_tensor(a) else np.isfinite(a).all(axis=1)


def _row_norms(a):
    return torch.linalg.vector_norm(a, dim=1) if _is_tensor(a) else np.linalg.norm(a, axis=1)


def _normal(rng, shape, like):
    """Standard normals of ``shape`` from the run's generator, as the kind of array ``like`` is."""
    if _is_tensor(like):
        return torch.randn(shape, generator=rng, dtype=like.dtype, device=like.device)
    return rng.standard_normal(shape)


def _einsum(spec, *arrays):
    return torch.einsum(spec, *arrays) if _is_tensor(arrays[0]) else np.einsum(spec, *arrays)


def _check_score(out, x, t):
    """The checks of every score value: the shape of x, finite entries."""
    if tuple(out.shape) != tuple(x.shape):
        raise SymscoreError(f"score: expected an array of shape {tuple(x.shape)} from score(x, t), got {tuple(out.shape)}")
    if not bool(_finite_rows(out).all()):
        raise NonFiniteSimulationError(
            f"score: returned NaN or inf at t = {t:g} on {int((~_finite_rows(out)).sum())} point(s) "
            f"(largest |x| = {float(abs(x).max()):.3g}; a huge state means the reverse-time iterate is diverging: "
            "increase n_steps or train longer)")
    return out


def _check_state(x, t):
    if not bool(_finite_rows(x).all()):
        raise NonFiniteSimulationError(
            f"the sampler's state became non-finite by t = {t:g} on {int((~_finite_rows(x)).sum())} "
            "point(s): the reverse-time step is too large for this drift (the reversed drift -b can expand, "
            "e.g. +x^3 for the cubic SDE) or the score is inaccurate there; increase n_steps")


def host_score_function(score, m: int):
    """score(x, t) as a checked numpy function returning float64 (n, m)."""
    if not callable(score):
        raise SymscoreError(f"score: expected a ScoreModel or a callable score(x, t), got {type(score).__name__}")

    def evaluate(x, t):
        _check_state(x, t)
        return _check_score(np.asarray(score(x, float(t)), dtype=np.float64), x, t)

    return evaluate


def _tensor_score_function(score, device, dtype):
    """score(x, t) on tensors of ``dtype`` on ``device``: a ScoreModel is called in its own dtype
    (no gradient); any other callable gets and returns tensors."""
    if isinstance(score, ScoreModel):
        parameter = next(score.parameters())

        def call(x, t):
            with torch.no_grad():
                # one time for every row, as an expanded scalar: the model interpolates it once
                times = torch.tensor(float(t), dtype=parameter.dtype, device=parameter.device).expand(x.shape[0])
                return score(x.to(parameter.dtype), times).to(dtype)
    else:
        call = score

    def evaluate(x, t):
        _check_state(x, t)
        out = call(x, float(t))
        if not _is_tensor(out):
            raise SymscoreError(f"score: with a device, score(x, t) gets a tensor and must return one, got "
                                f"{type(out).__name__}")
        return _check_score(out.to(device=device, dtype=dtype), x, t)

    return evaluate


def _run_device(score, device):
    """Where a run steps: ``device`` if given, else a ScoreModel's device when that is not the CPU;
    None (the host) otherwise."""
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise SymscoreError(f"device: expected 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise SymscoreError(f"device: {device} was requested but torch.cuda.is_available() is False")
        return device
    if isinstance(score, ScoreModel):
        model_device = next(score.parameters()).device
        if model_device.type != "cpu":
            return model_device
    return None


def forward_endpoints(sde, data, n_steps=500, seed=0) -> np.ndarray:
    """Euler-simulated X_T from the data points (for the empirical prior)."""
    numeric = NumericSDE(sde)
    return numeric.euler(data, [n_steps], sde.T / n_steps, np.random.default_rng(seed))[0]


#: How many priors resolved from models' statistics :func:`resolve_prior` keeps.
PRIOR_CACHE_SIZE = 16
_RESOLVED_PRIORS: dict = {}


def resolve_prior(sde: SDE, score, prior="auto", data=None, seed: int = 0) -> Prior:
    """The prior at T: a Prior, an (n, m) array of X_T samples, or a kind for :func:`make_prior`."""
    if isinstance(prior, Prior):
        return prior
    if not isinstance(prior, str):
        return EmpiricalPrior(check_data(prior, sde.m, name="prior"))
    stats, cache, key = {}, None, None
    if data is not None:
        data = check_data(data, sde.m)
        stats = {"data_mean": data.mean(axis=0), "data_cov": np.atleast_2d(np.cov(data.T))}
        if prior in ("auto", "empirical") and not sde.derive().is_linear:
            stats["endpoints"] = forward_endpoints(sde, data, seed=seed)
    elif isinstance(score, ScoreModel) and score.endpoints.shape[0] > 0:
        stats = {"data_mean": score.data_mean.cpu().numpy(), "data_cov": score.data_cov.cpu().numpy(),
                 "endpoints": score.endpoints.cpu().numpy()}
        # a model's prior is resolved once per (SDE, kind, statistics): auto's mixing test costs
        # about 10 ms per coordinate (0.5 s at m = 64), on every sample() call otherwise. The key
        # holds everything the prior depends on, so the cache needs nothing from the model itself
        key = (sde.fingerprint(), prior, hashlib.sha256(b"".join(np.ascontiguousarray(v).tobytes()
                                                                  for v in stats.values())).hexdigest())
        cache = _RESOLVED_PRIORS
        if key in cache:
            return cache[key]
    chosen = make_prior(sde, prior, **stats)
    if cache is not None:
        while len(cache) >= PRIOR_CACHE_SIZE:
            cache.pop(next(iter(cache)))  # the oldest first
        cache[key] = chosen
    logger.info("prior at T = %g: %r", sde.T, chosen)
    return chosen


#: The time grids of :func:`sample` (``spacing=``).
SPACINGS = ("uniform", "log")


def time_grid(t_start: float, t_end: float, n_steps: int, spacing: str = "uniform") -> np.ndarray:
    """The decreasing grid of ``n_steps`` steps from t_start to t_end: uniform, or geometric (``"log"``)."""
    if spacing not in SPACINGS:
        raise SymscoreError(f"spacing: expected one of {', '.join(map(repr, SPACINGS))}, got {spacing!r}")
    if spacing == "log":
        if t_end <= 0:
            raise SymscoreError(f"spacing: 'log' needs t_end > 0, got t_end = {t_end}")
        grid = np.geomspace(t_start, t_end, int(n_steps) + 1)
        grid[0], grid[-1] = t_start, t_end  # exactly, not by exp(log)
        return grid
    return np.linspace(t_start, t_end, int(n_steps) + 1)


def resolve_t_end(sde, n_steps, t_end, score) -> float:
    """The checked end time of a reverse-time run (default: a ScoreModel's t_min, else 1e-3 T);
    also checks ``sde``, ``score`` and ``n_steps``."""
    if not isinstance(sde, SDE):
        raise SymscoreError(f"sde: expected a symscore.SDE, got {type(sde).__name__}")
    if not callable(score):  # before any work on the prior, which may need the score's model
        raise SymscoreError(f"score: expected a ScoreModel or a callable score(x, t), got {type(score).__name__}")
    positive_int(n_steps, "n_steps")
    if t_end is None:
        t_end = score.t_min if isinstance(score, ScoreModel) and score.t_min > 0 else 1e-3 * sde.T
    if isinstance(t_end, bool) or not isinstance(t_end, numbers.Real) or not (0 <= t_end < sde.T):
        raise SymscoreError(f"t_end: expected 0 <= t_end < T = {sde.T}, got {t_end!r}")
    return float(t_end)


def _check_start(sde, t_start, t_end, start) -> float:
    """t_start as a float in (t_end, T]; below T only with given ``start`` states."""
    if t_start is None:
        return float(sde.T)
    if isinstance(t_start, bool) or not isinstance(t_start, numbers.Real) or not (t_end < t_start <= sde.T):
        raise SymscoreError(f"t_start: expected t_end = {t_end} < t_start <= T = {sde.T}, got {t_start!r}")
    if t_start < sde.T and start is None:
        raise SymscoreError(f"t_start: starting at {t_start} < T = {sde.T} needs start=, states of X_t_start "
                            "(the prior is the law at T)")
    return float(t_start)


def sample(sde: SDE, score, n: int, n_steps: int = 500, method: str = "sde", seed: int = 0, *,
           prior="auto", data=None, t_end: float | None = None, adaptive: bool = False, rtol: float = 1e-5,
           atol: float = 1e-5, snr: float = 0.16, n_corrector: int = 1, device=None, start=None,
           t_start: float | None = None, spacing: str = "uniform") -> np.ndarray:
    """Draw n samples of p_{t_end} by integrating from the prior at T back to t_end.

    With ``start`` the reverse process begins instead from given states of X_{t_start} (one sample
    per row): forward-noised data to see what a stretch [t_end, t_start] of the learned score does
    to the correct law (a diagnostic: the whole path's error is not the sum of its stretches'), or
    noised user data to edit (SDEdit).

    Args:
        sde: the forward SDE the score belongs to.
        score: a :class:`ScoreModel` or any callable ``score(x, t)`` -> (n, m) (e.g. an exact score).
        n: number of samples. n_steps: steps from T to t_end (on the grid of ``spacing``).
        method: ``"sde"``, ``"ode"`` or ``"pc"`` (module docstring).
        seed: seeds the prior draw and the noise.
        prior: ``"auto"`` (Gaussian for linear SDEs, the stationary law for separable drifts, else
            the empirical law of forward-simulated data endpoints; see :mod:`symscore.learn.priors`),
            a kind name, a :class:`~symscore.learn.priors.Prior`, or an (N, m) array of X_T samples.
        data: data points, for the prior's moments or endpoints when ``score`` is not a trained ScoreModel.
        t_end: where to stop (default: the model's t_min, else 1e-3 T).
        adaptive, rtol, atol: ``method="ode"`` with scipy's adaptive RK45 instead of RK4.
        snr, n_corrector: Langevin corrector of ``method="pc"``.
        device: step in torch on this device (float32 on CUDA, float64 on the CPU); default: a
            ScoreModel's device when it is a GPU, else numpy on the host. With a device, a
            callable ``score`` gets and returns tensors.
        start: (n, m) states of X_{t_start} to start from, used as given (not resampled); replaces
            the prior draw.
        t_start: where the reverse process starts, t_end < t_start <= T (default T); below T it
            needs ``start`` (the prior is the law at T).
        spacing: the time grid, ``"uniform"`` (default) or ``"log"``: steps of equal ratio t_k+1 / t_k,
            fine near t_end, where a score's scale changes like a power of t (t^-1/2 near data
            with additive noise): a uniform grid's last steps are as long as t itself there, and the
            sampler's error piles up in them. For fields and other data with fine structure it
            reaches the same samples in several times fewer steps (docs/results/fields.md). The
            adaptive ODE (``adaptive=True``) chooses its own steps and uses only the grid's ends.

    Returns:
        (n, m) float64 samples (numpy, on the host).
    """
    t_end = resolve_t_end(sde, n_steps, t_end, score)
    t_start = _check_start(sde, t_start, t_end, start)
    grid = time_grid(t_start, t_end, n_steps, spacing)
    sampler = SAMPLERS.lookup(method)
    n = positive_int(n, "n")
    device = _run_device(score, device)
    rng = np.random.default_rng(seed)
    if start is None:
        x = resolve_prior(sde, score, prior, data, seed).sample(int(n), rng)
    else:
        x = check_data(start, sde.m, name="start", min_rows=1)
        if x.shape[0] != n:
            raise SymscoreError(f"start: expected n = {n} rows (one per sample), got {x.shape[0]}")
    options = dict(adaptive=adaptive, rtol=rtol, atol=atol, snr=snr, n_corrector=n_corrector)
    if device is None:
        return sampler(SamplerRun(NumericSDE(sde), host_score_function(score, sde.m), x, grid, rng, **options))
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    run = SamplerRun(NumericSDE(sde, device, dtype), _tensor_score_function(score, device, dtype),
                     torch.as_tensor(x, dtype=dtype, device=device), grid, generator, device=device, **options)
    out = sampler(run)
    return out.detach().cpu().numpy().astype(np.float64) if _is_tensor(out) else np.asarray(out, dtype=np.float64)


@register_sampler("sde")
def reverse_sde(run: SamplerRun) -> np.ndarray:
    """Euler-Maruyama on the reverse-time SDE, no noise on the last step."""
    return _reverse_sde(run.numeric, run.score_fn, run.x, run.grid, run.rng, 0, run.snr)


@register_sampler("ode")
def probability_flow(run: SamplerRun) -> np.ndarray:
    """The probability-flow ODE by RK4 on the grid, or scipy's RK45 with ``adaptive=True``."""
    if run.adaptive:
        return _adaptive(lambda t, y: run.numeric.flow_velocity(t, y, run.score_fn(y, t)), run.x, run.grid[0],
                         run.grid[-1], run.rtol, run.atol)
    return rk4(lambda t, y: run.numeric.flow_velocity(t, y, run.score_fn(y, t)), run.x, run.grid)


@register_sampler("pc")
def predictor_corrector(run: SamplerRun) -> np.ndarray:
    """Reverse-SDE predictor with ``n_corrector`` Langevin corrector steps per step (signal-to-noise ``snr``)."""
    return _reverse_sde(run.numeric, run.score_fn, run.x, run.grid, run.rng, run.n_corrector, run.snr)


def _adaptive(rhs, y, t_start, t_stop, rtol, atol):
    """y at t_stop of dy/dt = rhs(t, y) from t_start, adaptively: scipy's RK45 for numpy arrays,
    torchdiffeq's dopri5 (the same Dormand-Prince pair) for tensors, on their device. ``y`` is an
    array or a tuple of arrays of one kind."""
    parts = y if isinstance(y, tuple) else (y,)
    if _is_tensor(parts[0]):
        from torchdiffeq import odeint

        times = torch.tensor([t_start, t_stop], dtype=parts[0].dtype, device=parts[0].device)
        try:
            # step_t: land on t_stop, never step past it (the score may not exist beyond it)
            solution = odeint(lambda t, state: rhs(float(t), state), y, times, rtol=rtol, atol=atol, method="dopri5",
                              options={"step_t": times})
        except AssertionError as exc:  # torchdiffeq's "underflow in dt"
            raise NonFiniteSimulationError(f"the probability-flow ODE solver failed: {exc}") from None
        return tuple(part[-1] for part in solution) if isinstance(y, tuple) else solution[-1]
    shapes = [part.shape for part in parts]
    sizes = np.cumsum([0] + [part.size for part in parts])

    def unflatten(flat):
        return tuple(flat[a:b].reshape(shape) for a, b, shape in zip(sizes[:-1], sizes[1:], shapes))

    def flat_rhs(t, flat):
        out = rhs(t, unflatten(flat) if isinstance(y, tuple) else flat.reshape(shapes[0]))
        return np.concatenate([np.ravel(o) for o in (out if isinstance(y, tuple) else (out,))])

    solution = solve_ivp(flat_rhs, (t_start, t_stop), np.concatenate([np.ravel(p) for p in parts]), method="RK45",
                         rtol=rtol, atol=atol)
    if not solution.success:
        raise NonFiniteSimulationError(f"the probability-flow ODE solver failed: {solution.message}")
    return unflatten(solution.y[:, -1]) if isinstance(y, tuple) else solution.y[:, -1].reshape(shapes[0])


def _limited(step, x):
    """Cap each row's drift displacement at 1 + |x|: a step that moves a point further than its own
    size is unresolved (the reversed drift -b of a confining SDE grows like +x^3 where the score is
    inaccurate), and Euler would explode. Returns the capped step and how many rows were capped
    (a count on the step's device: no synchronisation per step)."""
    size, limit = _row_norms(step), 1 + _row_norms(x)
    capped = size > limit
    # limit / max(size, limit) is exactly 1 where the step is within the limit
    factor = limit / (torch.maximum(size, limit) if _is_tensor(step) else np.maximum(size, limit))
    return step * factor[:, None], capped.sum()


def _reverse_sde(numeric, score_fn, x, grid, rng, n_corrector, snr):
    last, n_capped = len(grid) - 2, 0
    for i, (t0, t1) in enumerate(zip(grid[:-1], grid[1:])):
        h, x_left = t0 - t1, x
        # reverse-time drift b - D s (- div D for sigma(t, x)), every coefficient at the left point
        drift = numeric.reverse_drift(t0, x, score_fn(x, t0))
        step, capped = _limited(-drift * h, x)
        x, n_capped = x + step, n_capped + capped
        if i < last:
            x = x + numeric.noise(t0, x_left, float(np.sqrt(h)) * numeric.arrays.normal(rng, (x.shape[0], numeric.d)))
        for _ in range(n_corrector):
            x = _langevin(score_fn, x, t1, rng, snr)
    if not bool(_finite_rows(x).all()):
        raise NonFiniteSimulationError("the sampler's state became non-finite on the last step; increase n_steps")
    n_capped = int(n_capped)
    if n_capped:
        warnings.warn(f"sample: the reverse-time drift step was capped at 1 + |x| on {n_capped} point-step(s) of "
                      f"{x.shape[0]} x {last + 1}: those samples are unreliable; increase n_steps or train longer",
                      RuntimeWarning, stacklevel=4)
    return x


def _langevin(score_fn, x, t, rng, snr):
    grad = score_fn(x, t)
    noise = _normal(rng, tuple(x.shape), x)
    grad_norm = _row_norms(grad).mean()
    grad_norm = grad_norm.clamp_min(1e-12) if _is_tensor(grad_norm) else max(grad_norm, 1e-12)
    step = 2 * (snr * _row_norms(noise).mean() / grad_norm) ** 2
    return x + step * grad + (2 * step) ** 0.5 * noise


# -- likelihood -------------------------------------------------------------------------------
def _directional(score, score_fn, x, t, v):
    """J_s(x) v, the derivative of the score along v: forward-mode autograd for a ScoreModel,
    central differences (step 1e-5 (1 + |x|)) for any other callable. Arrays of x's kind."""
    if isinstance(score, ScoreModel):
        parameter = next(score.parameters())
        as_t = lambda a: torch.as_tensor(np.array(a) if not _is_tensor(a) else a,  # noqa: E731 (a writable copy)
                                         dtype=parameter.dtype, device=parameter.device)
        times = torch.full((x.shape[0],), float(t), dtype=parameter.dtype, device=parameter.device)
        _, tangent = torch.func.jvp(lambda y: score(y, times), (as_t(x),), (as_t(v),))
        if _is_tensor(x):
            return tangent.detach().to(x.dtype)
        return tangent.detach().cpu().numpy().astype(np.float64)
    eps = 1e-5 * (1 + float(abs(x).max()))
    return (score_fn(x + eps * v, t) - score_fn(x - eps * v, t)) / (2 * eps)


def _divergence(numeric, score, score_fn, t, x, probes, score_values):
    """div f = div b - tr(D J_s) / 2, exactly (probes None: m directional derivatives) or by
    Hutchinson's estimator; for sigma(t, x) also - (sum_ij d_i d_j D_ij) / 2 - (div D) . s / 2
    (s = ``score_values`` at (t, x))."""
    D = numeric.diffusion_at(t, x)  # (n, m, m)
    if probes is None:
        m = x.shape[1]
        unit = torch.eye(m, dtype=x.dtype, device=x.device) if _is_tensor(x) else np.eye(m)
        trace = sum(_einsum("nk,nk->n", _directional(score, score_fn, x, t, unit[j].expand_as(x) if _is_tensor(x)
                                                     else np.broadcast_to(unit[j], x.shape)), D[:, j])
                    for j in range(m))
    else:
        trace = sum(_einsum("nk,nkl,nl->n", v, D, _directional(score, score_fn, x, t, v)) for v in probes) / len(probes)
    divergence = numeric.drift_divergence(t, x) - 0.5 * trace
    if numeric.state_dependent:
        divergence = divergence - 0.5 * (numeric.diffusion_second_divergence(t, x)
                                         + (numeric.diffusion_divergence(t, x) * score_values).sum(1))
    return divergence


def log_likelihood(sde: SDE, score, x, *, prior="auto", data=None, t_end: float | None = None,
                   n_steps: int = 200, adaptive: bool = True, rtol: float = 1e-6, atol: float = 1e-6,
                   exact_divergence: bool | None = None, n_probes: int = 1, seed: int = 0,
                   device=None) -> np.ndarray:
    """log p_{t_end}(x) through the probability-flow ODE (module docstring), shape (n,).

    The divergence of the score is exact (m directional derivatives) when m <= 8 or
    ``exact_divergence=True``, else Hutchinson's estimator with ``n_probes`` fixed Rademacher
    probes (unbiased, seeded). The prior must have a density (Gaussian or stationary).
    ``adaptive=True`` integrates with an adaptive RK45 (rtol, atol); otherwise RK4 with
    ``n_steps``. Both in torch on ``device`` (default: a ScoreModel's GPU; float32 on CUDA; adaptive:
    torchdiffeq's dopri5) or in numpy (adaptive: scipy).
    """
    t_end = resolve_t_end(sde, n_steps, t_end, score)
    x = check_data(x, sde.m, name="x", min_rows=1)
    chosen = resolve_prior(sde, score, prior, data, seed)
    if not chosen.has_density:
        raise SymscoreError(f"prior: log_likelihood needs a prior with a density; {sde.name!r} has {chosen!r}")
    exact = sde.m <= 8 if exact_divergence is None else bool(exact_divergence)
    probes = None if exact else np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_probes, *x.shape))
    n, m = x.shape
    device = _run_device(score, device)
    if device is None:
        numeric, score_fn = NumericSDE(sde), host_score_function(score, m)
    else:
        dtype = torch.float32 if device.type == "cuda" else torch.float64
        numeric, score_fn = NumericSDE(sde, device, dtype), _tensor_score_function(score, device, dtype)
        x = torch.as_tensor(x, dtype=dtype, device=device)
        probes = None if probes is None else torch.as_tensor(probes, dtype=dtype, device=device)

    def rhs(t, state):
        y, _ = state
        score_values = score_fn(y, t)
        return numeric.flow_velocity(t, y, score_values), _divergence(numeric, score, score_fn, t, y, probes, score_values)

    zero = torch.zeros(n, dtype=x.dtype, device=x.device) if _is_tensor(x) else np.zeros(n)
    if adaptive:
        x_T, integral = _adaptive(rhs, (x, zero), t_end, sde.T, rtol, atol)
    else:
        x_T, integral = rk4(rhs, (x, zero), np.linspace(t_end, sde.T, int(n_steps) + 1))
    if _is_tensor(x_T):
        x_T, integral = x_T.detach().cpu().numpy().astype(np.float64), integral.detach().cpu().numpy()
    return chosen.log_density(x_T) + integral
