"""Fixed-step integrators of ordinary differential equations dy/dt = f(t, y) on host (numpy) arrays.

Used after the kernel: the moments of a linear SDE (:class:`~symscore.learn.linear_moments.LinearMoments`),
the probability-flow ODE of the samplers and the likelihood. The state ``y`` is an array or a
tuple of arrays (integrated together, each with its own shape). Adaptive integration goes
through scipy's ``solve_ivp``, which needs no wrapper.

Classical RK4, global error O(h^4):

    k1 = f(t, y),  k2 = f(t + h/2, y + h/2 k1),  k3 = f(t + h/2, y + h/2 k2),  k4 = f(t + h, y + h k3),
    y(t + h) = y + h/6 (k1 + 2 k2 + 2 k3 + k4).
"""
from __future__ import annotations

__all__ = ["rk4_step", "rk4"]


def _shifted(y, h, k):
    """y + h k for an array or, entry by entry, a tuple of arrays."""
    if isinstance(y, tuple):
        return tuple(a + h * b for a, b in zip(y, k))
    return y + h * k


def rk4_step(rhs, t: float, y, h: float, t_next: float | None = None, k1=None):
    """One classical RK4 step of dy/dt = rhs(t, y) from t to t + h (h may be negative); ``t_next``
    is where the last stage is evaluated when the caller has it exactly (a grid point), else t + h;
    ``k1`` is rhs(t, y) when the caller has computed it already (one evaluation fewer)."""
    k1 = rhs(t, y) if k1 is None else k1
    k2 = rhs(t + h / 2, _shifted(y, h / 2, k1))
    k3 = rhs(t + h / 2, _shifted(y, h / 2, k2))
    k4 = rhs(t + h if t_next is None else t_next, _shifted(y, h, k3))
    if isinstance(y, tuple):
        return tuple(s + h / 6 * (a + 2 * b + 2 * c + d) for s, a, b, c, d in zip(y, k1, k2, k3, k4))
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def rk4(rhs, y, grid):
    """RK4 along the points of ``grid`` (increasing or decreasing); returns y at ``grid[-1]``."""
    for t0, t1 in zip(grid[:-1], grid[1:]):
        y = rk4_step(rhs, t0, y, t1 - t0, t1)
    return y
