"""The score a student shows to join the board (SUPERNET.BOARD_ADMISSION).

'train_batch' (the original): its prec1 on the training batch it has just stepped on, which mixes how good the
path is with which batch it drew and how much that step fitted it. 'val_batch': its prec1 on one fixed held-out
batch of DATASET.BATCH_SIZE val images (seeded by SEED: the same images for every path, every rank and a resumed
run), with the path's BN statistics its own on that batch (as a path's BN is re-estimated before it is
validated): every student is measured on the same images it never trained on. It costs one forward of the
batch, without gradients, per step of the board phase.
"""
from typing import Optional, Tuple

import torch

from lib.data.loaders import fixed_batch
from lib.engine.precision import autocast
from lib.search.path_bn import restored_bn

Batch = Tuple[torch.Tensor, torch.Tensor]


def admission_batch(cfg, val_loader) -> Optional[Batch]:
    """The held-out batch of SUPERNET.BOARD_ADMISSION 'val_batch' (None under 'train_batch')."""
    if cfg.SUPERNET.BOARD_ADMISSION != 'val_batch':
        return None
    return fixed_batch(val_loader, cfg.DATASET.BATCH_SIZE, cfg.SEED)


def held_out_prec1(supernet, path, batch: Batch, *, amp: bool = False, amp_dtype: str = 'bfloat16') -> torch.Tensor:
    """prec1 (0-d tensor, percent, on the device: no host sync) of ``path`` on ``batch``: the path's BN layers
    normalize with the batch's own statistics, everything else in eval mode (no dropout); the supernet's running
    statistics and mode are unchanged afterwards."""
    images, target = batch
    was_training = supernet.training
    layers = supernet.path_bn_layers(path)
    with restored_bn(layers), torch.no_grad(), autocast(images.device, amp, amp_dtype):
        try:
            supernet.eval()
            for m in layers:
                m.train()  # batch statistics of the held-out images; the running ones are put back on exit
            logits = supernet(images, path)
        finally:
            supernet.train(was_training)
    return logits.argmax(dim=1).eq(target).double().mean() * 100.0
