"""Process-group set-up for every launcher, and the few collectives the scripts need.

Supported: ``python -m torch.distributed.launch`` (passes ``--local-rank``/``--local_rank`` and sets
env vars), ``torchrun`` (env vars, any number of nodes) and a plain ``python script.py`` (one process,
no process group). The world size always comes from the launcher, never from the config.
"""
import datetime
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist

from lib.errors import ConfigError


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == 'cuda' and not torch.cuda.is_available():
        raise ConfigError("DEVICE is 'cuda' but no CUDA GPU is visible; set DEVICE cpu (or auto)")
    if requested in ('cuda', 'auto') and torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def init_distributed(device: str = 'auto', backend: str = 'auto', local_rank_arg: Optional[int] = None) -> DistContext:
    """Join the process group the launcher describes (if any) and pick this process's device."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', local_rank_arg if local_rank_arg is not None else 0))
    torch_device = _pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if backend == 'auto':
            backend = 'nccl' if torch_device.type == 'cuda' else 'gloo'
        kwargs = {'device_id': torch_device} if torch_device.type == 'cuda' else {}
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30), **kwargs)
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, in place; returns the tensor (no-op for one process)."""
    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Average tensors in place over all ranks: one collective per dtype/device, not one per tensor."""
    if not is_initialized() or dist.get_world_size() == 1:
        return
    world_size = dist.get_world_size()
    groups: Dict[tuple, List[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.dtype, tensor.device), []).append(tensor)
    for group in groups.values():
        flat = torch.cat([tensor.reshape(-1) for tensor in group])
        dist.all_reduce(flat)
        flat.div_(world_size)
        # One multi-tensor copy back instead of a kernel per tensor.
        views = [part.view_as(tensor) for part, tensor in zip(flat.split([t.numel() for t in group]), group)]
        torch._foreach_copy_(group, views)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Average one tensor over ranks, in place; returns it."""
    all_reduce_mean_([tensor])
    return tensor


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s python object on every rank (tensors inside travel via pickling on the CPU)."""
    if not is_initialized():
        return obj
    holder: List[Any] = [obj]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


def broadcast_tensors_(tensors, src: int = 0) -> None:
    """Overwrite each tensor with rank ``src``'s values, in place."""
    if is_initialized():
        for tensor in tensors:
            dist.broadcast(tensor, src=src)
