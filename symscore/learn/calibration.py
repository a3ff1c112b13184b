"""Stein's identity on the probability-flow ODE's own path: a linear correction of a trained score.

Every density satisfies E[(X_i - mu_i) d_i log p(X)] = -1 (integrate by parts). Training makes a
score fit p_t on *forward* samples, and :func:`symscore.learn.stein.calibrate_stein` enforces the
identity there. The sampler, though, evaluates the score on its own states, whose law q_t drifts
from p_t as errors accumulate; where the score is nonlinear (a field's mean, which moves with its
bright spots) the identity can hold on p_t and fail on q_t, and the samples' second moments drift.

For the Ornstein-Uhlenbeck process of a field (b = -x, sigma sigma^T = 2 Q diagonal) the link is
exact. With v = E_q[X_i^2] and e = E_q[X_i s_i] on the sampler's path, both reverse-time dynamics
give (tau = T - t)

    ODE  dv/dtau = 2 v + 2 Q_i e,        reverse SDE  dv/dtau = 2 v + 4 Q_i e + 2 Q_i,

and the forward law's variance v_p obeys dv_p/dtau = 2 v_p - 2 Q_i. Both match it exactly when
e = -v / v_p: on the path (v = v_p) that is Stein's identity, and off it what the Gaussian score
-x / v_p gives. That feedback is neutral for the ODE, not restoring: with it d(v / v_p)/dtau = 0,
so the ratio a sample starts with (or an error puts in) is kept to the end, while the reverse SDE
pulls v back where v_p < 2 Q_i. Hence the gain must hold the identity at the very times the sampler
evaluates the score: it lives on the sampler's own grid (see :func:`calibrate_flow`).

:func:`measure_flow_gain` therefore integrates the probability-flow ODE with the sampler's own grid
on ``n`` particles and, at the start of every step, adds to a gain kappa(t) on that grid the
constant that makes the particles satisfy E_q[(X - mu) s] = -E_q[(X - mu)^2] / v_p(t), pooled over
the coordinates :meth:`ScoreModel.stein_groups` pools (a field's degree). v_p and mu are the
forward process's variance and mean at the grid's times, measured on forward paths from the data
(the model's own ``x_var`` comes from a 2048-path pilot: a few percent off at a field's degree 0,
and the ODE would follow that error). The correction is linear: it fixes the second moments (a
field's spectrum) along the sampler's path, not a wrong non-Gaussian part, and it is calibrated
for one time grid (``n_steps`` and ``t_end`` of the later :func:`symscore.sample` call).

The gain is a correction of kind ``"flow"`` (:class:`~symscore.learn.measurements.SteinGain`),
measured on top of the model's forward correction (``train(..., stein_calibration=True)``) and
never of an earlier flow correction: the model applies the sum of the two
(:func:`~symscore.learn.measurements.compose`), and :func:`calibrate_flow` replaces only the flow
one. A later forward calibration leaves it in place, though it was fitted on top of the forward
correction the model had then: calibrate the flow again after it.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import torch

from .._checks import positive_float, positive_int
from .._errors import SymscoreError
from ..data import check_data
from ..integrators import rk4_step
from ..spec.sde import SDE
from .measurements import SteinGain
from .model import ScoreModel
from .numeric_sde import NumericSDE
from .samplers import host_score_function, resolve_prior, resolve_t_end

__all__ = ["calibrate_flow", "measure_flow_gain"]


def calibrate_flow(model: ScoreModel, sde: SDE, data, n_steps: int = 500, n: int = 1024, seed: int = 0, *,
                   n_paths: int = 8192, prior="auto", t_end: float | None = None, n_check: int = 0,
                   check_tolerance: float = 0.02) -> np.ndarray:
    """Give ``model`` the flow correction :func:`measure_flow_gain` measures (same arguments),
    replacing only its flow correction: the probability-flow ODE's second moments then stay on the
    forward process's for ``sample(sde, model, n, n_steps, method="ode")`` with the same
    ``n_steps`` and ``t_end``. Returns the (K, m) gain it set, on the sampler grid's K = n_steps + 1
    times in increasing order (``model.corrections["flow"].times``)."""
    correction = measure_flow_gain(model, sde, data, n_steps, n, seed, n_paths=n_paths, prior=prior, t_end=t_end,
                                   n_check=n_check, check_tolerance=check_tolerance)
    model.set_correction(correction)
    return correction.gain.numpy().astype(np.float64)


def measure_flow_gain(model: ScoreModel, sde: SDE, data, n_steps: int = 500, n: int = 1024, seed: int = 0, *,
                      n_paths: int = 8192, prior="auto", t_end: float | None = None, n_check: int = 0,
                      check_tolerance: float = 0.02) -> SteinGain:
    """The linear correction that keeps the probability-flow ODE's second moments on the forward
    process's (module docstring), for ``sample(sde, model, n, n_steps, method="ode")`` with the
    same ``n_steps`` and ``t_end``, measured with the model's forward correction applied.

    First ``n_paths`` forward paths from ``data`` (the training data, or more of its law) give the
    mean and variance of X_t at the sampler's grid times (Euler-Maruyama, steps of at most T / 1000).
    Then ``n`` particles from the prior (``seed``, ``prior`` as in :func:`symscore.sample`) follow
    the ODE by RK4 on that grid from T to t_end with the model's forward correction and the gain
    measured so far; the gain lives on that grid's times, and before each step the gain at the
    step's start, carried to every later node, moves by each group's violation over its variance.
    The cost: one sampler run of ``n`` points and the forward paths.

    The fitted particles satisfy the identity by construction, so they cannot show how well the gain
    carries over to a new draw; it carries their sampling error to every later sample (the same
    particles are followed throughout and the ODE keeps what enters). With ``n_check`` > 0 a second,
    unfitted prior draw of that size follows the ODE alongside, and its per-group change of
    spread / v_p from T to t_end is compared with the fitted particles' (equal for a gain that
    carries over; each draw's initial deviation divides out, and the forward reference's error,
    which both share, cancels): beyond ``check_tolerance`` plus 3 standard errors a
    RuntimeWarning gives it and asks for a larger ``n``. It costs n_check / n more.

    Returns the correction of kind ``"flow"`` on the grid's K = n_steps + 1 times (increasing);
    the model is left as it is.
    """
    if not isinstance(model, ScoreModel):
        raise SymscoreError(f"model: expected a trained ScoreModel, got {type(model).__name__}")
    if not isinstance(sde, SDE) or sde.m != model.m:
        raise SymscoreError(f"sde: expected the symscore.SDE the model was trained for (m = {model.m}), got "
                            f"{getattr(sde, 'm', type(sde).__name__)!r}")
    t_end = resolve_t_end(sde, n_steps, t_end, model)
    data = check_data(data, sde.m, min_rows=2)
    n, n_paths = positive_int(n, "n", low=2), positive_int(n_paths, "n_paths", low=2)
    n_check = 0 if n_check == 0 else positive_int(n_check, "n_check", low=2)
    check_tolerance = positive_float(check_tolerance, "check_tolerance")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2**31 + 2]))
    grid = np.linspace(float(sde.T), t_end, int(n_steps) + 1)
    times = grid[::-1].copy()  # the correction's nodes, increasing
    # the particles follow a copy that carries the gain as it is fitted, on top of the forward correction alone
    follower = copy.deepcopy(model)
    correction = SteinGain.zero(model.m, times, "flow")
    follower.set_correction(correction)
    numeric, score_fn = NumericSDE(sde), host_score_function(follower, sde.m)
    x0 = data[rng.choice(data.shape[0], size=n_paths, replace=n_paths > data.shape[0])]
    means, variances = (a[::-1] for a in _forward_moments(numeric, x0, times, rng, sde.T / 1000))
    prior_law = resolve_prior(sde, model, prior, None, seed)
    x = prior_law.sample(n, np.random.default_rng(seed))
    check = prior_law.sample(n_check, np.random.default_rng([seed, 2**31 + 3])) if n_check else None
    velocity = lambda t, y: numeric.flow_velocity(t, y, score_fn(y, t))  # noqa: E731 (the ODE's right-hand side)
    gain = np.zeros((times.size, model.m))
    groups, size = model.stein_groups()
    membership = np.eye(size.size)[groups]  # (m, groups): sums over each group's coordinates
    pooled = lambda values: values @ membership  # noqa: E731
    # per particle and group: squared deviation from the forward mean over v_p (its group mean is spread / v_p)
    scaled = lambda y, k: ((y - means[k]) ** 2 @ membership) / pooled(variances[k])  # noqa: E731
    check_start, fitted_start = (None, None) if check is None else (scaled(check, 0), scaled(x, 0))
    with torch.no_grad():
        model_mean = model.mean_at(torch.as_tensor(grid, device=model.precond_times.device)).cpu().numpy()
    for j, (t0, t1) in enumerate(zip(grid[:-1], grid[1:])):
        centred, score = x - means[j], score_fn(x, t0)
        spread = pooled((centred**2).mean(axis=0))
        violation = -size * spread / pooled(variances[j]) - pooled((centred * score).mean(axis=0))
        # the gain at t0 is a node of its own: it gets the whole correction, carried to the later
        # (smaller) times, which the next steps correct in turn; earlier steps' nodes stay put
        change = (violation / spread)[groups]
        gain[times <= t0 * (1 + 1e-12)] += change
        correction = SteinGain(times, gain, "flow")
        follower.set_correction(correction)
        # the score at t0 with the new gain, without evaluating the network again
        score = score + change * (x - model_mean[j])
        x = rk4_step(velocity, t0, x, t1 - t0, t1, k1=numeric.flow_velocity(t0, x, score))
        if check is not None:
            check = rk4_step(velocity, t0, check, t1 - t0, t1)
    if check is not None:
        _warn_on_drift((fitted_start, scaled(x, -1)), (check_start, scaled(check, -1)), check_tolerance, groups)
    return correction


def _drift(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ratio of means end / start per group, its standard error by the delta method) for the
    per-particle shares ``start``, ``end`` (n, groups)."""
    ratio = end.mean(axis=0) / start.mean(axis=0)
    return ratio, (end - ratio * start).std(axis=0, ddof=1) / (np.sqrt(start.shape[0]) * start.mean(axis=0))


def _warn_on_drift(fitted, check, tolerance: float, groups: np.ndarray) -> None:
    """Warn when the unfitted particles' spread / v_p per group (``groups``: each coordinate's)
    moves from T to t_end by more than the fitted particles' does, beyond ``tolerance`` plus 3
    standard errors (the check set's own noise is no alarm). ``fitted``, ``check``: (start, end)
    per-particle shares (n, groups). What both sets share (the error of the forward reference
    v_p, the time steps) cancels in the comparison; what is left is how the gain carries over."""
    # the fitted particles hold the identity by construction, so their change is what the shared
    # effects make it, without sampling noise of its own: the check set's error is the comparison's
    (fitted_ratio, _), (check_ratio, check_error) = _drift(*fitted), _drift(*check)
    drift, error = check_ratio / fitted_ratio - 1, check_error / fitted_ratio
    excess = np.abs(drift) - tolerance - 3 * error
    if excess.max() > 0:
        worst = int(excess.argmax())
        warnings.warn(f"calibrate_flow: on {check[0].shape[0]} unfitted particles the calibrated ODE moves "
                      f"spread / v_p {drift.mean():+.1%} away from the fitted particles' on average over "
                      f"{drift.size} group(s), "
                      f"{drift[worst]:+.1%} +- {error[worst]:.1%} in the group of coordinate "
                      f"{np.flatnonzero(groups == worst)[0]}, beyond check_tolerance = {tolerance:g}: the gain carries "
                      f"the sampling error of its n = {fitted[0].shape[0]} particles; increase n", RuntimeWarning,
                      stacklevel=3)


def _forward_moments(numeric: NumericSDE, x0: np.ndarray, times: np.ndarray, rng, max_step: float,
                     chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (K, m) of X_t at the increasing ``times`` (K,) > 0 from X_0 = x0, by
    Euler-Maruyama with steps of at most ``max_step``, ``chunk`` paths at a time."""
    total, squares = np.zeros((times.size, x0.shape[1])), np.zeros((times.size, x0.shape[1]))
    for start in range(0, x0.shape[0], chunk):
        x, t = np.array(x0[start:start + chunk], dtype=np.float64), 0.0
        for k, t_next in enumerate(times):
            steps = max(1, int(np.ceil((t_next - t) / max_step - 1e-9)))
            h = (t_next - t) / steps
            for i in range(steps):
                x = numeric.euler_step(t + i * h, x, h, rng)
            t = t_next
            total[k] += x.sum(axis=0)
            squares[k] += (x**2).sum(axis=0)
    mean = total / x0.shape[0]
    return mean, np.maximum(squares / x0.shape[0] - mean**2, np.finfo(np.float64).tiny)
