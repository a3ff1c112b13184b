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
"""
from __future__ import annotations

import numpy as np
import sympy as sp


def _lambdified(exprs, args, shape):
    """exprs (a flat list) -> f(t, X) returning an (n, *shape) array (constants broadcast)."""
    f = sp.lambdify(args, list(exprs), modules=["scipy", "numpy"])

    def evaluate(t_value, X):
        n = X.shape[0]
        values = f(t_value, *X.T)
        flat = [np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)) for v in values]
        return np.stack(flat, axis=1).reshape((n, *shape))

    return evaluate


def reference_simulate(sde, x0, times, n_steps, dW, ridge=0.0, first_order_only=False):
    """(x, target) of shape (n, K, m) for shared increments dW (n, n_steps, d)."""
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
    Zh, Q, R = (np.zeros((n, m, m, m)) for _ in range(3))
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
        M_next = M + np.einsum("nil,nl->ni", A, dw)
        C_next = C + S * dt
        if not first_order_only:
            Q_next = Q + np.einsum("nia,njab->nijb", S, Zh) * dt
            Ht = np.einsum("nia,njab->nijb", C, Zh) - Q
            R_next = R + (np.einsum("nijb,nbc->nijc", Ht, S) + np.einsum("njb,nicb->nijc", S, Ht)) * dt
            Zh_next = Zh + np.einsum("nip,npqw,nqa,nwb->niab", Yi, H, Y, Y) * dt
            Q, R, Zh = Q_next, R_next, Zh_next
        Y, Yi = Y + J @ Y * dt, Yi - Yi @ J * dt
        X = X + b * dt + np.einsum("nil,nl->ni", sig, dw)
        M, C = M_next, C_next
        if k + 1 == record_steps[rec]:
            Cinv = np.linalg.inv(C + ridge * eye)
            g = np.einsum("nij,nj->ni", Cinv, M)
            if not first_order_only:
                v = np.einsum("njjb->nb", Zh) - np.einsum("nij,nijb->nb", Cinv, Q)
                rho = np.einsum("nij,nijc->nc", Cinv, R)
                g = g + v - np.einsum("nij,nj->ni", Cinv, rho)
            out_x[:, rec] = X
            out_target[:, rec] = -np.einsum("nia,ni->na", Yi, g)
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
