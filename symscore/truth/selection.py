"""The truth for an SDE and an initial law: the closed form where one exists, else Fokker-Planck."""
from __future__ import annotations

from .._errors import SymscoreError
from .fokker_planck import fokker_planck
from .linear import is_linear, linear_mixture
from .mixture import GaussianMixture
from .solution import Solution

__all__ = ["solve"]


def solve(sde, p0, times, **fokker_planck_options) -> Solution:
    """p_t at ``times``: exact (:func:`linear_mixture`) for a linear SDE with sigma(t) from a
    :class:`GaussianMixture`, else :func:`fokker_planck` (m = 1 or 2) with the given options."""
    if isinstance(p0, GaussianMixture) and p0.m == sde.m and is_linear(sde) and not fokker_planck_options:
        return linear_mixture(sde, p0, times)
    if sde.m > 2:
        raise SymscoreError(f"sde: the truth of a nonlinear SDE (or of a p0 other than a GaussianMixture) needs "
                            f"m <= 2 (a Fokker-Planck grid); {sde.name!r} has m = {sde.m}")
    return fokker_planck(sde, p0, times, **fokker_planck_options)
