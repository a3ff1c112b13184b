"""The loop form of a block: the recursion of docs/math.md on small per-path arrays.

A coupled component of width w unrolls into O(w^4) scalar statements (the second-order terms
contract 3-tensors with matrices), which compilers cannot digest beyond w of about 5. A block
above :data:`~symscore.compiler.ir.LOOP_FORM_STATEMENTS` estimated statements is built in the loop
form instead: the generated code only evaluates the distinct *factors* of b, J, H, sigma (and G_l,
Hs_l for sigma(t, x)) from their CSE'd expressions, every entry being a number times a factor
(a Hessian f''(theta . x) theta (x) theta (x) theta is one factor and a table of numbers), and the
functions below scatter the entries into arrays and run one step, or assemble the weight, with
loops over index ranges. Arrays per path: x, M (w,), Y, Yi, C (w, w), Zh, Q, R, P (w, w, w).
Where H is a short sum of rank-one terms (a ridge drift a f(theta . x), or a sum of a few), the
second variation's Yi H[Y., Y.] is summed term by term, O(K w^3) instead of the O(w^4) contraction.

The functions are plain Python over numpy arrays: the numba template compiles them (and this text
is rendered verbatim into its modules), and the reference tests run them as they are. The step is
the same left-point Euler step as the unrolled form and the dense reference (every right-hand side
at t_k), so with shared increments all three agree to rounding.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["scatter", "dense_init", "dense_step", "dense_weight", "dense_health"]


def scatter(factor, index, coefficient, which, out):
    """out.flat[index[k]] = coefficient[k] * factor[which[k]] for the non-constant entries (which >= 0)."""
    flat = out.reshape(-1)
    for k in range(index.shape[0]):
        if which[k] >= 0:
            flat[index[k]] = coefficient[k] * factor[which[k]]


def dense_init(index, coefficient, which, out):
    """The constant entries (which < 0) of a coefficient array, set once; the others start at 0."""
    flat = out.reshape(-1)
    flat[:] = 0.0
    for k in range(index.shape[0]):
        if which[k] < 0:
            flat[index[k]] = coefficient[k]


def dense_step(dt, dw, b, J, H, sigma, G, Hs, x, Y, Yi, M, C, Zh, Ht, R, P, cube, square, second_order,
               state_dependent, keep_p, keep_psi, factor, ro_which, ro_u, ro_v, ro_v2, ro_scratch):
    """One left-point Euler step of X, Y, Yi, M, C and (``second_order``) Zh, Ht, R, P in place.

    Scratch: ``cube`` (7, W, W, W) and ``square`` (6, W, W), W = max(w, e); ``ro_scratch`` (3, w).
    sigma(t): Zh += dZh = Yi H[Y., Y.] dt and R += (Ht S + S Ht^T) dt. The loop form carries
    Ht = C Zh - Q in place of Q (docs/math.md's Q += S Zh dt): on the grid the two agree exactly,
    since C_{k+1} Zh_{k+1} - Q_{k+1} = Ht_k + C_{k+1} dZh_k, which is one contraction per step where
    Q and Ht took two; :func:`dense_weight` recovers what it needs of Q. With K = len(ro_which) > 0
    rank-one terms (sigma(t) only), H = sum_k g_k u_k (x) v_k (x) v'_k with g_k = factor[ro_which[k]]
    (1 where -1), dZh and C dZh are sums of outer products: O(K w^3) instead of O(w^4).
    sigma(t, x) (``state_dependent``): the Ito first variation and Yi's second-order inverse step,
    dZh = Yi (H - G_l Hs_l)[Y., Y.] dt + Yi Hs_l[Y., Y.] dW_l, K_l = Yi G_l Y, P += A_l K_l dt and
    R += ((Ht + P) S + S (Ht + P)^T - Psi) dt (``keep_p``/``keep_psi`` False leave out P or Psi:
    wrong targets, for tests).
    """
    w, e = x.shape[0], dw.shape[0]
    A = square[0, :w, :e]
    S = square[1, :w, :w]
    for i in range(w):
        for l in range(e):
            acc = 0.0
            for p in range(w):
                acc += Yi[i, p] * sigma[p, l]
            A[i, l] = acc
    for i in range(w):
        for j in range(i, w):
            acc = 0.0
            for l in range(e):
                acc += A[i, l] * A[j, l]
            S[i, j] = acc
            S[j, i] = acc
    if second_order:
        # every contraction is written as an axpy over the last, contiguous index
        HtP, T1, T2 = cube[0, :w, :w, :w], cube[1, :w, :w, :w], cube[2, :w, :w, :w]
        K, Psi, HtT = cube[3, :e, :w, :w], cube[4, :w, :w, :w], cube[5, :w, :w, :w]
        dZh = cube[6, :w, :w, :w]
        for i in range(w):
            for j in range(w):
                for c in range(w):
                    HtP[i, j, c] = Ht[i, j, c]
        if state_dependent:
            # K_l = Yi G_l Y (T1[0] holds G_l Y)
            for l in range(e):
                for p in range(w):
                    for bb in range(w):
                        T1[0, p, bb] = 0.0
                    for q in range(w):
                        g = G[l, p, q]
                        for bb in range(w):
                            T1[0, p, bb] += g * Y[q, bb]
                for j in range(w):
                    for bb in range(w):
                        K[l, j, bb] = 0.0
                    for p in range(w):
                        y = Yi[j, p]
                        for bb in range(w):
                            K[l, j, bb] += y * T1[0, p, bb]
            if keep_p:  # Ht + P in place of Ht
                for i in range(w):
                    for j in range(w):
                        for c in range(w):
                            HtP[i, j, c] += P[i, j, c]
            # Psi[i; j, c] = sum_a C[i, a] inner[j; a, c], inner = sum_l K_l[j, a] A[c, l] + A[j, l] K_l[c, a]
            inner = dZh  # scratch until dZh is computed below
            for j in range(w):
                for a in range(w):
                    for c in range(w):
                        acc = 0.0
                        for l in range(e):
                            acc += K[l, j, a] * A[c, l] + A[j, l] * K[l, c, a]
                        inner[j, a, c] = acc if keep_psi else 0.0
            for i in range(w):
                for j in range(w):
                    for c in range(w):
                        Psi[i, j, c] = 0.0
                    for a in range(w):
                        c_ia = C[i, a]
                        for c in range(w):
                            Psi[i, j, c] += c_ia * inner[j, a, c]
        # R += (Ht S + S Ht^T - Psi) dt, from the values at t_k
        for i in range(w):
            for c in range(w):
                for a in range(w):
                    HtT[i, a, c] = HtP[i, c, a]
        for i in range(w):  # symmetric in (j, c): c >= j only
            for j in range(w):
                if state_dependent:
                    for c in range(j, w):
                        R[i, j, c] -= Psi[i, j, c] * dt
                for a in range(w):
                    h, s = HtP[i, j, a] * dt, S[j, a] * dt
                    for c in range(j, w):
                        R[i, j, c] += h * S[a, c] + s * HtT[i, a, c]
            for j in range(w):
                for c in range(j + 1, w):
                    R[i, c, j] = R[i, j, c]
        if state_dependent and keep_p:
            for i in range(w):
                for l in range(e):
                    a_il = A[i, l] * dt
                    for j in range(w):
                        for bb in range(w):
                            P[i, j, bb] += a_il * K[l, j, bb]
        # C_{k+1} = C + S dt, for Ht_{k+1} = Ht + C_{k+1} dZh
        Cn = square[2, :w, :w]
        for i in range(w):
            for j in range(w):
                Cn[i, j] = C[i, j] + S[i, j] * dt
        n_rank_one = ro_which.shape[0]
        if n_rank_one > 0:
            # dZh = sum_k g_k (Yi u_k) (x) (Y^T v_k) (x) (Y^T v'_k) dt, C_{k+1} dZh = sum_k g_k (C_{k+1} Y^T v_k) (x) ...
            yu, yv, yv2 = ro_scratch[0], ro_scratch[1], ro_scratch[2]
            cyv = square[3, 0, :w]
            for k in range(n_rank_one):
                g = (1.0 if ro_which[k] < 0 else factor[ro_which[k]]) * dt
                for i in range(w):
                    acc = 0.0
                    for p in range(w):
                        acc += Yi[i, p] * ro_u[k, p]
                    yu[i] = g * acc
                for a in range(w):
                    acc, acc2 = 0.0, 0.0
                    for q in range(w):
                        acc += ro_v[k, q] * Y[q, a]
                        acc2 += ro_v2[k, q] * Y[q, a]
                    yv[a], yv2[a] = acc, acc2
                for i in range(w):
                    acc = 0.0
                    for a in range(w):
                        acc += Cn[i, a] * yv[a]
                    cyv[i] = acc
                for i in range(w):
                    for j in range(w):
                        value = cyv[i] * yu[j]
                        for c in range(w):
                            Ht[i, j, c] += value * yv2[c]
                for i in range(w):
                    for a in range(w):
                        value = yu[i] * yv[a]
                        for c in range(a, w):  # symmetric in (a, c): c >= a only
                            Zh[i, a, c] += value * yv2[c]
            for i in range(w):
                for a in range(w):
                    for c in range(a + 1, w):
                        Zh[i, c, a] = Zh[i, a, c]
        else:
            # dZh = Yi T[Y., Y.] dt (+ Yi Hs_l[Y., Y.] dW_l), T = H (- G_l Hs_l)
            for i in range(w):
                for a in range(w):
                    for c in range(w):
                        dZh[i, a, c] = 0.0
            for term in range(e + 1 if state_dependent else 1):
                if term == 0:
                    scale = dt
                    for p in range(w):
                        for q in range(w):
                            for r in range(w):
                                value = H[p, q, r]
                                if state_dependent:
                                    for l in range(e):
                                        for u in range(w):
                                            value -= G[l, p, u] * Hs[l, u, q, r]
                                T2[p, q, r] = value
                else:
                    scale = dw[term - 1]
                    for p in range(w):
                        for q in range(w):
                            for r in range(w):
                                T2[p, q, r] = Hs[term - 1, p, q, r]
                # T1[p; r, a] = sum_q T[p; q, r] Y[q, a] (zero entries of T skipped), T2[p; a, c] = T[p; Y a, Y c]
                for p in range(w):
                    for r in range(w):
                        for a in range(w):
                            T1[p, r, a] = 0.0
                    for q in range(w):
                        for r in range(w):
                            value = T2[p, q, r]
                            if value != 0.0:
                                for a in range(w):
                                    T1[p, r, a] += value * Y[q, a]
                for p in range(w):  # symmetric in (a, c): c >= a only
                    for a in range(w):
                        for c in range(a, w):
                            T2[p, a, c] = 0.0
                    for r in range(w):
                        for a in range(w):
                            value = T1[p, r, a]
                            if value != 0.0:
                                for c in range(a, w):
                                    T2[p, a, c] += value * Y[r, c]
                for i in range(w):
                    for p in range(w):
                        y = Yi[i, p] * scale
                        if y != 0.0:
                            for a in range(w):
                                for c in range(a, w):
                                    dZh[i, a, c] += y * T2[p, a, c]
            for i in range(w):
                for a in range(w):
                    for c in range(a + 1, w):
                        dZh[i, c, a] = dZh[i, a, c]
            # Ht += C_{k+1} dZh, Zh += dZh
            for i in range(w):
                for a in range(w):
                    c_ia = Cn[i, a]
                    if c_ia != 0.0:
                        for j in range(w):
                            for c in range(w):
                                Ht[i, j, c] += c_ia * dZh[j, a, c]
            for i in range(w):
                for a in range(w):
                    for c in range(w):
                        Zh[i, a, c] += dZh[i, a, c]
    # M += A dW, C += S dt
    for i in range(w):
        acc = 0.0
        for l in range(e):
            acc += A[i, l] * dw[l]
        M[i] += acc
        for j in range(w):
            C[i, j] += S[i, j] * dt
    # Y += J Y dt (+ G_l Y dW_l), Yi -= Yi J dt (- Yi G_l dW_l + Yi G_l G_k dW_l dW_k)
    E = square[2, :w, :w]
    for i in range(w):
        for j in range(w):
            value = J[i, j] * dt
            if state_dependent:
                for l in range(e):
                    value += G[l, i, j] * dw[l]
            E[i, j] = value
    E2 = square[3, :w, :w]
    for i in range(w):
        for j in range(w):
            acc = 0.0
            if state_dependent:
                for u in range(w):
                    g_iu = 0.0
                    for l in range(e):
                        g_iu += G[l, i, u] * dw[l]
                    g_uj = 0.0
                    for l in range(e):
                        g_uj += G[l, u, j] * dw[l]
                    acc += g_iu * g_uj
            E2[i, j] = acc - E[i, j]  # -E + (G dW)^2
    Ynew, Yinew = square[4, :w, :w], square[5, :w, :w]
    for i in range(w):
        for j in range(w):
            ey, ei = 0.0, 0.0
            for u in range(w):
                ey += E[i, u] * Y[u, j]
                ei += Yi[i, u] * E2[u, j]
            Ynew[i, j] = Y[i, j] + ey
            Yinew[i, j] = Yi[i, j] + ei
    Y[:, :] = Ynew
    Yi[:, :] = Yinew
    for i in range(w):
        acc = b[i] * dt
        for l in range(e):
            acc += sigma[i, l] * dw[l]
        x[i] += acc


def dense_weight(ridge, Yi, M, C, Zh, Ht, R, P, second_order, keep_p, mats, vecs, target):
    """The target -Yi^T (Cr^-1 M + v - Cr^-1 rho) with Cr = C + ridge I into ``target``; returns
    (all LDL^T pivots > 0, the condition estimate w sum_a Cr_aa (Cr^-1)_aa). Scratch: ``mats``
    (3, w, w), ``vecs`` (4, w).

    v = tr Zh - Cr^-1 : Q (+ Cr^-1 : P) with Q = C Zh - Ht (see :func:`dense_step`); as
    Cr^-1 C = I - ridge Cr^-1, that is v_c = sum_ij Cr^-1_ij (Ht + ridge Zh (+ P))[i, j, c]."""
    w = M.shape[0]
    L, Cinv, Li = mats[0], mats[1], mats[2]
    piv, g = vecs[0], vecs[1]
    positive = True
    for k in range(w):
        value = C[k, k] + ridge
        for j in range(k):
            value -= L[k, j] * L[k, j] * piv[j]
        piv[k] = value
        positive = positive and value > 0.0
        for i in range(k + 1, w):
            value = C[i, k]
            for j in range(k):
                value -= L[i, j] * L[k, j] * piv[j]
            L[i, k] = value / piv[k]
    # Li = L^-1 (unit lower triangular), Cinv = Li^T D^-1 Li
    for i in range(w):
        for k in range(w):
            Li[i, k] = 1.0 if i == k else 0.0
        for k in range(i - 1, -1, -1):
            acc = 0.0
            for j in range(k, i):
                acc -= L[i, j] * Li[j, k]
            Li[i, k] = acc
    condition = 0.0
    for a in range(w):
        for c in range(w):
            acc = 0.0
            for k in range(max(a, c), w):
                acc += Li[k, a] * Li[k, c] / piv[k]
            Cinv[a, c] = acc
        condition += (C[a, a] + ridge) * Cinv[a, a]
    for i in range(w):
        acc = 0.0
        for j in range(w):
            acc += Cinv[i, j] * M[j]
        g[i] = acc
    if second_order:
        v, rho = vecs[2], vecs[3]
        for c in range(w):
            vc, rc = 0.0, 0.0
            for i in range(w):
                for j in range(w):
                    vc += Cinv[i, j] * (Ht[i, j, c] + ridge * Zh[i, j, c])
                    if keep_p:
                        vc += Cinv[i, j] * P[i, j, c]
                    rc += Cinv[i, j] * R[i, j, c]
            v[c], rho[c] = vc, rc
        for i in range(w):
            acc = v[i]
            for j in range(w):
                acc -= Cinv[i, j] * rho[j]
            g[i] += acc
    for a in range(w):
        acc = 0.0
        for i in range(w):
            acc -= Yi[i, a] * g[i]
        target[a] = acc
    return positive, w * condition


def dense_health(x, Y, Yi, C) -> int:
    """The bits (1 X, 2 Y/Yi, 4 C) of what is not finite (0: the path is sound)."""
    kind = 0
    if not math.isfinite(np.sum(x)):
        kind |= 1
    if not math.isfinite(np.sum(Y) + np.sum(Yi)):
        kind |= 2
    if not math.isfinite(np.sum(C)):
        kind |= 4
    return kind
