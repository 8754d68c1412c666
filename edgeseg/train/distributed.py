"""Data-parallel training under ``torchrun``: one process per device, gradients averaged by DDP.

``torchrun --nproc-per-node N -m edgeseg train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` (and ``TORCHELASTIC_RESTART_COUNT``) in their environment;
:func:`from_env` reads them. Without torchrun there is no process group and :data:`SINGLE`
describes the one process (training takes exactly the single-process path).

CUDA processes use NCCL (and gloo for the loop's small CPU-side reductions), one GPU each
(``cuda:LOCAL_RANK``), with BatchNorm converted to SyncBatchNorm. CPU processes use gloo and
keep per-process BatchNorm (SyncBatchNorm has no CPU implementation). Only rank 0 writes files;
every collective here is called by every rank.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, List, Optional

import torch
import torch.distributed as dist

from ..errors import EdgesegError

#: The environment variables torchrun sets for every worker.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) training job.

    ``enabled`` is True under torchrun (even with one process: the data order is then the one
    of :class:`~torch.utils.data.distributed.DistributedSampler`). ``restart`` counts torchrun's
    restarts of the worker group (``--max-restarts``); a restarted group resumes its run.
    """

    enabled: bool = False
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    restart: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process writes logs, curves and checkpoints."""
        return self.rank == 0

    # ----------------------------------------------------------------------- collectives
    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over the ranks, in place (a no-op in one process); returns ``t``."""
        if self.enabled and self.world > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def gather(self, obj: Any) -> Optional[List[Any]]:
        """Every rank's ``obj`` (picklable) on rank 0, in rank order; None on the other ranks."""
        if not self.enabled or self.world == 1:
            return [obj]
        out: Optional[List[Any]] = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled or self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sync_buffers(self, module: torch.nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

        DDP keeps the parameters equal; the buffers drift apart in each process's last forward pass
        of an epoch, so they are aligned before sharded validation.
        """
        if self.enabled and self.world > 1:
            for b in module.buffers():
                dist.broadcast(b.data, src=0)

    def check_same(self, what: str, *values: float) -> None:
        """Raise :class:`EdgesegError` unless every rank passed the same ``values``."""
        if not self.enabled or self.world == 1:
            return
        v = torch.tensor(values, dtype=torch.float64)
        lo, hi = v.clone(), v.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        if not torch.equal(lo, hi):
            raise EdgesegError(f"distributed training: the ranks disagree on {what} ({lo.tolist()} .. {hi.tolist()}); "
                               "do all processes see the same --out directory?")


#: One process without torchrun.
SINGLE = DistContext()


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (its rank variables are set)."""
    return all(k in os.environ for k in TORCHRUN_ENV)


def from_env() -> DistContext:
    """The context of this process from torchrun's environment (:data:`SINGLE` without torchrun)."""
    if not launched_by_torchrun():
        return SINGLE
    try:
        rank, world, local = (int(os.environ[k]) for k in TORCHRUN_ENV)
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        restart = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
    except ValueError as e:
        raise EdgesegError(f"distributed training: bad torchrun environment ({e}); start with torchrun") from None
    if not 0 <= rank < world:
        raise EdgesegError(f"distributed training: RANK={rank} is not below WORLD_SIZE={world}")
    return DistContext(True, rank, world, local, max(1, local_world), restart)


def device_for(ctx: DistContext, name: str) -> str:
    """The device name of this rank: ``"cuda"``/``"auto"`` (with CUDA) become ``cuda:LOCAL_RANK``."""
    if not ctx.enabled:
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise EdgesegError(f"distributed training: local rank {ctx.local_rank} has no GPU "
                               f"({torch.cuda.device_count()} visible); start at most that many processes per node")
        return f"cuda:{ctx.local_rank}"
    return name


def start(ctx: DistContext, device: torch.device, timeout_s: float = 1800.0) -> bool:
    """Join the process group (NCCL for CUDA tensors, gloo for CPU ones); returns whether this call created it
    (then :func:`stop` destroys it at the end of the run)."""
    if not ctx.enabled or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # CUDA tensors (DDP's gradients, buffers) go through NCCL; the small CPU tensors and objects of
    # the loop's own collectives (loss sums, validation partials, checks) through gloo
    backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    # torchrun's agent keeps its key-value store across restarts of the group: without a prefix per
    # attempt, a restarted rank can read a dead rank's address from the previous attempt and fail
    # to connect (seen as "Connection refused" in gloo's connectFullMesh)
    from torch.distributed.rendezvous import rendezvous

    store, rank, world = next(rendezvous("env://", timeout=timeout))
    store = dist.PrefixStore(f"edgeseg/attempt_{ctx.restart}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    return True


def stop(created: bool) -> None:
    if created and dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, ctx: DistContext, epoch: int) -> int:
    """The torch seed of ``ctx``'s rank in ``epoch`` (different per rank, reproducible on resume)."""
    return (seed * 1_000_003 + epoch * 10_007 + ctx.rank) % 2**63


def wrap(step: torch.nn.Module, ctx: DistContext, device: torch.device,
         find_unused_parameters: bool = False) -> torch.nn.Module:
    """``step`` in DistributedDataParallel when ``ctx`` is distributed (rank 0's weights are
    broadcast to every rank here); otherwise ``step`` itself."""
    if not ctx.enabled:
        return step
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(step, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)


def convert_sync_bn(model: torch.nn.Module, ctx: DistContext, device: torch.device, enabled: bool = True
                    ) -> torch.nn.Module:
    """BatchNorm -> SyncBatchNorm for distributed CUDA training (CPU processes keep BatchNorm)."""
    if ctx.enabled and enabled and device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model
