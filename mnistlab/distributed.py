"""Data-parallel training under torchrun: `torchrun --nproc-per-node N -m mnistlab train ...`.

torchrun starts N copies of the command with RANK, WORLD_SIZE and MASTER_ADDR/PORT set. Each copy
joins one process group (gloo on CPU, nccl on CUDA), trains on its shard of every global batch,
and DistributedDataParallel averages the gradients, so N processes with a global batch of B take
the same steps as one process with batch B. Only rank 0 prints and writes files. Without torchrun
(WORLD_SIZE unset or 1) nothing here does anything.
"""

import os

import torch
import torch.distributed as dist


def setup(device: torch.device) -> tuple[int, int]:
    """Join the process group if torchrun started this process; returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def is_main() -> bool:
    """True in a single process and in torchrun's rank 0: the process that prints and writes."""
    return int(os.environ.get("RANK", "0")) == 0


def all_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of `t` over all processes (itself when not distributed)."""
    if dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def wrap(model: torch.nn.Module, world: int) -> torch.nn.Module:
    """The module to call in training: DistributedDataParallel when there are several processes."""
    if world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def teardown():
    if dist.is_initialized():
        dist.destroy_process_group()
