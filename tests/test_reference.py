"""Generated kernels against the reference implementation (tests/reference.py), per path, shared dW.

This is what proves that structure specialisation, sparsity, CSE, lanes and printing leave the
mathematics unchanged: every built-in SDE, hand-written coupled / hypoelliptic / rectangular-noise
SDEs, the weight variants (ss.Variant), and a hypothesis corpus of random drifts (rational, log, sqrt, atan,
trigonometric, nested quotients, products across coordinates; m = 1..4; sigma the identity, lower
triangular, time-dependent, or m x (m + 1)) must agree with the dense numpy scheme to 1e-10
relative on the numba, torch and triton kernels (triton in its CPU interpreter without a GPU) and on
the emitted standalone modules. The fast profile
runs in ``make test``, the large one in ``make test-slow``.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import symscore as ss
from conftest import BACKENDS, FACTORIES, brownian, import_file
from corpus import random_sdes
from reference import reference_simulate, relative_error

RTOL = 1e-10
t = sp.Symbol("t")


def hypoelliptic_nonlinear() -> ss.SDE:
    """d = 1 < m = 2: the drift carries the noise of x1 into x2 (rational and sine terms)."""
    x1, x2 = sp.symbols("x1 x2")
    drift = [-x1 + sp.sin(x2) / 2, x1 - x2**3 / (1 + x2**2)]
    return ss.SDE(drift, sp.Matrix([[1], [0]]), [x1, x2], t, name="hypoelliptic_nonlinear")


def rational_coupled_3d() -> ss.SDE:
    """The issue's failing case: a coupled 3-D drift with a rational term, lower-triangular sigma."""
    x1, x2, x3 = sp.symbols("x1 x2 x3")
    drift = [-x1 + x2 * x3 / (1 + x1**2), -x2 + sp.atan(x1 - x3), -x3 + sp.log(1 + x1**2) - sp.sqrt(1 + x2**2) / 2]
    sigma = sp.Matrix([[1, 0, 0], [sp.Rational(1, 2), 1, 0], [0, -sp.Rational(1, 3), 1]])
    return ss.SDE(drift, sigma, [x1, x2, x3], t, name="rational3d")


def lane_constants_4d() -> ss.SDE:
    """Coordinates with one drift and noise scales that differ only in their numbers, one of them
    time-dependent: one block whose numbers are loaded per lane (the IR's lane constants)."""
    x = sp.symbols("y1:5")
    drift = [-xi - xi**3 / (1 + xi**2) for xi in x]
    scales = [sp.Float(0.5) * sp.sqrt(1 + sp.Float(0.7) * t), sp.Float(1.3) * sp.sqrt(1 + sp.Float(0.2) * t),
              sp.Float(0.5) * sp.sqrt(1 + sp.Float(0.7) * t), sp.Float(2.25) * sp.sqrt(1 + sp.Float(0.1) * t)]
    return ss.SDE(drift, sp.diag(*scales), list(x), t, name="lane_constants4d")


def spherical_field_l2() -> ss.SDE:
    """A field up to degree 2 (m = 9): sqrt(2 C_l) per degree, a nonlinear drift per coefficient."""
    from symscore.fields import X, whittle_matern_sde

    return whittle_matern_sde(2, kappa=1.5, alpha=1.5, drift=sp.atan(X) / 2 - X**3 / (1 + X**2), T=1.0)


SDES = {
    "lane_constants4d": lane_constants_4d,
    "field_l2": spherical_field_l2,
    **{f"builtin_{name}": factory for name, factory in ss.library.BUILTINS.items()},
    **FACTORIES,
    "hypoelliptic_nonlinear": hypoelliptic_nonlinear,
    "rational3d": rational_coupled_3d,
}


def _inputs(sde, n=48, n_steps=40, times=(0.25, 0.5, 1.0), seed=0):
    times = [tr * sde.T for tr in times]
    x0 = np.random.default_rng(seed).normal(scale=0.8, size=(n, sde.m))
    return x0, times, n_steps, brownian(n, n_steps, sde.d, times[-1], seed + 1)


def _assert_matches_reference(paths_x, paths_target, reference, label):
    ref_x, ref_target = reference
    err_x, err_target = relative_error(paths_x, ref_x), relative_error(paths_target, ref_target)
    assert err_x <= RTOL and err_target <= RTOL, f"{label}: relative error x {err_x:.2e}, target {err_target:.2e}"
    return max(err_x, err_target)


@pytest.fixture(scope="module")
def compiled():
    """compiled(name, backend, **options) -> a kernel, compiled once per module."""
    cache = {}

    def get(name, backend="numba", **options):
        key = (name, backend, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = ss.compile(SDES[name](), backend=backend, **options)
        return cache[key]

    return get


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(SDES))
def test_kernel_matches_reference(compiled, name, backend):
    kern = compiled(name, backend)
    x0, times, n_steps, dW = _inputs(kern.sde)
    paths = kern.simulate(x0, times, n_steps, dW=dW, as_numpy=True)
    _assert_matches_reference(paths.x, paths.target, reference_simulate(kern.sde, x0, times, n_steps, dW),
                              f"{name} ({backend})")


@pytest.mark.parametrize("name", ["builtin_cauchy", "cubic3", pytest.param("rational3d", marks=pytest.mark.slow)])
def test_forced_coupled_path_matches_reference(compiled, name):
    kern = compiled(name, variant=ss.Variant(force_coupled=True))
    x0, times, n_steps, dW = _inputs(kern.sde, seed=5)
    paths = kern.simulate(x0, times, n_steps, dW=dW)
    _assert_matches_reference(paths.x, paths.target, reference_simulate(kern.sde, x0, times, n_steps, dW), name)


def test_first_order_only_switch_matches_reference_without_second_variation(compiled):
    kern = compiled("coupled2d", variant=ss.Variant(first_order_only=True))
    x0, times, n_steps, dW = _inputs(kern.sde, seed=2)
    paths = kern.simulate(x0, times, n_steps, dW=dW)
    reference = reference_simulate(kern.sde, x0, times, n_steps, dW, first_order_only=True)
    _assert_matches_reference(paths.x, paths.target, reference, "coupled2d first order")
    # and the full target differs from it: the comparison can tell the two apart
    full = reference_simulate(kern.sde, x0, times, n_steps, dW)
    assert relative_error(paths.target, full[1]) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_ridge_matches_reference(compiled, backend):
    kern = compiled("rational3d", backend)
    x0, times, n_steps, dW = _inputs(kern.sde, seed=3)
    paths = kern.simulate(x0, times, n_steps, dW=dW, ridge=0.05, as_numpy=True)
    _assert_matches_reference(paths.x, paths.target,
                              reference_simulate(kern.sde, x0, times, n_steps, dW, ridge=0.05), "ridge")


def load_emitted(sde, backend, folder):
    """Write ss.emit's module to ``folder`` and import it as a plain module (no symscore involved)."""
    path = folder / f"emitted_{backend}_{sde.name}.py"
    ss.emit(sde, backend=backend, path=path)
    return import_file(path)


def check_emitted(sde, backend, folder, seed=0):
    module = load_emitted(sde, backend, folder)
    x0, times, n_steps, dW = _inputs(sde, seed=seed)
    _, x, target = module.simulate(x0, times, n_steps, dW=dW)  # numpy in, for both backends
    if backend != "numba":
        x, target = x.cpu().numpy(), target.cpu().numpy()
    return _assert_matches_reference(x, target, reference_simulate(sde, x0, times, n_steps, dW),
                                     f"emitted {backend} {sde.name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["builtin_cauchy", pytest.param("rational3d", marks=pytest.mark.slow)])
def test_emitted_module_matches_reference(tmp_path, name, backend):
    check_emitted(SDES[name](), backend, tmp_path)


# -- the random corpus (tests/corpus.py) ----------------------------------------------------------
def _check_random_sde(sde, backends=tuple(BACKENDS)):
    x0, times, n_steps, dW = _inputs(sde, n=32, n_steps=25, times=(0.2, 0.6, 1.0), seed=11)
    reference = reference_simulate(sde, x0, times, n_steps, dW)
    worst = 0.0
    for backend in backends:
        paths = ss.compile(sde, backend=backend).simulate(x0, times, n_steps, dW=dW, as_numpy=True)
        worst = max(worst, _assert_matches_reference(paths.x, paths.target, reference,
                                                     f"{sde.name} ({backend}): {list(sde.drift)}, sigma {sde.diffusion}"))
    return worst


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          phases=[Phase.generate], report_multiple_bugs=False)
@given(random_sdes(max_m=3))
def test_random_drifts_match_reference(sde):
    _check_random_sde(sde)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
          phases=[Phase.generate], report_multiple_bugs=False, database=None)
@given(random_sdes(max_m=4), st.booleans())
def test_random_drifts_match_reference_large(tmp_path_factory, sde, emitted):
    _check_random_sde(sde)
    if emitted:
        folder = tmp_path_factory.mktemp("emitted")
        for backend in BACKENDS:
            check_emitted(sde, backend, folder, seed=11)


def test_lane_constants_split_into_blocks_in_the_loop_form(compiled):
    """The loop form has no lane tables: lanes with other numbers become blocks of their own, and
    the kernel still matches the reference; the unrolled form keeps one block with lane constants."""
    from symscore.compiler.ir import build_ir

    der = lane_constants_4d().derive()
    unrolled, loop = build_ir(der), build_ir(der, form="loop")
    assert len(unrolled.blocks) == 1 and len(unrolled.blocks[0].constant_values) == 4
    assert len(loop.blocks) == 3  # (0.5, 0.7) twice, (1.3, 0.2), (2.25, 0.1)
    kern = compiled("lane_constants4d", "torch", form="loop")  # the IR is shared; torch compiles in a second
    x0, times, n_steps, dW = _inputs(kern.sde, seed=3)
    paths = kern.simulate(x0, times, n_steps, dW=dW, as_numpy=True)
    _assert_matches_reference(paths.x, paths.target, reference_simulate(kern.sde, x0, times, n_steps, dW), "loop form")


# The time-weighted covering field of the control variate (compiler.ir.time_weighted): a(t) in
# front of every S and of A in M. The comparison with the reference is per path, as above.
COVERING_WEIGHTS = {"t": lambda t, dt: t, "t + dt": lambda t, dt: t + dt, "1 + t**2/2": lambda t, dt: 1 + t**2 / 2,
                    "exp(-2*t)": lambda t, dt: np.exp(-2 * t)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, weight", [("rational3d", "t + dt"), ("builtin_cauchy", "1 + t**2/2"),
                                          ("field_l2", "exp(-2*t)"), ("hypoelliptic_nonlinear", "t")])
def test_time_weighted_covering_field_matches_reference(compiled, name, weight, backend):
    kern = compiled(name, backend, variant=ss.Variant(covering_weight=weight))
    x0, times, n_steps, dW = _inputs(kern.sde, seed=7)
    paths = kern.simulate(x0, times, n_steps, dW=dW, as_numpy=True)
    dt = times[-1] / n_steps
    reference = reference_simulate(kern.sde, x0, times, n_steps, dW,
                                   covering_weight=lambda t_k: COVERING_WEIGHTS[weight](t_k, dt))
    _assert_matches_reference(paths.x, paths.target, reference, f"{name} a(t) = {weight} ({backend})")
    # a weight that varies in t gives another target per path (same X_t), so the test can tell them apart
    plain = reference_simulate(kern.sde, x0, times, n_steps, dW)
    assert relative_error(paths.target, plain[1]) > 1e-3


def test_constant_covering_weight_gives_the_plain_target(compiled):
    """u = a A^T C_a^-1 Y^-1 does not change when a is a constant: the weight is the plain one."""
    kern, plain = compiled("rational3d", variant=ss.Variant(covering_weight="3")), compiled("rational3d")
    x0, times, n_steps, dW = _inputs(kern.sde, seed=8)
    a, b = kern.simulate(x0, times, n_steps, dW=dW), plain.simulate(x0, times, n_steps, dW=dW)
    assert relative_error(a.target, b.target) <= RTOL


@pytest.mark.parametrize("weight, kwargs, match", [
    ("t + y", {}, "expression in t \\(and the step dt\\) only"),
    ("t", {"form": "loop"}, "unrolled form only"),
])
def test_covering_weight_bad_input(weight, kwargs, match):
    with pytest.raises(ss.SymscoreError, match=match):
        ss.compile(SDES["builtin_cauchy"](), variant=ss.Variant(covering_weight=weight), **kwargs)


def test_covering_weight_needs_additive_noise():
    x = sp.Symbol("x")
    gbm = ss.SDE([x / 2], sp.Matrix([[x / 3]]), [x], t, name="gbm_cv")
    with pytest.raises(ss.SymscoreError, match="sigma\\(t, x\\)"):
        ss.compile(gbm, variant=ss.Variant(covering_weight="t"))
