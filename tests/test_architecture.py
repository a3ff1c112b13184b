"""The architecture as behaviour: lazy imports, registries as the single extension point, one
runtime shared by the package and emitted modules, pure IR functions, the trainer's step."""
from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import symscore as ss
from conftest import emitted_module
from symscore.compiler import backends, codegen, ir, runtime
from symscore.compiler.backends.numba import NumbaKernel, NumbaPrinter, check_options
from symscore.learn import priors, samplers, targets


def test_import_symscore_loads_neither_torch_nor_numba():
    code = ("import sys, symscore, symscore.cli; "
            "assert 'torch' not in sys.modules and 'numba' not in sys.modules, "
            "[m for m in sys.modules if m.split('.')[0] in ('torch', 'numba')][:3]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_registered_backend_is_used_by_compile_emit_and_the_cli(tmp_path):
    """A new backend is one record: here numba's parts under a new name; compile, emit and the CLI see it."""
    record = backends.Backend(name="numba_copy", description="test copy", template="numba_kernel.py.j2",
                              printer=NumbaPrinter, kernel=lambda: NumbaKernel, check_options=check_options,
                              source_file=backends.BACKENDS["numba"].source_file)
    backends.register_backend(record)
    try:
        sde = ss.library.cubic(m=1)
        x0 = np.full((20, 1), 0.3)
        dW = np.random.default_rng(0).normal(scale=0.1, size=(20, 10, 1))
        copy = ss.compile(sde, backend="numba_copy").simulate(x0, [0.5, 1.0], 10, dW=dW)
        original = ss.compile(sde).simulate(x0, [0.5, 1.0], 10, dW=dW)
        np.testing.assert_array_equal(copy.target, original.target)  # one template and printer: the same code
        assert "def simulate(" in ss.emit(sde, backend="numba_copy")
        from click.testing import CliRunner

        from symscore.cli import main

        result = CliRunner().invoke(main, ["emit", "cubic", "--backend", "numba_copy"])
        assert result.exit_code == 0 and result.output.startswith('"""Score kernel')
        with pytest.raises(ss.SymscoreError, match="already registered"):
            backends.register_backend(record)
    finally:
        backends.BACKENDS.pop("numba_copy")


@pytest.mark.parametrize("lookup, name, known", [
    (lambda: backends.get_backend("cuda-magic"), "backend", "'numba', 'torch'"),
    (lambda: targets.make_target_source("nope", ss.library.ou(m=1), 10), "target", "'malliavin', 'dsm'"),
    (lambda: priors.make_prior(ss.library.ou(m=1), "nope"), "prior", "'auto', 'gaussian', 'stationary', 'empirical'"),
    (lambda: ss.sample(ss.library.ou(m=1), lambda x, t: -x, 5, method="nope"), "method", "'sde', 'ode', 'pc'"),
])
def test_an_unknown_name_lists_the_registered_ones(lookup, name, known):
    with pytest.raises(ss.SymscoreError, match=f"{name}: expected one of {known}"):
        lookup()


def test_registered_target_and_sampler_are_reachable_from_the_public_api():
    sde = ss.library.ou(m=1)

    @targets.register_target("frozen_test")
    class FrozenTarget(targets.TargetSource):
        """X_t = x0 and target -x0 (a stand-in: any registered source is usable by name)."""

        def batch(self, x0, record_steps, seed):
            x = np.repeat(np.asarray(x0)[None], len(record_steps), axis=0)
            return x, -x

    @samplers.register_sampler("prior_test")
    def prior_only(run):
        return run.x

    try:
        assert isinstance(targets.make_target_source("frozen_test", sde, 10), FrozenTarget)
        data = np.random.default_rng(0).normal(size=(64, 1))
        model = ss.train(sde, data, steps=2, batch_size=8, target="frozen_test", pilot_size=16, progress=False)
        assert isinstance(model, ss.ScoreModel)
        draws = ss.sample(sde, lambda x, t: -x, 7, n_steps=5, method="prior_test", data=np.zeros((10, 1)))
        assert draws.shape == (7, 1)
    finally:
        targets.TARGETS.pop("frozen_test")
        samplers.SAMPLERS.pop("prior_test")


def test_the_cli_choices_come_from_the_registries():
    from click.testing import CliRunner

    from symscore.cli import main

    help_text = CliRunner().invoke(main, ["train", "--help"]).output
    for name in targets.TARGETS:
        assert name in help_text
    result = CliRunner().invoke(main, ["sample", "somewhere", "--n", "3", "--out", "x.npy", "--method", "nope"])
    assert result.exit_code != 0 and "'nope' is not one of" in result.output


def test_the_runtime_is_rendered_verbatim_into_emitted_modules(tmp_path):
    source = ss.emit(ss.library.cubic(m=1))
    for module in (runtime, importlib.import_module("symscore._errors"), importlib.import_module("symscore._checks")):
        body = codegen._module_body(module)
        assert body in source
    assert "class TimeGrid" in source and "GRID_RTOL = 1e-09" not in source  # the literal is the source's


@pytest.mark.parametrize("backend, host_modules", [
    ("numba", ("host", "host_numba", "philox_numba")),
    ("torch", ("host", "host_torch", "philox_torch", "torch_loop")),
    ("triton", ("host", "host_torch", "host_triton")),
])
def test_host_code_is_written_once_and_rendered_verbatim(backend, host_modules):
    """Templates hold what is generated; checks, chunks, re-runs and outputs are package modules
    that the emitted module carries word for word."""
    source = codegen.render_source(ss.library.cubic(m=1), ir.build_ir(ss.library.cubic(m=1).derive()), backend, "f")
    for name in host_modules:
        assert codegen.verbatim_text(name) in source
    template = codegen.template_text(backend)
    for host_only in ("check_x0(", "TimeGrid.from_times", "FailureReport(", "np.flatnonzero", "torch.nonzero",
                      "def run_paths", "philox4x32"):
        assert host_only not in template, (backend, host_only)


def test_package_and_emitted_module_accept_and_reject_the_same_grids(tmp_path):
    """One grid rule: the same times pass or fail with the same message in both."""
    sde = ss.library.cubic(m=1)
    module = emitted_module(sde, tmp_path / "cubic_kernel.py")
    kernel = ss.compile(sde)
    x0 = np.zeros((4, 1))
    cases = [([1 / 3, 2 / 3, 1.0], 3, None), ([0.5 + 1e-12, 1.0], 2, None), ([0.5 + 1e-6, 1.0], 2, "not on the grid"),
             ([0.5, 0.5], 2, "strictly increasing"), ([1.0], 0, "n_steps"), ([-0.1, 1.0], 10, "times"), ([0.5, 2.0], 4, "(0, T]")]
    for times, n_steps, error in cases:
        outcomes = []
        for run in (lambda: kernel.simulate(x0, times, n_steps), lambda: module.simulate(x0, times, n_steps)):
            try:
                run()
                outcomes.append(None)
            except ValueError as exc:
                assert error is not None and error in str(exc), (times, str(exc))
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], (times, outcomes)
        assert (outcomes[0] is None) == (error is None)


def test_emitted_failures_are_the_package_types(tmp_path):
    module = emitted_module(ss.library.cubic(m=1), tmp_path / "cubic_failing.py")
    error = module.NonFiniteSimulationError
    assert issubclass(error, ValueError) and issubclass(error, FloatingPointError)
    with pytest.raises(FloatingPointError, match="became non-finite"):
        module.simulate(np.full((3, 1), 1e3), [1.0], 8)


def test_ir_functions_are_pure_and_reuse_the_derivation():
    x1, x2, t = sp.symbols("x1 x2 t")
    sde = ss.SDE(drift=[-x1**3 + x2, -x2 / (1 + x1**2)], diffusion=1, state=[x1, x2], time=t, name="pure")
    derivation = sde.derive()
    first, second = ir.build_ir(derivation), ir.build_ir(derivation)
    assert first == second  # values in, values out: no hidden state between calls
    system = ir.local_system(derivation, (0, 1), (0, 1))
    assert system.jacobian == derivation.jacobian.xreplace({x1: sp.Symbol("x_0"), x2: sp.Symbol("x_1"),
                                                            t: ir.T_SYMBOL})
    coeffs = ir.coefficients(system, second_order=True)
    state = ir.first_order_state(system.x, coeffs)
    assert not state.second_order and state.Y.shape == (2, 2)
    _, A, S = ir.noise_terms(state, coeffs)
    dw = tuple(sp.Symbol(f"dw_{l}") for l in range(2))
    part, with_second = ir.second_variation_step(state, coeffs, A, S, dw)
    assert with_second.second_order and not state.second_order  # the input state is untouched
    weight = ir.weight_assembly(with_second)
    assert len(weight.target) == 2 and len(weight.pivots) == 2


def test_trainer_step_and_the_frozen_config():
    import symscore.learn.train  # noqa: F401 (ss.learn.train below, whatever ran before)

    sde, data = ss.library.ou(m=1), np.random.default_rng(0).normal(size=(200, 1))
    config = ss.learn.train.TrainConfig(steps=5, batch_size=16, target="dsm", pilot_size=32, width=16, depth=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.steps = 6
    trainer = ss.learn.train.Trainer(sde, data, config)
    losses = [trainer.step() for _ in range(5)]
    model = ss.train(sde, data, steps=5, batch_size=16, target="dsm", pilot_size=32, width=16, depth=1,
                     progress=False)
    assert losses == model.loss_history
    record = config.record(sde, trainer.model)
    assert {f.name for f in dataclasses.fields(config)} <= set(record) and record["sde"] == sde.fingerprint()
    with pytest.raises(ss.SymscoreError, match="steps: expected an integer >= 1"):
        ss.learn.train.TrainConfig(steps=0)
