"""Multi-GPU and multi-node training through ``torchrun``.

Launch the same training on every process, e.g. ``torchrun --nproc_per_node 4 -m edgeres
train ...``; torchrun sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``. Each process then
joins one process group (NCCL on GPUs, Gloo on CPUs), wraps its model in
:class:`~torch.nn.parallel.DistributedDataParallel`, trains on its own shard of the in-memory
images (:func:`shard`, :class:`~torch.utils.data.DistributedSampler` semantics) and
contributes to the summed metrics. Only rank 0 writes checkpoints, logs and metrics.

``batch_size`` stays per process, so the global batch is ``batch_size * WORLD_SIZE``; scale
the learning rate accordingly (linear scaling, Goyal et al. 2017). Resuming reads the
checkpoint on rank 0 and broadcasts it, so only rank 0 needs the output folder.
"""

from __future__ import annotations

import atexit
import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from edgeres.errors import UsageError

__all__ = [
    "DistInfo",
    "all_gather",
    "all_reduce_sum",
    "average_buffers",
    "barrier",
    "broadcast_object",
    "detect",
    "pick_device",
    "setup",
    "shard",
    "wrap_model",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job; one process alone is world size 1, rank 0."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def detect(environ: dict[str, str] | None = None) -> DistInfo:
    """Read ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` as torchrun sets them (absent: one process)."""
    env = os.environ if environ is None else environ
    values = {}
    for name, default in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)):
        text = env.get(name)
        try:
            values[name] = default if text in (None, "") else int(text)
        except ValueError:
            raise UsageError(f"environment variable {name}={text!r} is not a number; use torchrun") from None
    info = DistInfo(values["WORLD_SIZE"], values["RANK"], values["LOCAL_RANK"])
    if info.world_size < 1 or not 0 <= info.rank < info.world_size or info.local_rank < 0:
        raise UsageError(
            f"inconsistent WORLD_SIZE={info.world_size}, RANK={info.rank}, LOCAL_RANK={info.local_rank}; "
            "launch with torchrun"
        )
    return info


def pick_device(choice: str, info: DistInfo) -> torch.device:
    """``"cpu"``, ``"cuda"`` (this process's GPU, LOCAL_RANK) or ``"auto"`` (CUDA when there is one)."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UsageError("device 'cuda' was asked for but no CUDA GPU is usable; use 'cpu' or 'auto'")
        torch.backends.cudnn.benchmark = True
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def setup(info: DistInfo, device: torch.device) -> None:
    """Join the process group when running under torchrun (once per process).

    The group then stays up for later :func:`~edgeres.train.train` calls in the same process
    (``run_degradation`` trains several networks) and is closed at exit: re-creating it at
    once on every rank races on the rendezvous keys of the old one.
    """
    if not info.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        if info.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} GPU(s) on this node; "
                "start at most one process per GPU (--nproc_per_node)"
            )
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", init_method="env://")
    atexit.register(_close)


def _close() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``model`` inside DistributedDataParallel when distributed (rank 0's weights win), else as is."""
    if not info.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index if device.index is not None else info.local_rank] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def shard(
    indices: torch.Tensor, epoch: int, seed: int, info: DistInfo, *, shuffle: bool = True
) -> torch.Tensor:
    """This rank's share of ``indices`` for ``epoch``, as DistributedSampler(set_epoch) gives it.

    All ranks draw the same permutation from ``seed + epoch``; it is padded by repeating its
    start to a multiple of the world size, so every rank gets the same number of items, and
    rank ``r`` takes positions ``r, r + world, ...``.
    """
    n = len(indices)
    if shuffle:
        g = torch.Generator()
        g.manual_seed(seed + epoch)
        order = torch.randperm(n, generator=g)
    else:
        order = torch.arange(n)
    total = math.ceil(n / info.world_size) * info.world_size
    if total > n:
        order = torch.cat([order, order.repeat(math.ceil((total - n) / n))[: total - n]])
    return indices[order[info.rank : total : info.world_size]]


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place; unchanged for one process."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather(tensor: torch.Tensor, info: DistInfo, device: torch.device) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (same shape and dtype on all ranks), on the CPU, in rank order."""
    if not info.enabled:
        return [tensor.cpu()]
    local = tensor.to(device)
    parts = [torch.empty_like(local) for _ in range(info.world_size)]
    dist.all_gather(parts, local)
    return [p.cpu() for p in parts]


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (pickled by torch.distributed; trusted, it is our own)."""
    if not info.enabled:
        return obj
    box = [obj if info.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def average_buffers(model: nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, in place.

    DDP hands rank 0's buffers to all ranks before each forward, but each rank's last forward
    leaves its own statistics; averaging makes the evaluated and saved model the same on every rank.
    """
    if not info.enabled:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(info.world_size)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
