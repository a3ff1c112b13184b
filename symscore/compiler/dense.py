"""The loop form of a block: the recursion of docs/math.md on small per-path arrays.

A coupled component of width w unrolls into O(w^4) scalar statements (the second-order terms
contract 3-tensors with matrices), which compilers cannot digest beyond w of about 5. A block
above :data:`~symscore.compiler.ir.LOOP_FORM_TERMS` estimated unrolled terms is built in the loop
form instead: the generated code only evaluates the distinct *factors* of b, J, H, sigma (and G_l,
Hs_l for sigma(t, x)) from their CSE'd expressions, every entry being a number times a factor
(a Hessian f''(theta . x) theta (x) theta (x) theta is one factor and a table of numbers), and the
functions below scatter the entries into arrays and run one step, or assemble the weight, with
loops over index ranges. Where H is a short sum of rank-one terms (a ridge drift a f(theta . x),
or a sum of a few), the second variation's Yi H[Y., Y.] is summed term by term, O(K w^3) instead
of the O(w^4) contraction.

One function per formula, as the unrolled form has one per formula; they pass small tuples:

* ``coefficients`` = (b, J, H, sigma, G, Hs) at (t_k, X_k): (w,), (w, w), (w, w, w), (w, e),
  (e, w, w), (e, w, w, w), filled by :func:`scatter` from the block's tables;
* ``state`` = (x, Y, Yi, M, C, Zh, Ht, R, P): the carried processes, x, M (w,), Y, Yi, C (w, w),
  Zh, Ht, R, P (w, w, w), from :func:`dense_state`;
* ``scratch``: the step's work arrays, each at its own shape, from :func:`dense_scratch`; the
  weight's (mats, vecs) from :func:`weight_scratch`;
* ``flags`` = (second_order, state_dependent, keep_p, keep_psi): keep_p/keep_psi False leave out
  P or Psi (wrong targets, for tests);
* ``rank_one`` = (factor, which, U, V, V2): H = sum_k g_k U[k] (x) V[k] (x) V2[k] with
  g_k = factor[which[k]] (1 where which[k] = -1); no terms: which is empty.

**The carried state.** The loop form carries Ht = C Zh - Q in place of docs/math.md's Q
(Q += S Zh dt): on the grid the two agree exactly, since
C_{k+1} Zh_{k+1} - Q_{k+1} = Ht_k + C_{k+1} dZh_k, which is one contraction per step where Q and
Ht took two; :func:`dense_weight` recovers what it needs of Q. The torch loop form
(:mod:`~symscore.compiler.dense_torch`) carries the same state.

The functions are plain Python over numpy arrays: the numba template compiles them (this text is
rendered verbatim into its modules and every function of :data:`LOOP_FORM_FUNCTIONS` registered
as jitable), and they run as they are in Python. The step is the same left-point Euler step as
the unrolled form and the dense reference (every right-hand side at t_k), so with shared
increments all three agree to rounding.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["scatter", "dense_init", "dense_state", "dense_scratch", "weight_scratch", "dense_step",
           "dense_weight", "dense_health", "LOOP_FORM_FUNCTIONS"]


# ---- coefficient tables and per-path arrays
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


def dense_state(x):
    """The state at t = 0 from X_0 = ``x`` (w,): Y = Yi = I, every integral 0 (see the module docstring)."""
    w = x.shape[0]
    return (x, np.eye(w), np.eye(w), np.zeros(w), np.zeros((w, w)), np.zeros((w, w, w)), np.zeros((w, w, w)),
            np.zeros((w, w, w)), np.zeros((w, w, w)))


def dense_scratch(w, e):
    """The step's work arrays for width w and e noise columns, each allocated at its own shape
    (contiguous, so the compiled loops need no strides) and made once per path, not sliced per step:
    (A (w, e), S, Cn, E, E2, Ynew, Yinew, GY (w, w), HtP, HtT, Psi, T1, T2, dZh (w, w, w),
    K (e, w, w), vectors (4, w))."""
    return (np.empty((w, e)), np.empty((w, w)), np.empty((w, w)), np.empty((w, w)), np.empty((w, w)),
            np.empty((w, w)), np.empty((w, w)), np.empty((w, w)), np.empty((w, w, w)), np.empty((w, w, w)),
            np.empty((w, w, w)), np.empty((w, w, w)), np.empty((w, w, w)), np.empty((w, w, w)),
            np.empty((e, w, w)), np.empty((4, w)))


def weight_scratch(w):
    """The weight's work arrays (mats (3, w, w), vecs (4, w))."""
    return np.empty((3, w, w)), np.empty((4, w))


# ---- one Euler step, one function per formula
def noise_terms(Yi, sigma, A, S):
    """A = Yi sigma (w, e) and S = A A^T (w, w): the noise seen through the inverse first variation."""
    w, e = A.shape[0], A.shape[1]
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


def matmul_into(A, B, out):
    """out = A B, each row accumulated as axpys over the rows of B (the last index is contiguous)."""
    for i in range(A.shape[0]):
        for c in range(B.shape[1]):
            out[i, c] = 0.0
        for a in range(A.shape[1]):
            value = A[i, a]
            for c in range(B.shape[1]):
                out[i, c] += value * B[a, c]


def variation_of_noise(Yi, G, Y, GY, K):
    """K_l = Yi G_l Y (e, w, w) for sigma(t, x); ``GY`` (w, w) is scratch for G_l Y."""
    for l in range(K.shape[0]):
        matmul_into(G[l], Y, GY)
        matmul_into(Yi, GY, K[l])


def ht_plus_p(Ht, P, add_p, out):
    """out = Ht + P (``add_p``) or Ht: what R's increment contracts with S."""
    w = Ht.shape[0]
    for i in range(w):
        for j in range(w):
            for c in range(w):
                out[i, j, c] = Ht[i, j, c] + P[i, j, c] if add_p else Ht[i, j, c]


def psi_term(C, A, K, keep_psi, inner, out):
    """Psi[i; j, c] = sum_a C[i, a] inner[j; a, c] with inner = sum_l K_l[j, a] A[c, l] + A[j, l] K_l[c, a]
    (0 without ``keep_psi``); ``inner`` (w, w, w) is scratch."""
    w, e = A.shape[0], A.shape[1]
    for j in range(w):
        for a in range(w):
            for c in range(w):
                acc = 0.0
                for l in range(e):
                    acc += K[l, j, a] * A[c, l] + A[j, l] * K[l, c, a]
                inner[j, a, c] = acc if keep_psi else 0.0
    for j in range(w):
        matmul_into(C, inner[j], out[:, j, :])


def r_increment(dt, HtP, S, Psi, state_dependent, HtT, R):
    """R += (HtP S + S HtP^T (- Psi)) dt from the values at t_k, HtP = Ht (+ P); symmetric in its
    last two indices, so only c >= j is summed. ``HtT`` (w, w, w) is scratch for HtP transposed."""
    w = R.shape[0]
    for i in range(w):
        for c in range(w):
            for a in range(w):
                HtT[i, a, c] = HtP[i, c, a]
    for i in range(w):
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


def p_increment(dt, A, K, P):
    """P += sum_l A_l K_l dt (sigma(t, x))."""
    w, e = A.shape[0], A.shape[1]
    for i in range(w):
        for l in range(e):
            a_il = A[i, l] * dt
            for j in range(w):
                for bb in range(w):
                    P[i, j, bb] += a_il * K[l, j, bb]


def next_c(dt, C, S, out):
    """out = C_{k+1} = C + S dt, for Ht_{k+1} = Ht + C_{k+1} dZh."""
    w = C.shape[0]
    for i in range(w):
        for j in range(w):
            out[i, j] = C[i, j] + S[i, j] * dt


def rank_one_increment(dt, Yi, Y, Cn, rank_one, vectors, Zh, Ht):
    """Zh += dZh and Ht += C_{k+1} dZh for H = sum_k g_k U[k] (x) V[k] (x) V2[k] (sigma(t)):
    dZh = sum_k g_k (Yi u_k) (x) (Y^T v_k) (x) (Y^T v'_k) dt is a sum of outer products, O(K w^3).
    ``vectors`` (4, w) is scratch for those three vectors and C_{k+1} Y^T v_k."""
    factor, which, U, V, V2 = rank_one
    w = Zh.shape[0]
    for k in range(which.shape[0]):
        g = (1.0 if which[k] < 0 else factor[which[k]]) * dt
        for i in range(w):
            acc = 0.0
            for p in range(w):
                acc += Yi[i, p] * U[k, p]
            vectors[0, i] = g * acc
        for a in range(w):
            acc, acc2 = 0.0, 0.0
            for q in range(w):
                acc += V[k, q] * Y[q, a]
                acc2 += V2[k, q] * Y[q, a]
            vectors[1, a] = acc
            vectors[2, a] = acc2
        for i in range(w):
            acc = 0.0
            for a in range(w):
                acc += Cn[i, a] * vectors[1, a]
            vectors[3, i] = acc
        for i in range(w):
            for j in range(w):
                value = vectors[3, i] * vectors[0, j]
                for c in range(w):
                    Ht[i, j, c] += value * vectors[2, c]
        for i in range(w):
            for a in range(w):
                value = vectors[0, i] * vectors[1, a]
                for c in range(a, w):  # symmetric in (a, c): c >= a only
                    Zh[i, a, c] += value * vectors[2, c]
    symmetrize_last(Zh)


def symmetrize_last(cube):
    """cube[i, c, a] = cube[i, a, c] for c > a: the lower half from the upper one."""
    w = cube.shape[0]
    for i in range(w):
        for a in range(w):
            for c in range(a + 1, w):
                cube[i, c, a] = cube[i, a, c]


def second_variation_tensor(term, H, G, Hs, state_dependent, out):
    """out = the tensor T of term ``term`` of dZh: H (- sum_l G_l Hs_l) for term 0 (the dt term),
    Hs_l for term l + 1 (the dW_l term, sigma(t, x))."""
    w, e = out.shape[0], G.shape[0]
    for p in range(w):
        for q in range(w):
            for r in range(w):
                if term == 0:
                    value = H[p, q, r]
                    if state_dependent:
                        for l in range(e):
                            for u in range(w):
                                value -= G[l, p, u] * Hs[l, u, q, r]
                else:
                    value = Hs[term - 1, p, q, r]
                out[p, q, r] = value


def add_transported(scale, Yi, Y, T, T1, dZh):
    """dZh[i; a, c] += scale sum_p Yi[i, p] T[p; Y a, Y c] for c >= a, zero entries of T skipped.
    T (w, w, w) is overwritten with T[p; Y a, Y c]; ``T1`` (w, w, w) is scratch for T[p; r, Y a]."""
    w = T.shape[0]
    for p in range(w):
        for r in range(w):
            for a in range(w):
                T1[p, r, a] = 0.0
        for q in range(w):
            for r in range(w):
                value = T[p, q, r]
                if value != 0.0:
                    for a in range(w):
                        T1[p, r, a] += value * Y[q, a]
    for p in range(w):  # symmetric in (a, c): c >= a only
        for a in range(w):
            for c in range(a, w):
                T[p, a, c] = 0.0
        for r in range(w):
            for a in range(w):
                value = T1[p, r, a]
                if value != 0.0:
                    for c in range(a, w):
                        T[p, a, c] += value * Y[r, c]
    for i in range(w):
        for p in range(w):
            y = Yi[i, p] * scale
            if y != 0.0:
                for a in range(w):
                    for c in range(a, w):
                        dZh[i, a, c] += y * T[p, a, c]


def zh_increment(dt, dw, H, G, Hs, Yi, Y, state_dependent, T1, T2, dZh):
    """dZh = Yi T[Y., Y.] dt (+ sum_l Yi Hs_l[Y., Y.] dW_l) with T = H (- sum_l G_l Hs_l), the
    dense contraction; ``T1``, ``T2`` (w, w, w) are scratch."""
    w, e = dZh.shape[0], dw.shape[0]
    for i in range(w):
        for a in range(w):
            for c in range(w):
                dZh[i, a, c] = 0.0
    for term in range(e + 1 if state_dependent else 1):
        second_variation_tensor(term, H, G, Hs, state_dependent, T2)
        add_transported(dt if term == 0 else dw[term - 1], Yi, Y, T2, T1, dZh)
    symmetrize_last(dZh)


def add_zh_ht(Cn, dZh, Zh, Ht):
    """Ht += C_{k+1} dZh, Zh += dZh."""
    w = Zh.shape[0]
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


def m_c_increment(dt, dw, A, S, M, C):
    """M += A dW, C += S dt."""
    w, e = A.shape[0], A.shape[1]
    for i in range(w):
        acc = 0.0
        for l in range(e):
            acc += A[i, l] * dw[l]
        M[i] += acc
        for j in range(w):
            C[i, j] += S[i, j] * dt


def first_variation_step(dt, dw, J, G, state_dependent, Y, Yi, E, E2, Ynew, Yinew):
    """Y += E Y and Yi += Yi (-E + (G dW)^2) with E = J dt (+ sum_l G_l dW_l): Yi's step is the
    inverse of Y's to second order (sigma(t, x)). ``E``, ``E2``, ``Ynew``, ``Yinew`` (w, w) are scratch."""
    w, e = Y.shape[0], dw.shape[0]
    for i in range(w):
        for j in range(w):
            value = J[i, j] * dt
            if state_dependent:
                for l in range(e):
                    value += G[l, i, j] * dw[l]
            E[i, j] = value
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
    for i in range(w):
        for j in range(w):
            ey, ei = 0.0, 0.0
            for u in range(w):
                ey += E[i, u] * Y[u, j]
                ei += Yi[i, u] * E2[u, j]
            Ynew[i, j] = Y[i, j] + ey
            Yinew[i, j] = Yi[i, j] + ei
    for i in range(w):
        for j in range(w):
            Y[i, j] = Ynew[i, j]
            Yi[i, j] = Yinew[i, j]


def x_increment(dt, dw, b, sigma, x):
    """X += b dt + sigma dW."""
    w, e = x.shape[0], dw.shape[0]
    for i in range(w):
        acc = b[i] * dt
        for l in range(e):
            acc += sigma[i, l] * dw[l]
        x[i] += acc


def second_variation_step(dt, dw, coefficients, state, scratch, flags, rank_one):
    """The second-order part of a step: R, P (sigma(t, x)), Zh and Ht from the values at t_k.

    sigma(t): Zh += dZh = Yi H[Y., Y.] dt and R += (Ht S + S Ht^T) dt. sigma(t, x): the Ito
    second variation dZh = Yi (H - G_l Hs_l)[Y., Y.] dt + Yi Hs_l[Y., Y.] dW_l, K_l = Yi G_l Y,
    P += A_l K_l dt and R += ((Ht + P) S + S (Ht + P)^T - Psi) dt. Then Ht += C_{k+1} dZh.
    A and S (scratch 0 and 1) hold the step's noise terms."""
    H, G, Hs = coefficients[2], coefficients[4], coefficients[5]
    Y, Yi, C, Zh, Ht, R, P = state[1], state[2], state[4], state[5], state[6], state[7], state[8]
    A, S, Cn, GY, HtP, HtT, Psi = scratch[0], scratch[1], scratch[2], scratch[7], scratch[8], scratch[9], scratch[10]
    T1, T2, dZh, K = scratch[11], scratch[12], scratch[13], scratch[14]
    state_dependent, keep_p, keep_psi = flags[1], flags[2], flags[3]
    ht_plus_p(Ht, P, state_dependent and keep_p, HtP)
    if state_dependent:
        variation_of_noise(Yi, G, Y, GY, K)
        psi_term(C, A, K, keep_psi, dZh, Psi)  # dZh is scratch until it is computed below
    r_increment(dt, HtP, S, Psi, state_dependent, HtT, R)
    if state_dependent and keep_p:
        p_increment(dt, A, K, P)
    next_c(dt, C, S, Cn)
    if rank_one[1].shape[0] > 0:
        rank_one_increment(dt, Yi, Y, Cn, rank_one, scratch[15], Zh, Ht)
    else:
        zh_increment(dt, dw, H, G, Hs, Yi, Y, state_dependent, T1, T2, dZh)
        add_zh_ht(Cn, dZh, Zh, Ht)


def dense_step(dt, dw, coefficients, state, scratch, flags, rank_one):
    """One left-point Euler step of X, Y, Yi, M, C and (second order) Zh, Ht, R, P in place.

    Arguments are the tuples of the module docstring; dw (e,) holds the step's increments."""
    b, J, sigma, G = coefficients[0], coefficients[1], coefficients[3], coefficients[4]
    x, Y, Yi, M, C = state[0], state[1], state[2], state[3], state[4]
    A, S = scratch[0], scratch[1]
    noise_terms(Yi, sigma, A, S)
    if flags[0]:
        second_variation_step(dt, dw, coefficients, state, scratch, flags, rank_one)
    m_c_increment(dt, dw, A, S, M, C)
    first_variation_step(dt, dw, J, G, flags[1], Y, Yi, scratch[3], scratch[4], scratch[5], scratch[6])
    x_increment(dt, dw, b, sigma, x)


# ---- the weight at a record time
def ldl_inverse(C, ridge, L, Li, piv, Cinv):
    """Cinv = Cr^-1, Cr = C + ridge I, by LDL^T (L unit lower triangular, D = ``piv``, Li = L^-1);
    returns (all pivots > 0, sum_a Cr_aa (Cr^-1)_aa)."""
    w = C.shape[0]
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
    return positive, condition


def add_second_order_terms(ridge, Cinv, Zh, Ht, R, P, keep_p, v, rho, g):
    """g += v - Cr^-1 rho with v = tr Zh - Cr^-1 : Q (+ Cr^-1 : P) and rho = Cr^-1 : R.

    With Q = C Zh - Ht and Cr^-1 C = I - ridge Cr^-1, v_c = sum_ij Cr^-1_ij (Ht + ridge Zh (+ P))[i, j, c]."""
    w = g.shape[0]
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


def dense_weight(ridge, state, flags, work, target):
    """The target -Yi^T (Cr^-1 M + v - Cr^-1 rho) with Cr = C + ridge I into ``target`` (w,);
    returns (all LDL^T pivots > 0, the condition estimate w sum_a Cr_aa (Cr^-1)_aa).

    ``state`` and ``flags`` as for :func:`dense_step`; ``work`` = (mats, vecs) from :func:`weight_scratch`."""
    Yi, M, C, Zh, Ht, R, P = state[2], state[3], state[4], state[5], state[6], state[7], state[8]
    mats, vecs = work
    w = M.shape[0]
    L, Cinv, Li = mats[0], mats[1], mats[2]
    piv, g = vecs[0], vecs[1]
    positive, condition = ldl_inverse(C, ridge, L, Li, piv, Cinv)
    for i in range(w):
        acc = 0.0
        for j in range(w):
            acc += Cinv[i, j] * M[j]
        g[i] = acc
    if flags[0]:
        add_second_order_terms(ridge, Cinv, Zh, Ht, R, P, flags[2], vecs[2], vecs[3], g)
    for a in range(w):
        acc = 0.0
        for i in range(w):
            acc -= Yi[i, a] * g[i]
        target[a] = acc
    return positive, w * condition


def dense_health(state) -> int:
    """The bits (1 X, 2 Y/Yi, 4 C) of what is not finite (0: the path is sound)."""
    x, Y, Yi, C = state[0], state[1], state[2], state[4]
    kind = 0
    if not math.isfinite(np.sum(x)):
        kind |= 1
    if not math.isfinite(np.sum(Y) + np.sum(Yi)):
        kind |= 2
    if not math.isfinite(np.sum(C)):
        kind |= 4
    return kind


#: Every function above, for the numba template to register as jitable (each calls the others).
LOOP_FORM_FUNCTIONS = (scatter, dense_init, dense_state, dense_scratch, weight_scratch, noise_terms, matmul_into,
                       variation_of_noise, ht_plus_p, psi_term, r_increment, p_increment, next_c, rank_one_increment,
                       symmetrize_last, second_variation_tensor, add_transported, zh_increment, add_zh_ht,
                       m_c_increment, first_variation_step, x_increment, second_variation_step, dense_step,
                       ldl_inverse, add_second_order_terms, dense_weight, dense_health)
