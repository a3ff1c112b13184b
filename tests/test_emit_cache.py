"""Standalone modules (ss.emit) and the on-disk cache."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import symscore as ss
from conftest import brownian

CHILD = textwrap.dedent("""
    import importlib.util, sys
    sys.modules["symscore"] = None          # any attempt to import symscore now fails
    try:
        import symscore
    except ImportError:
        pass
    else:
        raise SystemExit("symscore is importable")
    import numpy as np
    spec = importlib.util.spec_from_file_location("standalone", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x0, dW = np.load(sys.argv[2]), np.load(sys.argv[3])
    if sys.argv[5] == "torch":
        import torch
        x0, dW = torch.from_numpy(x0), torch.from_numpy(dW)
    times, x, target = module.simulate(x0, [0.5, 1.0], dW.shape[1], dW=dW)
    np.save(sys.argv[4], np.asarray(target))
""")


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_emitted_module_runs_without_symscore(kernel, tmp_path, backend):
    sde = kernel("coupled2d").sde
    source = ss.emit(sde, backend=backend, path=tmp_path / f"kernel_{backend}.py")
    assert (tmp_path / f"kernel_{backend}.py").read_text() == source
    assert "import symscore" not in source and ss.__version__ in source and "b_0 = " in source
    assert ss.emit(sde, backend=backend) == source  # byte-identical
    x0 = np.random.default_rng(0).normal(size=(200, 2))
    dW = brownian(200, 100, 2, 1.0, seed=1)
    np.save(tmp_path / "x0.npy", x0)
    np.save(tmp_path / "dW.npy", dW)
    (tmp_path / "child.py").write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-I", str(tmp_path / "child.py"), str(tmp_path / f"kernel_{backend}.py"),
                    str(tmp_path / "x0.npy"), str(tmp_path / "dW.npy"), str(tmp_path / "out.npy"), backend],
                   check=True, env=env, cwd=tmp_path, timeout=300)
    expected = kernel("coupled2d").simulate(x0, [0.5, 1.0], 100, dW=dW).target
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-10, atol=1e-10)


def test_emit_is_identical_across_processes(kernel, tmp_path):
    code = ("import sys; sys.path.insert(0, 'tests'); import symscore as ss; from conftest import coupled_2d; "
            "sys.stdout.write(ss.emit(coupled_2d(), backend='torch'))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=os.environ | {"PYTHONHASHSEED": seed}, cwd=os.path.dirname(os.path.dirname(__file__))
                              ).stdout for seed in ("1", "2")}
    assert len(outputs) == 1 and outputs == {ss.emit(kernel("coupled2d").sde, backend="torch")}


def test_emit_rejects_bad_arguments(kernel, tmp_path):
    with pytest.raises(ss.SymscoreError, match="backend: expected one of"):
        ss.emit(kernel("coupled2d").sde, backend="cuda")
    with pytest.raises(ss.SymscoreError, match="path: expected a file name"):
        ss.emit(kernel("coupled2d").sde, path=tmp_path)


def test_damaged_cache_file_is_detected_and_rewritten(kernel, tmp_path, monkeypatch):
    monkeypatch.setenv("SYMSCORE_CACHE_DIR", str(tmp_path))
    sde = kernel("vp2").sde
    first = ss.compile(sde, backend="torch")
    assert first.path.parent == tmp_path and not first.was_cached
    assert ss.compile(sde, backend="torch").was_cached
    text = first.path.read_text()
    first.path.write_text(text[: len(text) // 2])  # truncated
    again = ss.compile(sde, backend="torch")
    assert not again.was_cached and again.path.read_text() == text
    again.path.write_text(text.replace("dt", "dt*1.01", 1))  # tampered
    assert not ss.compile(sde, backend="torch").was_cached
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporary files


def test_second_process_compiles_at_least_5x_faster(tmp_path):
    # timed from after the imports: what the cache saves is code generation and numba compilation
    code = ("import time, numpy as np, symscore as ss; t0 = time.perf_counter(); "
            "k = ss.compile(ss.library.benes(m=2, theta=1.25)); k.simulate(np.zeros((4, 2)), [1.0], 4); "
            "print(time.perf_counter() - t0)")
    env = os.environ | {"SYMSCORE_CACHE_DIR": str(tmp_path)}
    run = lambda: float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,  # noqa: E731
                                       env=env, timeout=300).stdout.strip())
    cold, warm = run(), run()
    print(f"compile + first call: first process {cold:.2f} s, second process {warm:.2f} s")
    assert cold > 5 * warm, (cold, warm)


@pytest.mark.slow
def test_wheel_install_ships_templates(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), root], check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("symscore-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(tmp_path / "site"),
                    str(wheel)], check=True, capture_output=True, timeout=600)
    code = ("import symscore as ss, numpy as np; assert ss.__file__.startswith(%r), ss.__file__; "
            "sde = ss.library.cubic(m=2); assert 'import numba' in ss.emit(sde); "
            "[ss.compile(sde, backend=b).simulate(np.zeros((3, 2)), [1.0], 5) for b in ('numba', 'torch')]"
            % str(tmp_path / "site"))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=600,
                   env=os.environ | {"PYTHONPATH": str(tmp_path / "site"), "SYMSCORE_CACHE_DIR": str(tmp_path / "c")})


def test_cache_key_changes_with_the_code_generator(monkeypatch):
    """A kernel generated by an older printer or IR must never be reused after they change."""
    import symscore.compiler.build as build

    sde = ss.library.cauchy()
    before = build.module_key(sde, "numba")
    monkeypatch.setattr(build, "generator_text", lambda backend: "a different printer")
    assert build.module_key(sde, "numba") != before
