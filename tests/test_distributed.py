"""Multi-process training (torch.distributed, gloo on the CPU): 2 processes with batch B follow one
process with batch 2B, rank 0 writes the files, and a run resumes at another world size."""
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import symscore as ss

RUN = dict(steps=8, width=16, depth=2, n_steps=20, seed=3, lr=5e-3, t_min=1e-3)
CLI = ["--data", "moons", "--n-data", "400", "--steps", str(RUN["steps"]), "--width", "16", "--depth", "2",
       "--n-steps", "20", "--seed", "3", "--quiet"]


def cli_train(out, batch_size, nproc, *extra):
    command = [sys.executable, "-m", "symscore.cli", "train", "cubic", "--out", str(out), "--batch-size",
               str(batch_size), "--nproc", str(nproc), *CLI, *extra]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def single_process(batch_size, **options):
    data = ss.data.load("moons", n=400, seed=RUN["seed"])
    return ss.train(ss.library.cubic(), data, batch_size=batch_size, progress=False, pilot_size=2048, **RUN,
                    **options)


def assert_same_model(a, b, rtol=1e-4):
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_allclose(pa.numpy(), pb.numpy(), rtol=rtol, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, batch 32, checkpoints after steps 4 and 8."""
    folder = tmp_path_factory.mktemp("reference")
    return single_process(32, checkpoint_dir=folder, checkpoint_every=4), folder


def test_two_processes_follow_one_process_with_twice_the_batch(tmp_path, reference):
    model, _ = reference
    run = cli_train(tmp_path / "run", 16, 2)
    assert run.stdout.count("wrote") == 1  # rank 0 alone writes and reports
    distributed = ss.ScoreModel.load(tmp_path / "run" / "model.pt")
    np.testing.assert_allclose(distributed.loss_history, model.loss_history, rtol=1e-5)
    assert_same_model(distributed, model)
    # a different split is a different run: the comparison can tell
    other = single_process(16)
    assert not np.allclose(other.loss_history, model.loss_history, rtol=1e-3)


@pytest.mark.slow  # two more process groups; the test above checks the distributed step in make test
def test_resume_at_another_world_size(tmp_path, reference):
    """The checkpoint after step 4 of the one-process run (global batch 32) resumed by 2 processes
    of batch 16 ends where the one-process run ended."""
    model, folder = reference
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(folder / "checkpoint_00000004.pt", tmp_path / "run" / "checkpoints")
    cli_train(tmp_path / "run", 16, 2, "--resume")
    resumed = ss.ScoreModel.load(tmp_path / "run" / "model.pt")
    np.testing.assert_allclose(resumed.loss_history, model.loss_history, rtol=1e-5)
    assert_same_model(resumed, model)


@pytest.mark.slow
def test_a_different_global_batch_is_refused(tmp_path, reference):
    _, folder = reference
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    shutil.copy(folder / "checkpoint_00000004.pt", tmp_path / "run" / "checkpoints")
    command = [sys.executable, "-m", "symscore.cli", "train", "cubic", "--out", str(tmp_path / "run"), "--batch-size",
               "32", "--nproc", "2", "--resume", *CLI]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0 and "batch_size=32 (now 64)" in run.stderr


def test_single_process_group_is_the_identity():
    from symscore.learn.distributed import ProcessGroup

    group = ProcessGroup()
    value = torch.tensor([1.5])
    assert group.average(value) is value and group.rows(8) == slice(0, 8) and group.is_main
