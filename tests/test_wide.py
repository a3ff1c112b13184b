"""The loop form of wide components (symscore/compiler/dense.py) against the dense reference.

The loop form evaluates only the distinct factors of b, J, H, sigma (G_l, Hs_l) from generated
code and runs the recursion in loops (numba) or einsums (torch): with shared increments it must
agree with tests/reference.py per path to 1e-10, for sigma(t) and sigma(t, x) (rectangular
included), at first order, with the wrong variants (no P, no RPsi), and through emitted modules;
the automatic choice must pick it for wide coupled blocks only. The numba loop form's kernel is
compiled once for every SDE (about a minute cold, then cached), so the numba cases compile only
their factors; the slow ones add the other code paths and an emitted module, which compiles its
own copy.
"""
from __future__ import annotations


import numpy as np
import pytest
import sympy as sp

import symscore as ss
from conftest import FACTORIES, emitted_module
from reference import reference_simulate, relative_error
from symscore.compiler.ir import LOOP_FORM_TERMS, build_ir
from test_multiplicative import full_2d, rect_3d
from test_reference import hypoelliptic_nonlinear, rational_coupled_3d

RTOL = 1e-10
t = sp.Symbol("t")


def wide_tanh(m: int, seed: int = 0) -> ss.SDE:
    """b = theta tanh(theta . x) - x / 2 + a rational cross term, sigma = I: every coordinate coupled."""
    x = sp.symbols(f"x1:{m + 1}")
    theta = np.random.default_rng(seed).normal(size=m)
    theta = [sp.Float(v) for v in 1.5 * theta / np.linalg.norm(theta)]
    s = sum(a * xi for a, xi in zip(theta, x))
    drift = [a * sp.tanh(s) - xi / 2 for a, xi in zip(theta, x)]
    drift[0] += x[1] / (2 + x[-1] ** 2)
    return ss.SDE(drift, 1, list(x), t, name=f"wide_tanh{m}")


def rect_wide() -> ss.SDE:
    """m = 3, d = 4 (more noise columns than coordinates), sigma(x) coupled, a log and an atan drift."""
    x1, x2, x3 = sp.symbols("x1 x2 x3")
    drift = [-x1 + sp.atan(x2 * x3), -x2 + sp.log(1 + x1**2) / 2, -x3 ** 3 / (1 + x1**2)]
    sigma = sp.Matrix([[1 + x2**2 / 4, 0, sp.Rational(1, 3), 0], [0, sp.sqrt(1 + x1**2), 0, sp.Rational(1, 4)],
                       [x3 / 3, 0, 1, sp.exp(-x2**2) / 2]])
    return ss.SDE(drift, sigma, [x1, x2, x3], t, name="rect_wide")


TORCH_CASES = {
    **{name: FACTORIES[name] for name in ("coupled2d", "coupled3d", "linear_coupled", "benes2d", "cubic3", "vp2")},
    "hypoelliptic": hypoelliptic_nonlinear, "rational3d": rational_coupled_3d, "full2d": full_2d,
    "rect3d": rect_3d, "rect_wide": rect_wide, "gbm2": lambda: ss.library.gbm(m=2, mu=0.1, s=0.4),
    "heavy_ou": lambda: ss.library.heavy_ou(m=2), "wide_tanh6": lambda: wide_tanh(6),
}
OFFSET = {"gbm2": 1.0}


def _inputs(sde, offset=0.0, n=24, n_steps=40, seed=3):
    rng = np.random.default_rng(seed)
    x0 = offset + 0.5 * rng.normal(size=(n, sde.m))
    dW = ss.brownian_increments(seed, n, n_steps, sde.d, sde.T / n_steps)
    return x0, [0.5 * sde.T, sde.T], n_steps, dW


def _check(kernel, sde, label, offset=0.0, **reference_switches):
    x0, times, n_steps, dW = _inputs(sde, offset)
    paths = kernel.simulate(x0, times, n_steps, dW=dW, **({"as_numpy": True} if kernel.backend == "torch" else {}))
    ref_x, ref_target = reference_simulate(sde, x0, times, n_steps, dW, **reference_switches)
    err = max(relative_error(paths.x, ref_x), relative_error(paths.target, ref_target))
    assert err <= RTOL, f"{label}: relative error {err:.2e}"
    return paths


@pytest.mark.parametrize("name", sorted(TORCH_CASES))
def test_torch_loop_form_matches_the_reference(name):
    sde = TORCH_CASES[name]()
    kernel = ss.compile(sde, backend="torch", form="loop")
    assert "Kernel form per block: loop" in kernel.source
    _check(kernel, sde, name, OFFSET.get(name, 0.0))


@pytest.mark.loop_kernel
@pytest.mark.parametrize("name", ["rect_wide", pytest.param("rational3d", marks=pytest.mark.slow)])
def test_numba_loop_form_matches_the_reference(name):
    """rect_wide: sigma(t, x) with d > m (G, Hs, K, P, Psi, Yi's second-order step); rational3d: sigma(t)."""
    sde = TORCH_CASES[name]()
    kernel = ss.compile(sde, form="loop")
    assert "loop form" in kernel.source
    _check(kernel, sde, name)


@pytest.mark.loop_kernel
def test_numba_loop_form_reports_failed_paths_as_torch_does():
    """Paths are stepped PATHS at a time: a path that blows up must fail alone (its block-mates go
    on and match the reference), with the same failed records and the same raised message (first
    failing step, what was not finite) as the torch loop form, which tests every step; 13 paths
    leave a partly filled last block."""
    x = list(sp.symbols("x1:6"))
    s = sum(x) / 5
    sde = ss.SDE([xi**3 + sp.tanh(s) / 4 - xi for xi in x], sp.Rational(1, 10), x, t, name="blowup5")
    n, n_steps = 13, 40
    x0 = np.full((n, 5), 0.2)
    x0[[2, 9, 12]] = 2.5  # these explode before t = 1 (x' ~ x^3 from 2.5: about t = 0.09)
    dW = ss.brownian_increments(5, n, n_steps, 5, 1.0 / n_steps)
    numba_kernel, torch_kernel = ss.compile(sde, form="loop"), ss.compile(sde, backend="torch", form="loop")
    with pytest.warns(RuntimeWarning):
        ours = numba_kernel.simulate(x0, [0.5, 1.0], n_steps, dW=dW, on_failure="keep")
    with pytest.warns(RuntimeWarning):
        theirs = torch_kernel.simulate(x0, [0.5, 1.0], n_steps, dW=dW, on_failure="keep", as_numpy=True)
    assert np.array_equal(np.flatnonzero(ours.failed.any(axis=1)), [2, 9, 12])
    assert np.array_equal(ours.failed, theirs.failed)
    sound = ~ours.failed.any(axis=1)
    ref_x, ref_target = reference_simulate(sde, x0[sound], [0.5, 1.0], n_steps, dW[sound])
    assert max(relative_error(ours.x[sound], ref_x), relative_error(ours.target[sound], ref_target)) <= RTOL
    messages = []
    for kernel in (numba_kernel, torch_kernel):
        with pytest.raises(FloatingPointError) as error:
            kernel.simulate(x0, [0.5, 1.0], n_steps, dW=dW)
        messages.append(str(error.value))
    assert messages[0] == messages[1] and "3 of 13 paths" in messages[0]


@pytest.mark.parametrize("drop", [("P",), ("RPsi",)])
def test_the_wrong_variants_of_the_loop_form_match_theirs(drop):
    sde = rect_wide()
    kernel = ss.compile(sde, backend="torch", form="loop", variant=ss.Variant(drop=drop))
    wrong = _check(kernel, sde, f"drop {drop}", drop=drop)
    full = ss.compile(sde, backend="torch", form="loop")
    x0, times, n_steps, dW = _inputs(sde)
    right = full.simulate(x0, times, n_steps, dW=dW, as_numpy=True)
    assert relative_error(wrong.target, right.target) > 1e-3  # the dropped terms matter


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=[pytest.mark.slow, pytest.mark.loop_kernel]), "torch"])
def test_first_order_loop_form_matches_the_first_order_reference(backend):
    sde = rational_coupled_3d()
    kernel = ss.compile(sde, backend=backend, form="loop", variant=ss.Variant(first_order_only=True))
    _check(kernel, sde, "first order", first_order_only=True)


def test_auto_picks_the_loop_form_for_wide_coupled_blocks_only():
    """A coupled m = 6 block (6^4 = 1296 terms) is built in the loop form without unrolling; a
    64-d separable SDE stays 64 unrolled 1-D lanes, a coupled 2-D SDE stays unrolled."""
    wide = build_ir(wide_tanh(6).derive())
    assert [b.form for b in wide.blocks] == ["loop"] and wide.blocks[0].estimated_terms == 6**4 > LOOP_FORM_TERMS
    assert [b.form for b in build_ir(ss.library.cubic(m=64).derive()).blocks] == ["unrolled"]
    assert [b.form for b in build_ir(ss.library.benes(m=2).derive()).blocks] == ["unrolled"]
    # the Hessian of a tanh(c . x) is one factor times a (x) c (x) c: one rank-one term, no table
    x = list(sp.symbols("x1:6"))
    a, c = [0.3, -0.5, 0.7, 0.2, 0.4], [0.6, 0.1, -0.4, 0.9, -0.2]
    s = sum(sp.Float(ci) * xi for ci, xi in zip(c, x))
    tanh_only = ss.SDE([sp.Float(ai) * sp.tanh(s) for ai in a], 1, x, t, name="rank_one")
    block = build_ir(tanh_only.derive()).blocks[0]
    assert not next(table for table in block.tables if table.name == "H").index
    assert block.rank_one.n_terms == 1
    u, v, v2 = (np.array(z[0]) for z in (block.rank_one.u, block.rank_one.v, block.rank_one.v2))
    dense = np.einsum("p,q,r->pqr", u, v, v2)  # = f'' coefficient a (x) c (x) c: proportional to it
    expected = np.einsum("p,q,r->pqr", a, c, c)
    assert np.allclose(dense / dense.flat[np.argmax(np.abs(dense))], expected / expected.flat[np.argmax(np.abs(dense))])


def test_rank_one_detection_keeps_the_dense_table_where_h_is_not_rank_one():
    """A sum of two ridges is two rank-one terms; a product x_i x_j (a symmetric rank-two
    coefficient per factor) keeps H's table; a perturbed rank-one tensor is refused."""
    from symscore.compiler.ir import rank_one_hessian

    x = list(sp.symbols("x1:7"))
    c1, c2 = [1, 2, -1, 0, 1, 3], [0, 1, 1, -2, 1, 0]
    s1, s2 = (sum(ci * xi for ci, xi in zip(c, x)) / 4 for c in (c1, c2))
    ridges = ss.SDE([sp.tanh(s1) / 2 + sp.sin(s2) / 3 - xi / 2 for xi in x], 1, x, t, name="two_ridges")
    assert build_ir(ridges.derive()).blocks[0].rank_one.n_terms == 2
    products = ss.SDE([x[(i + 1) % 6] * x[(i + 2) % 6] / 4 - xi for i, xi in enumerate(x)], 1, x, t, name="products")
    block = build_ir(products.derive()).blocks[0]
    assert block.rank_one is None and next(tb for tb in block.tables if tb.name == "H").index
    u = np.array([1.0, 2.0, 3.0])
    tensor = np.einsum("p,q,r->pqr", u, u, u)
    flat = np.flatnonzero(tensor)
    assert rank_one_hessian(flat, tensor.flat[flat], [0] * flat.size, 3).n_terms == 1
    tensor[0, 1, 2] += 1e-6
    assert rank_one_hessian(flat, tensor.flat[flat], [0] * flat.size, 3) is None


@pytest.mark.parametrize("backend", [pytest.param("numba", marks=[pytest.mark.slow, pytest.mark.loop_kernel]), "torch"])
def test_rank_one_terms_match_the_reference(backend):
    """A sum of two ridge functions with a constant-coefficient linear part (two rank-one terms),
    both kernels against the dense reference per path."""
    x = list(sp.symbols("x1:6"))
    c1, c2 = [1, 2, -1, 0, 1], [0, 1, 1, -2, 1]
    s1, s2 = (sum(ci * xi for ci, xi in zip(c, x)) / 4 for c in (c1, c2))
    sde = ss.SDE([sp.tanh(s1) * (i - 2) / 3 + sp.atan(s2) / 3 - xi for i, xi in enumerate(x)],
                 sp.Matrix(5, 5, lambda i, j: 1 if i == j else (sp.Rational(1, 4) if j == i - 1 else 0)), x, t,
                 name="two_ridges5")
    kernel = ss.compile(sde, backend=backend)
    assert "Kernel form per block: loop" in kernel.source and "2 rank-one term(s)" in kernel.source
    _check(kernel, sde, f"two ridges ({backend})")


@pytest.mark.slow  # two cold numba compiles of a loop-form module (about 75 s)
@pytest.mark.loop_kernel
def test_a_wide_block_compiles_through_numba_and_its_emitted_module_agrees(tmp_path):
    """m = 6 coupled (auto: loop form) against the reference, and the emitted numba module."""
    sde = wide_tanh(6)
    kernel = ss.compile(sde)
    assert "Kernel form per block: loop" in kernel.source
    paths = _check(kernel, sde, "wide m=6")
    module = emitted_module(sde, tmp_path / "wide6_kernel.py")
    x0, times, n_steps, dW = _inputs(sde)
    _, x, target = module.simulate(x0, times, n_steps, dW=dW)
    assert relative_error(target, paths.target) <= RTOL and relative_error(x, paths.x) <= RTOL


def test_bad_form_is_refused_naming_the_argument():
    with pytest.raises(ss.SymscoreError, match="form: expected one of 'auto', 'unrolled', 'loop', got 'dense'"):
        ss.compile(ss.library.ou(m=1), form="dense")
    with pytest.raises(ss.SymscoreError, match="form: expected one of"):
        ss.emit(ss.library.ou(m=1), form=3)


def test_training_with_the_torch_backend_keeps_the_targets_as_tensors_on_the_device():
    """backend='torch': the target source simulates on the training device and hands tensors over."""
    import torch

    from symscore.learn.targets import make_target_source

    source = make_target_source("malliavin", ss.library.benes(m=2), 20, backend="torch", device="cpu")
    x, target = source.batch(np.zeros((8, 2)), np.array([5, 20]), seed=1)
    assert isinstance(target, torch.Tensor) and target.shape == (2, 8, 2) and target.device.type == "cpu"
    model = ss.train(ss.library.benes(m=2), np.random.default_rng(0).normal(size=(200, 2)), steps=3, batch_size=16,
                     backend="torch", n_steps=20, progress=False, device="cpu")
    assert np.isfinite(model.loss_history).all()

