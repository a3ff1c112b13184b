"""The reference implementation of the score-target scheme: the oracle every kernel is compared with.

Plain numpy on dense arrays, written straight from docs/math.md: J and H
come from SymPy's ``diff`` and ``lambdify`` of the drift, every process is a full m x m or
m x m x m array updated with ``einsum``. No CSE, no sparsity, no components or lanes, no structure
specialisation, no code generation. The step is the same left-point Euler step as the kernels'
(every right-hand side at t_k), with Yi carried by its own equation dYi = -Yi J dt, so with shared
increments the kernels must agree with it to rounding.

    A = Yi sigma,  S = A A^T,  M += A dW,  C += S dt,
    Q[i; j, b]  += sum_a S[i, a] Zh[j; a, b] dt,
    Ht[i; j, b]  = sum_a C[i, a] Zh[j; a, b] - Q[i; j, b],
    R[i; j, c]  += sum_b (Ht[i; j, b] S[b, c] + S[j, b] Ht[i; c, b]) dt,
    Zh[i; a, b] += sum_{p,q,w} Yi[i, p] H[p; q, w] Y[q, a] Y[w, b] dt,
    Y += J Y dt,  Yi -= Yi J dt,  X += b dt + sigma dW;

at a record time, with Cr = C + ridge I,

    v_b = sum_j Zh[j; j, b] - sum_{ij} Cr^-1_ij Q[i; j, b],   rho_c = sum_{ij} Cr^-1_ij R[i; j, c],
    target = -Yi^T (Cr^-1 M + v - Cr^-1 rho).

For a state-dependent sigma(t, x) (G_l = d sigma_l / dx, Hs_l = d^2 sigma_l / dx^2 by SymPy here
too), the general weight of docs/math.md, with RK and RPsi carried separately:

    Y += J Y dt + G_l Y dW_l,   Yi += -Yi J dt - Yi G_l dW_l + Yi G_l G_k dW_l dW_k,
    Zh += Yi (H - G_l Hs_l)[Y., Y.] dt + Yi Hs_l[Y., Y.] dW_l,   K_l = Yi G_l Y,
    P[i; j, b] += A[i, l] K_l[j, b] dt,   RK += (P S + S P^T) dt,
    RPsi[i; j, c] += sum_a C[i, a] (K_e[j, a] A[c, e] + A[j, e] K_e[c, a]) dt,
    v += <Cr^-1, P>,   rho = <Cr^-1, R + RK - RPsi>   (sums over repeated l, k, e).
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp

# Contraction order chosen by numpy: the four- and five-operand products are O(n m^7) summed naively.
einsum = functools.partial(np.einsum, optimize=True)


def _lambdified(exprs, args, shape):
    """exprs (a flat list) -> f(t, X) returning an (n, *shape) array (constants broadcast)."""
    f = sp.lambdify(args, list(exprs), modules=["scipy", "numpy"])

    def evaluate(t_value, X):
        n = X.shape[0]
        values = f(t_value, *X.T)
        flat = [np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in values]
        return np.stack(flat, axis=1).reshape((n, *shape))

    return evaluate


def reference_simulate(sde, x0, times, n_steps, dW, ridge=0.0, first_order_only=False, drop=(),
                       covering_weight=None, negate=()):
    """(x, target) of shape (n, K, m) for shared increments dW (n, n_steps, d); ``drop`` may name
    "P" or "RPsi" (the wrong variants of a state-dependent sigma), ``negate`` "R" (the R part
    + C^-1 rho instead of - C^-1 rho, a wrong variant); ``covering_weight`` a(t), a
    function of the float t, for the time-weighted covering field: a S in C, Q, R and M += a A dW."""
    drift, sigma = sde.bound_drift(), sde.bound_diffusion()
    state, time = list(sde.state), sde.time
    m, d = sde.m, sde.d
    jac = drift.jacobian(state)
    hess = [sp.diff(jac[p, q], state[w]) for p in range(m) for q in range(m) for w in range(m)]
    args = (time, *state)
    b_f = _lambdified(list(drift), args, (m,))
    J_f = _lambdified(list(jac), args, (m, m))
    H_f = _lambdified(hess, args, (m, m, m))
    sigma_f = _lambdified(list(sigma), args, (m, d))
    # G[l, p, q] = d sigma[p, l] / d x_q and Hs[l, p, q, w]
    grads = [sp.diff(sigma[p, l], state[q]) for l in range(d) for p in range(m) for q in range(m)]
    multiplicative = any(g != 0 for g in grads)
    G_f = _lambdified(grads, args, (d, m, m))
    Hs_f = _lambdified([sp.diff(g, state[w]) for g in grads for w in range(m)], args, (d, m, m, m))

    x0 = np.asarray(x0, dtype=np.float64)
    dW = np.asarray(dW, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    n = x0.shape[0]
    dt = times[-1] / n_steps
    record_steps = np.rint(times / dt).astype(int)
    eye = np.broadcast_to(np.eye(m), (n, m, m))

    X = x0.copy()
    Y, Yi = eye.copy(), eye.copy()
    M = np.zeros((n, m))
    C = np.zeros((n, m, m))
    Zh, Q, R, P, RK, RPsi = (np.zeros((n, m, m, m)) for _ in range(6))
    out_x = np.empty((n, len(times), m))
    out_target = np.empty((n, len(times), m))
    rec = 0
    for k in range(n_steps):
        t_k = k * dt
        b, J, sig = b_f(t_k, X), J_f(t_k, X), sigma_f(t_k, X)
        H = H_f(t_k, X) if not first_order_only else None
        dw = dW[:, k]
        A = Yi @ sig
        S = A @ A.transpose(0, 2, 1)
        if covering_weight is not None:
            A, S = covering_weight(t_k) * A, covering_weight(t_k) * S
        M_next = M + einsum("nil,nl->ni", A, dw)
        C_next = C + S * dt
        G = G_f(t_k, X) if multiplicative else np.zeros((n, d, m, m))
        Hs = Hs_f(t_k, X) if multiplicative and not first_order_only else np.zeros((n, d, m, m, m))
        K = einsum("nip,nlpq,nqb->nlib", Yi, G, Y)
        if not first_order_only:
            Q_next = Q + einsum("nia,njab->nijb", S, Zh) * dt
            Ht = einsum("nia,njab->nijb", C, Zh) - Q
            R_next = R + (einsum("nijb,nbc->nijc", Ht, S) + einsum("njb,nicb->nijc", S, Ht)) * dt
            RK_next = RK + (einsum("nijb,nbc->nijc", P, S) + einsum("njb,nicb->nijc", S, P)) * dt
            psi_inner = einsum("nlja,ncl->njac", K, A) + einsum("njl,nlca->njac", A, K)
            RPsi_next = RPsi + einsum("nia,njac->nijc", C, psi_inner) * dt
            P_next = P + einsum("nil,nljb->nijb", A, K) * dt
            drift_tensor = H - einsum("nlpu,nluqw->npqw", G, Hs)
            Zh_next = (Zh + einsum("nip,npqw,nqa,nwb->niab", Yi, drift_tensor, Y, Y) * dt
                       + einsum("nip,nlpqw,nqa,nwb,nl->niab", Yi, Hs, Y, Y, dw))
            Q, R, Zh, P, RK, RPsi = Q_next, R_next, Zh_next, P_next, RK_next, RPsi_next
        GdW = einsum("nlpq,nl->npq", G, dw)
        Y, Yi = Y + J @ Y * dt + GdW @ Y, Yi - Yi @ J * dt - Yi @ GdW + Yi @ GdW @ GdW
        X = X + b * dt + einsum("nil,nl->ni", sig, dw)
        M, C = M_next, C_next
        if k + 1 == record_steps[rec]:
            Cinv = np.linalg.inv(C + ridge * eye)
            g = einsum("nij,nj->ni", Cinv, M)
            if not first_order_only:
                P_used = 0 * P if "P" in drop else P
                RK_used = 0 * RK if "P" in drop else RK
                RPsi_used = 0 * RPsi if "RPsi" in drop else RPsi
                v = (einsum("njjb->nb", Zh) - einsum("nij,nijb->nb", Cinv, Q)
                     + einsum("nij,nijb->nb", Cinv, P_used))
                rho = einsum("nij,nijc->nc", Cinv, R + RK_used - RPsi_used)
                g = g + v + (1 if "R" in negate else -1) * einsum("nij,nj->ni", Cinv, rho)
            out_x[:, rec] = X
            out_target[:, rec] = -einsum("nia,ni->na", Yi, g)
            rec += 1
            if rec == len(times):
                break
    return out_x, out_target


def relative_error(actual, expected) -> float:
    """Worst over (path, record) of |actual - expected|_inf / |expected|_inf."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = np.max(np.abs(expected), axis=-1)
    err = np.max(np.abs(actual - expected), axis=-1)
    return float(np.max(err / np.where(scale > 0, scale, 1.0)))
