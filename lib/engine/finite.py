"""Divergence checks: no checkpoint is written, and none is resumed, with NaN or infinite weights.

A diverged run (LR too high, fp16 overflow) turns its weights non-finite within a step or two. The
training loops check the running loss sums they already read on log steps (no extra host sync), and
``CheckpointSaver`` checks every checkpoint before writing it (one host sync per save), so the run stops
with ``DivergedError`` while the run folder still holds its last good checkpoints.
"""
from typing import Any, Iterator, List, Mapping, Tuple

import torch

from lib.errors import CreamError

# The checkpoint entries holding tensors a resumed run trains on.
WEIGHT_KEYS = ('state_dict', 'state_dict_ema', 'mmn', 'optimizer')
DIVERGENCE_FIX = 'lower LR, enable CLIP_GRAD, or use AMP_DTYPE bfloat16'


class DivergedError(CreamError, FloatingPointError):
    """Non-finite loss or weights; the message says where and how to fix it."""


def _float_tensors(obj: Any, prefix: str) -> Iterator[Tuple[str, torch.Tensor]]:
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield prefix, obj
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _float_tensors(value, f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield from _float_tensors(value, f'{prefix}.{index}')


def nonfinite_tensors(checkpoint: Mapping[str, Any], keys=WEIGHT_KEYS) -> Tuple[List[str], int]:
    """(names of the tensors under ``keys`` holding a NaN or infinity, number of tensors checked)."""
    named = [item for key in keys if checkpoint.get(key) is not None
             for item in _float_tensors(checkpoint[key], key)]
    if not named:
        return [], 0
    # One flag per tensor, read back in one transfer per device: a single host sync per device.
    finite = [True] * len(named)
    by_device = {}
    for index, (_, tensor) in enumerate(named):
        by_device.setdefault(tensor.device, []).append((index, torch.isfinite(tensor).all()))
    for items in by_device.values():
        for (index, _), ok in zip(items, torch.stack([flag for _, flag in items]).tolist()):
            finite[index] = ok
    return [name for (name, _), ok in zip(named, finite) if not ok], len(named)


def describe_nonfinite(bad: List[str], total: int) -> str:
    shown = ', '.join(bad[:3]) + (', ...' if len(bad) > 3 else '')
    return f'{len(bad)} of {total} tensors hold NaN or infinite values ({shown})'


def check_checkpoint_finite(checkpoint: Mapping[str, Any], name: str) -> None:
    """Raise DivergedError, before anything is written, when ``checkpoint`` holds non-finite tensors."""
    bad, total = nonfinite_tensors(checkpoint)
    if bad:
        where = f" at epoch {checkpoint.get('epoch')}" if checkpoint.get('epoch') is not None else ''
        if checkpoint.get('step_in_epoch') is not None:
            where += f" step {checkpoint['step_in_epoch']}"
        raise DivergedError(f'the training diverged{where}: {describe_nonfinite(bad, total)}; {name} was not '
                            f'written, the run folder keeps its last good checkpoints; {DIVERGENCE_FIX}')


def check_loss_sum_finite(loss_sum: float, epoch: int, step: int) -> None:
    """Raise DivergedError when the epoch's running loss sum (read on a log step anyway) is not finite."""
    if not torch.isfinite(torch.tensor(loss_sum)):
        raise DivergedError(f'the training loss became {loss_sum} by epoch {epoch} step {step}: the training '
                            f'diverged; {DIVERGENCE_FIX}')
