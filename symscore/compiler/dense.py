"""The loop form of a block: the recursion of docs/math.md on blocks of paths, paths innermost.

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

**Layout: paths innermost.** Every array carries a last axis of :data:`PATHS` paths stepped
together: x (w, PATHS), Y (w, w, PATHS), Zh (w, w, w, PATHS). Each contraction is then a loop
over index ranges whose innermost statement is the same update of PATHS contiguous numbers (one
AVX-512 register of float64), which the compiler turns into vector instructions with no
remainder loop; a per-path layout would vectorize over an index of length w (short, and with
ragged triangular ranges). Every O(w^4) contraction but the G_l Hs_l sum of a state-dependent
sigma is a per-path matrix product (:func:`product`) whose sums run in scalar accumulators, one
per path and output column, packed into vector registers. The cost per path-step is dominated
by R's increment, a product of w^2 x w by w x w matrices (w^4 multiply-adds;
``benchmarks/bench_wide.py`` counts the rest).

One function per formula, as the unrolled form has one per formula; they pass small tuples:

* ``coefficients`` = (b, J, H, sigma, G, Hs) at (t_k, X_k): (w,), (w, w), (w, w, w), (w, e),
  (e, w, w), (e, w, w, w), each with the PATHS axis, filled by :func:`scatter` from the tables;
* ``state`` = (x, Y, Yi, M, C, Zh, Ht, R, P): the carried processes, x, M (w,), Y, Yi, C (w, w),
  Zh, Ht, R, P (w, w, w), each with the PATHS axis, from :func:`dense_state`;
* ``scratch``: the step's work arrays from :func:`dense_scratch`; the weight works on one path's
  contiguous copy (:func:`path_weight`);
* ``flags`` (int64 array) = (second_order, state_dependent, keep_p, keep_psi): keep_p/keep_psi 0
  leave out P or Psi (wrong targets, for tests). An array, not a tuple of booleans, so that every
  SDE calls these functions with the same types and one compiled copy serves them all;
* ``rank_one`` = (factor, which, U, V, V2): H = sum_k g_k U[k] (x) V[k] (x) V2[k] with
  g_k = factor[which[k]] (one value per path; 1 where which[k] = -1); no terms: which is empty.

**The carried state.** The loop form carries Ht = C Zh - Q in place of docs/math.md's Q
(Q += S Zh dt): on the grid the two agree exactly, since
C_{k+1} Zh_{k+1} - Q_{k+1} = Ht_k + C_{k+1} dZh_k, which is one contraction per step where Q and
Ht took two; :func:`dense_weight` recovers what it needs of Q. The torch loop form
(:mod:`~symscore.compiler.dense_torch`) carries the same state.

**Compiled once.** The functions are numba-compiled with ``cache=True`` here, and the package's
generated modules import them: every SDE's kernel calls the same compiled code with the same
types, so a new SDE compiles only its factors and its driver. An emitted (standalone) module
renders this text verbatim instead. The step is the same left-point Euler step as the unrolled
form and the dense reference (every right-hand side at t_k), so with shared increments all three
agree to rounding.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .philox_numba import philox_normals4_jit

__all__ = ["PATHS", "FACTORS_SIGNATURE", "loop_kernel", "parallel_blocks", "block_paths", "scatter", "dense_init", "dense_state",
           "dense_scratch", "dense_step", "dense_health", "path_weight", "weight_scratch", "dense_weight"]

#: Paths stepped together, the last axis of every array: 8 float64 fill one AVX-512 register.
#: :func:`product`, :func:`store8`, :func:`add_outer`, :func:`add_scaled_rows` and
#: :func:`r_increment` are written out for exactly 8 (nothing checks indices at run time).
PATHS = 8

#: How every function here is compiled: cached on disk; 'contract' lets a multiply and an add fuse.
jit = numba.njit(cache=True, error_model="numpy", fastmath={"contract"})


# ---- flat loops over arrays of any shape (numba compiles N-d array expressions slowly)
@jit
def fill_zero(out):
    """out = 0, any shape."""
    flat = out.reshape(-1)
    for k in range(flat.shape[0]):
        flat[k] = 0.0


@jit
def copy_into(out, a):
    """out = a, any shape (flat loops: numba compiles N-d array expressions slowly)."""
    flat, source = out.reshape(-1), a.reshape(-1)
    for k in range(flat.shape[0]):
        flat[k] = source[k]


@jit
def add_into(out, a, b, scale):
    """out = a + scale b, any shape."""
    flat, fa, fb = out.reshape(-1), a.reshape(-1), b.reshape(-1)
    for k in range(flat.shape[0]):
        flat[k] = fa[k] + scale * fb[k]


# ---- coefficient tables and per-block arrays
@jit
def scatter(factor, index, coefficient, which, out):
    """out.flat[index[k]] = coefficient[k] * factor[which[k]] (per path) for the non-constant
    entries (which >= 0); ``out`` is (..., PATHS), ``factor`` (n_factors, PATHS)."""
    flat = out.reshape((-1, PATHS))
    for k in range(index.shape[0]):
        f = which[k]
        if f >= 0:
            row, c = index[k], coefficient[k]
            for n in range(PATHS):
                flat[row, n] = c * factor[f, n]


@jit
def dense_init(index, coefficient, which, out):
    """The constant entries (which < 0) of a coefficient array, set once; the others start at 0."""
    flat = out.reshape((-1, PATHS))
    fill_zero(flat)
    for k in range(index.shape[0]):
        if which[k] < 0:
            for n in range(PATHS):
                flat[index[k], n] = coefficient[k]


@jit
def dense_state(x):
    """The state at t = 0 from X_0 = ``x`` (w, PATHS): Y = Yi = I, every integral 0."""
    w = x.shape[0]
    eye = np.zeros((w, w, PATHS))
    for i in range(w):
        eye[i, i, :] = 1.0
    cube = (w, w, w, PATHS)
    return (x, eye, eye.copy(), np.zeros((w, PATHS)), np.zeros((w, w, PATHS)), np.zeros(cube), np.zeros(cube),
            np.zeros(cube), np.zeros(cube))


@jit
def dense_scratch(w, e):
    """The step's work arrays for width w and e noise columns, allocated once per block of paths:
    (A (w, e), S, Cn, E, E2, Ynew, Yinew, GY (w, w), HtP, F, Psi, T1, T2, dZh (w, w, w),
    K (e, w, w), vectors (4, w)), each with the PATHS axis."""
    mat, cube = (w, w, PATHS), (w, w, w, PATHS)
    return (np.empty((w, e, PATHS)), np.empty(mat), np.empty(mat), np.empty(mat), np.empty(mat), np.empty(mat),
            np.empty(mat), np.empty(mat), np.empty(cube), np.empty(cube), np.empty(cube), np.empty(cube),
            np.empty(cube), np.empty(cube), np.empty((e, w, w, PATHS)), np.empty((4, w, PATHS)))


# ---- one Euler step, one function per formula
@jit
def noise_terms(Yi, sigma, A, S):
    """A = Yi sigma (w, e) and S = A A^T (w, w): the noise seen through the inverse first variation."""
    w, e = A.shape[0], A.shape[1]
    product(Yi, sigma, A, False)
    for i in range(w):
        for j in range(i, w):
            for n in range(PATHS):
                S[i, j, n] = 0.0
            for l in range(e):
                for n in range(PATHS):
                    S[i, j, n] += A[i, l, n] * A[j, l, n]
            for n in range(PATHS):
                S[j, i, n] = S[i, j, n]


@jit
def product(A, B, out, transpose):
    """out = A B per path (out[i, c] = sum_a A[i, a] B[a, c]), or A^T B with ``transpose``
    (out[i, c] = sum_a A[a, i] B[a, c]), for each of the 8 paths.

    Written out for the 8 paths of a block (PATHS = 8) and four output columns at a time: 32
    scalar accumulators, which LLVM's SLP vectorizer packs into vector registers (:func:`loop_kernel`
    compiles with it on). Each accumulator is a chain of dependent multiply-adds, so one column
    at a time leaves the multiply-add units waiting on the chain's latency; four independent
    columns keep them busy, and each row of A is loaded once for four columns (1.3-1.7x against
    one column at w = 8-32). ``transpose`` is the same for the whole call, so the branch leaves
    the loop. Every O(w^4) contraction of the step but the G_l Hs_l sum of a state-dependent sigma
    (:func:`second_variation_tensor`) goes through this function."""
    rows = A.shape[1] if transpose else A.shape[0]
    inner, cols = B.shape[0], B.shape[1]
    blocked = cols - cols % 4
    for i in range(rows):
        for c in range(0, blocked, 4):
            s00 = s01 = s02 = s03 = s04 = s05 = s06 = s07 = 0.0
            s10 = s11 = s12 = s13 = s14 = s15 = s16 = s17 = 0.0
            s20 = s21 = s22 = s23 = s24 = s25 = s26 = s27 = 0.0
            s30 = s31 = s32 = s33 = s34 = s35 = s36 = s37 = 0.0
            for a in range(inner):
                row = A[a, i] if transpose else A[i, a]
                a0, a1, a2, a3, a4, a5, a6, a7 = row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7]
                b0, b1, b2, b3 = B[a, c], B[a, c + 1], B[a, c + 2], B[a, c + 3]
                s00 += a0 * b0[0]; s01 += a1 * b0[1]; s02 += a2 * b0[2]; s03 += a3 * b0[3]  # noqa: E702
                s04 += a4 * b0[4]; s05 += a5 * b0[5]; s06 += a6 * b0[6]; s07 += a7 * b0[7]  # noqa: E702
                s10 += a0 * b1[0]; s11 += a1 * b1[1]; s12 += a2 * b1[2]; s13 += a3 * b1[3]  # noqa: E702
                s14 += a4 * b1[4]; s15 += a5 * b1[5]; s16 += a6 * b1[6]; s17 += a7 * b1[7]  # noqa: E702
                s20 += a0 * b2[0]; s21 += a1 * b2[1]; s22 += a2 * b2[2]; s23 += a3 * b2[3]  # noqa: E702
                s24 += a4 * b2[4]; s25 += a5 * b2[5]; s26 += a6 * b2[6]; s27 += a7 * b2[7]  # noqa: E702
                s30 += a0 * b3[0]; s31 += a1 * b3[1]; s32 += a2 * b3[2]; s33 += a3 * b3[3]  # noqa: E702
                s34 += a4 * b3[4]; s35 += a5 * b3[5]; s36 += a6 * b3[6]; s37 += a7 * b3[7]  # noqa: E702
            store8(out[i, c], s00, s01, s02, s03, s04, s05, s06, s07)
            store8(out[i, c + 1], s10, s11, s12, s13, s14, s15, s16, s17)
            store8(out[i, c + 2], s20, s21, s22, s23, s24, s25, s26, s27)
            store8(out[i, c + 3], s30, s31, s32, s33, s34, s35, s36, s37)
        for c in range(blocked, cols):  # the last cols % 4 columns, one at a time
            s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
            for a in range(inner):
                row, b0 = (A[a, i] if transpose else A[i, a]), B[a, c]
                s0 += row[0] * b0[0]; s1 += row[1] * b0[1]; s2 += row[2] * b0[2]; s3 += row[3] * b0[3]  # noqa: E702
                s4 += row[4] * b0[4]; s5 += row[5] * b0[5]; s6 += row[6] * b0[6]; s7 += row[7] * b0[7]  # noqa: E702
            store8(out[i, c], s0, s1, s2, s3, s4, s5, s6, s7)


@jit
def store8(out, v0, v1, v2, v3, v4, v5, v6, v7):
    """out[0:8] = v0 .. v7 (one path block's values, kept in registers until here)."""
    out[0], out[1], out[2], out[3], out[4], out[5], out[6], out[7] = v0, v1, v2, v3, v4, v5, v6, v7


@jit
def add_outer(u, v, z, cube):
    """cube[i, j, c] += u[i] v[j] z[c] per path: u, v, z (w, PATHS), cube (w, w, w, PATHS).

    The product u[i] v[j] of each row is held in eight scalars (one per path) for the row's
    loop over c: written as a loop over paths, the compiler checks the arrays for overlap before
    every 8-long inner loop, which cost twice the arithmetic (measured at w = 16)."""
    for i in range(cube.shape[0]):
        for j in range(cube.shape[1]):
            t0, t1, t2, t3 = u[i, 0] * v[j, 0], u[i, 1] * v[j, 1], u[i, 2] * v[j, 2], u[i, 3] * v[j, 3]
            t4, t5, t6, t7 = u[i, 4] * v[j, 4], u[i, 5] * v[j, 5], u[i, 6] * v[j, 6], u[i, 7] * v[j, 7]
            row = cube[i, j]
            for c in range(cube.shape[2]):
                zc, o = z[c], row[c]
                o[0] += t0 * zc[0]; o[1] += t1 * zc[1]; o[2] += t2 * zc[2]; o[3] += t3 * zc[3]  # noqa: E702
                o[4] += t4 * zc[4]; o[5] += t5 * zc[5]; o[6] += t6 * zc[6]; o[7] += t7 * zc[7]  # noqa: E702


@jit
def add_scaled_rows(out, a, scale):
    """out[r] += scale * a[r] per path for (rows, PATHS) arrays, ``scale`` (PATHS,): the scale in
    eight scalars and each row's update written out (see :func:`add_outer` for why)."""
    s0, s1, s2, s3, s4, s5, s6, s7 = scale[0], scale[1], scale[2], scale[3], scale[4], scale[5], scale[6], scale[7]
    for r in range(out.shape[0]):
        o, v = out[r], a[r]
        o[0] += s0 * v[0]; o[1] += s1 * v[1]; o[2] += s2 * v[2]; o[3] += s3 * v[3]  # noqa: E702
        o[4] += s4 * v[4]; o[5] += s5 * v[5]; o[6] += s6 * v[6]; o[7] += s7 * v[7]  # noqa: E702


@jit
def variation_of_noise(Yi, G, Y, GY, K):
    """K_l = Yi G_l Y (e, w, w) for sigma(t, x); ``GY`` (w, w) is scratch for G_l Y."""
    for l in range(K.shape[0]):
        product(G[l], Y, GY, False)
        product(Yi, GY, K[l], False)


@jit
def psi_term(C, A, K, keep_psi, inner, c_inner, out):
    """Psi[i; j, c] = sum_a C[i, a] inner[j; a, c] with inner = sum_l K_l[j, a] A[c, l] + A[j, l] K_l[c, a]
    (0 without ``keep_psi``); ``inner`` (w, w, w) and ``c_inner`` (w, w) are scratch."""
    w, e = A.shape[0], A.shape[1]
    fill_zero(inner)
    if keep_psi:
        for j in range(w):
            for a in range(w):
                for c in range(w):
                    for l in range(e):
                        for n in range(PATHS):
                            inner[j, a, c, n] += K[l, j, a, n] * A[c, l, n] + A[j, l, n] * K[l, c, a, n]
    for j in range(w):  # out[:, j, :] = C inner[j]
        product(C, inner[j], c_inner, False)
        for i in range(w):
            for c in range(w):
                for n in range(PATHS):
                    out[i, j, c, n] = c_inner[i, c, n]


@jit
def r_increment(dt, HtP, S, Psi, state_dependent, F, R):
    """R += (HtP S + S HtP^T (- Psi)) dt from the values at t_k, HtP = Ht (+ P).

    S is symmetric, so (S HtP^T)[i; j, c] = (HtP S)[i; c, j]: one product F = HtP S per i
    (w^4 multiply-adds over all i), then R[i; j, c] += (F[j, c] + F[c, j]) dt, written to both
    halves of R (symmetric in j, c). ``F`` (w, w, w) is scratch (only F[0] is used)."""
    w = R.shape[0]
    Fi = F[0]
    for i in range(w):
        product(HtP[i], S, Fi, False)
        if state_dependent:  # F - Psi[i] / 2 on both halves gives the - Psi dt below
            for j in range(w):
                for c in range(w):
                    for n in range(PATHS):
                        Fi[j, c, n] -= 0.5 * Psi[i, j, c, n]
        for j in range(w):
            for c in range(j, w):
                f, g, upper, lower = Fi[j, c], Fi[c, j], R[i, j, c], R[i, c, j]
                v0, v1, v2, v3 = (f[0] + g[0]) * dt, (f[1] + g[1]) * dt, (f[2] + g[2]) * dt, (f[3] + g[3]) * dt
                v4, v5, v6, v7 = (f[4] + g[4]) * dt, (f[5] + g[5]) * dt, (f[6] + g[6]) * dt, (f[7] + g[7]) * dt
                upper[0] += v0; upper[1] += v1; upper[2] += v2; upper[3] += v3  # noqa: E702
                upper[4] += v4; upper[5] += v5; upper[6] += v6; upper[7] += v7  # noqa: E702
                if c != j:
                    lower[0] += v0; lower[1] += v1; lower[2] += v2; lower[3] += v3  # noqa: E702
                    lower[4] += v4; lower[5] += v5; lower[6] += v6; lower[7] += v7  # noqa: E702


@jit
def p_increment(dt, A, K, P):
    """P += sum_l A_l K_l dt (sigma(t, x))."""
    w, e = A.shape[0], A.shape[1]
    for i in range(w):
        for l in range(e):
            for j in range(w):
                for bb in range(w):
                    for n in range(PATHS):
                        P[i, j, bb, n] += A[i, l, n] * dt * K[l, j, bb, n]


@jit
def rank_one_increment(dt, Yi, Y, Cn, rank_one, vectors, Zh, Ht):
    """Zh += dZh and Ht += C_{k+1} dZh for H = sum_k g_k U[k] (x) V[k] (x) V2[k] (sigma(t)):
    dZh = sum_k g_k (Yi u_k) (x) (Y^T v_k) (x) (Y^T v'_k) dt is a sum of outer products, O(K w^3).
    ``vectors`` (4, w) is scratch for those three vectors and C_{k+1} Y^T v_k."""
    factor, which, U, V, V2 = rank_one
    w = Zh.shape[0]
    gu, yv, yv2, cyv = vectors[0], vectors[1], vectors[2], vectors[3]
    for k in range(which.shape[0]):
        fill_zero(vectors)
        for i in range(w):
            for p in range(w):
                for n in range(PATHS):
                    gu[i, n] += Yi[i, p, n] * U[k, p]
            for n in range(PATHS):
                gu[i, n] *= (1.0 if which[k] < 0 else factor[which[k], n]) * dt
        for q in range(w):
            for a in range(w):
                for n in range(PATHS):
                    yv[a, n] += V[k, q] * Y[q, a, n]
                    yv2[a, n] += V2[k, q] * Y[q, a, n]
        for i in range(w):
            for a in range(w):
                for n in range(PATHS):
                    cyv[i, n] += Cn[i, a, n] * yv[a, n]
        add_outer(cyv, gu, yv2, Ht)
        add_outer(gu, yv, yv2, Zh)


@jit
def symmetrize_last(cube):
    """cube[i, c, a] = cube[i, a, c] for c > a: the lower half from the upper one."""
    w = cube.shape[0]
    for i in range(w):
        for a in range(w):
            for c in range(a + 1, w):
                for n in range(PATHS):
                    cube[i, c, a, n] = cube[i, a, c, n]


@jit
def second_variation_tensor(term, H, G, Hs, state_dependent, out):
    """out = the tensor T of term ``term`` of dZh: H (- sum_l G_l Hs_l) for term 0 (the dt term),
    Hs_l for term l + 1 (the dW_l term, sigma(t, x))."""
    w, e = out.shape[0], G.shape[0]
    if term > 0:
        copy_into(out, Hs[term - 1])
        return
    copy_into(out, H)
    if state_dependent:
        for p in range(w):
            for l in range(e):
                for u in range(w):
                    for q in range(w):
                        for r in range(w):
                            for n in range(PATHS):
                                out[p, q, r, n] -= G[l, p, u, n] * Hs[l, u, q, r, n]


@jit
def add_transported(scale, Yi, Y, T, T1, dZh):
    """dZh[i; a, c] += scale sum_p Yi[i, p] T[p; Y a, Y c]: three matrix products per path,
    T1[p] = T[p]^T Y (T1[p; r, a] = T[p; Y a, r]), T[p] = T1[p]^T Y, then Yi times T seen as
    (w, w^2). T (w, w, w) is overwritten; ``T1`` (w, w, w) is scratch; ``scale`` (PATHS,)."""
    w = T.shape[0]
    for p in range(w):
        product(T[p], Y, T1[p], True)
        product(T1[p], Y, T[p], True)
    flat_t, flat_product = T.reshape((w, w * w, PATHS)), T1.reshape((w, w * w, PATHS))
    product(Yi, flat_t, flat_product, False)
    add_scaled_rows(dZh.reshape((-1, PATHS)), flat_product.reshape((-1, PATHS)), scale)


@jit
def zh_increment(dt, dw, H, G, Hs, Yi, Y, state_dependent, T1, T2, dZh, scale):
    """dZh = Yi T[Y., Y.] dt (+ sum_l Yi Hs_l[Y., Y.] dW_l) with T = H (- sum_l G_l Hs_l), the
    dense contraction; ``T1``, ``T2`` (w, w, w) and ``scale`` (PATHS,) are scratch."""
    e = dw.shape[0]
    fill_zero(dZh)
    for term in range(e + 1 if state_dependent else 1):
        second_variation_tensor(term, H, G, Hs, state_dependent, T2)
        for n in range(PATHS):
            scale[n] = dt if term == 0 else dw[term - 1, n]
        add_transported(scale, Yi, Y, T2, T1, dZh)
    symmetrize_last(dZh)


@jit
def add_zh_ht(Cn, dZh, c_dzh, Zh, Ht):
    """Ht += C_{k+1} dZh (Ht[:, j, :] += C_{k+1} dZh[j]), Zh += dZh; ``c_dzh`` (w, w) is scratch."""
    w = Zh.shape[0]
    for j in range(w):
        product(Cn, dZh[j], c_dzh, False)
        for i in range(w):  # Ht[i, j] and c_dzh[i] are contiguous (w, PATHS): one flat loop each
            add_into(Ht[i, j], Ht[i, j], c_dzh[i], 1.0)
    add_into(Zh, Zh, dZh, 1.0)


@jit
def first_variation_step(dt, dw, J, G, state_dependent, Y, Yi, E, E2, Ynew, Yinew):
    """Y += E Y and Yi += Yi (-E + (G dW)^2) with E = J dt (+ sum_l G_l dW_l): Yi's step is the
    inverse of Y's to second order (sigma(t, x)). ``E``, ``E2``, ``Ynew``, ``Yinew`` (w, w) are scratch."""
    w, e = Y.shape[0], dw.shape[0]
    for i in range(w):
        for j in range(w):
            for n in range(PATHS):
                E[i, j, n] = J[i, j, n] * dt
    if state_dependent:
        for l in range(e):
            for i in range(w):
                for j in range(w):
                    for n in range(PATHS):
                        E[i, j, n] += G[l, i, j, n] * dw[l, n]
    for i in range(w):
        for j in range(w):
            for n in range(PATHS):
                E2[i, j, n] = -E[i, j, n]
    if state_dependent:  # + (G dW)^2, with G dW = E - J dt
        for i in range(w):
            for u in range(w):
                for j in range(w):
                    for n in range(PATHS):
                        E2[i, j, n] += (E[i, u, n] - J[i, u, n] * dt) * (E[u, j, n] - J[u, j, n] * dt)
    product(E, Y, Ynew, False)
    product(Yi, E2, Yinew, False)
    add_into(Y, Y, Ynew, 1.0)
    add_into(Yi, Yi, Yinew, 1.0)


@jit
def m_c_x_increment(dt, dw, A, S, b, sigma, M, C, x):
    """M += A dW, C += S dt, X += b dt + sigma dW."""
    w, e = A.shape[0], A.shape[1]
    for i in range(w):
        for l in range(e):
            for n in range(PATHS):
                M[i, n] += A[i, l, n] * dw[l, n]
                x[i, n] += sigma[i, l, n] * dw[l, n]
        for n in range(PATHS):
            x[i, n] += b[i, n] * dt
    add_into(C, C, S, dt)


@jit
def second_variation_step(dt, dw, coefficients, state, scratch, flags, rank_one):
    """The second-order part of a step: R, P (sigma(t, x)), Zh and Ht from the values at t_k.

    sigma(t): Zh += dZh = Yi H[Y., Y.] dt and R += (Ht S + S Ht^T) dt. sigma(t, x): the Ito
    second variation dZh = Yi (H - G_l Hs_l)[Y., Y.] dt + Yi Hs_l[Y., Y.] dW_l, K_l = Yi G_l Y,
    P += A_l K_l dt and R += ((Ht + P) S + S (Ht + P)^T - Psi) dt. Then Ht += C_{k+1} dZh.
    A and S (scratch 0 and 1) hold the step's noise terms."""
    H, G, Hs = coefficients[2], coefficients[4], coefficients[5]
    Y, Yi, C, Zh, Ht, R, P = state[1], state[2], state[4], state[5], state[6], state[7], state[8]
    A, S, Cn, GY, HtP, F, Psi = scratch[0], scratch[1], scratch[2], scratch[7], scratch[8], scratch[9], scratch[10]
    T1, T2, dZh, K, vectors = scratch[11], scratch[12], scratch[13], scratch[14], scratch[15]
    state_dependent, keep_p, keep_psi = flags[1] != 0, flags[2] != 0, flags[3] != 0
    if state_dependent and keep_p:  # R's increment contracts Ht + P with S
        add_into(HtP, Ht, P, 1.0)
    else:
        HtP = Ht
    if state_dependent:
        variation_of_noise(Yi, G, Y, GY, K)
        psi_term(C, A, K, keep_psi, dZh, GY, Psi)  # dZh is scratch until it is computed below
    r_increment(dt, HtP, S, Psi, state_dependent, F, R)
    if state_dependent and keep_p:
        p_increment(dt, A, K, P)
    add_into(Cn, C, S, dt)  # C_{k+1}, for Ht_{k+1} = Ht + C_{k+1} dZh
    if rank_one[1].shape[0] > 0:
        rank_one_increment(dt, Yi, Y, Cn, rank_one, vectors, Zh, Ht)
    else:
        zh_increment(dt, dw, H, G, Hs, Yi, Y, state_dependent, T1, T2, dZh, vectors[0, 0])
        add_zh_ht(Cn, dZh, GY, Zh, Ht)


@jit
def dense_step(dt, dw, coefficients, state, scratch, flags, rank_one):
    """One left-point Euler step of X, Y, Yi, M, C and (second order) Zh, Ht, R, P in place, for
    PATHS paths. Arguments are the tuples of the module docstring; dw (e, PATHS) holds the increments."""
    b, J, sigma, G = coefficients[0], coefficients[1], coefficients[3], coefficients[4]
    x, Y, Yi, M, C = state[0], state[1], state[2], state[3], state[4]
    A, S = scratch[0], scratch[1]
    noise_terms(Yi, sigma, A, S)
    if flags[0] != 0:
        second_variation_step(dt, dw, coefficients, state, scratch, flags, rank_one)
    m_c_x_increment(dt, dw, A, S, b, sigma, M, C, x)
    first_variation_step(dt, dw, J, G, flags[1] != 0, Y, Yi, scratch[3], scratch[4], scratch[5], scratch[6])


@jit
def dense_health(state, n) -> int:
    """The bits (1 X, 2 Y/Yi, 4 C) of what is not finite on path ``n`` of the block (0: sound)."""
    x, Y, Yi, C = state[0], state[1], state[2], state[4]
    kind = 0
    if not math.isfinite(np.sum(x[:, n])):
        kind |= 1
    if not math.isfinite(np.sum(Y[:, :, n]) + np.sum(Yi[:, :, n])):
        kind |= 2
    if not math.isfinite(np.sum(C[:, :, n])):
        kind |= 4
    return kind


# ---- the weight at a record time, one path at a time (contiguous copies, no PATHS axis)
@jit
def weight_scratch(w):
    """One path's copy of (Yi, M, C, Zh, Ht, R, P) and the weight's work arrays (mats (3, w, w), vecs (4, w))."""
    cube = (w, w, w)
    return ((np.empty((w, w)), np.empty(w), np.empty((w, w)), np.empty(cube), np.empty(cube), np.empty(cube),
             np.empty(cube)), np.empty((3, w, w)), np.empty((4, w)))


@jit
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


@jit
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


@jit
def dense_weight(ridge, path_state, flags, mats, vecs, target):
    """The target -Yi^T (Cr^-1 M + v - Cr^-1 rho) with Cr = C + ridge I into ``target`` (w,) for one
    path's ``path_state`` (Yi, M, C, Zh, Ht, R, P) without the PATHS axis; returns (all LDL^T
    pivots > 0, the condition estimate w sum_a Cr_aa (Cr^-1)_aa)."""
    Yi, M, C, Zh, Ht, R, P = path_state
    w = M.shape[0]
    L, Cinv, Li = mats[0], mats[1], mats[2]
    piv, g = vecs[0], vecs[1]
    positive, condition = ldl_inverse(C, ridge, L, Li, piv, Cinv)
    for i in range(w):
        acc = 0.0
        for j in range(w):
            acc += Cinv[i, j] * M[j]
        g[i] = acc
    if flags[0] != 0:
        add_second_order_terms(ridge, Cinv, Zh, Ht, R, P, flags[2] != 0, vecs[2], vecs[3], g)
    for a in range(w):
        acc = 0.0
        for i in range(w):
            acc -= Yi[i, a] * g[i]
        target[a] = acc
    return positive, w * condition


@jit
def path_weight(ridge, state, n, flags, work, target):
    """:func:`dense_weight` of path ``n`` of the block: its state copied out of the PATHS axis
    into ``work`` (from :func:`weight_scratch`) first."""
    path_state, mats, vecs = work
    Yi, M, C, Zh, Ht, R, P = path_state
    Yi[:, :] = state[2][:, :, n]
    M[:] = state[3][:, n]
    C[:, :] = state[4][:, :, n]
    Zh[:, :, :] = state[5][:, :, :, n]
    Ht[:, :, :] = state[6][:, :, :, n]
    R[:, :, :] = state[7][:, :, :, n]
    P[:, :, :] = state[8][:, :, :, n]
    return dense_weight(ridge, path_state, flags, mats, vecs, target)


# ---- the kernel: blocks of PATHS paths in parallel, the time loop, the records
#: The signature of a block's factors function, a numba ``cfunc`` of the generated module:
#: factors(t, x, factor) with x (w, PATHS) and factor (n_factors, PATHS) passed as pointers. Passed
#: to :func:`loop_kernel` as a first-class function, so one compiled kernel serves every SDE.
FACTORS_SIGNATURE = numba.types.void(numba.types.float64, numba.types.CPointer(numba.types.float64),
                                     numba.types.CPointer(numba.types.float64))


@jit
def coefficient_arrays(w, e, tables):
    """The coefficient arrays (b, J, H, sigma, G, Hs) of width w and e noise columns, each with the
    PATHS axis, their constant entries set from ``tables`` (see :func:`loop_kernel`)."""
    index, coefficient, which, starts = tables
    arrays = (np.empty((w, PATHS)), np.empty((w, w, PATHS)), np.empty((w, w, w, PATHS)), np.empty((w, e, PATHS)),
              np.empty((e, w, w, PATHS)), np.empty((e, w, w, w, PATHS)))
    dense_init(index[starts[0]:starts[1]], coefficient[starts[0]:starts[1]], which[starts[0]:starts[1]], arrays[0])
    dense_init(index[starts[1]:starts[2]], coefficient[starts[1]:starts[2]], which[starts[1]:starts[2]], arrays[1])
    dense_init(index[starts[2]:starts[3]], coefficient[starts[2]:starts[3]], which[starts[2]:starts[3]], arrays[2])
    dense_init(index[starts[3]:starts[4]], coefficient[starts[3]:starts[4]], which[starts[3]:starts[4]], arrays[3])
    dense_init(index[starts[4]:starts[5]], coefficient[starts[4]:starts[5]], which[starts[4]:starts[5]], arrays[4])
    dense_init(index[starts[5]:starts[6]], coefficient[starts[5]:starts[6]], which[starts[5]:starts[6]], arrays[5])
    return arrays


@jit
def scatter_all(factor, tables, arrays):
    """Every coefficient array's non-constant entries at this step's factors."""
    index, coefficient, which, starts = tables
    scatter(factor, index[starts[0]:starts[1]], coefficient[starts[0]:starts[1]], which[starts[0]:starts[1]], arrays[0])
    scatter(factor, index[starts[1]:starts[2]], coefficient[starts[1]:starts[2]], which[starts[1]:starts[2]], arrays[1])
    scatter(factor, index[starts[2]:starts[3]], coefficient[starts[2]:starts[3]], which[starts[2]:starts[3]], arrays[2])
    scatter(factor, index[starts[3]:starts[4]], coefficient[starts[3]:starts[4]], which[starts[3]:starts[4]], arrays[3])
    scatter(factor, index[starts[4]:starts[5]], coefficient[starts[4]:starts[5]], which[starts[4]:starts[5]], arrays[4])
    scatter(factor, index[starts[5]:starts[6]], coefficient[starts[5]:starts[6]], which[starts[5]:starts[6]], arrays[5])


@jit
def block_paths(factors, n_factors, tables, rank_one_terms, flags, lanes, noise, lane, first, count, x0, dt, n_steps,
                record_steps, dW, seed, path_index, ridge, cond_max, out_x, out_target, fail_step, fail_kind, illcond,
                step_checks):
    """Paths first .. first + count - 1 (count <= PATHS) of lane ``lane`` of a loop-form block: the
    slots past ``count`` repeat the last path and are never written. A path whose X, Y/Yi or C is
    not finite at a check stops being written (its fail_step and fail_kind are set); the block
    stops when none is left. Arguments as for :func:`loop_kernel`."""
    w, e = lanes.shape[1], noise.shape[1]
    n_records = record_steps.shape[0]
    use_dw = dW.shape[0] > 0
    sqrt_dt = math.sqrt(dt)
    rows = np.empty(PATHS, dtype=np.int64)  # the path in each slot
    alive = np.zeros(PATHS, dtype=np.bool_)
    for n in range(PATHS):
        rows[n] = first + min(n, count - 1)
        alive[n] = n < count
    n_alive = count
    x = np.empty((w, PATHS))
    for c in range(w):
        for n in range(PATHS):
            x[c, n] = x0[rows[n], lanes[lane, c]]
    state = dense_state(x)  # (x, Y, Yi, M, C, Zh, Ht, R, P): Ht = C Zh - Q
    coefficients = coefficient_arrays(w, e, tables)
    factor = np.zeros((max(n_factors, 1), PATHS))
    rank_one = (factor, rank_one_terms[0], rank_one_terms[1], rank_one_terms[2], rank_one_terms[3])
    dw, z = np.empty((e, PATHS)), np.zeros((e, 4, PATHS))
    scratch, work, target = dense_scratch(w, e), weight_scratch(w), np.empty(w)
    rec = 0
    for k in range(n_steps):
        for n in range(PATHS):
            p = rows[n]
            for l in range(e):
                if not use_dw and k % 4 == 0:  # one Philox call gives the normals of 4 steps
                    z[l, 0, n], z[l, 1, n], z[l, 2, n], z[l, 3, n] = philox_normals4_jit(
                        seed, np.uint64(path_index[p]), np.uint64(k // 4), np.uint64(noise[lane, l]))
                dw[l, n] = dW[p, k, noise[lane, l]] if use_dw else z[l, k % 4, n] * sqrt_dt
        factors(k * dt, x.ctypes, factor.ctypes)
        scatter_all(factor, tables, coefficients)
        dense_step(dt, dw, coefficients, state, scratch, flags, rank_one)
        if step_checks or k + 1 == record_steps[rec]:
            for n in range(count):
                kind = dense_health(state, n) if alive[n] else 0
                if kind:  # the failure check: the path stops being written here
                    fail_step[rows[n]] = min(fail_step[rows[n]], k + 1)
                    fail_kind[rows[n]] |= kind
                    alive[n] = False
                    n_alive -= 1
            if n_alive == 0:
                return
        if k + 1 == record_steps[rec]:
            for n in range(count):
                if alive[n]:
                    ok, condition = path_weight(ridge, state, n, flags, work, target)
                    for c in range(w):
                        out_x[rows[n], rec, lanes[lane, c]] = x[c, n]
                        out_target[rows[n], rec, lanes[lane, c]] = target[c]
                    if not (ok and condition < cond_max):
                        illcond[rows[n], rec] = True
            rec += 1
            if rec == n_records:
                return


@numba.njit(parallel=True, cache=True, error_model="numpy")
def parallel_blocks(factors, n_factors, index, coefficient, which, starts, rank_one_which, rank_one_u, rank_one_v,
                rank_one_v2, flags, lanes, noise, x0, dt, n_steps, record_steps, dW, seed, path_index, ridge, cond_max,
                out_x, out_target, fail_step, fail_kind, illcond, step_checks):
    """One Euler pass of a loop-form block over n paths, PATHS at a time in parallel.

    The block: ``factors`` (a cfunc of :data:`FACTORS_SIGNATURE`) and ``n_factors``; the tables of
    b, J, H, sigma, G, Hs concatenated in that order, entries starts[a] .. starts[a + 1] - 1 being
    array a's (``index``, ``coefficient``, ``which``); H's rank-one terms (which, U, V, V2), empty
    when it has none; (single arrays, not tuples: numba's parallel loop takes no tuples of arrays) ``flags`` (int64: second order, sigma(t, x), P, Psi);
    ``lanes`` (n_lanes, w) and ``noise`` (n_lanes, e): the global coordinates and noise columns of
    each lane. The rest as for the generated ``simulate_kernel`` (symscore/compiler/templates).
    """
    n = x0.shape[0]
    for chunk in numba.prange((n + PATHS - 1) // PATHS):
        first = chunk * PATHS
        tables = (index, coefficient, which, starts)
        rank_one_terms = (rank_one_which, rank_one_u, rank_one_v, rank_one_v2)
        for lane in range(lanes.shape[0]):
            block_paths(factors, n_factors, tables, rank_one_terms, flags, lanes, noise, lane, first,
                        min(PATHS, n - first), x0, dt, n_steps, record_steps, dW, seed, path_index, ridge, cond_max,
                        out_x, out_target, fail_step, fail_kind, illcond, step_checks)


def loop_kernel(*args):
    """:func:`parallel_blocks` (same arguments), compiled with LLVM's SLP vectorizer switched on.

    numba runs LLVM without it (``NUMBA_SLP_VECTORIZE=0``), and only the SLP vectorizer packs the
    scalar accumulators of :func:`product` into vector registers (about 3x on its products at
    w = 16). The setting is read when code is compiled, so it is switched on for the first call
    of a process only, which compiles this kernel or loads it from the cache, and then restored."""
    if parallel_blocks.signatures:
        return parallel_blocks(*args)
    previous = numba.config.SLP_VECTORIZE
    numba.config.SLP_VECTORIZE = 1
    try:
        return parallel_blocks(*args)
    finally:
        numba.config.SLP_VECTORIZE = previous
