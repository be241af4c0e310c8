"""Rank and world queries and the few collectives the code needs: the one place that asks whether
torch.distributed is up (as detectron2's ``utils/comm.py``). Every function works, as a no-op or with one
process's answer, when no process group exists."""
from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.distributed as dist


def is_initialized() -> bool:
    """Whether a process group is up."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def lost_peer(err: BaseException) -> Optional[str]:
    """What went wrong, shortly, when ``err`` is a collective or store call failing because another rank's process
    ended or cannot be reached (gloo: a closed or reset connection); else None."""
    text = str(err).strip()
    if not (isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and 'gloo/transport' in text)):
        return None
    text = text.split('\n')[0]
    text = text.split('] ', 1)[1] if text.startswith('[') and '] ' in text else text  # drop gloo's source location
    return text.split('. ')[0]


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def init_process_group(**kwargs) -> None:
    """``torch.distributed.init_process_group(**kwargs)``, with ``torch._dynamo`` imported first.

    Imported afterwards (an optimizer's first step imports it), it keeps the group alive past
    ``destroy_process_group``: the gloo threads then outlive Python and now and then abort the
    process at exit ("terminate called without an active exception"), so a finished run exits 134."""
    import torch._dynamo  # noqa: F401  (the import is the point)
    dist.init_process_group(**kwargs)


def destroy_process_group(synchronize: bool) -> None:
    """Tear the group down (after a barrier when ``synchronize``: no rank leaves while another still writes)."""
    if is_initialized():
        if synchronize:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks, in place; returns the tensor (no-op for one process)."""
    if is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean_(tensors: Sequence[torch.Tensor]) -> None:
    """Average tensors in place over all ranks: one collective per dtype/device, not one per tensor."""
    world_size = get_world_size()
    if world_size == 1:
        return
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


def all_gather_object(obj: Any) -> List[Any]:
    """Every rank's ``obj``, indexed by rank (``[obj]`` for one process). A collective."""
    if not is_initialized():
        return [obj]
    gathered: List[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


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
