"""The training loop: accuracy against a closed-form score, checkpoints and resume, bad input."""
import importlib.util
import time

import numpy as np
import pytest
import torch

import symscore as ss
from symscore.learn.measurements import interpolate as _interpolate

THETA, MEAN, STD = 1.5, np.array([0.3, -0.2]), 0.5


def relative_l2(model, t, n=5000):
    """sqrt(E|s_theta - s|^2 / E|s|^2) over X_t ~ p_t, for the Benes mixture (closed-form score)."""
    y = ss.library.benes_mixture_sample(n, t, MEAN, STD, THETA, seed=11)
    exact = ss.library.benes_mixture_score(y, t, MEAN, STD, THETA)
    return float(np.sqrt(((model(y, t) - exact) ** 2).sum() / (exact**2).sum()))


@pytest.fixture(scope="module")
def benes_model():
    data = ss.library.benes_mixture_sample(20_000, 0.0, MEAN, STD, THETA, seed=1)
    return ss.train(ss.library.benes(m=2, theta=THETA), data, steps=1500, batch_size=256, width=64, seed=0,
                    progress=False)


def test_malliavin_training_reaches_stated_accuracy(benes_model):
    """2-D coupled Benes SDE, 1500 steps: relative L2 score error < 0.06 at t = 0.5 and < 0.12 at t = 1
    (measured 0.025 and 0.058; the zero score and the untrained network have error 1.00)."""
    assert relative_l2(benes_model, 0.5) < 0.06
    assert relative_l2(benes_model, 1.0) < 0.12


def test_model_round_trip_and_kinds(benes_model, tmp_path):
    x = np.random.default_rng(0).standard_normal((7, 2))
    out = benes_model(x, 0.5)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (7, 2)
    tensor_out = benes_model(torch.as_tensor(x, dtype=torch.float32), torch.full((7,), 0.5))
    assert isinstance(tensor_out, torch.Tensor)
    np.testing.assert_allclose(tensor_out.detach().numpy(), out, rtol=1e-6)
    path = benes_model.save(tmp_path / "model.pt")
    loaded = ss.ScoreModel.load(path)
    np.testing.assert_array_equal(loaded(x, 0.5), out)
    assert loaded.loss_history == benes_model.loss_history and loaded.t_min == benes_model.t_min
    with pytest.raises(ss.SymscoreError, match="x: expected"):
        benes_model(np.zeros((3, 5)), 0.5)
    with pytest.raises(ss.SymscoreError, match="t: expected"):
        benes_model(np.zeros((3, 2)), np.zeros(4))
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ss.SymscoreError, match="truncated or corrupt"):
        ss.ScoreModel.load(tmp_path / "junk.pt")


def test_directional_derivative_of_model_matches_finite_differences(benes_model):
    from symscore.learn.samplers import _directional, host_score_function

    x = np.random.default_rng(2).standard_normal((5, 2))
    v = np.random.default_rng(3).standard_normal((5, 2))
    exact = _directional(benes_model, None, x, 0.5, v)
    h = 1e-2
    fd = (benes_model(x + h * v, 0.5) - benes_model(x - h * v, 0.5)) / (2 * h)
    np.testing.assert_allclose(exact, fd, rtol=2e-2, atol=2e-3)
    assert host_score_function(benes_model, 2)(x, 0.5).shape == (5, 2)


SMALL = dict(steps=12, batch_size=32, width=16, depth=2, n_steps=20, pilot_size=64, progress=False)


def small_data(m=2, n=200):
    return np.random.default_rng(0).standard_normal((n, m))


def test_resume_is_bit_identical_and_truncated_checkpoint_is_reported(tmp_path):
    sde = ss.library.cubic(m=2)
    straight = ss.train(sde, small_data(), checkpoint_dir=tmp_path / "a", checkpoint_every=4, seed=3, **SMALL)
    files = sorted((tmp_path / "a").glob("checkpoint_*.pt"))
    assert [f.name for f in files] == ["checkpoint_00000004.pt", "checkpoint_00000008.pt", "checkpoint_00000012.pt"]
    resumed = ss.train(sde, small_data(), checkpoint_dir=tmp_path / "b", checkpoint_every=4, seed=3,
                       resume=files[0], **SMALL)
    for (name, p), (_, q) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(p, q), name
    assert straight.loss_history == resumed.loss_history
    # damage the newest checkpoint: a clear error that names the earlier ones, which are still there
    newest = files[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.raises(ss.SymscoreError, match="truncated or corrupt.*checkpoint_00000008.pt"):
        ss.train(sde, small_data(), seed=3, resume=tmp_path / "a", **SMALL)
    assert files[1].exists() and files[0].exists()
    again = ss.train(sde, small_data(), seed=3, resume=files[1], **SMALL)
    for p, q in zip(straight.state_dict().values(), again.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(ss.SymscoreError, match="different settings: batch_size"):
        ss.train(sde, small_data(), seed=3, resume=files[1], **(SMALL | {"batch_size": 16}))


def test_checkpoints_of_the_removed_spherical_block_are_refused_clearly(tmp_path):
    """Earlier versions wrote ``spherical_channels`` and ``spherical_depth`` (a spherical block, since
    removed for ``architecture="sfno"``) into every run record, and into the model's config when the
    network had the block: a run without the block resumes from such a checkpoint (the unused
    options are dropped), one with the block is refused by name (resuming and loading its EMA
    model), never a KeyError or TypeError; the file is not modified. ``train`` no longer takes the
    options."""
    from symscore.learn.checkpoints import load_checkpoint

    sde = ss.library.cubic(m=2)
    ss.train(sde, small_data(), checkpoint_dir=tmp_path / "new", checkpoint_every=12, seed=3, **SMALL)
    (written,) = sorted((tmp_path / "new").glob("checkpoint_*.pt"))
    payload = torch.load(written, weights_only=True)
    assert not {"spherical_channels", "spherical_depth"} & (set(payload["run"]) | set(payload["run"]["model"]))
    old = tmp_path / "old" / written.name
    old.parent.mkdir()
    payload["run"] = payload["run"] | {"spherical_channels": 0, "spherical_depth": 1}  # no block
    torch.save(payload, old)
    resumed = ss.train(sde, small_data(), seed=3, resume=old, **SMALL)  # the unused options are dropped
    assert len(resumed.loss_history) == SMALL["steps"]
    assert load_checkpoint(old).config == payload["run"]["model"]  # this version's network: it loads
    payload["run"] = payload["run"] | {"spherical_channels": 4, "spherical_depth": 2}
    payload["run"]["model"] = payload["run"]["model"] | {"spherical_channels": 4, "spherical_depth": 2}
    torch.save(payload, old)
    before = old.read_bytes()
    with pytest.raises(ss.SymscoreError, match=r"spherical block \(spherical_channels=4, spherical_depth=2\)"):
        ss.train(sde, small_data(), seed=3, resume=old.parent, **SMALL)
    with pytest.raises(ss.SymscoreError, match=r"spherical block \(spherical_channels=4, spherical_depth=2\)"):
        load_checkpoint(old)
    assert old.read_bytes() == before
    with pytest.raises(TypeError, match="spherical_channels"):
        ss.train(sde, small_data(), spherical_channels=4, **SMALL)


@pytest.mark.parametrize("target, sde", [("dsm", ss.library.vp(m=2)), ("ssm", ss.library.cubic(m=2)),
                                         ("local", ss.library.cubic(m=2))])
def test_other_targets_train(target, sde):
    model = ss.train(sde, small_data(), target=target, **SMALL)
    assert len(model.loss_history) == SMALL["steps"] and np.isfinite(model.loss_history).all()


def test_torch_backend_and_schedule():
    model = ss.train(ss.library.cubic(m=2), small_data(), backend="torch", times=[0.25, 0.5, 1.0], **SMALL)
    assert np.isfinite(model(np.zeros((2, 2)), 0.5)).all()


def test_dsm_target_is_the_gaussian_score_per_sample():
    """DSM on VP from one point x0: the target equals the exact Gaussian score at X_t, per sample."""
    from symscore.learn.targets import make_target_source

    source = make_target_source("dsm", ss.library.vp(m=2), 100)
    x0 = np.tile([[0.7, -1.2]], (50, 1))
    x, target = source.batch(x0, np.array([10, 100]), seed=0)
    for k, t in enumerate([0.1, 1.0]):
        integral = 0.1 * t + 19.9 * t**2 / 2
        exact = -(x[k] - np.exp(-integral / 2) * x0) / (1 - np.exp(-integral))
        np.testing.assert_allclose(target[k], exact, rtol=1e-6)


def test_training_bad_input():
    sde = ss.library.cubic(m=2)
    bad = small_data()
    bad[5, 1] = np.nan
    with pytest.raises(ss.SymscoreError, match="data: 1 row"):
        ss.train(sde, bad, **SMALL)
    with pytest.raises(ss.SymscoreError, match="dimension m = 2.*3 columns"):
        ss.train(sde, small_data(m=3), **SMALL)
    with pytest.raises(ss.SymscoreError, match="t_min"):
        ss.train(sde, small_data(), t_min=1.0, **SMALL)
    with pytest.raises(ss.SymscoreError, match="target: expected one of"):
        ss.train(sde, small_data(), target="sliced", **SMALL)
    with pytest.raises(ss.SymscoreError, match="'dsm' needs a linear SDE"):
        ss.train(sde, small_data(), target="dsm", **SMALL)
    with pytest.raises(ss.SymscoreError, match="steps"):
        ss.train(sde, small_data(), **(SMALL | {"steps": 0}))
    with pytest.raises(ss.SymscoreError, match="times"):
        ss.train(sde, small_data(), times=[0.33], **SMALL)
    with pytest.raises(ss.SymscoreError, match="resume: path: no such file"):
        ss.train(sde, small_data(), resume="/nonexistent-folder", **SMALL)


def test_load_checkpoint_gives_the_returned_model(tmp_path):
    sde = ss.library.cubic(m=2)
    model = ss.train(sde, small_data(), checkpoint_dir=tmp_path, seed=1, **SMALL)
    again = ss.load_checkpoint(tmp_path)
    x = np.random.default_rng(0).standard_normal((4, 2))
    np.testing.assert_array_equal(again(x, 0.3), model(x, 0.3))


@pytest.mark.parametrize("backend", ["torch"] + ["triton"] * (importlib.util.find_spec("triton") is not None))
def test_backends_train_on_the_same_paths(backend):
    """One seed, one counter-based stream: the losses of a run whose targets come from the torch or
    triton kernel (triton: its CPU interpreter here) equal those of the numba run to float tolerance."""
    sde, data = ss.library.benes(m=2), small_data()
    reference = ss.train(sde, data, **SMALL)
    other = ss.train(sde, data, backend=backend, **SMALL)
    np.testing.assert_allclose(other.loss_history, reference.loss_history, rtol=1e-5)


def _stein_moments(model, sde, data, n=20_000, steps=(5, 30, 100)):
    """(E[(X_i - mu_i) s_i] per record step and coordinate, its standard error) on fresh forward paths."""
    from symscore.learn.targets import make_target_source

    source = make_target_source("ssm", sde, 100)  # X_t alone
    x0 = data[np.random.default_rng(9).integers(len(data), size=n)]
    x, _ = source.batch(x0, np.array(steps), seed=10)
    moments, errors = [], []
    for k, step in enumerate(steps):
        products = (x[k] - x[k].mean(axis=0)) * model(x[k], step / 100)
        moments.append(products.mean(axis=0))
        errors.append(products.std(axis=0) / np.sqrt(n))
    return np.array(moments), np.array(errors)


def test_stein_calibration_restores_the_identity_a_short_run_breaks():
    """Every score satisfies E[(X_i - mu_i) s_i(X)] = -1. A 30-step model on the OU SDE from
    stretched Gaussian data does not (off by tens of standard errors on fresh paths); with
    ``stein_calibration`` the same run satisfies it within 5 SE per coordinate and time (the SE of
    the 20 000 fresh paths and of the 8192 calibration paths combined)."""
    sde = ss.library.ou(m=2)
    data = small_data() * np.array([2.0, 0.5])
    settings = SMALL | {"steps": 30, "pilot_size": 2048}  # calibrated on 8192 paths
    plain = ss.train(sde, data, **settings)
    calibrated = ss.train(sde, data, stein_calibration=True, **settings)
    moments, errors = _stein_moments(plain, sde, data)
    assert np.abs(moments + 1).max() > 10 * errors.max()
    moments, errors = _stein_moments(calibrated, sde, data)
    assert np.all(np.abs(moments + 1) < 5 * errors * np.sqrt(1 + 20_000 / 8192)), (moments, errors)
    assert calibrated.stein_gain.abs().max() > 0 and plain.stein_gain.abs().max() == 0


def test_stein_gain_is_saved_and_refused_when_malformed(tmp_path):
    model = ss.train(ss.library.cubic(m=2), small_data(), stein_calibration=True, **SMALL)
    again = ss.ScoreModel.load(model.save(tmp_path / "model.pt"))
    x = np.random.default_rng(0).standard_normal((4, 2))
    np.testing.assert_array_equal(again(x, 0.3), model(x, 0.3))
    state = {name: value for name, value in model.state_dict().items() if name != "stein_times"}
    older = ss.ScoreModel.from_state(model.config, state)  # a file from before stein_times
    np.testing.assert_array_equal(older(x, 0.3), model(x, 0.3))
    with pytest.raises(ss.SymscoreError, match="gain"):
        model.set_stein_gain(np.zeros((3, 5)))
    # a gain on its own times (calibrate_flow's sampler grid): used between them, saved with them
    times, gain = np.array([0.1, 0.5, 0.9]), np.array([[1.0, -1.0], [2.0, 0.0], [3.0, 1.0]])
    model.set_stein_gain(gain, times)
    again = ss.ScoreModel.load(model.save(tmp_path / "own_times.pt"))
    np.testing.assert_array_equal(again.stein_times.numpy(), times.astype(np.float32))
    np.testing.assert_array_equal(again(x, 0.3), model(x, 0.3))
    model.set_stein_gain(np.zeros((1, 2)))
    baseline = model(x, 0.5)
    model.set_stein_gain(gain, times)
    mean = _interpolate(torch.tensor([0.5]), model.precond_times, model.x_mean).numpy()
    np.testing.assert_allclose(model(x, 0.5), baseline + gain[1] * (x - mean), rtol=1e-5, atol=1e-5)
    # forward reads whether a gain is set only when the buffer changes: in-place writes and loads count
    model.set_stein_gain(np.zeros((1, 2)))
    np.testing.assert_array_equal(model(x, 0.5), baseline)
    with torch.no_grad():
        model.stein_gain.fill_(0.5)
    np.testing.assert_allclose(model(x, 0.5), baseline + 0.5 * (x - mean), rtol=1e-5, atol=1e-5)
    model.load_state_dict({**model.state_dict(), "stein_gain": torch.zeros(1, 2)})
    np.testing.assert_array_equal(model(x, 0.5), baseline)
    for bad in (np.array([0.5, 0.1, 0.9]), np.array([0.0, 0.5, 0.9]), np.array([[0.1, 0.5, 0.9]])):
        with pytest.raises(ss.SymscoreError, match="times"):
            model.set_stein_gain(gain, bad)
    with pytest.raises(ss.SymscoreError, match="gain"):
        model.set_stein_gain(gain[:2], times)
    with pytest.raises(ss.SymscoreError, match="stein_calibration"):
        ss.train(ss.library.cubic(m=2), small_data(), stein_calibration="yes", **SMALL)


def test_stein_corrections_compose_by_kind_in_any_order(tmp_path):
    """A model keeps one Stein correction per kind and applies their sum: giving them in either
    order gives the same score to the bit, giving one kind again replaces only that kind, and a
    file keeps both (a file with only stein_gain/stein_times loads it as the forward one). Over the
    flow correction's range the total is linear between its own times: at those times it is the
    forward correction read there plus the flow one."""
    from symscore.learn.measurements import SteinGain
    model = ss.train(ss.library.cubic(m=2), small_data(), **SMALL)
    x = np.random.default_rng(0).standard_normal((4, 2))
    forward = SteinGain(model.precond_times, np.linspace(0.1, 0.5, model.precond_times.numel())[:, None] * [1.0, -1.0])
    flow = SteinGain(np.array([0.2, 0.5, 0.8]), np.array([[1.0, -1.0], [2.0, 0.0], [3.0, 1.0]]), "flow")
    bare = {t: model(x, t) for t in (0.2, 0.35, 0.5)}
    one, other = (ss.ScoreModel.from_state(model.config, model.state_dict()) for _ in range(2))
    one.set_correction(forward)
    one.set_correction(flow)
    other.set_correction(flow)
    other.set_correction(forward)
    for t in (0.05, 0.2, 0.35, 0.5, 0.9):
        np.testing.assert_array_equal(one(x, t), other(x, t))
    mean = _interpolate(torch.tensor([0.5]), model.precond_times, model.x_mean).numpy()
    total = forward.on([0.5]) + flow.gain[1].numpy()
    np.testing.assert_allclose(one(x, 0.5), bare[0.5] + total * (x - mean), rtol=1e-5, atol=1e-5)
    assert set(one.corrections) == {"forward", "flow"}
    np.testing.assert_array_equal(one.corrections["flow"].times.numpy(), flow.times.numpy())
    # giving the forward kind again leaves the flow one: the same as giving that forward one first
    one.set_stein_gain(np.zeros((1, 2)))
    alone = ss.ScoreModel.from_state(model.config, model.state_dict())
    alone.set_correction(flow)
    np.testing.assert_array_equal(one(x, 0.35), alone(x, 0.35))
    one.set_correction(SteinGain.zero(2, [1.0], "flow"))
    np.testing.assert_array_equal(one(x, 0.35), bare[0.35])
    # both kinds are saved; a file holding one correction only loads it as the forward one
    again = ss.ScoreModel.load(other.save(tmp_path / "both.pt"))
    np.testing.assert_array_equal(again(x, 0.35), other(x, 0.35))
    older = {name: value for name, value in other.state_dict().items() if not name.startswith("flow_")}
    older = ss.ScoreModel.from_state(model.config, older)
    assert older.corrections["flow"].is_zero()
    np.testing.assert_array_equal(older.corrections["forward"].gain.numpy(), forward.gain.numpy())
    with pytest.raises(ss.SymscoreError, match="kind"):
        SteinGain(flow.times, flow.gain, "reverse")
    with pytest.raises(ss.SymscoreError, match="correction"):
        model.set_correction(np.zeros((1, 2)))


@pytest.mark.slow  # 1500 training steps, about a minute; the MLP's accuracy test is in the fast suite
def test_residual_network_learns_the_benes_score():
    """``architecture="resnet"`` on the Benes mixture with the MLP fixture's budget: relative L2
    error < 0.06 at t = 0.5 and < 0.12 at t = 1 (the zero-initialised output starts at error 1.00)."""
    data = ss.library.benes_mixture_sample(20_000, 0.0, MEAN, STD, THETA, seed=1)
    sde = ss.library.benes(m=2, theta=THETA)
    untrained = ss.ScoreModel(2, width=64, depth=2, architecture="resnet")
    assert relative_l2(untrained, 0.5) == pytest.approx(1.0)
    model = ss.train(sde, data, steps=1500, batch_size=256, width=64, depth=2, seed=0, architecture="resnet",
                     progress=False)
    assert relative_l2(model, 0.5) < 0.06
    assert relative_l2(model, 1.0) < 0.12


def test_residual_network_round_trips_and_bad_names_are_refused(tmp_path):
    """A (briefly) trained ``architecture="resnet"`` model saved and loaded gives the same values;
    an old file's config (no key) builds the MLP; an unknown architecture is refused by name."""
    data = ss.library.benes_mixture_sample(2000, 0.0, MEAN, STD, THETA, seed=1)
    model = ss.train(ss.library.benes(m=2, theta=THETA), data, steps=20, batch_size=64, width=32, depth=2, seed=0,
                     architecture="resnet", progress=False)
    assert model.config["architecture"] == "resnet"
    x = np.random.default_rng(0).standard_normal((7, 2))
    loaded = ss.ScoreModel.load(model.save(tmp_path / "resnet.pt"))
    np.testing.assert_array_equal(loaded(x, 0.5), model(x, 0.5))
    assert "architecture" not in ss.ScoreModel(2).config  # files of earlier versions load as the MLP
    with pytest.raises(ss.SymscoreError, match="architecture: expected one of 'mlp', 'resnet'"):
        ss.ScoreModel(2, architecture="transformer")
    from symscore.learn.train import TrainConfig

    with pytest.raises(ss.SymscoreError, match="architecture: expected one of"):
        TrainConfig(architecture="unet")


def test_steps_for_budget_divides_the_budget_by_the_measured_step_time(monkeypatch):
    import symscore.learn.train as train_module

    sde = ss.library.cubic(m=2)
    config = train_module.TrainConfig(**{k: v for k, v in SMALL.items() if k != "progress"})
    seconds = train_module.seconds_per_step(sde, small_data(), config, warmup=1, timed=2, min_seconds=0)
    assert 0 < seconds < 5
    # short steps are timed for at least min_seconds, not just `timed` of them
    counted = []
    original_step = train_module.Trainer.step
    monkeypatch.setattr(train_module.Trainer, "step", lambda self: counted.append(1) or original_step(self))
    started = time.perf_counter()
    train_module.seconds_per_step(sde, small_data(), config, warmup=1, timed=2, min_seconds=0.5)
    # the timed steps' own clock, not the first call's step time (it varies 2x under xdist load)
    assert len(counted) > 1 + 2 and time.perf_counter() - started >= 0.5
    monkeypatch.setattr(train_module.Trainer, "step", original_step)
    with pytest.raises(ss.SymscoreError, match="min_seconds"):
        train_module.seconds_per_step(sde, small_data(), config, min_seconds=-1)
    import symscore.learn.trainer as trainer_module  # where steps_for_budget looks it up

    monkeypatch.setattr(trainer_module, "seconds_per_step", lambda *args, **kwargs: 0.01)
    assert train_module.steps_for_budget(sde, small_data(), config, 0.3) == 30
    assert train_module.steps_for_budget(sde, small_data(), config, 0.05) == 20
    with pytest.raises(ss.SymscoreError, match="budget"):
        train_module.steps_for_budget(sde, small_data(), config, 0)


def test_a_budget_run_lets_the_clock_set_the_steps_and_ends_the_schedule_with_it(monkeypatch, tmp_path,
                                                                                  training_clock):
    import symscore.learn.trainer as train_module  # the loop's module: its schedule and first horizon

    sde = ss.library.cubic(m=2)
    config = train_module.TrainConfig(**{k: v for k, v in SMALL.items() if k != "progress"} | {"steps": 5})
    trainer = train_module.Trainer(sde, small_data(), config)
    rates, original_step = [], train_module.Trainer.step
    monkeypatch.setattr(train_module.Trainer, "step",
                        lambda self: rates.append(self.optimizer.param_groups[0]["lr"]) or original_step(self))
    trainer.run(progress=False, budget=0.5)
    # 32 steps fit (not config.steps = 5); the first runs on a provisional horizon's warm-up, every
    # later one on the schedule of 32 steps, which ends (5% of lr) when the budget does
    assert trainer.step_count == trainer.config.steps == trainer.record["steps"] == 32
    full = train_module._schedule(32)
    lr = config.lr
    assert rates[0] == pytest.approx(lr * train_module._schedule(train_module.BUDGET_FIRST_HORIZON)(0))
    assert rates[1:] == pytest.approx([lr * full(k) for k in range(1, 32)])
    assert full(32) == pytest.approx(0.05)
    with pytest.raises(ss.SymscoreError, match="budget"):
        train_module.Trainer(sde, small_data(), config).run(progress=False, budget=0)
    with pytest.raises(ss.SymscoreError, match="budget.*checkpoint"):
        train_module.Trainer(sde, small_data(), config, checkpoint_dir=tmp_path).run(progress=False, budget=1.0)
    with pytest.raises(ss.SymscoreError, match="budget"):
        trainer.run(progress=False, budget=1.0)  # it has taken steps: a resumed run, not a clock-driven one
    with pytest.raises(ss.SymscoreError, match="budget.*resumed"):  # refused before the pilot batch is built
        ss.train(sde, small_data(), budget=1.0, resume=tmp_path, **SMALL)


def test_continued_training_keeps_the_stein_correction_and_refuses_a_bad_shape_before_the_pilot(monkeypatch):
    """A given model is re-measured (its scales) but keeps its Stein corrections unless the new run
    calibrates again; a network that cannot be built for m is refused before any simulation."""
    import symscore.learn.trainer as trainer_module

    sde = ss.library.ou(m=2)
    calibrated = ss.train(sde, small_data(), stein_calibration=True, **SMALL)
    gain = calibrated.corrections["forward"].gain.clone()
    assert gain.abs().max() > 0
    again = ss.train(sde, small_data(), model=calibrated, **SMALL)
    assert torch.equal(again.corrections["forward"].gain, gain)

    def no_pilot(*args, **kwargs):
        raise AssertionError("the pilot batch ran before the network's shape was checked")

    monkeypatch.setattr(trainer_module, "measure", no_pilot)
    with pytest.raises(ss.SymscoreError, match="architecture: 'sfno' needs m = \\(L \\+ 1\\)\\^2"):
        ss.train(ss.library.cubic(m=2), small_data(), architecture="sfno", **SMALL)


def test_a_given_model_keeps_its_shape_and_the_run_record_describes_it():
    from symscore.learn.model import ScoreModel
    from symscore.learn.train import Trainer, TrainConfig

    sde = ss.library.cubic(m=2)
    config = TrainConfig(**{k: v for k, v in SMALL.items() if k != "progress"})
    given = ScoreModel(2, width=24, depth=1, activation="tanh", architecture="resnet")
    trainer = Trainer(sde, small_data(), config, model=given)
    assert trainer.model is given
    assert (trainer.config.width, trainer.config.depth, trainer.config.activation, trainer.config.architecture) == \
        (24, 1, "tanh", "resnet")
    assert trainer.record["width"] == trainer.record["model"]["width"] == 24
    assert trainer.config.steps == config.steps and trainer.config.target == config.target
