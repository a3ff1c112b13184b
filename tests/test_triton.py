"""triton backend: the same stream and targets as numba, its math helpers, float32, failures, bad input.

Without a GPU these run in Triton's CPU interpreter (conftest sets TRITON_INTERPRET=1), and the
kernels are also compiled ahead of time for an sm_90 GPU (Triton's front end, LLVM and ptxas run
without a device), which is what catches typing errors the interpreter lets through. The per-path
comparisons against the dense reference are in test_reference.py (triton is one of its backends).
"""
from __future__ import annotations

import importlib.util
import math
import os

import numpy as np
import pytest
import sympy as sp

import symscore as ss
from conftest import brownian, emitted_module

triton = pytest.importorskip("triton")
import torch  # noqa: E402
import triton.language as tl  # noqa: E402

interpreted = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET", "0") in ("", "0"),
                                 reason="these tests run triton in its CPU interpreter")
RTOL = 1e-10
t = sp.Symbol("t")


def every_function_sde() -> ss.SDE:
    """Every function the parser accepts, nested quotients, products across coordinates, powers."""
    x1, x2 = sp.symbols("x1 x2")
    u = x1 / 3
    drift = [
        -x1 + sp.atan(x2 - x1 / 2) / (1 + x2**2) + sp.sinh(u) / sp.cosh(x2 / 2) - sp.asinh(x1 * x2) / 4
        + sp.tanh(x1 - x2) * sp.erf(x2) / 2 + x2**7 / (1 + x2**8) + sp.atan2(1 + x2**2, 2 + x1) / 5,
        -x2 + sp.log(2 + sp.sin(x1 * x2)) / (1 + x1**2 / (2 + x2**2)) + sp.asin(sp.tanh(x1) / 2) * sp.acos(sp.tanh(x2) / 3)
        + sp.atanh(sp.tanh(u) / 2) + sp.acosh(2 + x1**2) / 4 + sp.sech(x2) * sp.tan(sp.atan(u) / 2)
        + (1 + x1**2) ** sp.Rational(1, 3) / 8 + t * sp.exp(-x2**2) * sp.sqrt(1 + x1**2) / 2,
    ]
    sigma = sp.Matrix([[1 + sp.tanh(x2) / 3, 0], [sp.Rational(1, 4), sp.sqrt(1 + t) * (1 + x1**2 / (4 + 4 * x1**2))]])
    return ss.SDE(drift, sigma, [x1, x2], t, name="every_function")


@pytest.fixture(scope="module")
def kernels():
    cache = {}

    def get(name, backend, dtype="float64"):
        key = (name, backend, dtype)
        if key not in cache:
            factory = {"every_function": every_function_sde, "benes2": lambda: ss.library.benes(m=2),
                       "cubic3": lambda: ss.library.cubic(m=3), "gbm2": lambda: ss.library.gbm(m=2)}[name]
            cache[key] = ss.compile(factory(), backend=backend, dtype=dtype)
        return cache[key]

    return get


def _relative(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# -- the math helpers of the template -------------------------------------------------------------
HELPERS = {"atan_": np.arctan, "tanh_": np.tanh, "sinh_": np.sinh, "cosh_": np.cosh, "asinh_": np.arcsinh,
           "acosh_": np.arccosh, "atanh_": np.arctanh, "expm1_": np.expm1, "log1p_": np.log1p, "tan_": np.tan,
           "asin_": np.arcsin, "acos_": np.arccos}


def _domain(name):
    grid = np.concatenate([np.linspace(-4, 4, 801), np.geomspace(1e-14, 1e4, 600), -np.geomspace(1e-14, 1e4, 600),
                           [0.0, 0.66, -0.66, 2.414213562373095, -2.414213562373095]])
    if name in ("atanh_", "asin_", "acos_"):
        return np.tanh(np.clip(grid, -8, 8))
    if name == "acosh_":
        return 1.0 + np.abs(grid)
    if name in ("sinh_", "cosh_", "expm1_"):
        return np.clip(grid, -700, 700)
    if name == "log1p_":
        return np.abs(grid) - 0.5 * (grid < 0) * np.minimum(np.abs(grid), 1.0)
    if name == "tan_":
        return np.clip(grid, -1.5, 1.5)
    return grid


_helper = None  # the helper under test: the interpreter reads the kernel's globals when it runs


@triton.jit
def _apply_helper(x_ptr, out_ptr, size: tl.constexpr):
    i = tl.arange(0, size)
    tl.store(out_ptr + i, _helper(tl.load(x_ptr + i)))


@interpreted
@pytest.mark.parametrize("name", sorted(HELPERS))
def test_math_helpers_match_numpy_to_a_few_ulp(tmp_path, name):
    """Relative error <= 2e-15 over [-4, 4], 1e-14 .. 1e4 and the branch points (atan's range reduction)."""
    global _helper
    module = emitted_module(ss.library.vp(m=1), tmp_path / "helpers_module.py", backend="triton")
    _helper = getattr(module, name)
    x = _domain(name)
    padded = np.zeros(triton.next_power_of_2(x.size)) + x[0]
    padded[: x.size] = x
    out = torch.empty(padded.size, dtype=torch.float64)
    with np.errstate(all="ignore"):  # the interpreter evaluates both branches of tl.where
        _apply_helper[(1,)](torch.tensor(padded), out, size=padded.size)
    expected = HELPERS[name](x)
    error = np.abs(out.numpy()[: x.size] - expected) / np.maximum(np.abs(expected), 1e-300)
    assert error.max() <= 2e-15, f"{name}: relative error {error.max():.2e} at x = {x[error.argmax()]!r}"


def test_a_wrong_helper_would_be_caught():
    """The tolerance above is tight enough: a single-precision constant in atan's range reduction
    (the defect class of bare float literals in tl.where) errs by ~4e-8."""
    a = np.linspace(0.7, 2.4, 100)
    wrong = np.float32(math.pi / 4) + np.arctan((a - 1) / (a + 1))
    assert (np.abs(wrong - np.arctan(a)) / np.arctan(a)).max() > 1e-9


# -- the printer -----------------------------------------------------------------------------------
def test_printer_writes_literals_typed_by_a_tensor():
    from symscore.compiler.backends.triton import TritonPrinter
    from symscore.compiler.printing import print_expr

    x, y = sp.symbols("x y")
    printer = TritonPrinter()
    assert print_expr(printer, sp.Piecewise((sp.Rational(1, 3), x > 0), (2, True))) == \
        "tl.where((x > 0.0), (zero + 0.3333333333333333), (zero + 2.0))"
    assert print_expr(printer, x**7) == "((((x*x)*x)*((x*x)*x))*x)"
    assert print_expr(printer, x ** -6) == "(1.0/(((x*x)*x)*((x*x)*x)))"
    assert print_expr(printer, 5000**t) == "tl.exp(t*8.517193191416238)"  # log(5000) a literal, not tl.log(5000.0)
    assert print_expr(printer, x ** sp.Rational(1, 3)) == "tl.exp((0.3333333333333333)*tl.log(x))"
    assert print_expr(printer, sp.sech(x + y)) == "(1.0/cosh_(x + y))"
    assert print_expr(printer, sp.atan2(x, y)) == "atan2_(x, y)"
    with pytest.raises(ss.SymscoreError, match="triton backend cannot print"):
        print_expr(printer, sp.besselj(0, x))


# -- agreement with numba: shared dW and the same seeded stream ------------------------------------
@interpreted
@pytest.mark.parametrize("name", ["every_function", "benes2", "gbm2", "cubic3"])
def test_triton_matches_numba_per_path(kernels, name):
    numba_kernel, triton_kernel = kernels(name, "numba"), kernels(name, "triton")
    sde = numba_kernel.sde
    n, n_steps, times = 40, 30, [0.1 * sde.T, 0.5 * sde.T, sde.T]  # records after steps 3, 15 and 30
    x0 = np.random.default_rng(1).normal(scale=0.6, size=(n, sde.m)) + (1.5 if name == "gbm2" else 0.0)
    dW = brownian(n, n_steps, sde.d, sde.T, 2)
    expected = numba_kernel.simulate(x0, times, n_steps, dW=dW)
    got = triton_kernel.simulate(x0, times, n_steps, dW=dW, as_numpy=True)
    assert _relative(got.x, expected.x) <= RTOL and _relative(got.target, expected.target) <= RTOL
    expected = numba_kernel.simulate(x0, times, n_steps, seed=2**63 + 5, path_offset=2**32 - 7)
    got = triton_kernel.simulate(x0, times, n_steps, seed=2**63 + 5, path_offset=2**32 - 7, as_numpy=True)
    assert _relative(got.target, expected.target) <= RTOL, "the seeded stream differs from numba's"


@interpreted
def test_seeded_paths_do_not_depend_on_chunks_or_offsets(kernels):
    kern = kernels("benes2", "triton")
    x0 = np.random.default_rng(3).normal(size=(24, 2))
    whole = kern.simulate(x0, [0.5, 1.0], 20, seed=9, as_numpy=True)
    chunked = kern.simulate(x0, [0.5, 1.0], 20, seed=9, chunk_size=7, as_numpy=True)
    tail = kern.simulate(x0[10:], [0.5, 1.0], 20, seed=9, path_offset=10, as_numpy=True)
    # one triton kernel on other chunks and path offsets: bit for bit
    assert np.array_equal(whole.target, chunked.target)
    assert np.array_equal(whole.target[10:], tail.target)


@interpreted
def test_float32_is_close_to_float64(kernels):
    x0 = np.random.default_rng(4).normal(scale=0.5, size=(64, 2))
    double = kernels("every_function", "triton").simulate(x0, [0.5, 1.0], 24, seed=1, as_numpy=True)
    single = kernels("every_function", "triton", "float32").simulate(x0, [0.5, 1.0], 24, seed=1, as_numpy=True)
    assert single.target.dtype == np.float32
    error = np.abs(single.target - double.target) / (1 + np.abs(double.target))
    assert np.median(error) < 1e-5 and error.max() < 1e-3


# -- failures ------------------------------------------------------------------------------------------
def blow_up_sde() -> ss.SDE:
    x = sp.Symbol("x")
    return ss.SDE([x**3], 1, [x], t, name="blow_up")


@interpreted
def test_failures_are_reported_like_numba():
    """Paths of dX = X^3 dt + dB from x0 = 1.2 .. 3 leave float64 at different steps: the triton
    kernel's re-run with step checks finds the same first step and kind as numba's."""
    sde = blow_up_sde()
    x0 = np.linspace(0.3, 3.0, 12)[:, None]
    dW = brownian(12, 40, 1, 1.0, 5)
    outcome = {}
    for backend in ("numba", "triton"):
        with pytest.warns(RuntimeWarning, match="kept failed paths"):
            paths = ss.compile(sde, backend=backend).simulate(x0, [0.25, 0.5, 1.0], 40, dW=dW, on_failure="keep",
                                                              as_numpy=True)
        outcome[backend] = paths
    assert outcome["numba"].failed.any() and not outcome["numba"].failed.all()
    # a discrete outcome of two implementations: X^3 overflows within a step or two, far from where
    # last-place rounding could move the failing step
    assert np.array_equal(outcome["numba"].failed, outcome["triton"].failed)
    ok = ~outcome["numba"].failed
    assert _relative(outcome["triton"].target[ok], outcome["numba"].target[ok]) <= RTOL
    kern = ss.compile(sde, backend="triton")
    with pytest.raises(ss.NonFiniteSimulationError) as triton_error:
        kern.simulate(x0, [0.25, 0.5, 1.0], 40, dW=dW)
    with pytest.raises(ss.NonFiniteSimulationError) as numba_error:
        ss.compile(sde).simulate(x0, [0.25, 0.5, 1.0], 40, dW=dW)
    assert str(triton_error.value) == str(numba_error.value)


@interpreted
def test_ill_conditioned_records_are_flagged_like_numba(kernels):
    """For width 2 the condition estimate 2 sum_a C_aa (C^-1)_aa is at least 4: cond_max = 3 flags every record."""
    x0 = np.random.default_rng(6).normal(scale=0.5, size=(16, 2))
    for backend in ("numba", "triton"):
        with pytest.raises(ss.SingularMalliavinMatrixError, match="16 of 16 paths"):
            kernels("every_function", backend).simulate(x0, [0.5, 1.0], 10, seed=0, cond_max=3.0)


# -- the emitted module ------------------------------------------------------------------------------
@interpreted
def test_emitted_module_runs_standalone(tmp_path, kernels):
    kern = kernels("every_function", "triton")
    module = emitted_module(kern.sde, tmp_path / "every_function_triton.py", backend="triton")
    assert "import symscore" not in kern.source and "@triton.jit" in kern.source
    x0 = np.random.default_rng(7).normal(scale=0.5, size=(20, 2))
    times, x, target = module.simulate(x0, [0.5, 1.0], 16, seed=3, device="cpu")
    expected = kern.simulate(x0, [0.5, 1.0], 16, seed=3, as_numpy=True)
    assert np.array_equal(target.numpy(), expected.target)  # the kernel's own source: the same code
    with pytest.raises(ValueError, match="x0: expected"):
        module.simulate(np.zeros((3, 5)), [1.0], 4, device="cpu")
    with pytest.raises(ValueError, match="seed"):
        module.simulate(x0, [1.0], 4, seed=-1, device="cpu")


# -- the kernels compile for a GPU (no device needed) -------------------------------------------------
AOT_SCRIPT = """
import importlib.util, json, os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

path, dtype = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location("aot_module", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
pointers = {"record_ptr": "*i32", "seed_ptr": "*i64", "path_ptr": "*i64", "lanes_ptr": "*i32", "noise_ptr": "*i32",
            "fail_step_ptr": "*i32", "fail_kind_ptr": "*i32", "illcond_ptr": "*i8"}
result = {}
for use_dw, step_checks in ((False, False), (True, True)):
    kernel = module.block0_kernel
    names = kernel.arg_names
    signature = {name: pointers.get(name, "*fp64" if dtype == "float64" else "*fp32") if name.endswith("_ptr")
                 else "i32" if name in ("n", "n_steps", "n_records") else "constexpr" for name in names}
    constants = {"DTYPE": getattr(tl, dtype), "BLOCK": 128, "USE_DW": use_dw, "STEP_CHECKS": step_checks}
    source = ASTSource(kernel, signature, {(names.index(k),): v for k, v in constants.items()})
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
    result[f"{use_dw}-{step_checks}"] = {"cubin": len(compiled.asm["cubin"]), "ptx": compiled.asm["ptx"]}
print(json.dumps(result))
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_compile_for_sm90(tmp_path, dtype):
    """Every function (the seeded and the dW variant, with and without step checks) through Triton's
    compiler to PTX and a cubin for sm_90, in a fresh process without the interpreter; the float64
    kernel keeps its constants in double."""
    import json
    import subprocess
    import sys

    module_path = tmp_path / "every_function_aot.py"
    ss.emit(every_function_sde(), backend="triton", path=module_path)
    (tmp_path / "aot.py").write_text(AOT_SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, str(tmp_path / "aot.py"), str(module_path), dtype], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.splitlines()[-1])
    assert all(variant["cubin"] > 0 for variant in result.values())
    ptx = result["False-False"]["ptx"]
    if dtype == "float64":
        assert "0d3FE921FB54442D18" in ptx  # pi/4 of atan's range reduction, as a double
        assert "0f3F490FDB" not in ptx  # ... and not rounded to single precision


# -- bad input ----------------------------------------------------------------------------------------------
def test_options_are_checked(kernels, monkeypatch):
    sde = ss.library.benes(m=2)
    with pytest.raises(ss.SymscoreError, match="dtype: the triton backend supports 'float64' or 'float32'"):
        ss.compile(sde, backend="triton", dtype="float16")
    with pytest.raises(ss.SymscoreError, match="compile: torch.compile applies to backend='torch' only"):
        ss.compile(sde, backend="triton", compile=True)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ss.SymscoreError, match="device: the triton backend runs on 'cuda'"):
        ss.compile(sde, backend="triton", device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ss.SymscoreError, match="device: cuda was requested"):
            ss.compile(sde, backend="triton")


def test_loop_form_is_refused_with_the_reason():
    x = sp.symbols("x1:7")
    s = sum(x) / 3
    sde = ss.SDE([sp.tanh(s) - xi / 2 for xi in x], 1, list(x), t, name="wide6")
    with pytest.raises(ss.SymscoreError, match="form: the triton backend prints the unrolled form only; block 0"):
        ss.emit(sde, backend="triton")
    assert "@triton.jit" in ss.emit(ss.library.cubic(m=6), backend="triton")  # separable: unrolled lanes


def test_missing_triton_is_a_clear_error(monkeypatch):
    from symscore.compiler.backends import triton as triton_backend

    monkeypatch.setattr(triton_backend.importlib.util, "find_spec", lambda name: None)
    triton_backend.triton_available.cache_clear()
    try:
        with pytest.raises(ss.SymscoreError, match=r"pip install 'symscore\[gpu\]'"):
            ss.compile(ss.library.benes(m=2), backend="triton")
    finally:
        monkeypatch.undo()
        triton_backend.triton_available.cache_clear()


cuda = pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("triton") is None
                          or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"),
                          reason="needs a CUDA device and SYMSCORE_TEST_CUDA=1 (compiled triton)")


@cuda
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cuda_matches_numba(kernels, dtype):
    numba_kernel = kernels("every_function", "numba")
    x0 = np.random.default_rng(8).normal(scale=0.5, size=(4096, 2))
    expected = numba_kernel.simulate(x0, [0.5, 1.0], 64, seed=11)
    got = ss.compile(numba_kernel.sde, backend="triton", dtype=dtype, device="cuda").simulate(
        x0, [0.5, 1.0], 64, seed=11, as_numpy=True)
    error = np.abs(got.target - expected.target) / (1 + np.abs(expected.target))
    assert error.max() <= (1e-10 if dtype == "float64" else 1e-3)
