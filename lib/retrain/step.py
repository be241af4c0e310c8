"""One retraining step (``retrain_step``) and an epoch of them on the training core (``retrain_one_epoch``)."""
import logging
from typing import Callable, Dict, Optional

import torch

from lib.checkpoint.weights import unwrap_model
from lib.engine.logger import progress_line
from lib.engine.precision import autocast
from lib.retrain.optim import current_lr
from lib.train.progress import meter
from lib.train.steps import SaveFn, run_steps

logger = logging.getLogger('cream.retrain')

# Per-rank running sums of an epoch: loss * images, top-1 hits, top-5 hits, images.
NUM_SUMS = 4
IMAGES_SUM = 3  # where the image count is


def retrain_step(images: torch.Tensor, target: torch.Tensor, *, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, loss_fn: Callable, device: torch.device, global_step: int,
                 scheduler=None, scaler=None, model_ema=None, mixup_fn=None, amp: bool = False,
                 amp_dtype: str = 'bfloat16', clip_grad: float = 0.0) -> torch.Tensor:
    """Optional mixup, forward under autocast, backward through the (possibly disabled) grad scaler, optional
    gradient clipping, optimizer step, EMA update, ``scheduler.step_update(global_step)`` (the updates including
    this one). Returns the step's sums (see ``NUM_SUMS``), on the device."""
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


def retrain_one_epoch(*, epoch: int, model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer,
                      loss_fn: Callable, device: torch.device, steps_per_epoch: int, start_step: int = 0,
                      global_step: int = 0, scheduler=None, scaler=None, model_ema=None, mixup_fn=None,
                      amp: bool = False, amp_dtype: str = 'bfloat16', clip_grad: float = 0.0,
                      log_interval: int = 50, world_size: int = 1, initial_totals: Optional[torch.Tensor] = None,
                      tensorboard=None, recovery_interval: int = 0, save_recovery: Optional[SaveFn] = None,
                      stop=None) -> Dict[str, float]:
    """Train ``model`` (possibly DDP-wrapped) over ``loader``, already positioned at ``start_step``, with
    ``retrain_step``; a progress line every ``log_interval`` steps and ``save_recovery(position, totals)`` every
    ``recovery_interval`` steps before the epoch's last and where ``stop`` (SIGTERM) says (``run_steps``). Returns
    the epoch's loss/prec1/prec5 over all ranks (including the steps before ``start_step`` when ``initial_totals``
    carries their sums)."""
    model.train()
    batch_global = loader.batch_size * world_size

    def step(images, target, _step, updates):
        return retrain_step(images, target, model=model, optimizer=optimizer, loss_fn=loss_fn, device=device,
                            global_step=updates, scheduler=scheduler, scaler=scaler, model_ema=model_ema,
                            mixup_fn=mixup_fn, amp=amp, amp_dtype=amp_dtype, clip_grad=clip_grad)

    def report(last, sums, n, step_no, updates, timer):
        images = sums[IMAGES_SUM]
        meters = {'loss': meter(last[0] / n, sums[0], images),
                  'prec@1': meter(100 * last[1] / n, 100 * sums[1], images),
                  'prec@5': meter(100 * last[2] / n, 100 * sums[2], images)}
        lr = current_lr(optimizer)
        logger.info(progress_line(f'Train: {epoch}', step_no, steps_per_epoch, meters, lr, timer, batch_global))
        if tensorboard is not None:
            tensorboard.scalars({'loss': meters['loss'].avg, 'prec1': meters['prec@1'].avg, 'lr': lr,
                                 'img_per_sec': timer.images_per_second(batch_global)}, updates, prefix='train/')

    def short_epoch(step_no):
        # The data layer drops a batch none of whose images could be read.
        logger.warning('epoch %d ended after %d of %d steps: some batches had no readable image', epoch, step_no,
                       steps_per_epoch)

    done = run_steps(loader, step, epoch=epoch, steps_per_epoch=steps_per_epoch, num_sums=NUM_SUMS, device=device,
                     start_step=start_step, global_step=global_step, initial_totals=initial_totals,
                     log_interval=log_interval, world_size=world_size, report=report,
                     recovery_interval=recovery_interval, save_recovery=save_recovery, stop=stop,
                     on_short_epoch=short_epoch)
    loss_sum, top1, top5, count = done['sums']
    count = max(count, 1)
    return {'loss': loss_sum / count, 'prec1': 100 * top1 / count, 'prec5': 100 * top5 / count,
            'lr': current_lr(optimizer), 'img_per_sec': done['img_per_sec'], 'global_step': done['global_step']}
