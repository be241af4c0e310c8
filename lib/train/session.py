"""What every training session holds (``TrainingSession``) and the set-up steps both jobs share: the loaders,
the run's records (checkpoint saver, summary.csv, TensorBoard) and resuming."""
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple

import torch

from lib.checkpoint.format import is_training_checkpoint
from lib.checkpoint.restore import ResumePoint, apply_resume, rescale_lr
from lib.checkpoint.resume import find_resume_checkpoint
from lib.checkpoint.saver import CheckpointSaver
from lib.data.loaders import build_train_loader_from_cfg, build_val_loader_from_cfg
from lib.engine.distributed import DistContext
from lib.engine.logger import SummaryCSV, TensorBoard
from lib.train.schedule import LRSchedule


@dataclass
class TrainingSession:
    cfg: Any
    dist: DistContext
    run_dir: str
    logger: Any
    train_loader: Any
    val_loader: Any
    optimizer: torch.optim.Optimizer
    scheduler: LRSchedule  # lib.train.schedule: both jobs' schedules behind one protocol
    scaler: torch.amp.GradScaler
    loss_fn: Any
    steps_per_epoch: int
    num_epochs: int
    saver: CheckpointSaver
    summary: SummaryCSV
    tensorboard: TensorBoard
    resume: Optional[ResumePoint]


def build_loaders(cfg, resolution: int, dist_ctx: DistContext) -> Tuple[Any, Any, int]:
    """(train loader, val loader, steps per epoch) at ``resolution``, this rank's shard; their workers outlive a
    SIGTERM to the whole job by SIGTERM_GRACE (``lib.data.loaders``)."""
    loader_args = dict(rank=dist_ctx.rank, world_size=dist_ctx.world_size, device=dist_ctx.device,
                       sigterm_grace=cfg.SIGTERM_GRACE)
    train_loader = build_train_loader_from_cfg(cfg, resolution, **loader_args)
    val_loader = build_val_loader_from_cfg(cfg, resolution, **loader_args)
    train_loader.set_epoch(0)
    return train_loader, val_loader, len(train_loader)


def build_saver(run) -> CheckpointSaver:
    """The run folder's checkpoints, ranked by EVAL_METRICS (files: main rank only)."""
    return CheckpointSaver(run.run_dir, run.cfg.CHECKPOINT_HIST, higher_is_better=run.cfg.EVAL_METRICS != 'loss',
                           is_main=run.dist.is_main)


def build_records(run) -> dict:
    """The session fields ``summary`` and ``tensorboard`` (main rank), made last: tensorboard/ appears in the run
    folder only once the set-up, resume included, has passed."""
    return dict(summary=SummaryCSV(f'{run.run_dir}/summary.csv'),
                tensorboard=TensorBoard(run.run_dir, enabled=run.dist.is_main))


def resume_session(run, saver: CheckpointSaver, *, model: torch.nn.Module, optimizer, scheduler, scaler, ema,
                   steps_per_epoch: int, restore_first: Optional[Callable[[dict, str], None]] = None,
                   lr_groups: Optional[Sequence[int]] = None) -> Optional[ResumePoint]:
    """Find the checkpoint to continue from (``lib.checkpoint.resume``) and put it back; None for a fresh start.
    ``restore_first(checkpoint, source)`` puts back what the job adds (a search's board, MMN and sampler). A config
    whose LR differs from the checkpoint's scales the LRs of the param groups ``lr_groups`` (all: None), now and
    for the rest of the schedule, by their ratio (after a divergence: resume with a lower LR)."""
    path, checkpoint = find_resume_checkpoint(run.cfg, run.run_dir, run.dist, run.logger)
    if checkpoint is None:
        return None
    if restore_first is not None:
        restore_first(checkpoint, path)
    point = apply_resume(checkpoint, path, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                         ema=ema, saver=saver, steps_per_epoch=steps_per_epoch, dist_ctx=run.dist, logger=run.logger)
    trained_lr = (checkpoint.get('args') or {}).get('LR') if is_training_checkpoint(checkpoint) else None
    if trained_lr and trained_lr != run.cfg.LR:
        rescale_lr(optimizer, scheduler, run.cfg.LR / trained_lr, lr_groups)
        run.logger.warning('LR %g instead of the %g that %s was trained with: every LR of the schedule from here on '
                           'is %g times what it would have been', run.cfg.LR, trained_lr, path, run.cfg.LR / trained_lr)
    return point
