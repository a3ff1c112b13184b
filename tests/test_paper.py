"""The Malliavin paper's grid (symscore.paper, `symscore paper`) on the experiment harness
(symscore.experiments): the ablation target, the quick run end to end, bad input."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import symscore as ss
from symscore.cli import main
from symscore.learn.targets import make_target_source
from symscore.experiments import Network, parse_cells, seeds_summary, seeds_table, train_cell
from symscore.paper import FLOOR, SAMPLERS, Cell, run_paper


def _targets(sde, target, n=400, steps=(5, 20)):
    source = make_target_source(target, sde, 50)
    x0 = np.random.default_rng(0).normal(size=(n, sde.m))
    return source.batch(x0, np.array(steps), seed=3)


def test_first_order_target_is_the_malliavin_target_without_the_second_variation():
    """For a linear drift the second variation vanishes, so the ablation equals the full target on
    the same paths; for the Cauchy drift it differs (its Hessian is not zero). The two targets come
    from two generated kernels (the ablation's drops the second variation, and its CSE groups J
    differently), compiled apart: X is compared to rounding, not bit for bit."""
    vp = ss.library.vp(m=2)
    (x_full, full), (x_first, first) = _targets(vp, "malliavin"), _targets(vp, "first-order")
    np.testing.assert_allclose(x_first, x_full, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(first, full, rtol=1e-10, atol=1e-10)
    cauchy = ss.library.cauchy(m=2)
    (x_full, full), (x_first, first) = _targets(cauchy, "malliavin"), _targets(cauchy, "first-order")
    np.testing.assert_allclose(x_first, x_full, rtol=1e-12, atol=1e-12)
    assert np.abs(first - full).mean() > 0.01 * np.abs(full).mean()


def test_quick_grid_writes_the_table_the_metrics_and_the_figure(tmp_path):
    cells = (Cell("vp", "dsm"), Cell("vp", "first-order"))
    lines = []
    results = run_paper(out=tmp_path, quick=True, datasets=("eight_gaussians",), cells=cells, print_fn=lines.append)
    rows = results["eight_gaussians"]
    labels = [f"{cell} + {target}, {method}" for cell, target in (("vp", "dsm"), ("vp", "first-order"))
              for method in SAMPLERS]
    assert SAMPLERS == ("sde", "pc") and list(rows) == [FLOOR] + labels
    for label in labels:
        assert rows[label]["steps"] == 10
        assert all(np.isfinite(rows[label][k]) for k in ("sliced_w2", "w2", "mmd2", "energy"))
    table = (tmp_path / "results.md").read_text()
    assert table.count("| eight_gaussians |") == 5 and "sliced W2 (x floor)" in table
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["settings"]["quick"] and saved["results"]["eight_gaussians"]["vp + dsm, pc"]["steps"] == 10
    for method in SAMPLERS:
        assert (tmp_path / f"samples_{method}.png").stat().st_size > 10_000


def test_sampler_seeds_average_each_metric_and_give_its_error(tmp_path):
    results = run_paper(out=tmp_path, quick=True, datasets=("eight_gaussians",), cells=(Cell("vp", "dsm"),),
                        sampler_seeds=2, print_fn=lambda line: None)
    rows = results["eight_gaussians"]
    for label, row in rows.items():
        assert {"sliced_w2_se", "w2_se", "mmd2_se", "energy_se"} <= set(row) and row["sliced_w2_se"] > 0, label
    assert " +- " in (tmp_path / "results.md").read_text()
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["sampler_seeds"] == 2
    with pytest.raises(ss.SymscoreError, match="sampler_seeds"):
        run_paper(out=tmp_path / "bad", sampler_seeds=0)


def test_budget_lets_the_clock_set_the_step_count(training_clock):
    """The clock sets the steps (Trainer.run(budget=); the fixture's clock fits 32 steps in 0.5 s)."""
    data, network = ss.data.eight_gaussians(1000, seed=0), Network(width=16, depth=1, batch_size=32)
    assert train_cell(Cell("vp", "dsm"), data, network, n_steps=20, budget=0.5).steps == 32
    trained = train_cell(Cell("vp", "dsm"), data, network, n_steps=20, budget=0.5, steps=7)
    assert trained.steps == 7 and len(trained.model.loss_history) == 7  # a step count wins over the budget
    with pytest.raises(ss.SymscoreError, match="budget, steps"):
        train_cell(Cell("vp", "dsm"), data, network, n_steps=20)


@pytest.mark.parametrize("kwargs, name", [(dict(budget=0), "budget"), (dict(budget="1"), "budget"),
                                          (dict(datasets=("digits",)), "datasets"),
                                          (dict(datasets=("nope",)), "datasets"), (dict(cells=()), "cells"),
                                          (dict(cells=("vp",)), "cells"), (dict(n_eval=0), "n_eval")])
def test_bad_input_names_the_argument(tmp_path, kwargs, name):
    with pytest.raises(ss.SymscoreError, match=name):
        run_paper(out=tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # checked before anything is written


def test_the_grid_is_its_own_command_and_bench_times_kernels_only():
    result = CliRunner().invoke(main, ["bench", "cubic", "--quick"])
    assert result.exit_code == 2 and "No such option '--quick'" in result.output
    assert "Examples:" in CliRunner().invoke(main, ["paper", "--help"]).output


def test_student_t_radius_quantiles_and_their_intervals():
    """Exact quantiles of |x| (P(|x| > r) = 1 / (1 + r^2 / 2) at df = 2) fall in the order-statistic
    intervals of a fresh sample; a 20% larger radius does not at the 0.9 level."""
    from symscore.paper import TAIL_LEVELS, _quantile_interval, student_t_radius_quantile

    exact = student_t_radius_quantile(TAIL_LEVELS)
    np.testing.assert_allclose(exact, np.sqrt(2 * (1 / (1 - np.array(TAIL_LEVELS)) - 1)), rtol=1e-10)
    radius = np.linalg.norm(ss.data.student_t(50_000, seed=5), axis=1)
    for p, q in zip(TAIL_LEVELS, exact):
        _, low, high = _quantile_interval(radius, p, z=3.0)
        assert low <= q <= high, (p, low, q, high)
    _, low, high = _quantile_interval(1.2 * radius, 0.9, z=3.0)
    assert not low <= exact[1] <= high


def test_heavy_tails_quick_run(tmp_path):
    from symscore.paper import run_heavy_tails

    results = run_heavy_tails(out=tmp_path, quick=True, print_fn=lambda line: None)
    assert list(results) == [FLOOR] + [f"{label}, {method}" for label in ("cauchy + malliavin", "vp + dsm")
                                       for method in SAMPLERS]
    assert (tmp_path / "tails.md").read_text().count("|") > 30 and (tmp_path / "tails.png").exists()
    assert json.loads((tmp_path / "tails.json").read_text())["results"]["vp + dsm, sde"]["steps"] == 10


def test_seeds_repeat_the_grid_and_summarise_each_row_over_runs(tmp_path):
    from symscore.paper import run_paper_seeds

    summary = run_paper_seeds(seeds=(0, 1), out=tmp_path, quick=True, datasets=("eight_gaussians",),
                              cells=(Cell("vp", "dsm"),), print_fn=lambda line: None)
    rows = summary["eight_gaussians"]
    assert set(rows) == {f"vp + dsm, {method}" for method in SAMPLERS}
    for label, row in rows.items():
        per_seed = [json.loads((tmp_path / f"seed_{seed}" / "metrics.json").read_text())["results"]["eight_gaussians"]
                    for seed in (0, 1)]
        expected = [run[label]["sliced_w2"] / run[FLOOR]["sliced_w2"] for run in per_seed]
        np.testing.assert_allclose(row["ratios"], expected)
        assert row["mean"] == pytest.approx(np.mean(expected)) and row["within_1.5"] == sum(r <= 1.5 for r in expected)
    assert "| eight_gaussians | vp + dsm, pc |" in (tmp_path / "seeds.md").read_text()
    with pytest.raises(ss.SymscoreError, match="seeds: expected distinct"):
        run_paper_seeds(seeds=(1, 1), out=tmp_path, quick=True)


@pytest.mark.parametrize("cells", ["np+dsm", "cauchy+nope", "cauchy", ","])
def test_paper_refuses_cells_that_are_not_a_builtin_sde_and_a_target(tmp_path, cells):
    result = CliRunner().invoke(main, ["paper", "--quick", "--cells", cells, "--out", tmp_path / "grid"])
    assert result.exit_code == 1 and "cells: expected" in result.output and "'sde+target'" in result.output
    assert not (tmp_path / "grid").exists()


def test_parse_cells():
    assert parse_cells(" cauchy+malliavin, vp + dsm ,") == (Cell("cauchy", "malliavin"), Cell("vp", "dsm"))
    assert Cell("cauchy", "first-order").label == "cauchy + first-order"


@pytest.mark.parametrize("args, message", [(["--seed", "1", "--seeds", "0,1"], "--seed and --seeds: choose one"),
                                           (["--seeds", "0,x"], "expected comma-separated integers"),
                                           (["--tails", "--cells", "vp+dsm"], "--cells: not with --tails"),
                                           (["--threads", "0"], "--threads")])
def test_paper_command_refuses_bad_option_combinations(tmp_path, args, message):
    result = CliRunner().invoke(main, ["paper", "--quick", "--out", tmp_path / "grid", *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "grid").exists()


def test_paper_command_runs_the_quick_grid(tmp_path):
    result = CliRunner().invoke(main, ["paper", "--quick", "--datasets", "eight_gaussians", "--cells", "vp+dsm",
                                       "--seed", "3", "--out", tmp_path])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["settings"]["seed"] == 3 and list(saved["results"]["eight_gaussians"])[1] == "vp + dsm, sde"
    assert "| eight_gaussians | vp + dsm, pc |" in result.output


def test_seeds_summary_and_its_table():
    summary = seeds_summary({"a, sde": [1.0, 2.0, 1.5]})
    assert summary == {"a, sde": {"ratios": [1.0, 2.0, 1.5], "mean": 1.5, "min": 1.0, "max": 2.0, "within_1.5": 2}}
    lines = seeds_table({"moons": summary}, [0, 1, 2], first_column="dataset")
    assert lines[0] == "| dataset | SDE + target, sampler | seed 0 | seed 1 | seed 2 | mean | within 1.5x |"
    assert lines[2] == "| moons | a, sde | 1.00 | 2.00 | 1.50 | 1.50 | 2 of 3 |"
