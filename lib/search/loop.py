"""The search: one epoch of supernet training (``train_one_epoch``), the per-epoch validation of a random
path and of every board path (``validate``), and the epoch loop with its outputs (``run_search``).

One training step (docs/algorithm.md): sample the student path (the sampler's own generator: the same path on
every rank) -> every UPDATE_ITER steps the meta-matching update (``run_meta_update``) -> ``search_step``:
loss: CE while the board is empty or epoch <= META_STA_EPOCH, else teacher selection from the board +
distillation -> backward -> average the path's gradients over ranks (one coalesced all-reduce; no DDP:
only the path's parameters have gradients, and every rank runs the same path) -> optimizer step -> LR step
-> after META_STA_EPOCH, offer the student to the board (its prec1 averaged over ranks; rank 0's probe
tensors when admitted).

Host syncs per step: none before META_STA_EPOCH except on LOG_INTERVAL steps; after it, the board
decision reads the student's prec1 (one ``.item()``), and teacher selection reads the argmax of the
meta-matching scores (the teacher's path decides which blocks run, so the host must know it).
"""
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn as nn

from lib.checkpoint.format import make_checkpoint
from lib.comm import all_reduce_mean, all_reduce_mean_, all_reduce_sum, broadcast_tensors_
from lib.engine.evaluate import evaluate
from lib.engine.finite import DivergedError
from lib.engine.logger import AverageMeter, Throughput, progress_line
from lib.engine.precision import autocast
from lib.engine.run_folder import drop_stale_output
from lib.checkpoint.format import Position, gather_rank_states, training_state
from lib.checkpoint.restore import restore_rank_rng
from lib.search.board import BoardEntry
from lib.search.builder import SearchSession, unsynced_bn
from lib.search.meta_matching import distillation_loss, meta_update, select_teacher
from lib.search.outputs import (BEST_ARCH_FILE, BOARD_FILE, board_rows, choose_final_entry, write_best_arch,
                                write_board_json)
from lib.search.sampler import PathSampler
from lib.checkpoint.format import SEARCH_ARCH_NAME, search_state

logger = logging.getLogger('cream.search')

# Per-rank running sums of an epoch: loss * n, KD loss * n, images of distillation steps, top-1 hits,
# top-5 hits, images, meta-matching updates.
_TOTALS = 7
_VAL_PATH_SEED_STRIDE = 1_000_003  # the random validation path of epoch e: seed SEED + stride * (e + 1)


def _meter(last: float, total: float, count: float) -> AverageMeter:
    meter = AverageMeter()
    meter.val, meter.sum, meter.count = last, total, count
    return meter


def supernet_lr(optimizer: torch.optim.Optimizer) -> float:
    """The supernet's current LR (group 0; the last group is the meta-matching network at META_LR)."""
    return optimizer.param_groups[0]['lr']


def average_bn_buffers_(model: nn.Module) -> None:
    """Average BN running statistics over ranks: each rank updated them on its own batches (no DDP
    broadcasts them), and every rank must validate, and rank 0 save, the same network."""
    all_reduce_mean_([buf for name, buf in model.named_buffers()
                      if buf.is_floating_point() and name.rsplit('.', 1)[-1] in ('running_mean', 'running_var')])


def meta_update_due(cfg, epoch: int, batch_index: int, board_size: int) -> bool:
    """The original's schedule: after META_STA_EPOCH, every UPDATE_ITER batches of an epoch (not its first),
    with a non-empty board; only for UPDATE_2ND and PICK_METHOD 'meta' (top1 picking has no MMN to train)."""
    sn = cfg.SUPERNET
    return (sn.UPDATE_2ND and sn.PICK_METHOD == 'meta' and epoch > sn.META_STA_EPOCH and board_size > 0
            and batch_index > 0 and batch_index % sn.UPDATE_ITER == 0)


# ---- one training step ----------------------------------------------------------------------------
def run_meta_update(session: SearchSession, path, images, target, *, epoch: int, step: int) -> Dict[str, Any]:
    """The meta-matching update of a step that is due one (``meta_update_due``), before its ``search_step``."""
    cfg, supernet, sn = session.cfg, session.supernet, session.cfg.SUPERNET
    with unsynced_bn(supernet, session.local_bn_group):
        teacher = select_teacher(supernet, path, session.board, 'meta', session.mmn,
                                 per_entry=sn.PROBE_FORWARD == 'per_entry')
        info = meta_update(supernet, path, teacher, session.mmn, images, target, sn.SLICE,
                           inner_lr=meta_inner_lr(cfg, session.optimizer), meta_optimizer=session.optimizer,
                           student_optimizer=session.optimizer, val_loss_fn=session.loss_fn,
                           keep_zero_grads=not sn.STEP_ONLY_PATH)
    logger.info('meta-matching update (epoch %d, step %d): teacher #%d, KD weight %.4f, meta val loss %.4f, '
                'meta grad norm %.4g', epoch, step, info['teacher_index'], info['kd_weight'], info['val_loss'],
                info['meta_grad_norm'])
    return info


def meta_inner_lr(cfg, optimizer: torch.optim.Optimizer) -> float:
    """lr of the simulated step W' = W - lr * g. SUPERNET.META_INNER_LR 'meta' (the original): the meta
    group's current LR (the last group: META_LR times the schedule); 'supernet': the supernet's, the step
    the student really takes with g."""
    if cfg.SUPERNET.META_INNER_LR == 'meta':
        return optimizer.param_groups[-1]['lr']
    return supernet_lr(optimizer)


@dataclass
class StepOutput:
    logits: torch.Tensor
    loss: torch.Tensor
    kd: Optional[torch.Tensor]
    teacher_logits: Optional[torch.Tensor]


def _forward_backward(session: SearchSession, path, images, target, distill: bool) -> StepOutput:
    """Loss, backward, gradient all-reduce, optimizer and LR step."""
    cfg, supernet, optimizer, scaler = session.cfg, session.supernet, session.optimizer, session.scaler
    sn, device = cfg.SUPERNET, session.dist.device
    teacher, teacher_logits = None, None
    # The original's KD weight m carries gradient (SUPERNET.DETACH_KD_WEIGHT False): then the MMN and,
    # through the chosen entry's probe forward, the student path learn from this step's loss too.
    learn_through_m = distill and sn.PICK_METHOD == 'meta' and not sn.DETACH_KD_WEIGHT
    with autocast(device, cfg.AMP, cfg.AMP_DTYPE):
        if distill:  # the probes run in the student's precision; the MMN scores them in float32 regardless
            with unsynced_bn(supernet, session.local_bn_group):
                teacher = select_teacher(supernet, path, session.board, sn.PICK_METHOD, session.mmn,
                                         per_entry=sn.PROBE_FORWARD == 'per_entry',
                                         differentiable_weight=learn_through_m)
        if teacher is None:
            logits = supernet(images, path)
            loss, kd = session.loss_fn(logits, target), None
        else:  # the teacher's logits without gradient; the stem and common leading blocks run once
            logits, teacher_logits = supernet.forward_with_teacher(images, path, teacher.path)
            parts = distillation_loss(logits, teacher_logits, target, teacher.weight, session.loss_fn,
                                      detach_weight=not learn_through_m)
            loss, kd = parts.loss, parts.kd
    # SUPERNET.STEP_ONLY_PATH False (the original on PyTorch 1.2, whose zero_grad zeroed gradients): every
    # parameter that ever had a gradient keeps a zero one, so weight decay and momentum move it every step.
    optimizer.zero_grad(set_to_none=sn.STEP_ONLY_PATH)
    scaler.scale(loss).backward()
    params = list(supernet.path_parameters(path).values())
    if learn_through_m:
        params += list(session.mmn.parameters())
    all_reduce_mean_([p.grad for p in params if p.grad is not None])
    if cfg.CLIP_GRAD > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, cfg.CLIP_GRAD)
    scaler.step(optimizer)
    scaler.update()
    session.scheduler.step()
    return StepOutput(logits.detach(), loss.detach(), None if kd is None else kd.detach(), teacher_logits)


def _offer_to_board(session: SearchSession, path, images, out: StepOutput, hits1: torch.Tensor, batch: int) -> bool:
    """Offer the student (its prec1 averaged over ranks) to the board; every rank ends with the same board."""
    cfg, board, table, space = session.cfg, session.board, session.flops_table, session.space
    prec1 = all_reduce_mean(hits1 * (100.0 / batch))
    prec1 = prec1.item()  # the step's one host sync for the board (identical on every rank)
    flops = space.budget_flops(path)
    if not board.would_admit(prec1, flops):
        return False
    slice_size = cfg.SUPERNET.SLICE
    # P_j: SUPERNET.PROBE_PROBS 'teacher' (the original) stores the current teacher's softmax on the probe
    # once the board has entries (the first entry always gets the student's); 'student' the student's.
    source = out.logits
    if cfg.SUPERNET.PROBE_PROBS == 'teacher' and out.teacher_logits is not None:
        source = out.teacher_logits
    # Copies (the broadcast writes into them on the other ranks), in the default layout collectives take.
    probe_images = images[:slice_size].detach().clone(memory_format=torch.contiguous_format)
    probe_probs = torch.softmax(source[:slice_size].float(), dim=-1).contiguous()
    broadcast_tensors_([probe_images, probe_probs], src=0)  # the probe comes from rank 0's batch
    if cfg.CHANNELS_LAST:
        probe_images = probe_images.contiguous(memory_format=torch.channels_last)
    return board.offer(BoardEntry(path=path, prec1=prec1, flops=flops, macs=table.path_flops(path),
                                  params=table.path_params(path), probe_images=probe_images,
                                  probe_probs=probe_probs))


def step_sums(logits: torch.Tensor, loss: torch.Tensor, kd: Optional[torch.Tensor], target: torch.Tensor,
              meta_updates: int = 0) -> torch.Tensor:
    """The step's entries of the epoch's running sums (see ``_TOTALS``), computed on the device: no host sync."""
    with torch.no_grad():
        one = torch.ones((), dtype=torch.float64, device=logits.device)  # no host->device copies
        n = target.shape[0]
        top = logits.float().topk(min(5, logits.shape[1]), dim=1).indices.eq(target[:, None])
        hits1, hits5 = top[:, 0].sum().double(), top.any(dim=1).sum().double()
        kd_sum = kd.double() * n if kd is not None else one * 0
        return torch.stack([loss.double() * n, kd_sum, one * (n if kd is not None else 0), hits1, hits5, one * n,
                            one * meta_updates])


def search_step(session: SearchSession, path, images, target, *, epoch: int, meta_updates: int = 0) -> torch.Tensor:
    """One training step of the student ``path`` (after the meta-matching update, when one is due): CE while the
    board is empty or ``epoch`` <= META_STA_EPOCH, else teacher selection and distillation; backward, gradient
    all-reduce, optimizer and LR step; after META_STA_EPOCH the board offer. Returns the step's sums (device).
    ``train_one_epoch`` and tools/benchmark.py both run exactly this."""
    distill_phase = epoch > session.cfg.SUPERNET.META_STA_EPOCH
    distill = distill_phase and len(session.board) > 0
    out = _forward_backward(session, path, images, target, distill)
    sums = step_sums(out.logits, out.loss, out.kd, target, meta_updates)
    if distill_phase:
        _offer_to_board(session, path, images, out, sums[3], target.shape[0])
    return sums


# ---- one epoch ----------------------------------------------------------------------------------
def train_one_epoch(session: SearchSession, *, epoch: int, start_step: int = 0, global_step: int = 0,
                    initial_totals: Optional[torch.Tensor] = None,
                    on_step_end: Optional[Callable[[int, int, int], None]] = None) -> Dict[str, float]:
    """Train the supernet over ``session.train_loader`` (already positioned at ``start_step``)."""
    cfg, dist_ctx, board = session.cfg, session.dist, session.board
    device, steps_per_epoch = dist_ctx.device, session.steps_per_epoch
    session.supernet.train()
    session.mmn.train()
    totals = torch.zeros(_TOTALS, dtype=torch.float64, device=device)
    if initial_totals is not None:
        totals += initial_totals.to(device=device, dtype=torch.float64)
    log_interval = max(cfg.LOG_INTERVAL, 1)
    batch_global = cfg.DATASET.BATCH_SIZE * dist_ctx.world_size
    throughput = Throughput()
    step, images_seen, start = start_step, 0, time.perf_counter()
    last_log_time, last_log_step, fetch_start = start, start_step, start
    for images, target in session.train_loader:
        throughput.data_time.update(time.perf_counter() - fetch_start)
        path = session.path_sampler.sample()
        meta_updates = 0
        if meta_update_due(cfg, epoch, step, len(board)):
            run_meta_update(session, path, images, target, epoch=epoch, step=step)
            meta_updates = 1
        last_sums = search_step(session, path, images, target, epoch=epoch, meta_updates=meta_updates)
        totals += last_sums
        n = target.shape[0]
        step += 1
        global_step += 1
        images_seen += n

        if step == start_step + 1 or step % log_interval == 0 or step == steps_per_epoch:
            sums = totals.clone()
            all_reduce_sum(sums)
            sums, last = sums.tolist(), last_sums.tolist()
            now = time.perf_counter()  # after the sync: the interval's device work is done
            throughput.batch_time.update((now - last_log_time) / (step - last_log_step), step - last_log_step)
            last_log_time, last_log_step = now, step
            if not torch.isfinite(torch.tensor(last[0])):
                raise DivergedError(f'the training loss is {last[0] / n} at epoch {epoch} step {step}: lower '
                                         'LR, enable CLIP_GRAD, or use AMP_DTYPE bfloat16')
            meters = {'loss': _meter(last[0] / n, sums[0], sums[5]),
                      'kd': _meter(last[1] / max(last[2], 1), sums[1], sums[2]),
                      'prec@1': _meter(100 * last[3] / n, 100 * sums[3], sums[5]),
                      'prec@5': _meter(100 * last[4] / n, 100 * sums[4], sums[5])}
            lr = supernet_lr(session.optimizer)
            logger.info(progress_line(f'Train: {epoch}', step, steps_per_epoch, meters, lr, throughput,
                                      batch_global) + f'  board {len(board)}')
            session.tensorboard.scalars({'loss': meters['loss'].avg, 'prec1': meters['prec@1'].avg, 'lr': lr,
                                         'board_size': len(board),
                                         'img_per_sec': throughput.images_per_second(batch_global)},
                                        global_step, prefix='train/')
        if cfg.RECOVERY_INTERVAL > 0 and step % cfg.RECOVERY_INTERVAL == 0 and step < steps_per_epoch:
            save_recovery(session, Position(epoch=epoch, step_in_epoch=step, global_step=global_step), totals)
        if on_step_end is not None:
            on_step_end(epoch, step, global_step)
        fetch_start = time.perf_counter()

    if step != steps_per_epoch:
        raise RuntimeError(f'epoch {epoch} ended after {step} of {steps_per_epoch} steps: the training set '
                           'changed while training; restart the run')
    elapsed = time.perf_counter() - start
    all_reduce_sum(totals)
    loss_sum, kd_sum, kd_count, top1, top5, count, meta_count = totals.tolist()
    count = max(count, 1)
    return {'loss': loss_sum / count, 'kd_loss': kd_sum / kd_count if kd_count else None,
            'prec1': 100 * top1 / count, 'prec5': 100 * top5 / count, 'meta_updates': int(meta_count),
            'lr': supernet_lr(session.optimizer), 'global_step': global_step,
            'img_per_sec': images_seen * dist_ctx.world_size / max(elapsed, 1e-9)}


# ---- validation -----------------------------------------------------------------------------------
@contextlib.contextmanager
def recalibrated_bn(session: SearchSession, path, epoch: int, batches: int):
    """Inside the block, the BN layers of ``path`` hold statistics re-estimated on ``batches`` training
    batches (cumulative average, averaged over ranks); afterwards the training statistics are back."""
    if batches <= 0:
        yield
        return
    supernet = session.supernet
    modules = [entry[-1] for entry in supernet.path_modules(path)]  # (names..., module) per entry
    layers = list(dict.fromkeys(m for module in modules for m in module.modules()
                                if isinstance(m, nn.modules.batchnorm._BatchNorm)))
    saved = [({k: v.clone() for k, v in m.named_buffers(recurse=False)}, m.momentum) for m in layers]
    was_training = supernet.training
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        supernet.train()
        session.train_loader.set_epoch(epoch)  # a fixed set of batches, wherever a resumed epoch began
        with torch.no_grad(), autocast(session.dist.device, session.cfg.AMP, session.cfg.AMP_DTYPE):
            for index, (images, _) in enumerate(session.train_loader):
                if index >= batches:
                    break
                supernet(images, path)
        all_reduce_mean_([buf for m in layers for buf in (m.running_mean, m.running_var)])
        supernet.train(was_training)
        yield
    finally:
        for m, (buffers, momentum) in zip(layers, saved):
            for name, value in buffers.items():
                getattr(m, name).copy_(value)
            m.momentum = momentum
        supernet.train(was_training)


def validation_path(cfg, layers_per_stage, num_ops: int, epoch: int):
    """The epoch's random path (uniform, as the original validates): the same on every rank and in a
    resumed run, and drawn without touching the training sampler's stream."""
    sampler = PathSampler(layers_per_stage, num_ops, how_to_prob='even',
                          seed=cfg.SEED + _VAL_PATH_SEED_STRIDE * (epoch + 1))
    return sampler.sample()


def validate(session: SearchSession, epoch: int) -> Dict[str, Any]:
    """Val results of the epoch's random path and (SUPERNET.EVAL_BOARD) of every board path, whose val
    prec1 is recorded in the board."""
    cfg, supernet, board, device = session.cfg, session.supernet, session.board, session.dist.device
    if session.dist.distributed:
        average_bn_buffers_(supernet)
    kwargs = dict(amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE, channels_last=cfg.CHANNELS_LAST, tta=cfg.TTA)
    path = validation_path(cfg, session.space.layers_per_stage, supernet.num_ops, epoch)
    random_result = evaluate(supernet, session.val_loader, device, forward=lambda x: supernet(x, path),
                             prefix=f'Test: {epoch} random path', **kwargs)
    logger.info('Test: %d  random path %s (budget FLOPs %.2fM, MACs %.2fM): loss %.4f  prec@1 %.3f  prec@5 %.3f',
                epoch, [list(s) for s in path], session.space.budget_flops(path),
                session.flops_table.path_flops(path), random_result['loss'],
                random_result['prec1'], random_result['prec5'])
    board_results = []
    if cfg.SUPERNET.EVAL_BOARD:
        for index in range(len(board)):
            entry = board[index]
            with recalibrated_bn(session, entry.path, epoch, cfg.SUPERNET.BN_RECALIBRATION_BATCHES):
                result = evaluate(supernet, session.val_loader, device,
                                  forward=lambda x, p=entry.path: supernet(x, p),
                                  prefix=f'Test: {epoch} board #{index}', **kwargs)
            board.record_val_prec1(index, result['prec1'])
            board_results.append(result)
    return {'random_path': [list(s) for s in path], 'random': random_result, 'board': board_results}


def ranking_metric(cfg, val: Dict[str, Any]) -> float:
    """The epoch's EVAL_METRICS over every path it validated: best prec1 (or lowest loss)."""
    results = [val['random']] + val['board']
    if cfg.EVAL_METRICS == 'loss':
        return min(r['loss'] for r in results)
    return max(r['prec1'] for r in results)


# ---- checkpoints and outputs --------------------------------------------------------------------------
def search_checkpoint(session: SearchSession, position: Position, metric: Optional[float],
                      rank_states) -> Dict[str, Any]:
    extra = training_state(position=position, steps_per_epoch=session.steps_per_epoch, scheduler=session.scheduler,
                          scaler=session.scaler, saver=session.saver, rank_states=rank_states, cfg=session.cfg)
    extra.update(search_state(space=session.space, supernet=session.supernet, mmn=session.mmn, board=session.board,
                               path_sampler=session.path_sampler))
    return make_checkpoint(session.supernet, None, session.optimizer, epoch=position.epoch, arch=SEARCH_ARCH_NAME,
                           cfg=session.cfg, metric=metric, extra=extra)


def save_recovery(session: SearchSession, position: Position, totals: torch.Tensor) -> None:
    if session.dist.distributed:
        average_bn_buffers_(session.supernet)  # the saved statistics are those every rank continues with
    rank_states = gather_rank_states(totals)  # a collective: every rank takes part
    if session.dist.is_main:
        session.saver.save_recovery(search_checkpoint(session, position, None, rank_states))
        logger.info('saved recovery checkpoint: epoch %d, step %d', position.epoch, position.step_in_epoch)


def state_digest(session: SearchSession) -> Dict[str, str]:
    """Short hashes of the board (with probe tensors) and of all weights: equal on every rank."""
    def digest(tensors_and_values) -> str:
        h = hashlib.sha256()
        for item in tensors_and_values:
            if isinstance(item, torch.Tensor):
                h.update(item.detach().float().cpu().contiguous().numpy().tobytes())
            else:
                h.update(repr(item).encode())
        return h.hexdigest()[:16]
    board_items: List[Any] = []
    for entry in session.board:
        board_items += [entry.path, round(entry.prec1, 6), entry.flops, entry.val_prec1, entry.probe_images,
                        entry.probe_probs]
    weights = list(session.supernet.state_dict().values()) + list(session.mmn.state_dict().values())
    return {'board': digest(board_items), 'weights': digest(weights)}


def _write_rank_digest(session: SearchSession, epoch: int) -> None:
    digests = state_digest(session)
    path = os.path.join(session.run_dir, f'state_digest.rank{session.dist.rank}.txt')
    with open(path, 'a') as f:
        f.write(f'epoch {epoch} board {digests["board"]} weights {digests["weights"]} size {len(session.board)}\n')


def log_board(session: SearchSession, epoch: int) -> None:
    if len(session.board) == 0:
        logger.info('board after epoch %d: empty%s', epoch,
                    f' (it fills from epoch {session.cfg.SUPERNET.META_STA_EPOCH + 1} on)'
                    if epoch <= session.cfg.SUPERNET.META_STA_EPOCH else '')
        return
    logger.info('board after epoch %d (%d paths):', epoch, len(session.board))
    for index, entry in enumerate(session.board):
        val = 'n/a' if entry.val_prec1 is None else f'{entry.val_prec1:.3f}'
        logger.info('  #%d %s  prec1 %.3f  val prec1 %s  budget FLOPs %.2fM  MACs %.2fM  %.3f M params', index,
                    [list(s) for s in entry.path], entry.prec1, val, entry.flops, entry.macs or 0.0,
                    entry.params or 0.0)


def write_final_arch(session: SearchSession, epoch: int) -> Optional[BoardEntry]:
    """best_arch.yaml from the board (main rank); None (and a warning) when the board is empty."""
    cfg, board = session.cfg, session.board
    if len(board) == 0:
        logger.warning('the board is empty after the last epoch (the board fills only after SUPERNET.META_STA_EPOCH '
                       '= %d; EPOCHS is %d): no %s written. Run more epochs than META_STA_EPOCH.',
                       cfg.SUPERNET.META_STA_EPOCH, cfg.EPOCHS, BEST_ARCH_FILE)
        return None
    lo, hi = cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM
    entry = choose_final_entry(board, lo, hi)
    if entry is None:
        entry = choose_final_entry(board, float('-inf'), float('inf'))
        logger.warning('no board path lies within the FLOPs budget %g..%g MFLOPs (board paths cost %.2f..%.2f in '
                       'the budget\'s measure): %s takes the best board path regardless of FLOPs', lo, hi,
                       min(e.flops for e in board), max(e.flops for e in board), BEST_ARCH_FILE)
    path = os.path.join(session.run_dir, BEST_ARCH_FILE)
    if session.dist.is_main:
        write_best_arch(entry, path, resolution=session.space.resolution, epoch=epoch, run_dir=session.run_dir)
    val = 'n/a' if entry.val_prec1 is None else f'{entry.val_prec1:.3f}'
    logger.info('best architecture %s: budget FLOPs %.2fM (the budget\'s measure), MACs %.2fM at %d px, %.3f M '
                'params, val prec1 %s (train prec1 %.3f) -> %s', [list(s) for s in entry.path], entry.flops,
                entry.macs or 0.0, session.space.resolution, entry.params or 0.0, val, entry.prec1, path)
    return entry


# ---- the search -------------------------------------------------------------------------------------
def run_search(session: SearchSession, *, on_epoch_end: Optional[Callable[[int], None]] = None,
               on_step_end: Optional[Callable[[int, int, int], None]] = None) -> Dict[str, Any]:
    """Train from the session's resume point to EPOCHS; returns the final board and chosen path.

    ``on_epoch_end(epoch)`` runs after the epoch's checkpoint and outputs are written, ``on_step_end(epoch,
    step_in_epoch, global_step)`` after every step (hooks for tests and tools)."""
    cfg, dist_ctx = session.cfg, session.dist
    position = session.resume.position if session.resume is not None else Position()
    global_step = position.global_step
    epoch = position.epoch - 1
    if position.epoch >= session.num_epochs:
        logger.info('nothing to train: the search already finished its %d epochs', session.num_epochs)
    if dist_ctx.is_main and position.epoch < session.num_epochs:  # e.g. resumed with more EPOCHS
        drop_stale_output(os.path.join(session.run_dir, BEST_ARCH_FILE), logger, 'the search goes on; it is '
                          'written again from the final board')
    restore_rank_rng(session.resume)
    for epoch in range(position.epoch, session.num_epochs):
        mid_epoch = session.resume is not None and epoch == position.epoch and position.step_in_epoch > 0
        start_step = position.step_in_epoch if mid_epoch else 0
        session.train_loader.set_epoch(epoch, start_batch=start_step)
        train = train_one_epoch(session, epoch=epoch, start_step=start_step, global_step=global_step,
                                initial_totals=session.resume.epoch_totals if mid_epoch else None,
                                on_step_end=on_step_end)
        global_step = train['global_step']
        val = validate(session, epoch)
        metric = ranking_metric(cfg, val)
        is_best, kept = session.saver.record(metric, epoch)
        rank_states = gather_rank_states()
        end = Position(epoch=epoch, step_in_epoch=session.steps_per_epoch, global_step=global_step)
        board = session.board
        best_val = max((e.val_prec1 for e in board if e.val_prec1 is not None), default=None)
        row = {'train_loss': train['loss'], 'train_kd_loss': train['kd_loss'], 'train_prec1': train['prec1'],
               'train_prec5': train['prec5'], 'val_loss': val['random']['loss'], 'val_prec1': val['random']['prec1'],
               'val_prec5': val['random']['prec5'], 'board_size': len(board),
               'board_best_prec1': board.best().prec1 if len(board) else None,
               'board_best_val_prec1': best_val, 'meta_updates': train['meta_updates'], 'lr': train['lr'],
               'img_per_sec': train['img_per_sec']}
        if dist_ctx.is_main:
            session.saver.save_epoch(search_checkpoint(session, end, metric, rank_states), epoch, is_best, kept)
            write_board_json(board, os.path.join(session.run_dir, BOARD_FILE), epoch=epoch,
                             resolution=session.space.resolution,
                             budget=(cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM))
            session.summary.write(epoch, row)
            session.tensorboard.scalars(row, epoch, prefix='epoch/')
        if cfg.VERBOSE:
            _write_rank_digest(session, epoch)
        log_board(session, epoch)
        best_metric, best_epoch = session.saver.best
        logger.info('*** epoch %d done: %s of its best path %.4f; best %.4f (epoch %d)', epoch, cfg.EVAL_METRICS,
                    metric, best_metric, best_epoch)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    chosen = write_final_arch(session, max(epoch, 0))
    return {'board': board_rows(session.board),
            'best_arch': None if chosen is None else [list(s) for s in chosen.path],
            'resolution': session.space.resolution, 'global_step': global_step}
