"""The evaluator shared by search, retrain and test: loss, prec@1, prec@5 and img/s over a val set.

Counts are summed over ranks; with the data layer's unpadded sampler every image counts once.
"""
import time
from typing import Dict

import torch
import torch.nn.functional as F

from lib.comm import all_reduce_sum
from lib.engine.logger import get_logger
from lib.engine.precision import autocast
from lib.errors import DataError


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, *, amp: bool = False,
             amp_dtype: str = 'bfloat16', channels_last: bool = False, tta: int = 0,
             log_interval: int = 0, forward=None, prefix: str = 'Test') -> Dict[str, float]:
    """Evaluate ``model`` (or ``forward(images)`` when given, e.g. one supernet path) in eval mode."""
    logger = get_logger('eval')
    forward = forward or model
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top1, top5, images
    start = time.perf_counter()
    steps = len(loader)
    for step, (images, target) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp, amp_dtype):
            logits = forward(images)
            if tta:
                # Average with the mirrored image: the simple test-time augmentation of the original.
                logits = (logits.float().softmax(-1) + forward(images.flip(3)).float().softmax(-1)).div(2).log()
        logits = logits.float()
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        hits = top5.eq(target[:, None])
        totals += torch.stack([
            F.cross_entropy(logits, target, reduction='sum').double(),
            hits[:, 0].sum().double(),
            hits.any(dim=1).sum().double(),
            torch.tensor(float(target.numel()), dtype=torch.float64, device=device),
        ])
        if log_interval and (step % log_interval == 0 or step == steps - 1):
            logger.info('%s [%d/%d]', prefix, step, steps - 1)
    elapsed = time.perf_counter() - start
    all_reduce_sum(totals)
    model.train(was_training)
    loss_sum, top1, top5, images = totals.tolist()  # the order of the sums stacked above
    images = int(images)
    if images == 0:
        raise DataError('the validation set yielded no images; check DATA_DIR/val')
    return {
        'loss': loss_sum / images,
        'prec1': 100.0 * top1 / images,
        'prec5': 100.0 * top5 / images,
        'images': images,
        'img_per_sec': images / max(elapsed, 1e-9),  # all ranks' images over this rank's time
    }
