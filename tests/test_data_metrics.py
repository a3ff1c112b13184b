"""Datasets, metrics, plots and the demo in its small mode."""
import json

import numpy as np
import pytest

import symscore as ss


@pytest.mark.parametrize("name", ["checkerboard", "moons", "swiss_roll", "eight_gaussians", "rings"])
def test_toy_datasets_are_seeded_2d(name):
    a, b, c = ss.data.load(name, n=500, seed=1), ss.data.load(name, n=500, seed=1), ss.data.load(name, n=500, seed=2)
    assert a.shape == (500, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.abs(a).max() < 6


def test_student_t_has_the_exact_radial_tail():
    """|x|^2 / 2 ~ F(2, df) for the 2-D Student t; with df = 2, P(|x| > r) = 1 / (1 + r^2 / 2).
    Within 4 binomial standard errors at r = 1, 3, 10, 30; a Gaussian (df -> inf) fails at r = 3."""
    n = 200_000
    radius = np.linalg.norm(ss.data.student_t(n, seed=0), axis=1)
    gaussian = np.linalg.norm(ss.data.student_t(n, seed=0, df=1e9), axis=1)
    for r in (1.0, 3.0, 10.0, 30.0):
        exact = 1 / (1 + r**2 / 2)
        error = np.sqrt(exact * (1 - exact) / n)
        assert abs((radius > r).mean() - exact) < 4 * error, r
    assert abs((gaussian > 3.0).mean() - 1 / (1 + 4.5)) > 100 * np.sqrt(0.18 * 0.82 / n)
    np.testing.assert_array_equal(ss.data.load("student_t", 100, seed=3), ss.data.student_t(100, seed=3))


def test_checkerboard_occupies_black_squares():
    x = ss.data.checkerboard(4000, seed=0)
    cells = np.floor((x + 4) / 2).astype(int)
    assert np.all(cells.sum(axis=1) % 2 == 0)


def test_digits_and_files(tmp_path):
    x = ss.data.digits(100, seed=0)
    assert x.shape == (100, 64) and x.min() >= -1 and x.max() <= 1
    assert ss.data.digits().shape == (1797, 64)
    np.save(tmp_path / "mine.npy", x)
    np.testing.assert_array_equal(ss.data.load(tmp_path / "mine.npy", n=None), x)
    with pytest.raises(ss.SymscoreError, match="no such file"):
        ss.data.load(tmp_path / "missing.npy")
    with pytest.raises(ss.SymscoreError, match="dataset name"):
        ss.data.load("spirals")
    with pytest.raises(ss.SymscoreError, match="NaN"):
        ss.data.load(np.array([[0.0, np.nan], [1.0, 2.0]]))


def test_metrics_on_known_cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1500, 2))
    shift = np.array([0.6, -0.8])  # |shift| = 1
    w2 = ss.metrics.wasserstein2(x, x + shift)
    assert abs(w2.value - 1.0) < 1e-6 and w2.settings["exact"]  # a translation is the optimal coupling
    same = rng.standard_normal((1500, 2))
    for metric in (ss.metrics.mmd, ss.metrics.energy_distance):
        close, far = metric(x, same).value, metric(x, x + shift).value
        assert abs(close) < 0.01 and far > 0.1, metric.__name__
    sw_close, sw_far = ss.metrics.sliced_wasserstein(x, same), ss.metrics.sliced_wasserstein(x, x + shift)
    assert sw_close.value < 0.1 and 0.5 < sw_far.value < 1.0  # SW2 of a shift = |shift| / sqrt(m)
    assert sw_far.settings["seed"] == 0 and sw_far.settings["n_projections"] == 500
    report = ss.metrics.evaluate(x, same)
    assert set(report) == {"sliced_w2", "w2", "mmd2", "energy"}
    assert float(report["mmd2"]) == report["mmd2"].value
    with pytest.raises(ValueError, match="columns"):
        ss.metrics.mmd(x, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="max_points"):
        ss.metrics.wasserstein2(x, x, max_points=6000)


def test_plots_write_png(tmp_path):
    x = np.random.default_rng(0).standard_normal((200, 2))
    paths = [
        ss.plots.plot_samples(x, {"a": x + 1}, tmp_path / "s.png"),
        ss.plots.plot_score_field({"exact": lambda y, t: -y, "other": lambda y, t: -2 * y}, 0.5, tmp_path / "f.png"),
        ss.plots.plot_target_variance({"a": ([0.1, 0.5, 1.0], [10.0, 2.0, 1.0])}, tmp_path / "v.png"),
        ss.plots.plot_loss({"a": np.linspace(2, 1, 100)}, tmp_path / "l.png"),
        ss.plots.plot_digits(ss.data.digits(20), tmp_path / "d.png"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_small_mode(tmp_path):
    lines = []
    from symscore.demo import run_demo

    report = run_demo(out=tmp_path, steps=40, batch_size=64, n_samples=300, n_train=1000, sample_steps=40,
                      width=32, depth=2, progress=False, print_fn=lines.append)
    assert set(report) == {"cauchy + malliavin, sde", "cauchy + malliavin, pc", "vp + dsm, sde", "vp + dsm, pc",
                           "data (noise floor)"}
    assert report["cauchy + malliavin, pc"]["steps"] == 40
    written = {p.name for p in tmp_path.iterdir()}
    assert {"samples.png", "samples.npz", "score_field.png", "target_variance.png", "loss.png", "metrics.json"} <= written
    saved = np.load(tmp_path / "samples.npz")
    assert set(saved.files) == {"held_out", "cauchy_malliavin_sde", "cauchy_malliavin_pc", "vp_dsm_sde", "vp_dsm_pc"}
    assert saved["vp_dsm_pc"].shape == (300, 2)
    assert json.loads((tmp_path / "metrics.json").read_text())["vp + dsm, pc"]["sliced_w2"]["settings"]["seed"] == 0
    assert any("sliced W2" in line for line in lines) and any(line.startswith("best: ") for line in lines)
    # three sampler seeds per row (and three data draws for the floor): their mean and its error
    for row in report.values():
        replicates = row["sliced_w2"]["replicates"]
        assert len(replicates) == 3 and len(set(replicates)) == 3
        assert row["sliced_w2"]["value"] == pytest.approx(np.mean(replicates))
        assert row["sliced_w2"]["standard_error"] > 0


def test_evaluate_replicates_is_the_mean_of_evaluate_with_its_error():
    from symscore import metrics

    y = np.random.default_rng(0).normal(size=(400, 2))
    sets = [np.random.default_rng(s).normal(loc=0.2, size=(400, 2)) for s in (1, 2, 3, 4)]
    report = metrics.evaluate_replicates(sets, y, seed=5)
    single = [metrics.evaluate(x, y, seed=5) for x in sets]
    for name, entry in report.items():
        values = [s[name].value for s in single]
        assert entry["replicates"] == values and entry["value"] == pytest.approx(np.mean(values))
        assert entry["standard_error"] == pytest.approx(np.std(values, ddof=1) / 2)
    assert metrics.evaluate_replicates(sets[:1], y)["w2"]["standard_error"] is None


def test_demo_budget_is_the_clock_budget_of_both_models(tmp_path, monkeypatch):
    import symscore.demo as demo
    from symscore.learn.train import Trainer

    asked = []
    original_run = Trainer.run

    def spy_run(self, progress=True, budget=None):
        asked.append((self.sde.name, self.config.target, budget))
        return original_run(self, progress, budget=budget)

    monkeypatch.setattr(Trainer, "run", spy_run)
    report = demo.run_demo(out=tmp_path, budget=0.5, batch_size=32, n_samples=200, n_train=500, sample_steps=40,
                           width=16, depth=1, progress=False, print_fn=lambda line: None)
    assert asked == [("cauchy", "malliavin", 0.5), ("vp", "dsm", 0.5)]
    trained = {label: row for label, row in report.items() if label != "data (noise floor)"}
    assert all(row["steps"] >= 1 and row["seconds"]["train"] >= 0.5 for row in trained.values())
    with pytest.raises(ss.SymscoreError, match="budget"):
        demo.run_demo(out=tmp_path, budget=-1, progress=False, print_fn=lambda line: None)


def test_evaluate_caps_the_quadratic_metrics_at_max_points_and_says_so():
    from symscore import metrics

    x, y = ss.data.moons(900, seed=0), ss.data.moons(700, seed=1)
    capped = metrics.evaluate(x, y, max_points=300)
    assert capped["sliced_w2"].settings["n_x"] == 900  # sliced W2 always uses every point
    for name in ("w2", "mmd2", "energy"):
        assert (capped[name].settings["n_x"], capped[name].settings["n_y"]) == (300, 300), name
    assert metrics.evaluate(x, y)["w2"].settings["n_x"] == 900
    assert metrics.evaluate(x, y, max_points=10**6)["w2"].settings["n_x"] == 900  # never above the exact limit


@pytest.mark.parametrize("sizes", [(700, 700), (700, 450)])
def test_sliced_w2_is_pots_value_on_pots_projections(sizes):
    """Equal sizes take the sorted-projections formula, unequal ones POT's general algorithm: both
    must give POT's sliced_wasserstein_distance for the same directions (to rounding); a wrong
    pairing (unsorted projections) would not."""
    import ot

    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(sizes[0], 3)), 1.3 * rng.normal(size=(sizes[1], 3)) + 0.2
    ours = ss.metrics.sliced_wasserstein(x, y, n_projections=64, seed=5).value
    pot = ot.sliced_wasserstein_distance(x, y, n_projections=64, seed=5)
    assert ours == pytest.approx(pot, rel=1e-12)
    directions = ot.sliced.get_random_projections(3, 64, 5)
    unsorted = np.sqrt(np.mean((x[: sizes[1]] @ directions - y @ directions) ** 2))
    assert abs(unsorted - pot) > 0.1 * pot
