"""One retraining step (``RetrainStep``, the parts it trains with; ``retrain_step``) and an epoch of them on the
training core (``retrain_one_epoch``)."""
import logging
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

import torch

from lib.checkpoint.weights import unwrap_model
from lib.engine.logger import progress_line
from lib.engine.precision import autocast
from lib.retrain.optim import current_lr
from lib.train.loop import EpochResult
from lib.train.progress import meter
from lib.train.steps import EpochStart, SaveFn, run_steps

logger = logging.getLogger('cream.retrain')


class RetrainSums(NamedTuple):
    """An epoch's running sums (per rank, or over all ranks), in the order of the step's sums tensor."""
    loss: float  # loss * images
    top1: float  # top-1 hits
    top5: float  # top-5 hits
    images: float


def retrain_step(images: torch.Tensor, target: torch.Tensor, *, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, loss_fn: Callable, device: torch.device, global_step: int,
                 scheduler=None, scaler=None, model_ema=None, mixup_fn=None, amp: bool = False,
                 amp_dtype: str = 'bfloat16', clip_grad: float = 0.0) -> torch.Tensor:
    """Optional mixup, forward under autocast, backward through the (possibly disabled) grad scaler, optional
    gradient clipping, optimizer step, EMA update, ``scheduler.step_update(global_step)`` (the updates including
    this one). Returns the step's sums (``RetrainSums``), on the device."""
    hard_target = target
    if mixup_fn is not None:
        images, target = mixup_fn(images, target)
    with autocast(device, amp, amp_dtype):
        output = model(images)
        loss = loss_fn(output, target)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        if clip_grad > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        if clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
    if model_ema is not None:
        model_ema.update(unwrap_model(model))
    if scheduler is not None:
        scheduler.step_update(num_updates=global_step)
    with torch.no_grad():  # sums stay on the device: no host sync except on log steps
        top = output.float().topk(min(5, output.shape[1]), dim=1).indices.eq(hard_target[:, None])
        n = hard_target.shape[0]
        return torch.stack([loss.detach().double() * n, top[:, 0].sum().double(), top.any(dim=1).sum().double(),
                            torch.tensor(float(n), device=device, dtype=torch.float64)])


@dataclass
class RetrainStep:
    """What a retraining step trains with; calling it runs ``retrain_step`` on a batch."""
    model: torch.nn.Module  # possibly DDP-wrapped or compiled
    optimizer: torch.optim.Optimizer
    loss_fn: Callable
    device: torch.device
    scheduler: Any = None  # stepped per update (``step_update``)
    scaler: Any = None
    model_ema: Any = None
    mixup_fn: Any = None
    amp: bool = False
    amp_dtype: str = 'bfloat16'
    clip_grad: float = 0.0

    @classmethod
    def of_session(cls, session) -> 'RetrainStep':
        cfg = session.cfg
        return cls(session.train_model, session.optimizer, session.loss_fn, session.dist.device,
                   scheduler=session.scheduler, scaler=session.scaler, model_ema=session.ema,
                   mixup_fn=session.mixup_fn, amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE, clip_grad=cfg.CLIP_GRAD)

    def __call__(self, images: torch.Tensor, target: torch.Tensor, global_step: int) -> torch.Tensor:
        return retrain_step(images, target, model=self.model, optimizer=self.optimizer, loss_fn=self.loss_fn,
                            device=self.device, global_step=global_step, scheduler=self.scheduler,
                            scaler=self.scaler, model_ema=self.model_ema, mixup_fn=self.mixup_fn, amp=self.amp,
                            amp_dtype=self.amp_dtype, clip_grad=self.clip_grad)


def retrain_one_epoch(step: RetrainStep, loader, start: EpochStart, *, steps_per_epoch: int,
                      log_interval: int = 50, world_size: int = 1, tensorboard=None, recovery_interval: int = 0,
                      save_recovery: Optional[SaveFn] = None) -> EpochResult:
    """Train ``step.model`` over ``loader``, already positioned at ``start.start_step``, with ``step``; a progress
    line every ``log_interval`` steps and ``save_recovery(position, totals)`` every ``recovery_interval`` steps
    before the epoch's last and where ``start.stop`` (SIGTERM) says (``run_steps``). Returns the epoch's
    loss/prec1/prec5 over all ranks (including the steps before ``start_step`` when ``start.initial_totals``
    carries their sums)."""
    step.model.train()
    epoch, batch_global = start.epoch, loader.batch_size * world_size

    def report(last: RetrainSums, sums: RetrainSums, n, step_no, updates, timer):
        meters = {'loss': meter(last.loss / n, sums.loss, sums.images),
                  'prec@1': meter(100 * last.top1 / n, 100 * sums.top1, sums.images),
                  'prec@5': meter(100 * last.top5 / n, 100 * sums.top5, sums.images)}
        lr = current_lr(step.optimizer)
        logger.info(progress_line(f'Train: {epoch}', step_no, steps_per_epoch, meters, lr, timer, batch_global))
        if tensorboard is not None:
            tensorboard.scalars({'loss': meters['loss'].avg, 'prec1': meters['prec@1'].avg, 'lr': lr,
                                 'img_per_sec': timer.images_per_second(batch_global)}, updates, prefix='train/')

    def short_epoch(step_no):
        # The data layer drops a batch none of whose images could be read.
        logger.warning('epoch %d ended after %d of %d steps: some batches had no readable image', epoch, step_no,
                       steps_per_epoch)

    done = run_steps(loader, lambda images, target, _step, updates: step(images, target, updates), start,
                     sums_type=RetrainSums, steps_per_epoch=steps_per_epoch, device=step.device,
                     log_interval=log_interval, world_size=world_size, report=report,
                     recovery_interval=recovery_interval, save_recovery=save_recovery, on_short_epoch=short_epoch)
    sums, count = done.sums, max(done.sums.images, 1)
    return EpochResult(loss=sums.loss / count, prec1=100 * sums.top1 / count, prec5=100 * sums.top5 / count,
                       lr=current_lr(step.optimizer), img_per_sec=done.img_per_sec, global_step=done.global_step)
