"""Divergence checks: no checkpoint is written, and none is resumed, with NaN or infinite weights, and none is
resumed that was written after the training loss left its healthy range.

A diverged run (LR too high, fp16 overflow) turns its weights non-finite within a step or two. The
training loops check the running loss sums they already read on log steps (no extra host sync) and the loss
before every recovery checkpoint, and ``CheckpointSaver`` checks every checkpoint before writing it (one host
sync per save), so the run stops with ``DivergedError`` while the run folder still holds its last good
checkpoints.

Before its weights turn non-finite, a diverging run's loss explodes, and checkpoints written then hold finite
but ruined weights. So every checkpoint records ``loss_health``: ``loss``, the running training loss (the mean
over all ranks of the epoch's steps so far, as the progress lines show it; at an epoch's end, the epoch's), and
``reference``, the run's healthy loss at that time: the lowest mean training loss of a finished epoch (none
before the first epoch ends). A checkpoint is healthy when its loss is finite and at most
``HEALTHY_LOSS_FACTOR`` times the reference (or there is no reference yet); AUTO_RESUME skips the others
(``loss_health_problem``).
"""
import math
from typing import Any, Iterator, List, Mapping, Optional, Tuple

import torch

from lib.errors import CreamError

# The checkpoint entries holding tensors a resumed run trains on.
WEIGHT_KEYS = ('state_dict', 'state_dict_ema', 'mmn', 'optimizer')
DIVERGENCE_FIX = 'lower LR, enable CLIP_GRAD, or use AMP_DTYPE bfloat16'
# A running training loss above this many times the run's healthy loss means the run is diverging. An exploding
# loss grows by orders of magnitude within steps, so the factor mainly sets how early in the explosion a checkpoint
# counts as lost; it is high enough that noise never reaches it, also early in an epoch with small batches (the
# tests' two-image batches: running means up to ~3x the epoch mean).
HEALTHY_LOSS_FACTOR = 10.0


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


def check_loss_sum_finite(loss_sum: Optional[float], epoch: int, step: int) -> None:
    """Raise DivergedError when the epoch's running loss sum (read on a log step anyway), or the mean loss before a
    checkpoint, is not finite."""
    if loss_sum is not None and not math.isfinite(loss_sum):
        raise DivergedError(f'the training loss became {loss_sum} by epoch {epoch} step {step}: the training '
                            f'diverged; {DIVERGENCE_FIX}')


def loss_health_problem(record: Optional[Mapping[str, Any]]) -> Optional[str]:
    """Why a checkpoint with ``loss_health`` ``record`` was written after the loss left its healthy range, or None
    (also for checkpoints without a record)."""
    if not isinstance(record, Mapping) or record.get('loss') is None:
        return None
    loss, reference = float(record['loss']), record.get('reference')
    if not math.isfinite(loss):
        return f'its training loss was {loss}'
    if reference is not None and loss > HEALTHY_LOSS_FACTOR * float(reference):
        return (f'it was written after the training loss left its healthy range: {loss:.4g}, more than '
                f'{HEALTHY_LOSS_FACTOR:g} x the run\'s healthy loss {float(reference):.4g}')
    return None
