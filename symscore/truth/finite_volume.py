"""p_t of a low-dimensional SDE (m = 1 or 2) from a finite-volume solution of its Fokker-Planck equation.

The law of X_t solves, in flux form,

    d p / dt = -div J,    J_i = (b_i - (div D)_i / 2) p - (1/2) sum_j D_ij d_j p,    D = sigma sigma^T,

(the Ito Fokker-Planck equation d_t p = -d_i (b_i p) + (1/2) d_i d_j (D_ij p), with the divergence of D
moved into the advection so that only first derivatives of p remain). On a uniform box of cells, each
cell's value of p changes by what crosses its faces (a finite-volume balance):

* **Diagonal part, exponential fitting (Scharfetter-Gummel / Chang-Cooper).** Along axis i, with the
  advection a = b_i - (div D)_i / 2 and the diffusion d = D_ii / 2 taken at the face between cells k and
  k + 1 and the Peclet number z = a h / d,

      J = (d / h) [B(-z) p_k - B(z) p_k+1],      B(z) = z / (e^z - 1)   (Bernoulli function),

  the flux that is exact for the one-dimensional equation with constant a and d across the face. It is
  the centred flux where diffusion dominates (z -> 0: second order) and upwinding where it degenerates
  (d -> 0: J = max(a, 0) p_k + min(a, 0) p_k+1), so degenerate and hypoelliptic noise (the position of
  a critically damped Langevin, D = diag(0, 4)) need nothing special; its off-diagonal entries are
  >= 0, so it keeps p non-negative.
* **Faces without noise (d = 0 exactly).** Upwinding is first order (its numerical diffusion |a| h / 2
  cost the Langevin example 6% of its score at 192^2 cells), so there, by default, the face value is
  the upwind-biased third-order kappa = 1/3 reconstruction, J = a (5/6 p_k + 1/3 p_k+1 - 1/6 p_k-1)
  for a > 0 (mirrored for a < 0; 0.05% at 192^2). It is linear but not monotone: tiny negative values
  can appear in the tails. ``noiseless="upwind"`` keeps Scharfetter-Gummel's limit.
* **Cross part (m = 2).** Centred differences for -(1/2) D_12 d_j p (d_j p in the two cells beside the
  face, averaged to it) are not monotone: with D = [[1, 0.8], [0.8, 1]] they gave p_t negative down to
  -5e-4 max p_t and a useless log p at 128^2. So by default the largest share of D_12 that keeps the
  rest positive on the axes, c = sign(D_12) min(|D_12|, D_11 h2/h1, D_22 h1/h2), is diffusion along a
  grid diagonal: D = D' + c w w^T with w = (h1, +-h2) / sqrt(h1 h2), discretised as an exchange
  c / (2 h1 h2) (p_B - p_A) between diagonal neighbours (c taken at their shared corner), and the
  axis diffusions shrink to D'_11 = D_11 - |c| h1/h2, D'_22 = D_22 - |c| h2/h1 (their exponential
  fitting uses these). Any rest D_12 - c (D not diagonally dominant on the grid) stays centred.
  Monotone where the rest is 0; O(h^2) with a larger constant than the axis terms
  (``cross="centred"`` puts all of D_12 in centred differences).
* **Zero flux** through the box's edges, so the total mass is conserved to the time solver's tolerance;
  the box must hold the mass at all times (checked: the outer two cell layers).

The operator L(t) (dp/dt = L(t) p) is a scipy.sparse matrix assembled without loops over cells. In time:

* coefficients free of t (OU, Benes, Langevin) and a moderate ||t L||_1 (at most 1000 for m = 1,
  8000 for m = 2, where BDF's sparse LU costs more): p_t = exp(t L) p_0
  by ``scipy.sparse.linalg.expm_multiply``, exact in time (``method="expm"``); its cost grows like
  ||t L||_1 matrix-vector products, so a stiffer operator (fine cells, a large D such as GBM's
  s^2 x^2 far out) goes to BDF instead;
* otherwise, and always when the coefficients depend on t (VP's beta(t)): ``solve_ivp`` with the
  stiff solver ``"BDF"`` (or ``"Radau"``), the sparse operator as its Jacobian, rtol 1e-6 and atol
  1e-10 max p_0 by default (the time error then sits far below the O(h^2) space error).

The unknowns are taken as centre values (the initial cell averages, from Gauss quadrature, are turned
into centre values to O(h^4): Scharfetter-Gummel's discrete equilibrium is exp(-U) at the centres).
The spatial error is O(h^2) (O(h) along a noiseless direction with ``noiseless="upwind"``). Density
and score at any point come from a cubic spline of log p through the cell values (score = its
gradient), accurate where p_t has mass; the error of the score is estimated by solving again on a
grid with half the cells per axis (:attr:`FokkerPlanckSolution.error_estimate`).
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sparse
from numpy.polynomial.legendre import leggauss
from scipy.integrate import solve_ivp
from scipy.interpolate import RectBivariateSpline, make_interp_spline
from scipy.sparse.linalg import expm_multiply
from threadpoolctl import threadpool_limits

from .._errors import SymscoreError
from ..learn.numeric_sde import NumericSDE
from .mixture import GaussianMixture, check_points
from .solution import Solution, check_times

__all__ = ["FokkerPlanckSolution", "fokker_planck", "Grid"]

#: keyword options of :func:`fokker_planck` and their defaults
OPTIONS = {
    "method": "auto",             # "auto", "expm", "BDF" or "Radau"
    "rtol": 1e-6,                 # solve_ivp's relative tolerance
    "atol": None,                 # solve_ivp's absolute tolerance (default 1e-10 max p_0)
    "estimate_error": True,       # solve again with half the cells per axis for error_estimate
    "error_tolerance": 0.05,      # warn (naming cells) when error_estimate exceeds it
    "edge_tolerance": 1e-6,       # error (naming bounds) when the outer two cell layers hold more
    "quadrature": 3,              # Gauss-Legendre points per axis and cell for averaging p_0
    "cells_per_std": 8,           # automatic cells: this many per the smallest standard deviation
    "n_paths": 4000,              # automatic bounds: Euler paths
    "n_steps": 200,               # automatic bounds: Euler steps on [0, max(times)]
    "seed": 0,                    # automatic bounds: seed of p_0's samples and the Euler noise
    "noiseless": "third-order",   # faces with D_ii = 0: "third-order" (kappa = 1/3) or "upwind" (SG's limit)
    "cross": "diagonal",          # D_12: "diagonal" (grid-diagonal diffusion, rest centred) or "centred"
}
_MIN_CELLS_PER_STD = 3.0
_WIDENINGS = 4  # automatic bounds: how many times they may double when the law reaches their edge
_REFINEMENTS = 3  # automatic cells: how many times they may grow 1.5x while the error estimate is too large
_UNRESOLVED = 0.5  # an error estimate above this is an error naming cells (the truth is not known to 50%)
_AUTO_CELLS = {1: (800, 4000), 2: (64, 192)}  # automatic cells per axis: (fewest, most); 1-D is cheap (800 cells: 0.3 s)
# "auto" uses expm_multiply when ||t L||_1 is at most this, else BDF (whose sparse LU is cheap in 1-D)
_EXPM_MAX_NORM = {1: 1000.0, 2: 8000.0}
_LOG_FLOOR = 1e-14  # log p is taken of max(p, 1e-14 max p): the score is flat where p is below it


@dataclass(frozen=True)
class Grid:
    """A uniform box of cells: ``lo``, ``hi`` (m,) its corners, ``cells`` the cells per axis."""

    lo: tuple
    hi: tuple
    cells: tuple

    @property
    def m(self) -> int:
        return len(self.cells)

    @property
    def shape(self) -> tuple:
        return tuple(self.cells)

    @property
    def h(self) -> np.ndarray:
        """(m,) cell widths."""
        return (np.array(self.hi) - np.array(self.lo)) / np.array(self.cells)

    @property
    def volume(self) -> float:
        return float(np.prod(self.h))

    @property
    def centres(self) -> list[np.ndarray]:
        """Per axis, the (cells_i,) cell centres."""
        return [lo + h * (np.arange(n) + 0.5) for lo, h, n in zip(self.lo, self.h, self.cells)]

    @property
    def bounds(self) -> tuple:
        return tuple(zip(self.lo, self.hi))

    def points(self) -> np.ndarray:
        """All cell centres, (n_cells, m), in C order (the order of the flattened values)."""
        mesh = np.meshgrid(*self.centres, indexing="ij")
        return np.stack([c.ravel() for c in mesh], axis=1)

    def coarsen(self) -> Grid:
        """The same box with half the cells per axis."""
        return Grid(self.lo, self.hi, tuple(n // 2 for n in self.cells))

    def cell_averages(self, density, order: int) -> np.ndarray:
        """The average of ``density`` over each cell by ``order``-point Gauss-Legendre per axis, shape ``shape``."""
        nodes, weights = leggauss(order)
        total = np.zeros(self.shape)
        for offsets in np.ndindex(*(order,) * self.m):
            shift = np.array([nodes[o] for o in offsets]) * self.h / 2
            weight = np.prod([weights[o] / 2 for o in offsets])
            total += weight * np.asarray(density(self.points() + shift)).reshape(self.shape)
        return total


class _Operator:
    """L(t) with dp/dt = L(t) p on a :class:`Grid` (p flattened in C order), assembled per call."""

    def __init__(self, numeric, grid: Grid, third_order: bool = True, split_cross: bool = True):
        self.numeric, self.grid, self.m = numeric, grid, grid.m
        self.third_order, self.split_cross = third_order, split_cross
        index = np.arange(int(np.prod(grid.shape))).reshape(grid.shape)
        centres, h = grid.centres, grid.h
        self.axes = []
        for i in range(self.m):
            left = np.take(index, np.arange(grid.cells[i] - 1), axis=i).ravel()
            right = np.take(index, np.arange(1, grid.cells[i]), axis=i).ravel()
            coordinates = list(centres)
            coordinates[i] = grid.lo[i] + h[i] * np.arange(1, grid.cells[i])  # interior faces
            mesh = np.meshgrid(*coordinates, indexing="ij")
            faces = np.stack([c.ravel() for c in mesh], axis=1)
            # the next cells out along axis i (for the third-order face values of a noiseless direction)
            stride = int(np.prod(grid.shape[i + 1:]))
            position = np.take(np.indices(grid.shape)[i], np.arange(grid.cells[i] - 1), axis=i).ravel()
            outer = (np.where(position >= 1, left - stride, -1), np.where(position + 2 <= grid.cells[i] - 1,
                                                                            right + stride, -1))
            self.axes.append((left, right, faces, outer))
        n = index.size
        if self.m == 2:
            # cross flux -(1/2) D_ij d_j p: d_j p in each cell (centred, one-sided at the edge), averaged to the face
            self.cross = []
            for i, j in ((0, 1), (1, 0)):
                left, right, faces, _ = self.axes[i]
                g = _derivative_matrix(grid.cells[j], h[j])
                eye = sparse.identity(grid.cells[i], format="csr")
                derivative = sparse.kron(g, eye) if j == 0 else sparse.kron(eye, g)
                rows = np.arange(left.size)
                average = sparse.csr_matrix((np.full(2 * rows.size, 0.5), (np.r_[rows, rows], np.r_[left, right])),
                                            shape=(rows.size, n))
                divergence = sparse.csr_matrix((np.r_[np.full(rows.size, -1 / h[i]), np.full(rows.size, 1 / h[i])],
                                                (np.r_[left, right], np.r_[rows, rows])), shape=(n, rows.size))
                self.cross.append((divergence, (average @ derivative).tocsr()))
            # interior corners and the diagonal neighbours around each: (k, l)-(k+1, l+1) and (k, l+1)-(k+1, l)
            mesh = np.meshgrid(*[lo + step * np.arange(1, cells) for lo, step, cells in zip(grid.lo, h, grid.cells)],
                               indexing="ij")
            self.corners = np.stack([c.ravel() for c in mesh], axis=1)
            self.diagonals = ((index[:-1, :-1].ravel(), index[1:, 1:].ravel()),
                              (index[:-1, 1:].ravel(), index[1:, :-1].ravel()))
        self.n = n

    def coefficients(self, t: float, points: np.ndarray):
        """(advection b - (div D) / 2 of shape (n, m), D of shape (n, m, m)) at ``points``."""
        numeric = self.numeric
        with np.errstate(all="ignore"):  # non-finite values are reported below, with a point
            a = numeric.drift(t, points)
            if numeric.state_dependent:
                D = numeric.diffusion_at(t, points)
                a = a - 0.5 * numeric.diffusion_divergence(t, points)
            else:  # sigma(t): one D for every point
                D = np.broadcast_to(numeric.diffusion_matrix(t), (points.shape[0], self.m, self.m))
        finite = np.isfinite(a).all(axis=1) & np.isfinite(D).all(axis=(1, 2))
        if not finite.all():
            raise SymscoreError(f"sde: the coefficients of {numeric.sde.name!r} are not finite at t = {t:g}, "
                                f"x = {points[~finite][0].tolist()} (inside the grid); choose bounds where b and "
                                "sigma are finite")
        return a, D

    def diagonal_share(self, D: np.ndarray) -> np.ndarray:
        """c = sign(D_12) min(|D_12|, D_11 h2 / h1, D_22 h1 / h2): the part of D_12 carried by diffusion
        along a grid diagonal, c w w^T with w = (h1, +-h2) / sqrt(h1 h2) (what is left of D stays
        positive semi-definite on the axes: D_11 - |c| h1 / h2 >= 0, D_22 - |c| h2 / h1 >= 0)."""
        h1, h2 = self.grid.h
        if not self.split_cross:
            return np.zeros(D.shape[0])
        return np.sign(D[:, 0, 1]) * np.minimum(np.abs(D[:, 0, 1]),
                                                np.maximum(np.minimum(D[:, 0, 0] * h2 / h1, D[:, 1, 1] * h1 / h2), 0))

    def __call__(self, t: float) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        extra = None
        h = self.grid.h
        for i, (left, right, faces, (far_left, far_right)) in enumerate(self.axes):
            a, D = self.coefficients(t, faces)
            a, d = a[:, i], D[:, i, i] / 2
            if self.m == 2:
                share = self.diagonal_share(D)
                d = np.maximum(d - 0.5 * np.abs(share) * (h[0] / h[1] if i == 0 else h[1] / h[0]), 0.0)
                rest = D[:, 0, 1] - share
                if np.any(rest != 0):  # the rest of D_12: centred differences averaged to the face
                    divergence, gradient = self.cross[i]
                    term = divergence @ sparse.diags(-0.5 * rest) @ gradient
                    extra = term if extra is None else extra + term
            # J = sum_c w_c p_c over the stencil cells c of each face
            stencil = [(left, _fitted_weight(-a, d, h[i])), (right, -_fitted_weight(a, d, h[i]))]
            if self.third_order:
                stencil = _third_order_where_noiseless(stencil, a, d, left, right, far_left, far_right)
            for cells, w in stencil:
                keep = w != 0
                rows += [left[keep], right[keep]]
                cols += [cells[keep], cells[keep]]
                vals += [-w[keep] / h[i], w[keep] / h[i]]
        if self.m == 2:
            # diagonal diffusion (1/2) d_w (c d_w p): exchange between diagonal neighbours, c / (2 h1 h2)
            share = self.diagonal_share(self.coefficients(t, self.corners)[1])
            for (first, second), weight in zip(self.diagonals, (np.maximum(share, 0), np.maximum(-share, 0))):
                keep = weight != 0
                w = weight[keep] / (2 * h[0] * h[1])
                first, second = first[keep], second[keep]
                rows += [first, first, second, second]
                cols += [first, second, first, second]
                vals += [-w, w, w, -w]
        L = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(self.n, self.n))
        return L if extra is None else (L + extra).tocsr()


def _third_order_where_noiseless(stencil, a, d, left, right, far_left, far_right):
    """On faces with d = 0, J = a p_face with the upwind-biased third-order face value (the kappa = 1/3
    scheme): p_face = 5/6 p_k + 1/3 p_k+1 - 1/6 p_k-1 for a > 0 (mirrored for a < 0), first-order
    upwind where the far cell lies outside the box."""
    (_, w_left), (_, w_right) = stencil
    zero = d == 0
    plus, minus = np.where(zero, np.maximum(a, 0.0), 0.0), np.where(zero, np.minimum(a, 0.0), 0.0)
    has_left, has_right = far_left >= 0, far_right >= 0
    w_left = np.where(zero, np.where(has_left, 5 / 6, 1.0) * plus + np.where(has_right, 1 / 3, 0.0) * minus, w_left)
    w_right = np.where(zero, np.where(has_left, 1 / 3, 0.0) * plus + np.where(has_right, 5 / 6, 1.0) * minus, w_right)
    w_far_left = np.where(zero & has_left, -plus / 6, 0.0)
    w_far_right = np.where(zero & has_right, -minus / 6, 0.0)
    return [(left, w_left), (right, w_right), (np.maximum(far_left, 0), w_far_left),
            (np.maximum(far_right, 0), w_far_right)]


def _fitted_weight(a, d, h):
    """(d / h) B(a h / d) with B(z) = z / (e^z - 1), and its limit max(-a, 0) where d = 0 (upwinding)."""
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        z = np.where(d > 0, a * h / np.where(d > 0, d, 1.0), np.copysign(np.inf, a))
        bernoulli = np.where(np.abs(z) < 1e-8, 1 - z / 2, z / np.expm1(z))
        return np.where(np.abs(z) > 700, np.maximum(-a, 0.0), d / h * bernoulli)


def _point_values(averages: np.ndarray) -> np.ndarray:
    """Centre values from cell averages to O(h^4): p(x_c) = avg - sum_i h_i^2 p_ii / 24 + ..., with the
    second derivatives from second differences of the averages (ends left as they are)."""
    out = averages.copy()
    for i in range(averages.ndim):
        inner = [slice(None)] * averages.ndim
        inner[i] = slice(1, -1)
        out[tuple(inner)] -= np.diff(averages, n=2, axis=i) / 24
    return out


def _derivative_matrix(n: int, h: float) -> sparse.csr_matrix:
    """d/dx on n cells: centred inside, one-sided in the first and last cell."""
    upper, lower = np.full(n - 1, 0.5 / h), np.full(n - 1, -0.5 / h)
    upper[0], lower[-1] = 1 / h, -1 / h
    diagonal = np.zeros(n)
    diagonal[0], diagonal[-1] = -1 / h, 1 / h
    return sparse.diags([lower, diagonal, upper], [-1, 0, 1], format="csr")


class FokkerPlanckSolution(Solution):
    """p_t on a grid at ``times``, from :func:`fokker_planck`.

    Attributes:
        grid: the :class:`Grid` (``grid.centres``, ``grid.bounds``, ``grid.cells``).
        values: (K, *cells) p_t at the cell centres at each time (for plotting: ``values[k]`` against
            ``grid.centres``; ``values[k].sum() * grid.volume`` is ``mass[k]``).
        mass: (K,) total probability in the box at each time (1 up to the time solver's tolerance).
        error_estimate: (K,) the p_t-weighted relative L2 difference of the score to the solution on a grid
            with half the cells per axis, sqrt(sum p |s_h - s_2h|^2 / sum p |s_h|^2) over the cell centres:
            about the error of the score for a first-order direction (upwinding), about 3 times it where the
            scheme is second order; NaN when ``estimate_error=False``.
        method: how time was stepped (``"expm"``, ``"BDF"`` or ``"Radau"``).
        coarse: the half-cells solution behind ``error_estimate`` (None if not computed).
    """

    kind = "Fokker-Planck"

    def __init__(self, sde, times, grid: Grid, values: np.ndarray, method: str):
        super().__init__(sde, times)
        self.grid, self.values, self.method = grid, values, method
        self.mass = values.reshape(values.shape[0], -1).sum(axis=1) * grid.volume
        self.error_estimate = np.full(self.times.size, np.nan)
        self.coarse = None

    @cached_property
    def _splines(self) -> list:
        """Per time, a cubic spline of log max(p, 1e-14 max p) through the cell centres."""
        splines = []
        for p in self.values:
            log_p = np.log(np.maximum(p, _LOG_FLOOR * p.max()))
            if self.m == 1:
                spline = make_interp_spline(self.grid.centres[0], log_p, k=3)
                splines.append((spline, spline.derivative()))
            else:
                splines.append(RectBivariateSpline(*self.grid.centres, log_p, kx=3, ky=3, s=0))
        return splines

    def _inside(self, x: np.ndarray) -> np.ndarray:
        return np.all((x >= np.array(self.grid.lo)) & (x <= np.array(self.grid.hi)), axis=1)

    def _log_density(self, x: np.ndarray, k: int) -> np.ndarray:
        if self.m == 1:
            return self._splines[k][0](x[:, 0])
        return self._splines[k].ev(x[:, 0], x[:, 1])

    def density(self, x, t) -> np.ndarray:
        """p_t(x), shape (n,): exp of the spline of log p inside the box, 0 outside it."""
        k = self.time_index(t)
        x = check_points(x, self.m)
        inside = self._inside(x)
        out = np.zeros(x.shape[0])
        if inside.any():
            out[inside] = np.exp(self._log_density(x[inside], k))
        return out

    def score(self, x, t) -> np.ndarray:
        """grad log p_t(x), shape (n, m): the gradient of the spline of log p. Points outside the box raise
        (the grid knows nothing there); where p_t < 1e-14 max p_t the spline is flat and the score ~ 0."""
        k = self.time_index(t)
        x = check_points(x, self.m)
        inside = self._inside(x)
        if not inside.all():
            row = int(np.flatnonzero(~inside)[0])
            raise SymscoreError(f"x: {int((~inside).sum())} point(s) lie outside the grid's bounds "
                                f"{self.grid.bounds} (first: row {row}, {x[row].tolist()}); the score is known "
                                "only inside the box: widen bounds")
        if self.m == 1:
            return self._splines[k][1](x[:, 0])[:, None]
        spline = self._splines[k]
        return np.stack([spline.ev(x[:, 0], x[:, 1], dx=1), spline.ev(x[:, 0], x[:, 1], dy=1)], axis=1)

    def sample(self, n: int, t, seed: int = 0) -> np.ndarray:
        """n draws from the grid law at t: a cell with probability its mass, then uniform inside the cell
        (a histogram of p_t: its law differs from p_t by O(h), like the grid solution itself)."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise SymscoreError(f"n: expected an integer >= 1, got {n!r}")
        p = np.maximum(self.values[self.time_index(t)].ravel(), 0.0)
        rng = np.random.default_rng(seed)
        cell = rng.choice(p.size, size=int(n), p=p / p.sum())
        corner = np.stack(np.unravel_index(cell, self.grid.shape), axis=1)
        return np.array(self.grid.lo) + (corner + rng.uniform(size=(int(n), self.m))) * self.grid.h

    def score_difference(self, other: Solution) -> np.ndarray:
        """(K,) sqrt(sum p |s - s_other|^2 / sum p |s|^2) over this grid's cell centres, p = this p_t."""
        points = self.grid.points()
        out = np.empty(self.times.size)
        for k, t in enumerate(self.times):
            p = np.maximum(self.values[k].ravel(), 0.0)
            keep = p > 1e-10 * p.max()
            s = self.score(points[keep], t)
            diff = s - other.score(points[keep], t)
            out[k] = np.sqrt(np.sum(p[keep] * np.sum(diff**2, axis=1)) / np.sum(p[keep] * np.sum(s**2, axis=1)))
        return out


# -- input checks ---------------------------------------------------------------------------------------
def _check_options(options: dict) -> dict:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise SymscoreError(f"{unknown[0]}: not an option of fokker_planck; expected one of {sorted(OPTIONS)}")
    merged = {**OPTIONS, **options}
    if merged["method"] not in ("auto", "expm", "BDF", "Radau"):
        raise SymscoreError(f"method: expected one of 'auto', 'expm', 'BDF', 'Radau', got {merged['method']!r}")
    for name in ("rtol", "error_tolerance", "edge_tolerance", "cells_per_std"):
        value = merged[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (0 < value < np.inf):
            raise SymscoreError(f"{name}: expected a positive number, got {value!r}")
    if merged["atol"] is not None and (isinstance(merged["atol"], bool) or not isinstance(merged["atol"], numbers.Real)
                                       or not merged["atol"] > 0):
        raise SymscoreError(f"atol: expected a positive number or None, got {merged['atol']!r}")
    for name, low in (("quadrature", 1), ("n_paths", 100), ("n_steps", 10), ("seed", 0)):
        value = merged[name]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            raise SymscoreError(f"{name}: expected an integer >= {low}, got {value!r}")
    if merged["noiseless"] not in ("third-order", "upwind"):
        raise SymscoreError(f"noiseless: expected 'third-order' or 'upwind', got {merged['noiseless']!r}")
    if merged["cross"] not in ("diagonal", "centred"):
        raise SymscoreError(f"cross: expected 'diagonal' or 'centred', got {merged['cross']!r}")
    if not isinstance(merged["estimate_error"], bool):
        raise SymscoreError(f"estimate_error: expected True or False, got {merged['estimate_error']!r}")
    return merged


def _check_bounds(bounds, m: int) -> tuple[tuple, tuple]:
    expected = "(lo, hi)" if m == 1 else "((lo1, hi1), (lo2, hi2))"
    try:
        array = np.asarray(bounds, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is not None and m == 1 and array.shape == (2,):
        array = array[None]
    if array is None or array.shape != (m, 2) or not np.isfinite(array).all() or np.any(array[:, 1] <= array[:, 0]):
        raise SymscoreError(f"bounds: expected {expected} with finite lo < hi, got {bounds!r}")
    return tuple(array[:, 0].tolist()), tuple(array[:, 1].tolist())


def _check_cells(cells, m: int) -> tuple:
    values = [cells] * m if isinstance(cells, numbers.Integral) and not isinstance(cells, bool) else cells
    try:
        values = list(values)
    except TypeError:
        values = None
    if values is None or len(values) != m or any(isinstance(c, bool) or not isinstance(c, numbers.Integral)
                                                 or c < 8 for c in values):
        raise SymscoreError(f"cells: expected an integer >= 8 or {m} such integers (one per coordinate), got {cells!r}")
    return tuple(int(c) for c in values)


def _check_p0(p0, m: int):
    """p0 as a vectorised density x (n, m) -> (n,), checked on a few points."""
    if isinstance(p0, GaussianMixture):
        if p0.m != m:
            raise SymscoreError(f"p0: expected a GaussianMixture in m = {m} dimensions (the SDE's), got m = {p0.m}")
        return p0.density
    if not callable(p0):
        raise SymscoreError(f"p0: expected a GaussianMixture or a callable density f(x (n, {m})) -> (n,), "
                            f"got {type(p0).__name__}")

    def density(x):
        try:
            values = np.asarray(p0(x), dtype=np.float64)
        except Exception as exc:  # the user's function: report what it did with an (n, m) array
            raise SymscoreError(f"p0: calling it on points of shape {x.shape} failed ({type(exc).__name__}: {exc}); "
                                f"expected a density f(x (n, {m})) -> (n,)") from exc
        if values.shape != (x.shape[0],):
            raise SymscoreError(f"p0: expected values of shape ({x.shape[0]},) for points of shape {x.shape}, "
                                f"got shape {values.shape}")
        if not np.isfinite(values).all() or (values < 0).any():
            raise SymscoreError("p0: expected finite non-negative density values")
        return values

    return density


# -- automatic grid -------------------------------------------------------------------------------------
def _auto_bounds(numeric, p0: GaussianMixture, t_max: float, options: dict) -> tuple[tuple, tuple, np.ndarray]:
    """Bounds from Euler paths started at p0's samples: per axis, over every step of [0, t_max],
    the 0.1% and 99.9% quantiles widened by 3 standard deviations of that step (about 6 sigma for a
    Gaussian, where the outer cells hold ~1e-9). Also returns the smallest per-step standard deviation."""
    x = p0.sample(options["n_paths"], options["seed"])
    rng = np.random.default_rng(options["seed"] + 1)
    n_steps = options["n_steps"] if t_max > 0 else 0
    dt = t_max / max(n_steps, 1)
    lo, hi, smallest = np.full(x.shape[1], np.inf), np.full(x.shape[1], -np.inf), np.full(x.shape[1], np.inf)
    for k in range(n_steps + 1):
        finite = x[np.isfinite(x).all(axis=1)]
        if finite.shape[0] < x.shape[0] // 2:
            raise SymscoreError(f"bounds: the Euler paths that choose them blew up (step {k} of {n_steps}); "
                                "give bounds explicitly")
        q_lo, q_hi = np.quantile(finite, [0.001, 0.999], axis=0)
        std = finite.std(axis=0)
        lo, hi, smallest = np.minimum(lo, q_lo - 3 * std), np.maximum(hi, q_hi + 3 * std), np.minimum(smallest, std)
        if k < n_steps:
            with np.errstate(all="ignore"):
                x = numeric.euler_step(k * dt, finite, dt, rng)
    return tuple(lo.tolist()), tuple(hi.tolist()), smallest


def _conditional_stds(p0: GaussianMixture) -> np.ndarray:
    """(K, m) the standard deviation of each component along each axis given the other coordinates,
    1 / sqrt((Sigma^-1)_ii): the width of a thin diagonal ridge as a grid line crosses it."""
    return 1 / np.sqrt(np.diagonal(np.linalg.inv(p0.covs), axis1=1, axis2=2))


def _auto_cells(width: np.ndarray, scale: np.ndarray, m: int, per_std: float) -> tuple:
    fewest, most = _AUTO_CELLS[m]
    cells = np.clip(np.ceil(width / scale * per_std), fewest, most).astype(int)
    return tuple(int(c + c % 2) for c in cells)


# -- the solver ---------------------------------------------------------------------------------------
def _evolve(numeric, grid: Grid, p_start: np.ndarray, times: np.ndarray, method: str, options: dict,
            constant: bool) -> np.ndarray:
    """p at ``times`` (K, n_cells) from the cell averages ``p_start`` at t = 0; ``constant``: the
    operator does not depend on t (assembled once)."""
    operator = _operator(numeric, grid, options)
    out = np.empty((times.size, p_start.size))
    positive = times > 0
    out[~positive] = p_start
    if not positive.any():
        return out
    if method == "expm":
        L, p, t_prev = operator(0.0), p_start, 0.0
        for k in np.flatnonzero(positive):
            p = expm_multiply(L * (times[k] - t_prev), p)
            out[k], t_prev = p, times[k]
        return out
    cache = {}

    def jacobian(t, p=None):
        if constant:
            t = 0.0
        if cache.get("t") != t:
            cache["t"], cache["L"] = t, operator(t)
        return cache["L"]

    atol = options["atol"] if options["atol"] is not None else 1e-10 * p_start.max()
    result = solve_ivp(lambda t, p: jacobian(t) @ p, (0.0, float(times[-1])), p_start, method=method,
                       t_eval=times[positive], jac=jacobian, rtol=options["rtol"], atol=atol)
    if not result.success:
        raise SymscoreError(f"method: solve_ivp({method!r}) failed ({result.message}); try the other stiff method")
    out[positive] = result.y.T
    return out


def _operator(numeric, grid: Grid, options: dict) -> _Operator:
    return _Operator(numeric, grid, options["noiseless"] == "third-order", options["cross"] == "diagonal")


def _auto_method(numeric, grid: Grid, t_max: float, options: dict) -> str:
    """"expm" when exp(t L) p costs little (expm_multiply takes about ||t L||_1 products with L), else
    "BDF" (a few hundred sparse solves whatever the stiffness)."""
    norm = abs(_operator(numeric, grid, options)(0.0)).sum(axis=0).max()
    return "expm" if norm * t_max <= _EXPM_MAX_NORM[grid.m] else "BDF"


def _solve_on(numeric, grid: Grid, density, times, method, options, constant: bool) -> FokkerPlanckSolution:
    """Cell-average p0, evolve, wrap (no checks beyond p0's mass)."""
    p_start = grid.cell_averages(density, options["quadrature"])
    box_mass = p_start.sum() * grid.volume
    if not box_mass > 1 - 1e-6:
        raise SymscoreError(f"bounds: the box {grid.bounds} holds {box_mass:.8g} of p0's mass, expected at least "
                            "1 - 1e-6; widen bounds (or, for a callable p0, check that it integrates to 1)")
    p_start = np.maximum(_point_values(p_start), 0.0)
    p_start = p_start / (p_start.sum() * grid.volume)
    with threadpool_limits(1, user_api="blas"):  # BLAS threads only slow vector norms of this size down
        values = _evolve(numeric, grid, p_start.ravel(), times, method, options, constant)
    return FokkerPlanckSolution(numeric.sde, times, grid, values.reshape((times.size, *grid.shape)), method)


def _make_grid(p0, density, lo, hi, cells, spread, options) -> Grid:
    """The grid on (lo, hi), with automatic cells if ``cells`` is None; errors if it does not resolve p0."""
    m = len(lo)
    if cells is None:
        scale = np.full(m, np.inf) if spread is None else spread.copy()
        if isinstance(p0, GaussianMixture):
            scale = np.minimum(scale, _conditional_stds(p0).min(axis=0))
        width = np.array(hi) - np.array(lo)
        cells = _auto_cells(width, np.where(np.isfinite(scale), scale, width / 50), m, options["cells_per_std"])
    grid = Grid(lo, hi, _check_cells(cells, m))
    if isinstance(p0, GaussianMixture):
        per_std = _conditional_stds(p0) / grid.h
        if per_std.min() < _MIN_CELLS_PER_STD:
            k, i = np.unravel_index(np.argmin(per_std), per_std.shape)
            raise SymscoreError(f"cells: component {k} of p0 has {per_std[k, i]:.2f} cells per standard deviation "
                                f"along axis {i} (cells {grid.cells}, bounds {grid.bounds}); expected at least "
                                f"{_MIN_CELLS_PER_STD:g}: raise cells or narrow bounds")
    else:
        # an unresolved p0 shows as a gap between its cell averages and its centre values (~ (h/std)^2 / 24)
        averages = grid.cell_averages(density, options["quadrature"])
        gap = np.abs(averages - density(grid.points()).reshape(grid.shape)).sum() / max(averages.sum(), 1e-300)
        if gap > 5e-3:
            raise SymscoreError(f"cells: the grid {grid.cells} on bounds {grid.bounds} does not resolve p0 (its "
                                f"cell averages differ from its centre values by {gap:.2g} in L1, expected < 5e-3 "
                                "~ 3 cells per standard deviation): raise cells or narrow bounds")
    return grid


def fokker_planck(sde, p0, times, cells=None, bounds=None, **options) -> FokkerPlanckSolution:
    """p_t at ``times`` for an SDE with m = 1 or 2, from a finite-volume solution of its Fokker-Planck equation.

    Args:
        sde: an :class:`~symscore.SDE` with m = 1 or 2 (any d; drift b(t, x); diffusion sigma(t) or
            sigma(t, x), degenerate noise allowed).
        p0: the law of X_0: a :class:`~symscore.truth.GaussianMixture` or a callable density
            f(x (n, m)) -> (n,) integrating to 1 over R^m. Its cell averages (Gauss quadrature) must
            hold at least 1 - 1e-6 of it (else an error naming ``bounds``); they are renormalised.
        times: increasing times in [0, T] (0 allowed: p_0 on the grid).
        cells: cells per axis (an int, or one int >= 8 per coordinate). Default: 8 cells per the
            smallest standard deviation (p0's components given the other coordinates, and the Euler
            paths' spread at every step), at least 800 (m = 1) / 64 (m = 2), at most 4000 / 192.
        bounds: the box, ``(lo, hi)`` for m = 1 or ``((lo1, hi1), (lo2, hi2))``. Default (mixture p0
            only): per axis over every step of a 200-step Euler simulation of 4000 paths from p0's
            samples on [0, max(times)], the 0.1% and 99.9% quantiles widened by 3 standard deviations
            of that step (about 6 sigma for a Gaussian); doubled about their centre (up to 4 times)
            while the solution reaches their edge (heavy tails). Required for a callable p0.
        **options: ``method`` ("auto": "expm" when b and sigma are free of t and ||t_max L||_1 is
            at most 1000 (m = 1) / 8000 (m = 2), else "BDF"; or "expm", "BDF", "Radau"), ``rtol`` (1e-6), ``atol`` (1e-10 max p_0), ``estimate_error``
            (True), ``error_tolerance`` (0.05), ``edge_tolerance`` (1e-6), ``quadrature`` (3 Gauss
            points per axis and cell), ``cells_per_std`` (8), ``n_paths``, ``n_steps``, ``seed`` (the
            automatic bounds).

    Returns:
        A :class:`FokkerPlanckSolution`: ``density``, ``score``, ``sample`` at each of ``times``,
        ``mass``, ``error_estimate``, ``grid`` and ``values``.

    Raises :class:`~symscore.SymscoreError` for m > 2, a p0 of the wrong dimension, a box that loses
    mass (p0 not inside it, or more than ``edge_tolerance`` in its outer two cell layers at some
    requested time: widen ``bounds``), a mixture component narrower than 3 cells per standard
    deviation or a callable p0 the grid does not resolve (``cells``), or coefficients that are not
    finite on the grid, or an ``error_estimate`` above 0.5 (p_t not resolved: ``cells``); with
    automatic cells, refines them (1.5x per axis, up to the cap, at most 3 times) while the estimate
    exceeds ``error_tolerance``, then warns if it still does, as it does for given cells; warns when
    p_t has negative values beyond round-off.

    >>> import symscore as ss
    >>> p0 = ss.truth.GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[0.1]], [[0.1]]])
    >>> fp = ss.truth.fokker_planck(ss.library.benes(m=1), p0, [0.5, 1.0])   # doctest: +SKIP
    >>> fp.score([[0.3]], 1.0)                                              # doctest: +SKIP
    """
    if not hasattr(sde, "m") or not hasattr(sde, "bound_drift"):
        raise SymscoreError(f"sde: expected an ss.SDE, got {type(sde).__name__}")
    if sde.m > 2:
        raise SymscoreError(f"sde: the Fokker-Planck grid handles m = 1 or 2, {sde.name!r} has m = {sde.m}; "
                            "for a linear SDE from a GaussianMixture use ss.truth.linear_mixture (any m)")
    m = sde.m
    times = check_times(times, sde)
    options = _check_options(options)
    density = _check_p0(p0, m)
    numeric = NumericSDE(sde)
    depends_on_t = any(sde.time in e.free_symbols for e in (*sde.bound_drift(), *sde.bound_diffusion()))
    method = options["method"]
    if method == "expm" and depends_on_t:
        raise SymscoreError(f"method: 'expm' needs coefficients free of t; {sde.name!r} depends on t (use 'BDF')")

    # the grid: automatic bounds are widened (2x, up to 4 times) while the law reaches their edge
    spread, automatic = None, bounds is None
    if automatic:
        if not isinstance(p0, GaussianMixture):
            raise SymscoreError("bounds: required for a callable p0 (a GaussianMixture p0 gets them from an "
                                "Euler simulation of its samples); pass bounds=(lo, hi) or ((lo1, hi1), (lo2, hi2))")
        lo, hi, spread = _auto_bounds(numeric, p0, float(times[-1]), options)
    else:
        lo, hi = _check_bounds(bounds, m)
    for attempt in range(_WIDENINGS + 1 if automatic else 1):
        grid = _make_grid(p0, density, lo, hi, cells, spread, options)
        if method == "auto":
            chosen = "BDF" if depends_on_t else _auto_method(numeric, grid, float(times[-1]), options)
        else:
            chosen = method
        solution = _solve_on(numeric, grid, density, times, chosen, options, not depends_on_t)
        try:
            _check_solution(solution, options)
            break
        except SymscoreError:
            if not automatic or attempt == _WIDENINGS:
                raise
            centre, half = (np.array(lo) + np.array(hi)) / 2, (np.array(hi) - np.array(lo)) / 2
            lo, hi = tuple((centre - 2 * half).tolist()), tuple((centre + 2 * half).tolist())
    method = chosen
    if not options["estimate_error"]:
        return solution
    # automatic cells are refined (x 1.5 per axis, up to the cap) while the estimate exceeds the
    # tolerance: the cells were chosen from p0 and the paths' spread, not from p_t's finest feature
    for refinement in range(_REFINEMENTS + 1):
        coarse = _solve_on(numeric, grid.coarsen(), density, times, method, options, not depends_on_t)
        solution.coarse = coarse
        solution.error_estimate = solution.score_difference(coarse)
        most = _AUTO_CELLS[m][1]
        if (cells is not None or solution.error_estimate.max() <= options["error_tolerance"]
                or max(grid.cells) >= most or refinement == _REFINEMENTS):
            break
        grid = Grid(grid.lo, grid.hi, tuple(min(most, int(np.ceil(1.5 * c / 2)) * 2) for c in grid.cells))
        solution = _solve_on(numeric, grid, density, times, method, options, not depends_on_t)
        _check_solution(solution, options)
    worst = int(np.argmax(solution.error_estimate))
    if solution.error_estimate[worst] > _UNRESOLVED:
        raise SymscoreError(f"cells: the grid {grid.cells} on bounds {grid.bounds} does not resolve p_t: the score's "
                            f"refinement error estimate is {solution.error_estimate[worst]:.3g} at "
                            f"t = {solution.times[worst]:g} (above {_UNRESOLVED:g}); raise cells or narrow bounds")
    if solution.error_estimate[worst] > options["error_tolerance"]:
        warnings.warn(f"fokker_planck: the score's refinement error estimate is {solution.error_estimate[worst]:.3g} "
                      f"at t = {solution.times[worst]:g} (cells {grid.cells}), above error_tolerance "
                      f"{options['error_tolerance']:g}: raise cells", RuntimeWarning, stacklevel=2)
    return solution


def _check_solution(solution: FokkerPlanckSolution, options: dict) -> None:
    """Mass at the box's edge (an error naming bounds) and negative values beyond round-off (a warning)."""
    grid, volume = solution.grid, solution.grid.volume
    edge = np.zeros(grid.shape, dtype=bool)
    for i in range(grid.m):
        index = [slice(None)] * grid.m
        for layer in (0, 1, -2, -1):
            index[i] = layer
            edge[tuple(index)] = True
    for k, t in enumerate(solution.times):
        p = solution.values[k]
        at_edge = np.abs(p[edge]).sum() * volume
        if at_edge > options["edge_tolerance"]:
            raise SymscoreError(f"bounds: at t = {t:g} the outer two cell layers of the box {grid.bounds} hold "
                                f"{at_edge:.3g} of the mass (edge_tolerance {options['edge_tolerance']:g}): the law "
                                "reaches the box's edge, where the zero-flux wall distorts it; widen bounds")
        if p.min() < -1e-9 * p.max():
            warnings.warn(f"fokker_planck: p_t has negative values down to {p.min() / p.max():.3g} max p_t at "
                          f"t = {t:g} (centred cross terms and third-order noiseless faces are not monotone): raise cells", RuntimeWarning,
                          stacklevel=3)
