"""Optimizer, LR schedule and LR scaling of a retraining run, all from timm's factories."""
from typing import Optional, Tuple

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

from lib.config.timm_names import optimizer_options
from lib.errors import ConfigError
from lib.train.schedule import FixedLR, LRSchedule, TimmSchedule


def scaled_lr(base_lr: float, global_batch: int, reference_batch: int) -> float:
    """Linear scaling: ``base_lr`` is meant for ``reference_batch`` images per step (0: use it as is)."""
    if reference_batch < 0:
        raise ConfigError(f'LR_REFERENCE_BATCH must be >= 0 (0: no scaling); got {reference_batch}')
    if reference_batch == 0:
        return base_lr
    return base_lr * global_batch / reference_batch


def build_optimizer(cfg, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """timm optimizer OPT (no weight decay on biases and norm layers, as timm does by default)."""
    return create_optimizer_v2(model, lr=lr, **optimizer_options(cfg))  # the options the config's check builds


def build_scheduler(cfg, optimizer: torch.optim.Optimizer,
                    steps_per_epoch: int) -> Tuple[Optional[object], int]:
    """timm scheduler SCHED stepped per epoch; returns (scheduler or None for 'none', epochs to run).

    LR_NOISE is timm's: on/off points as fractions of the schedule (e.g. [0.4, 0.9]).
    """
    try:
        return _create_scheduler(cfg, optimizer, steps_per_epoch)
    except ValueError as err:
        if 'Unknown scheduler' not in str(err):
            raise
        # The original's retrain.yaml writes SCHED 'sgd', which is an optimizer, not a schedule; the timm it pinned
        # ran any name it did not know without a schedule, as SCHED none does.
        raise ConfigError(f'SCHED {cfg.SCHED!r} is not a timm LR schedule; use step, cosine, multistep, '
                          f'plateau, poly, tanh, constant or none (none: LR as is throughout, which is what the '
                          f'original\'s timm did with a name it did not know)') from None


def build_schedule(cfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Tuple[LRSchedule, int]:
    """``build_scheduler`` behind the core's schedule protocol (``lib.train.schedule``): (schedule, epochs to run)."""
    scheduler, num_epochs = build_scheduler(cfg, optimizer, steps_per_epoch)
    return (FixedLR() if scheduler is None else TimmSchedule(scheduler)), num_epochs


def check_schedule(cfg) -> None:
    """ConfigError for a SCHED timm cannot build, found on a dummy optimizer before any work."""
    build_scheduler(cfg, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.LR), steps_per_epoch=1)


def _create_scheduler(cfg, optimizer, steps_per_epoch):
    return create_scheduler_v2(
        optimizer,
        sched=cfg.SCHED,
        num_epochs=cfg.EPOCHS,
        decay_epochs=cfg.DECAY_EPOCHS,
        cooldown_epochs=cfg.COOLDOWN_EPOCHS,
        patience_epochs=cfg.PATIENCE_EPOCHS,
        decay_rate=cfg.DECAY_RATE,
        min_lr=cfg.MIN_LR,
        warmup_lr=cfg.WARMUP_LR,
        warmup_epochs=cfg.WARMUP_EPOCHS,
        noise=cfg.LR_NOISE,
        noise_pct=cfg.LR_NOISE_PCT,
        noise_std=cfg.LR_NOISE_STD,
        noise_seed=cfg.SEED,
        plateau_mode='min' if cfg.EVAL_METRICS == 'loss' else 'max',
        step_on_epochs=True,
        updates_per_epoch=steps_per_epoch,
    )


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    lrs = [group['lr'] for group in optimizer.param_groups]
    return sum(lrs) / len(lrs)
