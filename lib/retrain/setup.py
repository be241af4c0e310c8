"""Everything a retraining run needs, built from the config in an order that fails early.

Order: apex check, network (bad MODEL_SELECTION / INPUT_ARCH fail here), data, loss, device and
SyncBN, optimizer, schedule, scaler, EMA, resume, DDP, compile.
"""
from dataclasses import dataclass
from typing import Any, Optional

import torch

from lib.data.loaders import check_data_folders
from lib.engine.precision import grad_scaler
from lib.models.from_config import ChildInfo, build_child_from_cfg, log_model_complexity, resolve_child
from lib.retrain.optim import build_optimizer, build_schedule, check_schedule, scaled_lr
from lib.retrain.wrappers import build_criterion, build_ema, convert_sync_bn, import_apex, wrap_distributed
from lib.train.session import TrainingSession, build_loaders, build_records, build_saver, resume_session


@dataclass
class RetrainSession(TrainingSession):
    info: ChildInfo
    model: torch.nn.Module  # the bare network (weights saved from it)
    train_model: torch.nn.Module  # what the training step calls: DDP / compiled wrapper of ``model``
    ema: Optional[torch.nn.Module]
    mixup_fn: Any
    lr: float


def preflight(cfg) -> None:
    """What the set-up would refuse, checked before the run folder exists: the network, the LR schedule, the data
    folders (retrain.py's preflight; tools/ground_truth.py checks its recipe with it before starting any run)."""
    resolve_child(cfg)
    check_schedule(cfg)
    check_data_folders(cfg)


def build_session(run) -> RetrainSession:
    cfg, dist_ctx, logger = run.cfg, run.dist, run.logger
    device = dist_ctx.device
    if cfg.APEX:
        import_apex()
    model, info = build_child_from_cfg(cfg)
    if dist_ctx.is_main:
        log_model_complexity(model, info, logger)

    train_loader, val_loader, steps_per_epoch = build_loaders(cfg, info.resolution, dist_ctx)
    loss_fn, mixup_fn = build_criterion(cfg, cfg.DATASET.NUM_CLASSES)

    model = convert_sync_bn(model, cfg, dist_ctx, logger)
    model.to(device)
    if cfg.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    global_batch = cfg.DATASET.BATCH_SIZE * dist_ctx.world_size
    lr = scaled_lr(cfg.LR, global_batch, cfg.LR_REFERENCE_BATCH)
    if cfg.LR_REFERENCE_BATCH:
        logger.info('LR %.6g = LR %.6g x global batch %d / LR_REFERENCE_BATCH %d', lr, cfg.LR, global_batch,
                    cfg.LR_REFERENCE_BATCH)
    else:
        logger.info('LR %.6g for a global batch of %d (LR_REFERENCE_BATCH 0: not scaled)', lr, global_batch)
    optimizer = build_optimizer(cfg, model, lr)
    scheduler, num_epochs = build_schedule(cfg, optimizer, steps_per_epoch)
    scaler = grad_scaler(device, cfg.AMP, cfg.AMP_DTYPE)
    # The EMA copies this rank's weights; every rank has the same ones (same seed, or the checkpoint).
    ema = build_ema(cfg, model)
    saver = build_saver(run)
    resume = resume_session(run, saver, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                            ema=ema, steps_per_epoch=steps_per_epoch)

    train_model = wrap_distributed(model, cfg, dist_ctx, logger)
    if cfg.COMPILE:
        train_model = torch.compile(train_model)
    logger.info('%d epochs of %d steps (%d images per step over %d process(es)); optimizer %s, schedule %s',
                num_epochs, steps_per_epoch, global_batch, dist_ctx.world_size, cfg.OPT, cfg.SCHED)
    return RetrainSession(
        cfg=cfg, dist=dist_ctx, run_dir=run.run_dir, logger=logger, info=info, model=model,
        train_model=train_model, ema=ema, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
        loss_fn=loss_fn, mixup_fn=mixup_fn, train_loader=train_loader, val_loader=val_loader,
        steps_per_epoch=steps_per_epoch, num_epochs=num_epochs, lr=lr, saver=saver, resume=resume,
        **build_records(run))
