"""Retraining: one epoch of training (``train_one_epoch``), the per-epoch validation and the epoch loop (``fit``)."""
import json
import logging
import math
import os
import time
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from lib.checkpoint.weights import unwrap_model
from lib.checkpoint.format import make_checkpoint
from lib.comm import all_reduce_sum
from lib.engine.evaluate import evaluate
from lib.engine.finite import DIVERGENCE_FIX, DivergedError, check_loss_sum_finite
from lib.engine.logger import AverageMeter, Throughput, progress_line
from lib.engine.optim import current_lr
from lib.engine.precision import autocast
from lib.checkpoint.format import Position, gather_rank_states, training_state
from lib.checkpoint.restore import restore_rank_rng
from lib.engine.training import sync_buffers_from_rank0
from lib.fileio import write_json_atomic

logger = logging.getLogger('cream.retrain')

RESULTS_FILE = 'results.json'
# Per-rank running sums of an epoch: loss * images, top-1 hits, top-5 hits, images.
_TOTALS = 4


def _meter(last: float, total: float, count: float) -> AverageMeter:
    meter = AverageMeter()
    meter.val, meter.sum, meter.count = last, total, count
    return meter


def train_one_epoch(*, epoch: int, model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer,
                    loss_fn: Callable, device: torch.device, steps_per_epoch: int, start_step: int = 0,
                    global_step: int = 0, scheduler=None, scaler=None, model_ema=None, mixup_fn=None,
                    amp: bool = False, amp_dtype: str = 'bfloat16', clip_grad: float = 0.0,
                    log_interval: int = 50, world_size: int = 1, initial_totals: Optional[torch.Tensor] = None,
                    tensorboard=None, recovery_interval: int = 0,
                    save_recovery: Optional[Callable[[Position, torch.Tensor], None]] = None) -> Dict[str, float]:
    """Train ``model`` (possibly DDP-wrapped) over ``loader``, already positioned at ``start_step``.

    Per step: optional mixup, forward under autocast, backward through the (possibly disabled) grad
    scaler, optional gradient clipping, optimizer step, EMA update, ``scheduler.step_update``; a
    progress line every ``log_interval`` steps and ``save_recovery(position, totals)`` every
    ``recovery_interval`` steps before the epoch's last. Returns the epoch's loss/prec1/prec5 over all
    ranks (including the steps before ``start_step`` when ``initial_totals`` carries their sums).
    """
    model.train()
    totals = torch.zeros(_TOTALS, dtype=torch.float64, device=device)
    if initial_totals is not None:
        totals += initial_totals.to(device=device, dtype=torch.float64)
    bare = unwrap_model(model)
    throughput = Throughput()
    batch_global = loader.batch_size * world_size
    step, images_seen, start = start_step, 0, time.perf_counter()
    for images, target in loader:
        throughput.data_loaded()
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
        step += 1
        global_step += 1
        if model_ema is not None:
            model_ema.update(bare)
        if scheduler is not None:
            scheduler.step_update(num_updates=global_step)

        with torch.no_grad():  # sums stay on the device: no host sync except on log steps
            top = output.float().topk(min(5, output.shape[1]), dim=1).indices.eq(hard_target[:, None])
            n = hard_target.shape[0]
            step_sums = torch.stack([loss.detach().double() * n, top[:, 0].sum().double(),
                                     top.any(dim=1).sum().double(), torch.tensor(float(n), device=device,
                                                                                 dtype=torch.float64)])
            totals += step_sums
        images_seen += n
        throughput.step_done()

        if step == start_step + 1 or step % max(log_interval, 1) == 0 or step == steps_per_epoch:
            last = step_sums.tolist()
            sums = totals.tolist()
            # The running sum: a NaN on any step since the epoch began, not only on this one.
            check_loss_sum_finite(sums[0], epoch, step)
            meters = {'loss': _meter(last[0] / n, sums[0], sums[3]),
                      'prec@1': _meter(100 * last[1] / n, 100 * sums[1], sums[3]),
                      'prec@5': _meter(100 * last[2] / n, 100 * sums[2], sums[3])}
            lr = current_lr(optimizer)
            logger.info(progress_line(f'Train: {epoch}', step, steps_per_epoch, meters, lr, throughput,
                                      batch_global))
            if tensorboard is not None:
                tensorboard.scalars({'loss': meters['loss'].avg, 'prec1': meters['prec@1'].avg, 'lr': lr,
                                     'img_per_sec': throughput.images_per_second(batch_global)},
                                    global_step, prefix='train/')
        if save_recovery is not None and recovery_interval > 0 and step % recovery_interval == 0 \
                and step < steps_per_epoch:
            loss_sum = all_reduce_sum(totals[:1].clone())  # every rank decides alike, before the collective
            check_loss_sum_finite(loss_sum.item(), epoch, step)
            save_recovery(Position(epoch=epoch, step_in_epoch=step, global_step=global_step), totals)

    if step != steps_per_epoch:
        # The data layer drops a batch none of whose images could be read.
        logger.warning('epoch %d ended after %d of %d steps: some batches had no readable image', epoch, step,
                       steps_per_epoch)
    elapsed = time.perf_counter() - start
    all_reduce_sum(totals)
    loss_sum, top1, top5, count = totals.tolist()
    return {'loss': loss_sum / max(count, 1), 'prec1': 100 * top1 / max(count, 1),
            'prec5': 100 * top5 / max(count, 1), 'lr': current_lr(optimizer),
            'img_per_sec': images_seen * world_size / max(elapsed, 1e-9), 'global_step': global_step}


def validate(session, epoch: int) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """(model results, EMA results or None) on the validation set; every rank evaluates rank 0's weights."""
    cfg, device = session.cfg, session.dist.device
    kwargs = dict(amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE, channels_last=cfg.CHANNELS_LAST, tta=cfg.TTA,
                  log_interval=cfg.LOG_INTERVAL)
    if session.dist.distributed:
        sync_buffers_from_rank0(session.model)
    val = evaluate(session.model, session.val_loader, device, prefix=f'Test: {epoch}', **kwargs)
    logger.info('Test: %d  loss %.4f  prec@1 %.3f  prec@5 %.3f  (%d images)', epoch, val['loss'], val['prec1'],
                val['prec5'], val['images'])
    ema_val = None
    if session.ema is not None:
        if next(session.ema.module.parameters()).device != device:
            logger.info('EMA kept on the CPU (NET.EMA.FORCE_CPU): not validated during training (as the original)')
        else:
            if session.dist.distributed:
                sync_buffers_from_rank0(session.ema.module)
            ema_val = evaluate(session.ema.module, session.val_loader, device, prefix=f'Test (EMA): {epoch}',
                               **kwargs)
            logger.info('Test (EMA): %d  loss %.4f  prec@1 %.3f  prec@5 %.3f', epoch, ema_val['loss'],
                        ema_val['prec1'], ema_val['prec5'])
    return val, ema_val


def _checkpoint(session, position: Position, metric: Optional[float], rank_states) -> Dict[str, Any]:
    extra = training_state(position=position, steps_per_epoch=session.steps_per_epoch,
                          scheduler=session.scheduler, scaler=session.scaler, saver=session.saver,
                          rank_states=rank_states, cfg=session.cfg)
    return make_checkpoint(session.model, session.ema, session.optimizer, epoch=position.epoch,
                           arch=session.info.checkpoint_arch, cfg=session.cfg, metric=metric, extra=extra)


def _save_recovery(session, position: Position, totals: torch.Tensor) -> None:
    rank_states = gather_rank_states(totals)  # a collective: every rank takes part
    if session.dist.is_main:
        session.saver.save_recovery(_checkpoint(session, position, None, rank_states))
        logger.info('saved recovery checkpoint: epoch %d, step %d', position.epoch, position.step_in_epoch)


def _check_val_finite(val: Dict[str, float], ema_val: Optional[Dict[str, float]], epoch: int) -> None:
    for name, result in (('model', val), ('EMA', ema_val)):
        if result is not None and not math.isfinite(result['loss']):
            raise DivergedError(f'the validation loss of the {name} weights is {result["loss"]} after epoch {epoch}: '
                                f'the training diverged; this epoch\'s results and checkpoint were not written; '
                                f'{DIVERGENCE_FIX}')


def _strip(result: Optional[Dict[str, float]]) -> Optional[Dict[str, float]]:
    return None if result is None else {k: result[k] for k in ('loss', 'prec1', 'prec5', 'images')}


def _summary_row(train: Dict[str, float], val: Dict[str, float], ema_val: Optional[Dict[str, float]]) -> Dict:
    ema = ema_val or {}
    return {'train_loss': train['loss'], 'train_prec1': train['prec1'], 'val_loss': val['loss'],
            'val_prec1': val['prec1'], 'val_prec5': val['prec5'], 'ema_val_loss': ema.get('loss'),
            'ema_val_prec1': ema.get('prec1'), 'ema_val_prec5': ema.get('prec5'), 'lr': train['lr'],
            'img_per_sec': train['img_per_sec']}


def fit(session) -> Dict[str, Any]:
    """Train from the session's resume point to the last epoch; returns what results.json holds."""
    cfg, dist_ctx = session.cfg, session.dist
    position = session.resume.position if session.resume is not None else Position()
    results_path = os.path.join(session.run_dir, RESULTS_FILE)
    results: Dict[str, Any] = {}
    if position.epoch >= session.num_epochs:
        logger.info('nothing to train: the run already finished its %d epochs', session.num_epochs)
        if os.path.exists(results_path):
            with open(results_path) as f:
                results = json.load(f)
        return results
    mixup_off = cfg.AUGMENTATION.MIXUP_OFF_EPOCH
    metric_name = cfg.EVAL_METRICS
    global_step = position.global_step
    restore_rank_rng(session.resume)
    for epoch in range(position.epoch, session.num_epochs):
        mid_epoch = session.resume is not None and epoch == position.epoch and position.step_in_epoch > 0
        start_step = position.step_in_epoch if mid_epoch else 0
        if session.mixup_fn is not None and mixup_off and epoch >= mixup_off:
            session.mixup_fn.mixup_enabled = False
        session.train_loader.set_epoch(epoch, start_batch=start_step)
        train = train_one_epoch(
            epoch=epoch, model=session.train_model, loader=session.train_loader, optimizer=session.optimizer,
            loss_fn=session.loss_fn, device=dist_ctx.device, steps_per_epoch=session.steps_per_epoch,
            start_step=start_step, global_step=global_step, scheduler=session.scheduler, scaler=session.scaler,
            model_ema=session.ema, mixup_fn=session.mixup_fn, amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE,
            clip_grad=cfg.CLIP_GRAD, log_interval=cfg.LOG_INTERVAL, world_size=dist_ctx.world_size,
            initial_totals=session.resume.epoch_totals if mid_epoch else None,
            tensorboard=session.tensorboard, recovery_interval=cfg.RECOVERY_INTERVAL,
            save_recovery=lambda pos, totals: _save_recovery(session, pos, totals))
        global_step = train['global_step']
        val, ema_val = validate(session, epoch)
        _check_val_finite(val, ema_val, epoch)  # before this epoch's results and checkpoint are written
        # Checkpoints are ranked by the EMA's result when there is one, as the original does.
        ranked, ranked_by = (ema_val, 'EMA') if ema_val is not None else (val, 'model')
        metric = ranked[metric_name]
        if session.scheduler is not None:
            session.scheduler.step(epoch + 1, metric)
        is_best, kept = session.saver.record(metric, epoch)
        best_metric, best_epoch = session.saver.best
        row = _summary_row(train, val, ema_val)
        results = {'model': session.info.name, 'selection': session.info.selection, 'arch': session.info.arch,
                   'resolution': session.info.resolution, 'epoch': epoch, 'epochs': session.num_epochs,
                   'checkpoint': 'last.pth.tar', 'val': _strip(val), 'val_ema': _strip(ema_val),
                   'best': {'metric': metric_name, 'of': ranked_by, 'value': best_metric, 'epoch': best_epoch},
                   'train': {k: train[k] for k in ('loss', 'prec1', 'lr', 'img_per_sec')}}
        if dist_ctx.is_main:
            session.summary.write(epoch, row)
            write_json_atomic(results, results_path)
            session.tensorboard.scalars(row, epoch, prefix='epoch/')
        # Logs first, checkpoint last: a run killed in between repeats this epoch, and its rows are replaced.
        rank_states = gather_rank_states()
        end = Position(epoch=epoch, step_in_epoch=session.steps_per_epoch, global_step=global_step)
        if dist_ctx.is_main:
            session.saver.save_epoch(_checkpoint(session, end, metric, rank_states), epoch, is_best, kept)
        logger.info('*** epoch %d done; best %s %s: %.4f (epoch %d)', epoch, ranked_by, metric_name,
                    best_metric, best_epoch)
    return results
