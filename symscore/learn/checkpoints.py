"""Training checkpoints: the file format, atomic writes with pruning, reading and resuming.

A checkpoint ``checkpoint_<step>.pt`` is a torch file (read with ``weights_only``) holding a dict:
``format`` (:data:`CHECKPOINT_FORMAT`), ``step``, ``run`` (the run record of
:meth:`~symscore.learn.config.TrainConfig.record`), the network's ``model`` state, the ``ema``
model's state, the ``optimizer`` and ``scheduler`` states and the ``loss_history``. A run resumes
only from a checkpoint with the same record; :func:`load_checkpoint` gives its EMA model.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .._checks import positive_int
from .._errors import SymscoreError
from ..compiler.cache import atomic_write
from .model import REMOVED_OPTIONS, ScoreModel, check_removed_options, complete_state, load_torch_file

__all__ = ["CHECKPOINT_FORMAT", "Checkpoints", "checkpoint_files", "read_checkpoint", "load_checkpoint", "restore"]

CHECKPOINT_FORMAT = "symscore.checkpoint/1"


class Checkpoints:
    """checkpoint_<step>.pt files in one folder, written atomically; older ones pruned after a write."""

    def __init__(self, folder, keep: int):
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise SymscoreError(f"checkpoint_dir: {str(self.folder)!r} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = positive_int(keep, "keep_checkpoints")

    def write(self, step, run, model, ema, optimizer, scheduler):
        payload = {"format": CHECKPOINT_FORMAT, "step": step, "run": run, "model": model.state_dict(),
                   "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                   "scheduler": scheduler.state_dict(), "loss_history": list(model.loss_history)}
        atomic_write(self.folder / f"checkpoint_{step:08d}.pt", lambda stream: torch.save(payload, stream))
        for old in checkpoint_files(self.folder)[:-self.keep]:
            old.unlink(missing_ok=True)


def checkpoint_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("checkpoint_*.pt"))


def read_checkpoint(source, what: str = "resume") -> dict:
    """The payload of a checkpoint file, or of the newest one in a folder; clear errors otherwise."""
    path = Path(source)
    if path.is_dir():
        files = checkpoint_files(path)
        if not files:
            raise SymscoreError(f"{what}: no checkpoint_*.pt file in {str(path)!r}")
        path = files[-1]
    try:
        payload = load_torch_file(path)
    except SymscoreError as exc:
        older = [p.name for p in checkpoint_files(path.parent) if p != path]
        hint = f"; earlier checkpoints in the folder: {', '.join(older)}" if older else ""
        raise SymscoreError(f"{what}: {exc}{hint}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise SymscoreError(f"{what}: {str(path)!r} is not a symscore training checkpoint")
    return payload


def load_checkpoint(source) -> ScoreModel:
    """The EMA model stored in a training checkpoint (a file, or a folder's newest checkpoint)."""
    payload = read_checkpoint(source, what="checkpoint")
    ema_state = {k.removeprefix("module."): v for k, v in payload["ema"].items() if k != "n_averaged"}
    return ScoreModel.from_state(payload["run"]["model"], ema_state, payload["loss_history"]).eval()


def _without_removed_options(record: dict) -> dict:
    """A run record of an earlier version without the options since removed, where they were unused
    (every record held ``spherical_channels`` 0 and ``spherical_depth`` 1 when there was no spherical
    block); a record whose network had the block is refused (:func:`check_removed_options`)."""
    record = dict(record)
    if isinstance(record.get("model"), dict):
        record["model"] = check_removed_options(record["model"])
    if record.get("spherical_channels", 0) == 0:
        for key in REMOVED_OPTIONS:
            record.pop(key, None)
    return record


def restore(resume, run, model, ema, optimizer, scheduler) -> int:
    """Load a checkpoint's weights, EMA, optimiser and scheduler states into a run whose record
    ``run`` must equal the checkpoint's; returns the step it was written at."""
    payload = read_checkpoint(resume)
    saved = _without_removed_options(payload["run"])
    differ = [key for key in sorted(set(run) | set(saved)) if saved.get(key) != run.get(key)]
    if differ:
        raise SymscoreError("resume: the checkpoint was written by a run with different settings: "
                            + ", ".join(f"{k}={saved.get(k)!r} (now {run.get(k)!r})" for k in differ))
    model.load_state_dict(complete_state(payload["model"]))
    ema.load_state_dict(complete_state(payload["ema"], prefix="module."))
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    model.loss_history = list(payload["loss_history"])
    return int(payload["step"])
