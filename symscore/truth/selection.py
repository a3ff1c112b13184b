"""The truth for an SDE and an initial law: the closed form where one exists, else Fokker-Planck."""
from __future__ import annotations

from .._errors import SymscoreError
from .finite_volume import fokker_planck
from .linear import is_linear, linear_mixture
from .mixture import GaussianMixture
from .solution import Solution

__all__ = ["solve"]


def solve(sde, p0, times, method: str = "auto", **fokker_planck_options) -> Solution:
    """p_t at ``times``.

    ``method="auto"`` (default): exact (:func:`linear_mixture`) for a linear SDE with sigma(t) from a
    :class:`GaussianMixture`, else :func:`fokker_planck` (m = 1 or 2) with the given options;
    ``"closed form"`` or ``"fokker-planck"`` ask for one. Solver options with an exact truth at hand
    are refused rather than silently trading it for a grid: pass ``method="fokker-planck"``.
    """
    if method not in ("auto", "closed form", "fokker-planck"):
        raise SymscoreError(f"method: expected 'auto', 'closed form' or 'fokker-planck', got {method!r}")
    exact = isinstance(p0, GaussianMixture) and p0.m == sde.m and is_linear(sde)
    if method == "closed form" or (method == "auto" and exact):
        if fokker_planck_options:
            raise SymscoreError(f"{sorted(fokker_planck_options)[0]}: an option of the Fokker-Planck grid, but "
                                f"{sde.name!r} from this p0 has a closed form; pass method='fokker-planck' to "
                                "solve on a grid anyway")
        return linear_mixture(sde, p0, times)
    if sde.m > 2:
        why = "p0 is not a GaussianMixture" if is_linear(sde) else "it is nonlinear or its sigma depends on the state"
        raise SymscoreError(f"sde: {sde.name!r} has no closed form here ({why}), and the Fokker-Planck grid needs "
                            f"m <= 2; it has m = {sde.m}")
    return fokker_planck(sde, p0, times, **fokker_planck_options)
