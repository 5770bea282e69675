"""Data-parallel training under ``torchrun``: process-group set-up and the few collectives the trainer uses.

A process started by ``torchrun`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` in its environment) joins a process group with :func:`init_from_env`: NCCL with one GPU per
process when CUDA is available, gloo on CPUs. Anything else is a single process on the CPU, exactly as
before: :func:`current` then answers rank 0 of 1 and every collective here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist

PROCESS_GROUP_TIMEOUT = timedelta(hours=2)
"""How long a collective may wait. Rank 0 alone validates, evaluates and exports while the other ranks wait
at a broadcast or a barrier, so this bounds validation plus the whole post-training stage, not one step."""

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank, number of processes and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, checkpoints and writes the bundle."""
        return self.rank == 0

    @property
    def data_parallel(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether the rendezvous variables that ``torchrun`` sets are all present."""
    return all(name in os.environ for name in _TORCHRUN_VARIABLES)


def init_from_env(timeout: timedelta = PROCESS_GROUP_TIMEOUT) -> DistContext:
    """Join the process group described by the ``torchrun`` environment; a plain process stays single.

    Idempotent: a second call returns the context of the group already joined.
    """
    if not launched_by_torchrun() or not dist.is_available():
        return DistContext()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend=backend, timeout=timeout)
    return current()


def current() -> DistContext:
    """The context of the joined process group, or a single CPU process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    nccl = dist.get_backend() == "nccl"
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=torch.device("cuda", local_rank) if nccl else torch.device("cpu"),
    )


def broadcast_from_main(values: Sequence[float], ctx: DistContext) -> list[float]:
    """Rank 0's ``values`` on every rank (float64, so a broadcast time or score compares exactly)."""
    if not ctx.data_parallel:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=ctx.device)
    dist.broadcast(tensor, src=0)
    return [float(v) for v in tensor.cpu()]


def mean_over_ranks(value: float, ctx: DistContext) -> float:
    """The mean of ``value`` over all ranks (for logging a loss that each rank computed on its shard)."""
    if not ctx.data_parallel:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return float(tensor.item()) / ctx.world_size


def barrier(ctx: DistContext) -> None:
    """Wait until every rank arrives (no-op for a single process)."""
    if ctx.world_size > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if one was joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
