"""Running under ``torchrun``: process-group set-up and the few collectives the toolkit needs.

Nothing here is home-made networking: ``torchrun`` sets RANK / LOCAL_RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT, and ``torch.distributed`` does the rest (NCCL on CUDA, Gloo on CPU).
A run without those variables is a plain single process and touches none of this.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun with more than one process.

    Args:
        device: the requested device type; CUDA ranks use ``cuda:LOCAL_RANK`` and NCCL, CPU ranks Gloo.
    """
    if not launched_by_torchrun():
        return DistInfo()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        kwargs = {"device_id": torch.device("cuda", local_rank)} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return DistInfo(rank, world, local_rank, backend)


def rank_device(device: torch.device, info: DistInfo) -> torch.device:
    """The device this rank computes on (``cuda:LOCAL_RANK`` for multi-GPU runs)."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_over_ranks(values: Dict[str, torch.Tensor], info: DistInfo) -> Dict[str, torch.Tensor]:
    """Average scalar tensors over ranks (one collective for all of them)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    packed = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    packed /= info.world_size
    return {k: packed[i] for i, k in enumerate(keys)}


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank (so all ranks stop at the same step)."""
    if not info.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any, info: DistInfo) -> List[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not info.enabled:
        return [obj]
    out: List[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(nets, info: DistInfo) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics): DDP does this before each
    forward; doing it at checkpoints too makes the saved state what every rank holds."""
    if not info.enabled:
        return
    for net in nets:
        for buf in net.buffers():
            dist.broadcast(buf, src=0)
