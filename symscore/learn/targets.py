"""Regression targets for score matching, all drawn on the same time grid k dt (dt = T / n_steps).

Each target source turns a batch of data points x0 and record steps into X_t samples and, for the
regression targets, a per-sample vector whose conditional mean given X_t is the score:

* ``malliavin``: the compiled kernel's Malliavin-Bismut target (any SDE; docs/math.md). Unbiased up to
  the Euler bias O(dt) of the weight.
* ``dsm``: denoising score matching with the exact Gaussian transition of a linear SDE:
  X_t = Phi_t x0 + o_t + L_t z (Sigma_t = L_t L_t^T), target = -Sigma_t^-1 (X_t - Phi_t x0 - o_t).
* ``stf``: the ``dsm`` target averaged over a reference set (the stable target field of Xu et
  al., ICLR 2023): the row's own x0 and R other data points x0_i, weighted by the posterior
  w_i ∝ p_t(X_t | x0_i): target = -Sigma_t^-1 (X_t - Phi_t sum_i w_i x0_i - o_t). With the others
  drawn independently of the row, its conditional mean is exactly the score (:class:`StableTargetSource`);
  near t = 0 the weights collapse onto the row's own x0 and it is the ``dsm`` target, while at large
  t, where the ``dsm`` target's noise is the size of the score and the score's non-Gaussian part is
  small, it averages the noise over the points the posterior spreads over (1 / sum w_i^2 of
  them: many in low dimension or at large t, about one for a field of m = 289 up to t = 1.5).
  Linear SDEs only, and it needs the training data.
* ``local``: the one-step Euler transition from X_{t-h} (any SDE, needs sigma sigma^T invertible):
  target = -(sigma sigma^T h)^-1 (X_t - X_{t-h} - b(t-h, X_{t-h}) h) with h = dt. Its conditional
  mean is the score up to O(h), but its variance grows like 1/h.
* ``malliavin-antithetic``: the ``malliavin`` target on antithetic pairs: rows 2j and 2j + 1 of a
  batch start from the same x0 (row 2j's) with increments dW and -dW. Same cost and conditional
  mean; the pair's targets are negatively correlated, so batch means (the loss gradient) vary less
  where the weight is close to odd in the noise (near-linear drifts, small t).
* ``malliavin-richardson``: 2 w(dt / 2) - w(dt) at the fine path's X_t, both weights from one
  Brownian path (the coarse increments are sums of pairs of fine ones). Cancels the weight's
  first-order Euler bias, not the O(dt) bias of the law of X_t itself; costs 3 passes of n_steps.
* ``malliavin-cv``: ``malliavin`` with a control variate, the weight of a second covering field
  u_r = a(r) A_r^T C_a^-1 Yi (a(r) = r) on the same path, coefficient estimated leaving the row out.
  Same conditional mean, two kernel passes; it cuts the variance only where the second-variation
  terms carry it (docs/math.md: for a linear drift the optimal coefficient is 0).
* ``first-order``: the ``malliavin`` weight with the second-variation terms dropped (the ablation of
  the Malliavin paper; the only public reproduction computes this). *Biased* for any nonlinear
  drift: kept to measure what those terms buy (``symscore.paper``, the Benes check of the demo).
* ``ssm``: sliced score matching on X_t samples (no target; the loss is
  E[ v^T d(s.v)/dx + (s.v)^2 / 2 ] with Rademacher v), any SDE.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from .._checks import positive_int
from .._errors import SymscoreError
from .._registry import Registry
from ..data import check_data
from .linear_moments import LinearMoments
from .numeric_sde import NumericSDE

__all__ = ["TARGETS", "TargetSource", "register_target", "make_target_source"]

#: Registered target sources by name (the ``target=`` of :func:`symscore.train` and the CLI).
TARGETS = Registry("target")
#: Class decorator: register a :class:`TargetSource` subclass under a name.
register_target = TARGETS.register


class TargetSource:
    """Draws (X_t, target) for record steps; ``batch`` returns arrays of shape (K, n, m) (numpy, or
    torch tensors on the training device).

    A subclass is constructed as ``cls(sde, n_steps, backend=..., ridge=..., device=..., data=...)``
    (a source takes the options it uses and ignores the others through ``**options``) and
    registered with :func:`register_target`.
    """

    has_target = True
    #: True when the target inverts the Euler scheme's Malliavin matrix C (its record times must
    #: start where C is invertible: :func:`symscore.learn.record_times.choose_t_min`).
    inverts_malliavin_matrix = False

    def __init__(self, sde, n_steps: int, **options):
        self.sde, self.n_steps, self.dt = sde, n_steps, sde.T / n_steps

    def batch(self, x0: np.ndarray, record_steps: np.ndarray, seed: int):
        raise NotImplementedError

    def batch_rows(self, x0: np.ndarray, record_steps: np.ndarray, seed: int, rows: slice):
        """The rows ``rows`` of ``batch(x0, ...)`` (one process's share of a global batch in
        multi-process training). Here: the whole batch, sliced; a source whose draws are keyed by
        path computes only its rows."""
        x, values = self.batch(x0, record_steps, seed)
        return x[:, rows], None if values is None else values[:, rows]


@register_target("malliavin")
class MalliavinSource(TargetSource):
    first_order_only = False
    inverts_malliavin_matrix = True

    def __init__(self, sde, n_steps, backend="numba", ridge=0.0, device=None, **options):
        super().__init__(sde, n_steps)
        from ..compiler.build import compile
        from ..compiler.variant import Variant

        self.kernel = compile(sde, backend=backend, device=device,
                              variant=Variant(first_order_only=self.first_order_only))
        self.ridge = ridge

    def batch(self, x0, record_steps, seed):
        """numba: numpy arrays; torch: tensors on the kernel's device (no trip through the host)."""
        return self.batch_rows(x0, record_steps, seed, slice(0, x0.shape[0]))

    def batch_rows(self, x0, record_steps, seed, rows):
        """Only the paths ``rows``: their increments are keyed by the global path index (path_offset)."""
        paths = self.kernel.simulate(x0[rows], record_steps * self.dt, int(record_steps[-1]), seed=seed,
                                     ridge=self.ridge, path_offset=rows.start)
        return paths.x.swapaxes(0, 1), paths.target.swapaxes(0, 1)


@register_target("dsm")
class DenoisingSource(TargetSource):
    name = "dsm"

    def __init__(self, sde, n_steps, **options):
        super().__init__(sde, n_steps)
        derivation = sde.derive()
        if not derivation.is_linear:
            why = ("its diffusion depends on the state" if derivation.state_dependent_diffusion
                   else f"it is {derivation.structure}")
            raise SymscoreError(f"target: '{self.name}' needs a linear SDE with sigma(t) (a Gaussian transition); "
                                f"{sde.name!r} is not: {why}. Use target='malliavin', 'local' or 'ssm'.")
        moments, times = LinearMoments(NumericSDE(sde)), np.arange(n_steps + 1) * self.dt
        #: Phi_t and Sigma_t diagonal: kept as (K, m) diagonals (a field at L = 32 has m = 1089)
        self.diagonal = moments.diagonal
        if self.diagonal:
            self.phi, self.offset, variance = moments.diagonal_moments(times)
            with np.errstate(invalid="ignore"):
                self.chol = np.where(variance > 0, np.sqrt(variance), np.nan)  # the Cholesky factor's diagonal
            return
        self.phi, self.offset, cov = moments(times)
        self.chol = np.full_like(cov, np.nan)  # NaN marks a singular Sigma_t (t = 0 always)
        for k in range(1, n_steps + 1):
            try:
                self.chol[k] = np.linalg.cholesky(cov[k])
            except np.linalg.LinAlgError:
                pass

    def batch(self, x0, record_steps, seed):
        x, z = self.states(x0, record_steps, seed)
        # -Sigma^-1 (x - mean) = -L^-T z
        return x, -np.stack([self.whiten(k, zk, transpose=True) for k, zk in zip(record_steps, z)])

    def states(self, x0, record_steps, seed):
        """(X_t, z) (K, n, m): X_t = Phi_t x0 + o_t + L_t z at each record step, z standard normal."""
        if np.isnan(self.chol[record_steps]).any():
            raise SymscoreError("target: the transition covariance Sigma_t is singular at a record time; "
                                "raise t_min")
        z = np.random.default_rng(seed).standard_normal((len(record_steps), x0.shape[0], self.sde.m))
        x = np.stack([self.transported(k, x0) + self.offset[k] + self.colour(k, zk) for k, zk in zip(record_steps, z)])
        return x, z

    def transported(self, k: int, points: np.ndarray) -> np.ndarray:
        """Phi_t x0 for each row of ``points`` at step k."""
        return points * self.phi[k] if self.diagonal else points @ self.phi[k].T

    def colour(self, k: int, rows: np.ndarray) -> np.ndarray:
        """L_t z for each row z (Sigma_t = L_t L_t^T)."""
        return rows * self.chol[k] if self.diagonal else rows @ self.chol[k].T

    def whiten(self, k: int, rows: np.ndarray, transpose: bool = False) -> np.ndarray:
        """L_t^-1 applied to each row (L_t^-T with ``transpose``)."""
        if self.diagonal:
            return rows / self.chol[k]
        return solve_triangular(self.chol[k], rows.T, lower=True, trans="T" if transpose else "N").T


@register_target("stf")
class StableTargetSource(DenoisingSource):
    """The denoising target averaged over a reference set of data points (module docstring).

    Each row (x0, X_t) gets the reference set {x0} ∪ D, where D is ``reference_size`` points drawn
    from ``data`` once per batch (independent of every row). With g_i = -Sigma_t^-1 (X_t - Phi_t x0_i
    - o_t) the denoising target of x0_i and weights w_i = p_t(X_t | x0_i) / sum_j p_t(X_t | x0_j),
    the target is sum_i w_i g_i.

    Why its conditional mean is the score: the joint density of (X_t, x0, x0_1..x0_R) is
    p(X_t | x0) prod p_data; the target is symmetric in the R + 1 points, so p(X_t | x0) may be
    replaced by its average over them, and then E[sum_i w_i g_i | X_t] = E[g | X_t] = grad log p_t.
    A set without the row's own x0 (all weights on independent points) is a self-normalised
    importance estimate instead, biased by O(1 / R); tests check that this variant fails.

    The weights use the whitened distance |L_t^-1 (X_t - o_t - Phi_t x0_i)|^2 (Sigma_t = L_t L_t^T),
    computed as cross terms (element-wise for a diagonal SDE, by triangular solves otherwise). Rows
    go in chunks, so a pilot batch of thousands of rows holds one chunk's weights at a time.
    """

    name = "stf"
    chunk = 1024
    #: the source takes the training data (``make_target_source(..., data=)``)
    needs_data = True

    def __init__(self, sde, n_steps, data=None, reference_size: int = 4096, **options):
        super().__init__(sde, n_steps)
        if data is None:
            raise SymscoreError("target: 'stf' averages over the training data and needs data (symscore.train "
                                "passes it)")
        self.data = check_data(data, sde.m)
        self.reference_size = positive_int(reference_size, "reference_size")

    def batch(self, x0, record_steps, seed):
        x, _ = self.states(x0, record_steps, seed)
        draws = np.random.default_rng([seed, 1]).integers(0, len(self.data), self.reference_size)
        return x, np.stack([self.target(k, xk, x0, self.data[draws]) for k, xk in zip(record_steps, x)])

    def target(self, k: int, x: np.ndarray, own: np.ndarray | None, reference: np.ndarray) -> np.ndarray:
        """sum_i w_i g_i at step k for states x (n, m) whose row j has the reference set
        {own[j]} ∪ reference (``own`` None: the reference set alone, the biased variant the tests
        use). In whitened coordinates u = L^-1 (x - o), v_i = L^-1 Phi x0_i:
        log w_i = u.v_i - |v_i|^2 / 2 + const and target = -L^-T (u - sum_i w_i v_i)."""
        u = self.whiten(k, x - self.offset[k])
        v = self.whiten(k, self.transported(k, reference))
        half_norms = 0.5 * np.einsum("ij,ij->i", v, v)
        residual = np.empty_like(u)
        for rows in (slice(i, i + self.chunk) for i in range(0, len(u), self.chunk)):
            logits = u[rows] @ v.T - half_norms
            if own is None:
                top = logits.max(axis=1, keepdims=True)
                weights = np.exp(logits - top)
                residual[rows] = u[rows] - weights @ v / weights.sum(axis=1, keepdims=True)
                continue
            v_own = self.whiten(k, self.transported(k, own[rows]))
            logit_own = np.einsum("ij,ij->i", u[rows], v_own) - 0.5 * np.einsum("ij,ij->i", v_own, v_own)
            top = np.maximum(logits.max(axis=1), logit_own)[:, None]
            weights, weight_own = np.exp(logits - top), np.exp(logit_own[:, None] - top)
            total = weights.sum(axis=1, keepdims=True) + weight_own
            residual[rows] = u[rows] - (weights @ v + weight_own * v_own) / total
        return -self.whiten(k, residual, transpose=True)


@register_target("local")
class LocalSource(TargetSource):
    def __init__(self, sde, n_steps, **options):
        super().__init__(sde, n_steps)
        self.numeric = NumericSDE(sde)

    def batch(self, x0, record_steps, seed):
        rng = np.random.default_rng(seed)
        steps = np.unique(np.concatenate([record_steps, record_steps - 1]))
        steps_positive = steps[steps > 0]
        x_at = dict(zip(steps_positive.tolist(), self.numeric.euler(x0, steps_positive, self.dt, rng)))
        x_at[0] = np.asarray(x0, dtype=np.float64)
        xs, targets = [], []
        for k in record_steps:
            before, after, t_before = x_at[int(k) - 1], x_at[int(k)], (int(k) - 1) * self.dt
            # sigma sigma^T h at the left point: one matrix for sigma(t), one per path for sigma(t, x)
            covariance = (self.numeric.diffusion_at(t_before, before) if self.numeric.state_dependent
                          else self.numeric.diffusion_matrix(t_before)) * self.dt
            try:
                precision = np.linalg.inv(covariance)
            except np.linalg.LinAlgError:
                precision = None
            if precision is None or not np.isfinite(precision).all() or np.max(np.linalg.cond(covariance)) > 1e12:
                raise SymscoreError("target: 'local' needs sigma sigma^T invertible at every record time; "
                                    f"it is singular at t = {t_before:g}")
            residual = after - before - self.numeric.drift(t_before, before) * self.dt
            xs.append(after)
            targets.append(-(np.einsum("nij,nj->ni", precision, residual) if precision.ndim == 3
                             else residual @ precision.T))
        return np.stack(xs), np.stack(targets)


@register_target("ssm")
class SlicedSource(TargetSource):
    has_target = False

    def __init__(self, sde, n_steps, **options):
        super().__init__(sde, n_steps)
        self.numeric = NumericSDE(sde)

    def batch(self, x0, record_steps, seed):
        return self.numeric.euler(x0, record_steps, self.dt, np.random.default_rng(seed)), None


@register_target("first-order")
class FirstOrderSource(MalliavinSource):
    """The ablation: the kernel built without the second variation (Zh, Q, R, P); a biased target."""

    first_order_only = True


@register_target("malliavin-antithetic")
class AntitheticSource(MalliavinSource):
    """Antithetic pairs: global rows 2j and 2j + 1 share x0 (row 2j's) and the increments of path j,
    with opposite signs. A batch of n rows costs what n ``malliavin`` paths cost."""

    def batch_rows(self, x0, record_steps, seed, rows):
        index = np.arange(rows.start, rows.stop)
        pair = index // 2
        first = int(pair[0]) if len(pair) else 0
        increments = self.kernel.increments(int(pair[-1]) - first + 1 if len(pair) else 0, int(record_steps[-1]),
                                            self.dt, seed, path_offset=first)
        dW = increments[pair - first] * np.where(index % 2 == 1, -1.0, 1.0)[:, None, None]
        paths = self.kernel.simulate(np.asarray(x0)[2 * pair], record_steps * self.dt, int(record_steps[-1]), dW=dW,
                                     ridge=self.ridge)
        return paths.x.swapaxes(0, 1), paths.target.swapaxes(0, 1)


@register_target("malliavin-richardson")
class RichardsonSource(MalliavinSource):
    """2 w(dt / 2) - w(dt) at the fine X_t: the fine pass has 2 n_steps steps, the coarse one n_steps,
    its increments summed in pairs from the fine ones (so the two weights share one Brownian path)."""

    def batch_rows(self, x0, record_steps, seed, rows):
        n_coarse = int(record_steps[-1])
        fine = self.kernel.increments(rows.stop - rows.start, 2 * n_coarse, self.dt / 2, seed, path_offset=rows.start)
        coarse = fine[:, 0::2] + fine[:, 1::2]
        times, x0 = record_steps * self.dt, np.asarray(x0)[rows]
        fine_paths = self.kernel.simulate(x0, times, 2 * n_coarse, dW=fine, ridge=self.ridge)
        coarse_paths = self.kernel.simulate(x0, times, n_coarse, dW=coarse, ridge=self.ridge)
        target = 2 * fine_paths.target - coarse_paths.target
        return fine_paths.x.swapaxes(0, 1), target.swapaxes(0, 1)


@register_target("malliavin-cv")
class ControlVariateSource(MalliavinSource):
    """w + c (w - w^a): the plain weight w with the weight w^a of the time-weighted covering field
    a(r) = r (docs/math.md, "Control variate") as a control variate; both kernels run on the same
    increments, so the difference has conditional mean 0 given X_t.

    c = -Cov(w, D) / Var(D) per record step and coordinate is estimated *leaving the row out*
    (from the other rows of the batch), so c is independent of the row's own noise and the target
    stays unbiased; a batch of n rows costs two kernel passes.
    """

    #: a(r) = r, evaluated at the right end of each step (the left-point rule samples a at t_k from
    #: t_0 = 0, where r itself would leave C_a singular after the first step)
    covering_weight = "t + dt"

    def __init__(self, sde, n_steps, backend="numba", ridge=0.0, device=None, **options):
        super().__init__(sde, n_steps, backend=backend, ridge=ridge, device=device)
        from ..compiler.build import compile
        from ..compiler.variant import Variant

        try:
            self.weighted = compile(sde, backend=backend, device=device,
                                    variant=Variant(covering_weight=self.covering_weight))
        except SymscoreError as exc:  # say which choice of the user's led there
            raise SymscoreError(f"target: 'malliavin-cv' is not available for this SDE ({exc}); "
                                "use target='malliavin'") from exc

    def batch_rows(self, x0, record_steps, seed, rows):
        x, plain = super().batch_rows(x0, record_steps, seed, rows)
        weighted = self.weighted.simulate(x0[rows], record_steps * self.dt, int(record_steps[-1]), seed=seed,
                                          ridge=self.ridge, path_offset=rows.start).target.swapaxes(0, 1)
        difference = plain - weighted
        return x, plain + leave_one_out_coefficient(plain, difference) * difference


def leave_one_out_coefficient(values, control):
    """c_i = -sum_{j != i} values_j control_j / sum_{j != i} control_j^2 over the rows (axis 1) of
    (K, n, m) arrays (numpy or torch), per record step and coordinate: the variance-optimal
    coefficient of a mean-zero control, independent of row i. 0 where the other rows' control vanishes."""
    cross = (values * control).sum(1)[:, None] - values * control
    power = (control * control).sum(1)[:, None] - control * control
    safe = power > 1e-300
    return -cross * safe / (power + ~safe)


def make_target_source(target: str, sde, n_steps: int, backend: str = "numba", ridge: float = 0.0,
                       device=None, data=None) -> TargetSource:
    """The :class:`TargetSource` registered as ``target`` (an unknown name lists the registered ones);
    ``data``: the training data, for a source that averages over it (``stf``)."""
    return TARGETS.lookup(target)(sde, n_steps, backend=backend, ridge=ridge, device=device, data=data)
