"""Training steps per second with 1 and 2 processes (torch.distributed, gloo, CPU) at one global batch.

Each configuration runs in fresh processes started the way ``symscore train --nproc`` starts them
(RANK, WORLD_SIZE, MASTER_ADDR/PORT in the environment). A worker builds a Trainer (cubic SDE on
the moons data, malliavin target, numba kernel), takes warm-up steps (compilation, allocation),
then times ``--steps`` steps; rank 0 prints steps/s. The comparison:

* 1 process, batch 2B, numba and torch with all cores;
* 2 processes, batch B each (the same global batch), threads split between them.

    python benchmarks/bench_train.py [--batch 1024] [--steps 30]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time


def worker(batch: int, steps: int, warmup: int) -> None:
    import torch

    import symscore as ss
    from symscore.learn.train import TrainConfig, Trainer

    data = ss.data.load("moons", n=20_000, seed=0)
    config = TrainConfig(steps=warmup + steps, batch_size=batch, n_steps=100, width=128, depth=3, seed=0)
    trainer = Trainer(ss.library.cubic(m=2), data, config)
    for _ in range(warmup):
        trainer.step()
    if trainer.group.world_size > 1:
        torch.distributed.barrier()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    seconds = time.perf_counter() - start
    if trainer.group.is_main:
        print(f"RESULT {trainer.group.world_size} {batch} {steps / seconds:.3f}", flush=True)
    if trainer.group.world_size > 1:
        torch.distributed.destroy_process_group()


def run(nproc: int, batch: int, steps: int, warmup: int) -> float:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    threads = str(max(1, (os.cpu_count() or 2) // nproc))
    processes = []
    for rank in range(nproc):
        env = {**os.environ, "WORLD_SIZE": str(nproc), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "NUMBA_NUM_THREADS": threads,
               "OMP_NUM_THREADS": threads}
        processes.append(subprocess.Popen([sys.executable, __file__, "--worker", "--batch", str(batch), "--steps",
                                           str(steps), "--warmup", str(warmup)], env=env, stdout=subprocess.PIPE,
                                          text=True))
    outputs = [p.communicate()[0] for p in processes]
    if any(p.returncode for p in processes):
        raise RuntimeError(f"a worker failed: {outputs}")
    line = next(line for out in outputs for line in out.splitlines() if line.startswith("RESULT"))
    return float(line.split()[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="global batch (paths per step)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.batch, args.steps, args.warmup)
        return
    print(f"{os.cpu_count()} cores; global batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up")
    print(f"{'processes':>9} {'batch/process':>13} {'steps/s':>9} {'ratio':>6}")
    single = run(1, args.batch, args.steps, args.warmup)
    double = run(2, args.batch // 2, args.steps, args.warmup)
    print(f"{1:>9} {args.batch:>13} {single:>9.2f} {1.0:>6.2f}")
    print(f"{2:>9} {args.batch // 2:>13} {double:>9.2f} {double / single:>6.2f}")


if __name__ == "__main__":
    main()
