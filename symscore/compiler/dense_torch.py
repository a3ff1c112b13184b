"""The loop form of a block over torch tensors: the recursion of docs/math.md on (paths, lanes, ...) tensors.

The tensor twin of :mod:`symscore.compiler.dense` (the numba loop form): the same coefficient
tables, the same carried state and the same left-point Euler step, written with batched matrix
products and einsums over leading (paths, lanes) axes instead of index loops. Like the numba form
it carries Ht = C Zh - Q in place of docs/math.md's Q: on the grid
C_{k+1} Zh_{k+1} - Q_{k+1} = Ht_k + C_{k+1} dZh_k exactly, and the weight needs only Ht
(v = tr Zh - Cr^-1 : Q = Cr^-1 : (Ht + ridge Zh), see :func:`dense_weight`).

This text is rendered verbatim into torch modules that have a loop-form block; the generated code
supplies each block's factors and tables as a :data:`LoopForm`. Shapes: x, M (..., w); Y, Yi,
C (..., w, w); Zh, Ht, R, P (..., w, w, w); sigma (..., w, e); G (..., e, w, w); Hs (..., e, w, w, w).
"""
from __future__ import annotations

import collections
import math

import torch

__all__ = ["DenseState", "LoopForm", "dense_coefficients", "dense_init", "dense_step", "dense_weight", "dense_health"]

#: The carried state of a loop-form block (Ht = C Zh - Q; P only for sigma(t, x)).
DenseState = collections.namedtuple("DenseState", ["x", "Y", "Yi", "M", "C", "Zh", "Ht", "R", "P"])

#: What the generated code gives of a block: ``factors(t, x)`` -> the distinct factors (x a tuple of
#: w tensors); ``tables`` {name: (shape, flat index, coefficient, which factor; -1: constant)};
#: the flags of the step; ``rank_one`` = (which, U, V, V2), H = sum_k factor[which[k]] U[k] (x) V[k] (x) V2[k].
LoopForm = collections.namedtuple("LoopForm", ["factors", "tables", "second_order", "state_dependent", "keep_p",
                                               "keep_psi", "rank_one"])


def dense_coefficients(t, x, factors, tables):
    """The coefficient arrays {name: (..., *shape)} at (t, x): entry k of a table is coefficient[k] *
    factor[which[k]], or coefficient[k] where which[k] = -1; "factor" holds the factors and a last 1."""
    batch, dtype, device = x.shape[:-1], x.dtype, x.device
    values = factors(t, tuple(x.unbind(-1)))
    factor = torch.stack([torch.broadcast_to(torch.as_tensor(v, dtype=dtype, device=device), batch) for v in values]
                         + [torch.ones(batch, dtype=dtype, device=device)], dim=-1)  # the last: constants
    arrays = {}
    for name, (shape, index, coefficient, which) in tables.items():
        flat = torch.zeros(batch + (math.prod(shape),), dtype=dtype, device=device)
        index = torch.as_tensor(index, dtype=torch.long, device=device)
        coefficient = torch.as_tensor(coefficient, dtype=dtype, device=device)
        which = torch.as_tensor(which, dtype=torch.long, device=device)
        flat[..., index] = coefficient * factor[..., which]  # which = -1 picks the constant 1
        arrays[name] = flat.reshape(batch + tuple(shape))
    arrays["factor"] = factor
    return arrays


def dense_init(x0):
    """The state at t = 0 from the tuple x0 of w tensors: Y = Yi = I, every integral 0."""
    x = torch.stack(x0, dim=-1)
    w = x.shape[-1]
    eye = torch.eye(w, dtype=x.dtype, device=x.device).expand(x.shape[:-1] + (w, w))
    cube = torch.zeros(x.shape[:-1] + (w, w, w), dtype=x.dtype, device=x.device)
    return DenseState(x, eye.clone(), eye.clone(), torch.zeros_like(x), torch.zeros_like(eye), cube, cube, cube, cube)


# ---- one Euler step, one function per formula
def noise_terms(Yi, sigma):
    """A = Yi sigma and S = A A^T: the noise seen through the inverse first variation."""
    A = Yi @ sigma
    return A, A @ A.transpose(-1, -2)


def variation_of_noise(Yi, G, Y):
    """K_l = Yi G_l Y (..., e, w, w) for sigma(t, x)."""
    return torch.einsum("...jp,...lpq,...qb->...ljb", Yi, G, Y)


def psi_term(C, A, K):
    """Psi[i; j, c] = sum_a C[i, a] sum_l (K_l[j, a] A[c, l] + A[j, l] K_l[c, a])."""
    inner = torch.einsum("...lja,...cl->...jac", K, A) + torch.einsum("...jl,...lca->...jac", A, K)
    return torch.einsum("...ia,...jac->...ijc", C, inner)


def r_increment(HtP, S, psi, dt):
    """(HtP S + S HtP^T - Psi) dt, HtP = Ht (+ P)."""
    return (torch.einsum("...ija,...ac->...ijc", HtP, S) + torch.einsum("...ja,...ica->...ijc", S, HtP) - psi) * dt


def zh_increment(co, Yi, Y, dw, dt, state_dependent, rank_one):
    """dZh = Yi T[Y., Y.] dt (+ sum_l Yi Hs_l[Y., Y.] dW_l), T = H (- sum_l G_l Hs_l); with rank-one
    terms (sigma(t), H has no table) the sum over terms of g_k (Yi u_k) (x) (Y^T v_k) (x) (Y^T v'_k) dt."""
    if rank_one[0]:
        which = torch.as_tensor(rank_one[0], dtype=torch.long, device=Y.device)
        U, V, V2 = (torch.as_tensor(a, dtype=Y.dtype, device=Y.device) for a in rank_one[1:])
        g = co["factor"][..., which] * dt  # (..., K); which = -1: the constant 1
        return torch.einsum("...k,...ik,...ka,...kc->...iac", g, Yi @ U.T, (Y.transpose(-1, -2) @ V.T).transpose(-1, -2),
                            (Y.transpose(-1, -2) @ V2.T).transpose(-1, -2))
    T = co["H"]
    if state_dependent:
        T = T - torch.einsum("...lpu,...luqr->...pqr", co["G"], co["Hs"])
    dZh = torch.einsum("...ip,...pqr,...qa,...rc->...iac", Yi, T, Y, Y) * dt
    if state_dependent:
        dZh = dZh + torch.einsum("...ip,...lpqr,...qa,...rc,...l->...iac", Yi, co["Hs"], Y, Y, dw)
    return dZh


def first_variation_step(co, dw, dt, Y, Yi, state_dependent):
    """Y += E Y and Yi += Yi (-E + (G dW)^2) with E = J dt (+ sum_l G_l dW_l)."""
    E = co["J"] * dt
    if not state_dependent:
        return Y + E @ Y, Yi - Yi @ E
    GdW = torch.einsum("...lpq,...l->...pq", co["G"], dw)
    E = E + GdW
    return Y + E @ Y, Yi - Yi @ E + Yi @ GdW @ GdW


def dense_step(t, dt, dw, state, form):
    """One left-point Euler step of the state (a :data:`DenseState`) of the block ``form`` (a
    :data:`LoopForm`); dw is a tuple of e tensors. Every right-hand side is taken at t_k.

    sigma(t, x): K_l = Yi G_l Y, R's increment contracts Ht + P and subtracts Psi, P += A_l K_l dt
    (``keep_p``/``keep_psi`` False leave out P or Psi: wrong targets, for tests)."""
    x, Y, Yi, M, C, Zh, Ht, R, P = state
    dw = torch.stack(dw, dim=-1)
    co = dense_coefficients(t, x, form.factors, form.tables)
    A, S = noise_terms(Yi, co["sigma"])
    if form.second_order:
        HtP, psi = Ht, 0.0
        if form.state_dependent:
            K = variation_of_noise(Yi, co["G"], Y)
            if form.keep_p:
                HtP = Ht + P
            if form.keep_psi:
                psi = psi_term(C, A, K)
            if form.keep_p:
                P = P + torch.einsum("...il,...ljb->...ijb", A, K) * dt
        R = R + r_increment(HtP, S, psi, dt)
        dZh = zh_increment(co, Yi, Y, dw, dt, form.state_dependent, form.rank_one)
        Ht = Ht + torch.einsum("...ia,...jac->...ijc", C + S * dt, dZh)  # C_{k+1} dZh
        Zh = Zh + dZh
    M = M + (A @ dw.unsqueeze(-1)).squeeze(-1)
    C = C + S * dt
    Y, Yi = first_variation_step(co, dw, dt, Y, Yi, form.state_dependent)
    x = x + co["b"] * dt + (co["sigma"] @ dw.unsqueeze(-1)).squeeze(-1)
    return DenseState(x, Y, Yi, M, C, Zh, Ht, R, P)


# ---- the weight at a record time
def dense_weight(ridge, cond_max, state, form):
    """X, the target -Yi^T (Cr^-1 M + v - Cr^-1 rho) with Cr = C + ridge I, and whether Cr is
    positive definite with condition estimate w sum_a Cr_aa (Cr^-1)_aa below cond_max.

    v = tr Zh - Cr^-1 : Q (+ Cr^-1 : P) with Q = C Zh - Ht; as Cr^-1 C = I - ridge Cr^-1, that is
    v_c = sum_ij Cr^-1_ij (Ht + ridge Zh (+ P))[i, j, c]; rho = Cr^-1 : R."""
    x, Y, Yi, M, C, Zh, Ht, R, P = state
    w = x.shape[-1]
    Cr = C + ridge * torch.eye(w, dtype=x.dtype, device=x.device)
    L, info = torch.linalg.cholesky_ex(Cr)
    Cinv = torch.cholesky_inverse(L)
    g = (Cinv @ M.unsqueeze(-1)).squeeze(-1)
    if form.second_order:
        carried = Ht + ridge * Zh
        if form.keep_p:
            carried = carried + P
        v = torch.einsum("...ij,...ijc->...c", Cinv, carried)
        rho = torch.einsum("...ij,...ijc->...c", Cinv, R)
        g = g + v - (Cinv @ rho.unsqueeze(-1)).squeeze(-1)
    target = -torch.einsum("...ia,...i->...a", Yi, g)
    condition = w * (torch.diagonal(Cr, dim1=-2, dim2=-1) * torch.diagonal(Cinv, dim1=-2, dim2=-1)).sum(-1)
    ok = (info == 0) & (condition < cond_max)
    return x.unbind(-1), target.unbind(-1), ok


def dense_health(state):
    """Sums of X, of Y and Yi, and of C (bits 1, 2, 4): finite while the path is sound."""
    return ((1, state.x.sum(-1)), (2, state.Y.sum((-2, -1)) + state.Yi.sum((-2, -1))), (4, state.C.sum((-2, -1))))
