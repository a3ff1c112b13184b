"""Defaults that work for every SDE the parser accepts: the smallest record time chosen from how the
noise reaches the coordinates (hypoelliptic SDEs train out of the box), sample plots titled as
samples, and derivations whose index letters never clash with the user's symbol names."""
import json

import numpy as np
import pytest
import sympy as sp
from click.testing import CliRunner

import symscore as ss
from symscore.cli import main
from symscore.learn.record_times import DEFAULT_T_MIN, choose_t_min
from symscore.teach.render import index_letters

PENDULUM_TOML = """
name = "pendulum"
state = ["q", "p"]
params = { g = 9.81, gamma = 0.5 }
drift = ["p", "-g*sin(q) - gamma*p"]
diffusion = [["0"], ["1"]]
"""
TINY = ["--steps", "3", "--batch-size", "16", "--n-steps", "20", "--width", "8", "--depth", "1", "--n-data", "200",
        "--quiet"]


@pytest.fixture
def pendulum_toml(tmp_path):
    path = tmp_path / "pendulum.toml"
    path.write_text(PENDULUM_TOML)
    return str(path)


def chain3():
    """x1' = x2, x2' = x3 - x2^3, noise on x3 only: bracket depths 2, 1, 0."""
    x1, x2, x3, t = sp.symbols("x1 x2 x3 t")
    return ss.SDE(drift=[x2, x3 - x2**3, -x3], diffusion=sp.Matrix([0, 0, 1]), state=[x1, x2, x3], time=t,
                  name="chain3")


def test_noise_reach_reads_the_bracket_depth():
    reach = ss.load_spec("cubic").derive().noise_reach
    assert reach.depth == (0, 0) and (reach.invertible_steps, reach.resolved_steps) == (1, 1)
    reach = chain3().derive().noise_reach
    assert reach.depth == (2, 1, 0) and reach.via == (1, 2, None) and reach.small_t_order == 5
    assert (reach.invertible_steps, reach.resolved_steps) == (3, 5)
    reach = ss.load_spec("subvp").derive().noise_reach  # sigma(0) = 0: one step later
    assert reach.depth == (0, 0) and reach.late_columns == (0, 1) and reach.invertible_steps == 2


def test_the_schemes_malliavin_matrix_is_singular_exactly_before_depth_plus_one_steps():
    """The claim behind the rule, on the compiled kernel: depth 2 -> C singular after 2 steps, not after 3."""
    kernel, dt = ss.compile(chain3()), 0.01
    x0 = np.random.default_rng(0).normal(size=(64, 3))
    with pytest.raises(ss.SingularMalliavinMatrixError):
        kernel.simulate(x0, [2 * dt], 2, seed=0)
    paths = kernel.simulate(x0, [3 * dt, 5 * dt], 5, seed=0)
    assert np.isfinite(paths.target).all()


def test_an_elliptic_sde_keeps_the_old_default():
    for name in ("cubic", "vp", "benes", "gbm"):
        for n_steps in (20, 100, 5000):
            choice = choose_t_min(ss.load_spec(name), n_steps)
            assert choice.t_min == DEFAULT_T_MIN and not choice.explicit
            assert choice.first_step == max(1, int(np.ceil(DEFAULT_T_MIN * n_steps - 1e-9)))
            assert "directly" in choice.reason


def test_hypoelliptic_and_vanishing_noise_defaults(pendulum_toml):
    pendulum = ss.load_spec(pendulum_toml)
    choice = choose_t_min(pendulum, 100)
    assert choice.first_step == 3 and choice.t_min == pytest.approx(0.03)
    assert "p -> q: bracket depth 1" in choice.reason and "t^3" in choice.reason
    assert choose_t_min(pendulum, 10_000).t_min == DEFAULT_T_MIN  # 1e-3 is already 10 steps
    assert choose_t_min(ss.load_spec("subvp"), 100).first_step == 2
    assert choose_t_min(chain3(), 100).first_step == 5
    with pytest.raises(ss.SymscoreError, match="n_steps: 2 Euler steps are too few"):
        choose_t_min(pendulum, 2)


def test_a_too_small_explicit_t_min_is_a_clear_error(pendulum_toml):
    pendulum = ss.load_spec(pendulum_toml)
    with pytest.raises(ss.SymscoreError, match=r"t_min: t_min = 0.001 .* singular before step 2 \(t = 0.02\). "
                                               r"Pass t_min >= 0.02, or leave t_min out \(the default here is 0.03\)"):
        ss.train(pendulum, ss.data.moons(50, seed=0), t_min=1e-3, steps=1, progress=False)
    assert choose_t_min(pendulum, 100, t_min=0.02).first_step == 2  # respected as given
    assert choose_t_min(pendulum, 100, t_min=1e-3, target="ssm").t_min == 1e-3  # no C to invert
    result = CliRunner().invoke(main, ["train", pendulum_toml, "--data", "moons", "--out", "unused", "--t-min", "0.001",
                                       *TINY])
    assert result.exit_code == 1 and "singular before step 2" in result.output and "Traceback" not in result.output


def test_noise_that_never_reaches_a_coordinate_is_named():
    x, y, t = sp.symbols("x y t")
    sde = ss.SDE(drift=[-x, x - y], diffusion=sp.Matrix([0, 1]), state=[x, y], time=t, name="unreached")
    with pytest.raises(ss.SDESpecError, match="the noise never reaches x"):
        choose_t_min(sde, 100)


def test_pendulum_trains_with_defaults_and_samples_are_titled_as_samples(tmp_path, pendulum_toml, monkeypatch):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", pendulum_toml, "--data", "moons", "--out", str(out), *TINY])
    assert result.exit_code == 0, result.output
    assert "t_min = 0.15 chosen (first record step 3 of 20" in result.output
    options = json.loads((out / "run.json").read_text())["options"]
    assert options["t_min"] == pytest.approx(0.15) and "bracket depth 1" in options["t_min_reason"]
    assert ss.ScoreModel.load(out / "model.pt").t_min == pytest.approx(0.15)

    titles = {}

    def capture(data, samples, path, **kwargs):
        titles.update(data=data, titles=list(samples), labels=kwargs.get("labels"))
        return path

    monkeypatch.setattr(ss.plots, "plot_samples", capture)
    result = CliRunner().invoke(main, ["sample", str(out), "--n", "32", "--out", str(tmp_path / "s.npy"),
                                       "--plot", str(tmp_path / "s.png"), "--n-steps", "10"])
    assert result.exit_code == 0, result.output
    assert titles["data"] is None and titles["titles"] == ["samples from pendulum\n(32, sde sampler, 10 steps)"]
    assert [str(s) for s in titles["labels"]] == ["q", "p"]


def test_plot_samples_without_data_panel(tmp_path):
    points = np.random.default_rng(0).normal(size=(50, 2))
    assert ss.plots.plot_samples(None, {"samples": points}, tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("names", ["q p", "i j k", "a b c", "r s", "w e l"])
def test_derivation_index_letters_never_clash_with_symbol_names(names):
    symbols = sp.symbols(names)
    t = sp.Symbol("t")
    drift = [symbols[(n + 1) % len(symbols)] * symbols[n] for n in range(len(symbols))]
    sde = ss.SDE(drift=drift, diffusion=1, state=list(symbols), time=t, name="clash")
    table = index_letters(sde)
    assert not {str(s) for s in symbols} & set(table.values())
    assert len(set(table.values())) == len(table)
    der = sde.derive()
    for text in (der.to_markdown(), der.to_latex(), "\n".join(e for _, e in der.steps)):
        assert "@" not in text
        for name in map(str, symbols):
            # no generic formula uses a user's name as an index: H[...; ...], Z_t[...], sums
            for pattern in (f"H[{name};", f"Z_t[{name};", f"\\sum_{name} ", f"Y_t[{name},", f", {name}]"):
                assert pattern not in text, (name, pattern)
        # concrete Hessian entries differentiate by the state symbols themselves
        assert f"\\partial {sp.latex(symbols[1])}\\," in text or f"\\partial {sp.latex(symbols[0])}\\," in text


def test_train_names_a_dataset_of_the_wrong_dimension(tmp_path):
    spec = tmp_path / "one.toml"
    spec.write_text('name = "one"\nstate = ["x"]\ndrift = ["-x**3"]\ndiffusion = "1"\n')
    result = CliRunner().invoke(main, ["train", str(spec), "--data", "moons", "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--data: moons has 2 columns, but 'one' has m = 1 coordinates (x); pass a .npy file of shape (n, 1)" \
        in result.output


def test_a_sigma_entry_vanishing_at_zero_delays_only_its_coordinate_and_the_default_trains():
    """sigma = [[sqrt(t), 0], [1, 1]]: no column vanishes at t = 0, but x gets no noise from the first
    Euler step, so the left-point C after one step is singular. The default waits one step more, and
    recording at step 1 (what a per-column rule chose) is refused."""
    x, y, t = sp.symbols("x y t")
    sde = ss.SDE(drift=[-x, -y], diffusion=sp.Matrix([[sp.sqrt(t), 0], [1, 1]]), state=[x, y], time=t, name="partial")
    reach = sde.derive().noise_reach
    assert reach.depth == (0, 0) and reach.delay == (1, 0) and reach.invertible_steps == 2
    choice = choose_t_min(sde, 100)
    assert choice.first_step == 2 and "vanishes at t = 0 where it drives x" in choice.reason
    with pytest.raises(ss.SymscoreError, match="singular before step 2"):
        choose_t_min(sde, 100, t_min=0.01)
    data = np.random.default_rng(0).normal(size=(300, 2))
    ss.train(sde, data, steps=2, batch_size=16, width=8, depth=1, n_steps=100, progress=False)


def test_targets_that_never_invert_c_keep_the_usual_default():
    """sub-VP's sigma(0) = 0 delays the Malliavin matrix, not the Gaussian (dsm) target."""
    subvp = ss.library.subvp(m=2)
    assert choose_t_min(subvp, 100, target="dsm").t_min == DEFAULT_T_MIN
    assert choose_t_min(subvp, 100).t_min == pytest.approx(0.02)
