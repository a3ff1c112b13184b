"""The smallest record time of a training run, chosen from how the noise reaches the state.

Training regresses targets at record times t >= t_min. Where the noise acts on every coordinate
from t = 0, the Malliavin matrix C_t ~ t and any t_min > 0 works (1e-3 by default). Where it
reaches some coordinates only through the drift (hypoelliptic SDEs: a pendulum with noise on the
momentum), the left-point Euler scheme's C is singular for the first few steps, so the default
waits for the steps the scheme needs (:func:`choose_t_min`, :mod:`symscore.symbolic.noise_reach`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .._errors import SDESpecError, SymscoreError
from ..compiler.runtime import TimeGrid
from ..spec.sde import SDE

__all__ = ["DEFAULT_T_MIN", "TMinChoice", "choose_t_min"]


#: The smallest record time when the SDE asks for no more (the noise acts on every coordinate from t = 0).
DEFAULT_T_MIN = 1e-3


@dataclass(frozen=True)
class TMinChoice:
    """The smallest record time of a run and why (:func:`choose_t_min`).

    Attributes:
        t_min: the value used (the run record's ``t_min``).
        first_step: the first grid step k (time k dt) that may be recorded.
        invertible_steps: the left-point Euler C is singular before this step (the noise needs
            r + 1 steps to reach a coordinate of bracket depth r).
        resolved_steps: the step from which the scheme's C resolves C_t's small-t growth
            (2 r + 1 steps; :mod:`symscore.symbolic.noise_reach`).
        dt: the grid's step, T / n_steps.
        explicit: whether the user gave t_min (or the record times).
        reason: one sentence for run records and summaries.
    """

    t_min: float
    first_step: int
    invertible_steps: int
    resolved_steps: int
    dt: float
    explicit: bool
    reason: str


def _state_name(sde, i: int) -> str:
    return str(sde.state[i])


def _why(sde, reach) -> str:
    """How the noise reaches the coordinates, in words (for :class:`TMinChoice`)."""
    parts = []
    deep = sorted((r, i) for i, r in enumerate(reach.depth) if r)
    if not deep:
        parts.append("the noise acts on every coordinate directly" + ("" if any(reach.delay) else " (C_t ~ t)"))
    else:
        chains = []
        for r, i in sorted(deep, reverse=True)[:3]:
            chain = [i]
            while reach.via[chain[-1]] is not None:
                chain.append(reach.via[chain[-1]])
            path = " -> ".join(_state_name(sde, k) for k in reversed(chain))
            chains.append(f"{_state_name(sde, i)} only through the drift ({path}: bracket depth {r}, "
                          f"C_t[{_state_name(sde, i)}, {_state_name(sde, i)}] ~ t^{2 * r + 1})")
        more = len(deep) - len(chains)
        parts.append("the noise reaches " + "; ".join(chains) + (f"; and {more} more coordinates" if more > 0 else ""))
    delayed = [i for i, (r, a) in enumerate(zip(reach.depth, reach.delay)) if r is not None and a]
    if delayed:
        names = ", ".join(_state_name(sde, i) for i in delayed)
        parts.append(f"sigma vanishes at t = 0 where it drives {names}, so the first Euler step adds no noise there")
    return "; ".join(parts)


def choose_t_min(sde: SDE, n_steps: int, t_min: float | None = None, times=None,
                 target: str = "malliavin") -> TMinChoice:
    """The smallest record time for ``sde`` on the grid of ``n_steps`` steps, and why.

    The left-point Euler scheme's Malliavin matrix C_k = dt sum_{j<k} A_j A_j^T is singular before
    step r + 1 + a, where r is the largest bracket depth of the SDE (the drift couplings the noise
    needs to reach a coordinate) and a = 1 when sigma vanishes at t = 0; from step 2 r + 1 + a on
    it resolves C_t's t^(2 r + 1) growth within a factor 2 and is no worse conditioned than C_t
    (:mod:`symscore.symbolic.noise_reach`). The default (``t_min=None``) is therefore
    max(1e-3, (2 r + 1 + a) dt): 1e-3, the old default, for an SDE whose noise acts on every
    coordinate from t = 0, and (2 r + 1 + a) dt otherwise (a damped pendulum with noise on the
    momentum, r = 1: 3 dt). With fixed ``times`` and no t_min, the first of them.

    An explicit ``t_min`` (or ``times``) is used as given; for a target that inverts the scheme's
    C (the ``malliavin`` family) one below step r + 1 + a is an error that says what to pass, as is
    a coordinate the noise never reaches.
    """
    from .targets import TARGETS

    dt = sde.T / n_steps
    reach = sde.derive().noise_reach
    inverts = TARGETS.lookup(target).inverts_malliavin_matrix
    if inverts and reach.unreached:
        names = ", ".join(_state_name(sde, i) for i in reach.unreached)
        raise SDESpecError(f"diffusion: the noise never reaches {names}: no column of sigma acts on it and its drift "
                           "depends on no coordinate the noise reaches, so the Malliavin matrix C_t is singular at "
                           f"every t and target={target!r} is undefined; add noise to {names} or couple its drift "
                           "to a noisy coordinate")
    least, resolved = reach.invertible_steps, reach.resolved_steps
    why = _why(sde, reach)
    if t_min is not None and t_min >= sde.T:
        raise SymscoreError(f"t_min: expected t_min < T = {sde.T}, got {t_min}")
    if times is not None:
        first = int(TimeGrid.from_times(times, n_steps, sde.T, end=sde.T).record_steps[0])
    elif t_min is not None:
        first = max(1, math.ceil(t_min / dt - 1e-9))
    else:  # the default: wait for the scheme's C only where the target inverts it
        usual = max(1, math.ceil(DEFAULT_T_MIN / dt - 1e-9))
        first = max(usual, resolved) if inverts else usual
        if DEFAULT_T_MIN >= sde.T:
            raise SymscoreError(f"t_min: expected t_min < T = {sde.T}; the default {DEFAULT_T_MIN:g} is not, so pass "
                                f"a smaller t_min")
        if first > n_steps:
            raise SymscoreError(f"n_steps: {n_steps} Euler steps are too few for {sde.name!r}: {why}, so the scheme's "
                                f"C_t needs {resolved} steps before the first record time; pass n_steps >= "
                                f"{2 * resolved}")
    if inverts and first < least:
        given = f"t_min = {t_min:g}" if times is None else f"times[0] = {first * dt:g}"
        what = (f"Pass t_min >= {least * dt:g}, or leave t_min out (the default here is "
                f"{max(DEFAULT_T_MIN, resolved * dt):g})" if times is None else
                f"Start the record times at or after t = {least * dt:g} (from {resolved * dt:g} the scheme also "
                f"resolves C_t's small-t growth)")
        raise SymscoreError(f"{'t_min' if times is None else 'times'}: {given} lets records start at step {first} "
                            f"(t = {first * dt:g}, dt = {dt:g}), but {why}: the Euler scheme's Malliavin matrix C_t is "
                            f"singular before step {least} (t = {least * dt:g}). {what}")
    if t_min is not None:
        value, how = float(t_min), "given"
    elif times is not None:
        value, how = min(DEFAULT_T_MIN, first * dt), "from the record times"
    else:
        value = DEFAULT_T_MIN if first == usual else float(f"{first * dt:.12g}")
        how = "chosen"
    if resolved == 1:
        reason = f"t_min = {value:g} {how}: {why}"
    else:
        reason = (f"t_min = {value:g} {how} (first record step {first} of {n_steps}, dt = {dt:g}): {why}; the "
                  f"left-point Euler C_t is invertible from step {least} and resolves its small-t growth from step "
                  f"{resolved}")
    return TMinChoice(value, first, least, resolved, dt, t_min is not None or times is not None, reason)
