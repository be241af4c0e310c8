"""Training-side wrappers of a network: loss and mixup, EMA, SyncBN, DDP (native or apex), compile."""
import logging
from typing import Optional, Tuple

import torch
from timm.layers import convert_sync_batchnorm
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.utils import ModelEmaV3

from lib.comm import broadcast_tensors_
from lib.engine.distributed import DistContext
from lib.errors import ConfigError, CreamError


class ApexUnavailableError(CreamError, RuntimeError):
    """APEX: True but NVIDIA apex cannot be imported."""


def import_apex():
    """The apex package, or one clear error (checked before any work when APEX is set)."""
    try:
        import apex  # noqa: F401
        from apex.parallel import DistributedDataParallel, convert_syncbn_model  # noqa: F401
    except ImportError as err:
        raise ApexUnavailableError(
            f'APEX is True but NVIDIA apex cannot be imported ({err}); install apex '
            '(github.com/NVIDIA/apex) or set APEX False to use native torch DDP/AMP') from None
    return apex


def build_criterion(cfg, num_classes: int) -> Tuple[torch.nn.Module, Optional[Mixup]]:
    """(train loss, mixup/cutmix function or None) as timm's train script pairs them.

    With mixup/cutmix the targets become smoothed soft labels (SoftTargetCrossEntropy); otherwise
    label smoothing (LabelSmoothingCrossEntropy) or plain cross-entropy.
    """
    aug = cfg.AUGMENTATION
    if aug.MIXUP > 0 or aug.CUTMIX > 0:
        if cfg.DATASET.BATCH_SIZE % 2:
            raise ConfigError(f'mixup/cutmix needs an even DATASET.BATCH_SIZE; got {cfg.DATASET.BATCH_SIZE}')
        mixup = Mixup(mixup_alpha=aug.MIXUP, cutmix_alpha=aug.CUTMIX,
                      label_smoothing=aug.SMOOTHING, num_classes=num_classes)
        return SoftTargetCrossEntropy(), mixup
    if aug.SMOOTHING > 0:
        return LabelSmoothingCrossEntropy(smoothing=aug.SMOOTHING), None
    return torch.nn.CrossEntropyLoss(), None


def convert_sync_bn(model: torch.nn.Module, cfg, dist_ctx: DistContext, logger: logging.Logger) -> torch.nn.Module:
    """SyncBatchNorm when asked for, distributed and on GPUs; logged otherwise (it would change nothing)."""
    if not cfg.BATCHNORM.SYNC_BN:
        return model
    if not dist_ctx.distributed or dist_ctx.device.type != 'cuda':
        logger.info('BATCHNORM.SYNC_BN ignored: it applies to distributed runs on GPUs only')
        return model
    # timm's converter keeps BatchNormAct2d's activation; torch's (and apex's) would drop the Swish
    # that follows every BN in these networks. Native SyncBatchNorm also works under apex DDP.
    model = convert_sync_batchnorm(model)
    logger.info('converted BatchNorm layers to synchronized BatchNorm')
    return model


def wrap_distributed(model: torch.nn.Module, cfg, dist_ctx: DistContext, logger: logging.Logger) -> torch.nn.Module:
    """DDP (apex's when APEX) for more than one process; the model itself otherwise.

    DDP copies rank 0's parameters and buffers to every rank when it wraps the model.
    """
    if not dist_ctx.distributed:
        return model
    if cfg.APEX:
        from apex.parallel import DistributedDataParallel as ApexDDP
        logger.info('using apex DistributedDataParallel')
        return ApexDDP(model, delay_allreduce=True)
    device_ids = [dist_ctx.device.index] if dist_ctx.device.type == 'cuda' else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def build_ema(cfg, model: torch.nn.Module) -> Optional[ModelEmaV3]:
    """timm's ModelEmaV3 of the bare model (constant decay NET.EMA.DECAY, as the original), or None."""
    if not cfg.NET.EMA.USE:
        return None
    device = torch.device('cpu') if cfg.NET.EMA.FORCE_CPU else None
    return ModelEmaV3(model, decay=cfg.NET.EMA.DECAY, device=device)


def sync_buffers_from_rank0(module: torch.nn.Module) -> None:
    """Give every rank rank 0's BN statistics before validation.

    Each rank updates its BN running stats on its own batches, so they drift apart between DDP's
    broadcasts; after this every rank evaluates exactly the weights rank 0 saves.
    """
    broadcast_tensors_(list(module.buffers()))
