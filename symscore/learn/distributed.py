"""Data-parallel training over several processes with torch.distributed.

Every process runs the same :class:`~symscore.learn.train.Trainer`. At step k all of them draw the
same global batch of ``world_size * batch_size`` data points and record times (randomness keyed
by (seed, k)); process r simulates only its rows r B .. (r + 1) B - 1, and its increments are
those of those global path indices (``path_offset``, the counter-based stream). The gradients of
the per-process mean losses are averaged with one ``all_reduce`` per step, which is the gradient
of the global batch's mean loss: so N processes with batch B follow the run of one process with
batch N B, up to the order of floating-point sums. (This is what ``DistributedDataParallel``
does; the averaging is written out because DDP hooks ``forward`` only, and the network is called
through ``preconditioned`` and, for sliced score matching, differentiated twice.)

The processes come from ``torchrun`` (or ``symscore train --nproc N``, which starts N copies of
itself the same way): the environment variables ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` say who is who. gloo on the CPU, nccl on CUDA. Rank 0 writes
checkpoints and shows the progress bar; every rank returns the same model.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from .._errors import SymscoreError

__all__ = ["ProcessGroup", "process_group", "launch"]


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among ``world_size`` training processes (rank 0 is the main one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> slice:
        """This process's rows of a global batch of ``world_size * batch_size``."""
        return slice(self.rank * batch_size, (self.rank + 1) * batch_size)

    def average(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over the processes (itself in a single process)."""
        if self.world_size == 1:
            return value
        value = value.detach().clone()
        torch.distributed.all_reduce(value)
        return value / self.world_size

    def average_gradients(self, parameters) -> None:
        """Replace every gradient by its mean over the processes (one flattened all_reduce)."""
        if self.world_size == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers on every process."""
        if self.world_size == 1:
            return
        for tensor in list(module.parameters()) + list(module.buffers()):
            torch.distributed.broadcast(tensor.data, src=0)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise SymscoreError(f"{name}: expected an integer in the environment, got {value!r}") from None


def process_group(device=None) -> ProcessGroup:
    """The process group of this run: from an initialised torch.distributed, or from torchrun's
    environment (initialising it: nccl for a CUDA device, gloo otherwise), else a single process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return ProcessGroup(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                            _env_int("LOCAL_RANK", 0))
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return ProcessGroup()
    if not torch.distributed.is_available():
        raise SymscoreError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    cuda = device is not None and torch.device(device).type == "cuda"
    torch.distributed.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world_size)
    return ProcessGroup(rank, world_size, local_rank)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``python -m symscore.cli *argv`` in ``nproc`` processes on this machine, as torchrun
    would (rank r gets RANK = LOCAL_RANK = r); returns the first non-zero exit status, else 0."""
    port = str(_free_port())
    processes = []
    for rank in range(nproc):
        env = {**os.environ, "WORLD_SIZE": str(nproc), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        processes.append(subprocess.Popen([sys.executable, "-m", "symscore.cli", *argv], env=env))
    # a process that fails leaves the others waiting in a collective: stop them
    while True:
        codes = [p.poll() for p in processes]
        failed = [code for code in codes if code not in (None, 0)]
        if failed or all(code == 0 for code in codes):
            break
        time.sleep(0.2)
    for p in processes:
        if p.poll() is None:
            p.terminate()
            p.wait()
    return failed[0] if failed else 0
