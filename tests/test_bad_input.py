"""Bad input across the whole data flow: each case asserts the error type and that the message names
the argument and what was expected. Plus names that are not identifiers or look like code: generated
modules show them inert, and importing and running such a module executes nothing else.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

import symscore as ss
from symscore.cli import main as cli_main

from conftest import import_file

t = sp.Symbol("t")
x1, x2 = sp.symbols("x1 x2")


def good_sde(**overrides) -> ss.SDE:
    args = dict(drift=[-x1 + sp.sin(x2), -x2 / (1 + x1**2)], diffusion=1, state=[x1, x2], time=t, name="good")
    args.update(overrides)
    return ss.SDE(**args)


@pytest.fixture(scope="module")
def kern():
    return ss.compile(good_sde())


def _exact_score(x, t_value):
    return -x


# (id, callable, error type, regex the message must match: it names the argument)
SPEC_CASES = [
    ("drift-length", lambda: good_sde(drift=[-x1]), ss.SDESpecError, r"drift: expected 2 expressions"),
    ("drift-string", lambda: good_sde(drift=["-x1", "-x2"]), ss.SDESpecError, r"drift\[0\]: .* got the string"),
    ("diffusion-shape", lambda: good_sde(diffusion=sp.ones(3, 1)), ss.SDESpecError,
     r"diffusion: expected an m x d matrix with m = 2 rows"),
    ("unbound-symbol", lambda: good_sde(drift=[-sp.Symbol("k") * x1, -x2]), ss.SDESpecError, r"unbound symbols k"),
    ("state-not-symbols", lambda: good_sde(state=[x1, 2]), ss.SDESpecError, r"state: every entry must be a SymPy Symbol"),
    ("time-in-state", lambda: good_sde(time=x1), ss.SDESpecError, r"time: the time symbol x1 is also a state"),
    ("param-not-number", lambda: good_sde(drift=[-sp.Symbol("a") * x1, -x2], params={"a": "big"}), ss.SDESpecError,
     r"params\['a'\]: expected a real number"),
    ("horizon", lambda: good_sde(T=-1.0), ss.SDESpecError, r"T: expected a positive finite time horizon"),
    ("undefined-function", lambda: good_sde(drift=[sp.Function("f")(x1), -x2]), ss.SDESpecError,
     r"drift: undefined function f\(x1\)"),
    ("empty-name", lambda: good_sde(name=""), ss.SDESpecError, r"name: expected a non-empty string"),
    ("non-smooth-diffusion", lambda: good_sde(diffusion=sp.diag(sp.Abs(x1), 1)).derive(), ss.SDESpecError,
     r"diffusion\[0, 0\] = Abs\(x1\): its derivative in x1 .* twice differentiable"),
    ("derive-not-an-sde", lambda: ss.Derivation("cubic"), ss.SymscoreError, r"sde: expected a symscore.SDE"),
    ("compile-backend", lambda: ss.compile(good_sde(), backend="jax"), ss.SymscoreError,
     r"backend: expected one of 'numba', 'torch'"),
    ("compile-dtype", lambda: ss.compile(good_sde(), dtype="float16"), ss.SymscoreError,
     r"dtype: the numba backend supports 'float64'"),
    ("compile-device", lambda: ss.compile(good_sde(), device="cuda"), ss.SymscoreError,
     r"device: the numba backend runs on the CPU"),
    ("compile-not-an-sde", lambda: ss.compile("cubic"), ss.SymscoreError, r"sde: expected a symscore.SDE, got str"),
    ("compile-unprintable", lambda: ss.compile(good_sde(drift=[-sp.besselj(0, x1), -x2])),
     ss.UnsupportedExpressionError, r"numba backend cannot print besselj\(0, x_0\)"),
    ("compile-no-noise", lambda: ss.compile(good_sde(drift=[-x1, -x2], diffusion=sp.Matrix([[1], [0]]))),
     ss.SDESpecError, r"diffusion: coordinate\(s\) x2 receive no noise"),
    ("emit-backend", lambda: ss.emit(good_sde(), backend="c"), ss.SymscoreError, r"backend: expected one of"),
]

SIMULATE_CASES = [
    ("x0-shape", dict(x0=np.zeros((4, 3))), r"x0: expected shape \(n, 2\)"),
    ("x0-nan", dict(x0=np.full((4, 2), np.nan)), r"x0: expected finite values, row\(s\) \[0, 1, 2, 3\]"),
    ("x0-text", dict(x0="zeros"), r"x0: expected an \(n, 2\) array of numbers"),
    ("times-off-grid", dict(times=[0.33, 1.0]), r"times: record time 0.33 is not on the grid"),
    ("times-beyond-T", dict(times=[0.5, 2.0]), r"times: every record time must lie in \(0, T\]"),
    ("times-decreasing", dict(times=[0.5, 0.25]), r"times: expected strictly increasing"),
    ("n-steps", dict(n_steps=0), r"n_steps: expected an integer >= 1"),
    ("dw-shape", dict(dW=np.zeros((4, 10, 3))), r"dW: expected shape \(n, n_steps, d\) = \(4, 10, 2\)"),
    ("dw-nan", dict(dW=np.full((4, 10, 2), np.nan)), r"dW: expected finite Brownian increments"),
    ("seed", dict(seed=-3), r"seed: expected an integer >= 0"),
    ("ridge", dict(ridge=float("inf")), r"ridge: expected a finite number >= 0"),
    ("on-failure", dict(on_failure="ignore"), r"on_failure: expected one of 'raise', 'drop', 'keep'"),
    ("cond-max", dict(cond_max=0.1), r"cond_max: expected a finite number >= 1"),
    ("chunk-size", dict(chunk_size=2.5), r"chunk_size: expected an integer >= 1"),
]

LEARN_CASES = [
    ("train-data-columns", lambda: ss.train(good_sde(), np.zeros((10, 3)), steps=1), r"data: the SDE has dimension m = 2"),
    ("train-data-name", lambda: ss.train(good_sde(), "no_such_dataset", steps=1),
     r"data: expected a dataset name .* or a \.npy file"),
    ("train-target", lambda: ss.train(good_sde(), np.zeros((10, 2)), target="magic"), r"target: expected one of"),
    ("train-t-min", lambda: ss.train(good_sde(), np.zeros((10, 2)), t_min=2.0), r"t_min: expected t_min < T"),
    ("train-steps", lambda: ss.train(good_sde(), np.zeros((10, 2)), steps=0), r"steps: expected an integer >= 1"),
    ("sample-method", lambda: ss.sample(good_sde(), _exact_score, 10, method="leapfrog"), r"method: expected one of"),
    ("sample-score", lambda: ss.sample(good_sde(), 3.0, 10), r"score: expected a ScoreModel or a callable"),
    ("sample-n", lambda: ss.sample(good_sde(), _exact_score, 0), r"n: expected an integer >= 1"),
    ("loglik-x", lambda: ss.log_likelihood(ss.library.ou(), _exact_score, np.zeros((5, 3))),
     r"x: the SDE has dimension m = 2"),
    ("loglik-t-end", lambda: ss.log_likelihood(ss.library.ou(), _exact_score, np.zeros((5, 2)), t_end=5.0),
     r"t_end: expected 0 <= t_end < T"),
]

CLI_CASES = [
    ("cli-unknown-spec", ["derive", "no_such_sde"], r"Error: SPEC"),
    ("cli-emit-backend", ["emit", "cubic", "--backend", "fortran"], r"Invalid value for '--backend'"),
    ("cli-train-data", ["train", "cubic", "--data", "missing.npy", "--out", "run"], r"data: no such file"),
    ("cli-derive-format", ["derive", "cubic", "--format", "pdf"], r"Invalid value for '--format'"),
]


@pytest.mark.parametrize("case", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_spec_derive_compile_emit(case):
    _, call, error, match = case
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("case", SIMULATE_CASES, ids=[c[0] for c in SIMULATE_CASES])
@pytest.mark.parametrize("backend", ["numba", "torch", "torch-tensors"])
def test_simulate(kern, case, backend):
    """The same messages whatever the backend, and for tensor inputs (checked where they lie)."""
    _, overrides, match = case
    kernel = kern if backend == "numba" else ss.compile(kern.sde, backend="torch")
    args = dict(x0=np.zeros((4, 2)), times=[0.5, 1.0], n_steps=10)
    args.update(overrides)
    if backend == "torch-tensors":
        import torch

        args.update({name: torch.as_tensor(args[name]) for name in ("x0", "dW") if isinstance(args.get(name), np.ndarray)})
    with pytest.raises(ss.SimulationInputError, match=match):
        kernel.simulate(**args)


@pytest.mark.parametrize("case", LEARN_CASES, ids=[c[0] for c in LEARN_CASES])
def test_train_sample_log_likelihood(case):
    _, call, match = case
    with pytest.raises(ss.SymscoreError, match=match):
        call()


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli(tmp_path, monkeypatch, case):
    _, args, match = case
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli_main, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert any(re.search(match, text) for text in (result.output, str(result.exception or "")))


def test_emit_path_that_is_a_folder(tmp_path):
    with pytest.raises(ss.SymscoreError, match=r"path: expected a file name, got the folder"):
        ss.emit(good_sde(), path=tmp_path)


def test_enough_kinds_are_covered():
    assert len(SPEC_CASES) + len(SIMULATE_CASES) + len(LEARN_CASES) + len(CLI_CASES) + 1 >= 25


# -- names that are not identifiers or look like code ----------------------------------------------
PAYLOAD = '"""; import os; os.system("touch PWNED"); open("PWNED2", "w"); """'


def hostile_sde() -> ss.SDE:
    """State, time and parameter names and the SDE name all carry code; drift as good_sde's."""
    a = sp.Symbol("x" + PAYLOAD)
    b = sp.Symbol("y\n" + "import os\nos.system('touch PWNED3')\n#")
    time = sp.Symbol("t\\N{" + PAYLOAD)
    k = sp.Symbol("k'; raise SystemExit; '")
    drift = [-a + sp.sin(b), -k * b / (1 + a**2) + 0 * time]
    return ss.SDE(drift, 1, [a, b], time, params={k: 1}, name="Beneš " + PAYLOAD)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_hostile_names_execute_nothing(tmp_path, monkeypatch, backend):
    monkeypatch.chdir(tmp_path)
    sde = hostile_sde()
    path = tmp_path / f"hostile_{backend}.py"
    source = ss.emit(sde, backend=backend, path=path)
    compile(source, str(path), "exec")  # valid Python
    module = import_file(path)
    assert "Beneš" in module.__doc__ and PAYLOAD in module.__doc__  # shown, as text, in the docstring
    x0 = np.random.default_rng(0).normal(size=(16, 2))
    dW = np.random.default_rng(1).normal(size=(16, 20, 2)) * np.sqrt(0.05)
    _, x, target = module.simulate(x0, [0.5, 1.0], 20, dW=dW)
    assert not any((tmp_path / name).exists() for name in ("PWNED", "PWNED2", "PWNED3"))
    # and the names change nothing: the same numbers as the plain SDE
    plain = ss.compile(good_sde(), backend=backend).simulate(x0, [0.5, 1.0], 20, dW=dW, as_numpy=True)
    np.testing.assert_allclose(np.asarray(target), plain.target, rtol=1e-12, atol=1e-12)
    # the cache file name uses the slug
    kernel = ss.compile(sde, backend=backend)
    assert kernel.path.name.startswith(f"{backend}_Bene_import_os_os_system_touch_PWNED")


@pytest.mark.parametrize("backend", ["torch", pytest.param("numba", marks=pytest.mark.slow)])
def test_symbol_names_that_collide_with_generated_names(backend):
    """State symbols named like the kernel's own variables (x_0, dt, t, math) in swapped order."""
    u, v, w = sp.Symbol("x_1"), sp.Symbol("dt"), sp.Symbol("math")
    time = sp.Symbol("x_0")
    sde = ss.SDE([-u + v * w / (1 + u**2), -v + sp.atan(u) * time, -w + sp.sqrt(1 + v**2) / 3], 1, [u, v, w], time,
                 name="collide")
    plain = ss.SDE([-x1 + x2 * sp.Symbol("x3") / (1 + x1**2), -x2 + sp.atan(x1) * t,
                    -sp.Symbol("x3") + sp.sqrt(1 + x2**2) / 3], 1, [x1, x2, sp.Symbol("x3")], t, name="plain3")
    x0 = np.random.default_rng(0).normal(size=(16, 3))
    dW = np.random.default_rng(1).normal(size=(16, 20, 3)) * np.sqrt(0.05)
    options = {"as_numpy": True} if backend == "torch" else {}
    a = ss.compile(sde, backend=backend).simulate(x0, [0.5, 1.0], 20, dW=dW, **options)
    b = ss.compile(plain, backend=backend).simulate(x0, [0.5, 1.0], 20, dW=dW, **options)
    # the kernel names the state itself: the two modules differ in comments only, so the same code
    # runs and any leak of a user's name into the arithmetic shows as a difference
    np.testing.assert_array_equal(a.target, b.target)
