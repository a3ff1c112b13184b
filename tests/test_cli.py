"""The command line: every command on a built-in and on a TOML spec; bad input is one line, exit != 0."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import symscore as ss
from symscore.cli import main

from conftest import MINE_TOML

TRAIN_SMALL = ["--steps", "12", "--batch-size", "32", "--n-steps", "20", "--width", "16", "--depth", "2",
               "--n-data", "400", "--quiet"]


@pytest.fixture
def toml_spec(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(MINE_TOML)
    return str(path)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("command", ["derive", "emit", "train", "sample", "demo", "bench", "paper"])
def test_help_shows_an_example(command):
    result = ok(command, "--help")
    assert "Examples:" in result.output and f"symscore {command}" in result.output


def test_bench_paper_is_the_paper_command():
    """``symscore bench paper`` (the spelling of the design notes) runs ``symscore paper``."""
    assert ok("bench", "paper", "--help").output == ok("paper", "--help").output
    assert "cells: expected 'sde+target'" in run("bench", "paper", "--cells", "nonsense+x").output


@pytest.mark.parametrize("flag", ["--datasets", "--cells"])
def test_paper_refuses_an_empty_list(flag):
    result = run("paper", flag, " , ")
    assert result.exit_code != 0 and "expected comma-separated" in result.output


@pytest.mark.parametrize("spec", ["cubic", "toml"])
def test_derive(tmp_path, toml_spec, spec):
    spec = toml_spec if spec == "toml" else spec
    result = ok("derive", spec)
    assert result.stdout.startswith("# Derivation of the score target") and "H_{1;11}" in result.stdout
    ok("derive", spec, "--format", "latex", "-o", tmp_path / "out" / "d.tex")
    assert (tmp_path / "out" / "d.tex").read_text().startswith("\\documentclass")


@pytest.mark.parametrize("spec", ["benes", "toml"])
def test_emit_writes_an_importable_module(tmp_path, toml_spec, spec):
    spec = toml_spec if spec == "toml" else spec
    ok("emit", spec, "-o", tmp_path / "kernel.py")
    loader = importlib.util.spec_from_file_location("emitted_kernel", tmp_path / "kernel.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    m = module.M
    times, x, target = module.simulate(np.zeros((50, m)), [0.5, 1.0], 20, seed=1)
    assert x.shape == target.shape == (50, 2, m) and np.isfinite(target).all()
    for args, message in [((np.zeros((50, m + 1)), [1.0], 20), "x0: expected shape"),
                          ((np.zeros((5, m)), [1.0], 0), "n_steps: expected an integer >= 1"),
                          ((np.zeros((5, m)), [0.5, 0.2], 20), "times: expected strictly increasing"),
                          ((np.zeros((5, m)), [1.0], 20, 0, np.zeros((5, 19, module.D))), "dW: expected shape")]:
        with pytest.raises(ValueError, match=message):
            module.simulate(*args)
    assert ok("emit", spec, "--backend", "torch").stdout.startswith('"""Score kernel')


@pytest.mark.parametrize("spec, data", [("ou", "moons"), ("toml", "npy")])
def test_train_then_sample(tmp_path, toml_spec, spec, data):
    spec = toml_spec if spec == "toml" else spec
    if data == "npy":
        data = tmp_path / "points.npy"
        np.save(data, ss.data.moons(500, seed=0))
    out = tmp_path / "run"
    result = ok("train", spec, "--data", data, "--out", out, *TRAIN_SMALL)
    assert "wrote" in result.output
    assert {"model.pt", "sde.toml", "run.json", "loss.png", "checkpoints"} <= {p.name for p in out.iterdir()}
    assert ss.load_spec(str(out / "sde.toml")).name == ss.load_spec(spec).name
    # an existing model is never overwritten silently
    again = run("train", spec, "--data", data, "--out", out, *TRAIN_SMALL)
    assert again.exit_code != 0 and "already holds model.pt" in again.stderr
    ok("train", spec, "--data", data, "--out", out, *TRAIN_SMALL, "--resume")  # continues from checkpoints
    ok("sample", out, "--n", 64, "--out", tmp_path / "s.npy", "--plot", tmp_path / "s.png", "--n-steps", 20)
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (64, 2) and np.isfinite(samples).all()
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    # --device: the reverse-time iteration in torch there (its equality with the host's is in test_sampling)
    ok("sample", out, "--n", 64, "--out", tmp_path / "dev.npy", "--n-steps", 20, "--device", "cpu")
    assert np.load(tmp_path / "dev.npy").shape == (64, 2) and np.isfinite(np.load(tmp_path / "dev.npy")).all()
    bad = run("sample", out, "--n", 8, "--out", tmp_path / "x.npy", "--device", "warp-drive")
    assert bad.exit_code == 1 and "--device: expected cpu, cuda" in bad.stderr


def test_train_for_a_wall_clock_budget(tmp_path, training_clock):
    """--budget: the clock sets the steps (the fake clock: 32 steps in 0.5 s, whatever --steps says),
    no checkpoints are written, and --resume or several processes are refused naming --budget."""
    out = tmp_path / "run"
    result = ok("train", "ou", "--data", "moons", "--out", out, *TRAIN_SMALL, "--budget", 0.5)
    assert "32 steps in 0.5 s" in result.output
    assert not (out / "checkpoints").exists() and len(ss.ScoreModel.load(out / "model.pt").loss_history) == 32
    assert json.loads((out / "run.json").read_text())["options"]["budget"] == 0.5
    for extra in (["--resume"], ["--nproc", "2"], ["--budget", "-1"]):
        bad = run("train", "ou", "--data", "moons", "--out", tmp_path / "other", *TRAIN_SMALL, "--budget", 0.5, *extra)
        assert bad.exit_code == 2 and "--budget" in bad.stderr, bad.stderr


def test_demo_quick(tmp_path):
    ok("demo", "--quick", "--out", tmp_path)
    assert {"samples.png", "metrics.json"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize("spec", ["cubic", "toml"])
def test_bench(toml_spec, spec):
    spec = toml_spec if spec == "toml" else spec
    result = ok("bench", spec, "--backend", "numba", "--paths", 200, "--n-steps", 10, "--repeats", 1)
    lines = result.stdout.splitlines()
    assert any(line.startswith("numba kernel") for line in lines)
    assert any(line.startswith("numpy Euler of X only (baseline)") and line.rstrip().endswith("1.00") for line in lines)


BAD_SPECS = {
    "unknown name": ("nope", "unknown SDE 'nope'"),
    "missing file": ("{dir}/missing.toml", "no such file"),
    "missing python file": ("{dir}/missing.py:SDE", "no such file"),
    "syntax error": ('drift = ["-x +* 2", "-y"]', "syntax error at column"),
    "import": ('drift = ["__import__(\'os\')", "-y"]', "function '__import__' is not allowed"),
    "import and call": ('drift = ["__import__(\'os\').system(\'echo pwned\')", "-y"]', "forbidden call"),
    "attribute": ('drift = ["x.real", "-y"]', "attribute access 'x.real'"),
    "unbound symbol": ('drift = ["-k*x", "-y"]', "unbound symbol 'k'"),
    "bad toml": ('drift = ["-x", ', "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
@pytest.mark.parametrize("command", ["derive", "emit", "train", "bench"])
def test_bad_specs_give_one_line_and_nonzero_exit(tmp_path, case, command):
    spec, message = BAD_SPECS[case]
    if "=" in spec:
        body = 'state = ["x", "y"]\n' + spec + ('' if "diffusion" in spec else '\ndiffusion = "1"')
        (tmp_path / "bad.toml").write_text(body)
        spec = str(tmp_path / "bad.toml")
    extra = ["--data", "moons", "--out", tmp_path / "run"] if command == "train" else []
    result = run(command, spec.format(dir=tmp_path), *extra)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["sample", "{dir}/nothing", "--out", "{dir}/s.npy"], "no such folder"),
    (["sample", "{dir}", "--out", "{dir}/s.npy"], "neither sde.toml nor run.json"),
    (["sample", "{dir}", "--out", "{dir}/s.txt"], "expected a .npy file name"),
    (["train", "cubic", "--data", "nowhere.npy", "--out", "{dir}/run"], "no such file 'nowhere.npy'"),
    (["train", "cubic", "--data", "mnist", "--out", "{dir}/run"], "expected a dataset name"),
])
def test_bad_arguments_give_one_line(tmp_path, args, message):
    result = run(*[a.format(dir=tmp_path) for a in args])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_console_script_exit_status_and_stderr(tmp_path):
    """The installed entry point, in a real process: exit status 1, one line on stderr."""
    (tmp_path / "evil.toml").write_text('state = ["x"]\ndrift = ["__import__(\'os\').system(\'touch pwned\')"]\n'
                                        'diffusion = "1"\n')
    result = subprocess.run([sys.executable, "-m", "symscore.cli", "derive", str(tmp_path / "evil.toml")],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "forbidden call" in result.stderr
    assert not (tmp_path / "pwned").exists()


def test_check_against_the_truth(tmp_path):
    """`symscore check` on ou: the bias table, the cost comparison and its verdict, the plots and
    the JSON; with --run the trained score's error against p_0 = a KDE of its data; one-line errors."""
    assert "Examples:" in ok("check", "--help").output
    small = ["--paths", 400, "--n-steps", 10, "--backend", "torch"]
    result = ok("check", "ou", *small, "--out", tmp_path / "check")
    assert "target bias of 'malliavin'" in result.output and "malliavin-richardson" in result.output
    assert "least biased:" in result.output and "the default mixture" in result.output
    saved = json.loads((tmp_path / "check" / "check.json").read_text())
    assert {"target_bias", "comparison"} <= set(saved) and "verdict" in saved["comparison"]
    assert [c["n_steps"] for c in saved["comparison"]["candidates"]] == [10, 30, 10]  # plain, at equal cost
    assert saved["target_bias"]["times"] == [0.1, 0.2, 0.5, 1.0]  # about 0.1, 0.25, 0.5, 1 T on the 10-step grid
    assert (tmp_path / "check" / "target_bias.png").read_bytes()[:4] == b"\x89PNG"
    finer = ok("check", "ou", *small, "--times", "0.5,1", "--cells", 96, "--out", tmp_path / "grid")
    assert "truth: Fokker-Planck" in finer.output  # --cells asks for a grid even where a closed form exists

    ok("train", "ou", "--data", "moons", "--out", tmp_path / "run", *TRAIN_SMALL, "--backend", "torch")
    result = ok("check", "ou", "--run", tmp_path / "run", *small, "--times", "0.5,1", "--out", tmp_path / "c2")
    assert "(KDE) of the run's training data (moons" in result.output and "e(t)" in result.output
    error = json.loads((tmp_path / "c2" / "check.json").read_text())["score_error"]
    assert error["times"] == [0.5, 1.0] and all(np.isfinite(error["error"]))
    assert (tmp_path / "c2" / "score_error.png").exists()

    (tmp_path / "cubic3.toml").write_text('state = ["x", "y", "z"]\ndrift = ["-x**3", "-y**3", "-z**3"]\n'
                                          'diffusion = "1"\n')
    for args, message in [(["ou", "--times", "0.55", "--n-steps", 10], "times: expected times on the grid"),
                          ([tmp_path / "cubic3.toml"], "needs m <= 2"),
                          (["cubic", "--run", tmp_path / "run"], "was trained on 'ou'"),
                          (["ou", "--target", "ssm", "--paths", 400], "has no regression target")]:
        bad = run("check", *args, "--out", tmp_path / "bad")
        assert bad.exit_code == 1 and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.stderr
