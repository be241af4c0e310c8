"""The per-epoch validation of the search: the epoch's random path and (SUPERNET.EVAL_BOARD) every board path,
with BN statistics averaged over ranks (and, SUPERNET.BN_RECALIBRATION_BATCHES, re-estimated per board path)."""
import contextlib
import logging
from typing import Any, Dict

import torch
import torch.nn as nn

from lib.comm import all_reduce_mean_
from lib.engine.evaluate import evaluate
from lib.engine.precision import autocast
from lib.search.builder import SearchSession
from lib.search.path_bn import restored_bn
from lib.search.sampler import PathSampler

logger = logging.getLogger('cream.search')

_VAL_PATH_SEED_STRIDE = 1_000_003  # the random validation path of epoch e: seed SEED + stride * (e + 1)


def average_bn_buffers_(model: nn.Module) -> None:
    """Average BN running statistics over ranks: each rank updated them on its own batches (no DDP
    broadcasts them), and every rank must validate, and rank 0 save, the same network."""
    all_reduce_mean_([buf for name, buf in model.named_buffers()
                      if buf.is_floating_point() and name.rsplit('.', 1)[-1] in ('running_mean', 'running_var')])


@contextlib.contextmanager
def recalibrated_bn(session: SearchSession, path, epoch: int, batches: int):
    """Inside the block, the BN layers of ``path`` hold statistics re-estimated on ``batches`` training
    batches (cumulative average, averaged over ranks); afterwards the training statistics are back."""
    if batches <= 0:
        yield
        return
    supernet = session.supernet
    layers = supernet.path_bn_layers(path)
    was_training = supernet.training
    with restored_bn(layers):
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
            supernet.train(was_training)


def validation_path(cfg, layers_per_stage, num_ops: int, epoch: int, accept=None):
    """The epoch's random path (uniform, as the original validates): the same on every rank and in a
    resumed run, and drawn without touching the training sampler's stream; under the sampler's budget
    (``accept``) a path within it, as the supernet trains only those."""
    sampler = PathSampler(layers_per_stage, num_ops, how_to_prob='even',
                          seed=cfg.SEED + _VAL_PATH_SEED_STRIDE * (epoch + 1), accept=accept)
    return sampler.sample()


def evaluate_path(session: SearchSession, path, *, epoch: int, bn_batches: int, prefix: str) -> Dict[str, Any]:
    """Val results of ``path`` with the search's evaluation settings, its BN statistics first re-estimated on
    ``bn_batches`` training batches (0: the supernet's shared statistics)."""
    cfg, supernet = session.cfg, session.supernet
    with recalibrated_bn(session, path, epoch, bn_batches):
        return evaluate(supernet, session.val_loader, session.dist.device, forward=lambda x: supernet(x, path),
                        prefix=prefix, amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE, channels_last=cfg.CHANNELS_LAST,
                        tta=cfg.TTA)


def validate(session: SearchSession, epoch: int) -> Dict[str, Any]:
    """Val results of the epoch's random path and (SUPERNET.EVAL_BOARD) of every board path, whose val
    prec1 is recorded in the board."""
    cfg, supernet, board = session.cfg, session.supernet, session.board
    if session.dist.distributed:
        average_bn_buffers_(supernet)
    # Within the budget the sampler keeps to (a latency budget, SUPERNET.SAMPLE_WITHIN_BUDGET), as it trains only those.
    path = validation_path(cfg, session.space.layers_per_stage, supernet.num_ops, epoch,
                           accept=session.path_sampler.accept)
    random_result = evaluate_path(session, path, epoch=epoch, bn_batches=0, prefix=f'Test: {epoch} random path')
    logger.info('Test: %d  random path %s (%sbudget FLOPs %.2fM, MACs %.2fM): loss %.4f  prec@1 %.3f  prec@5 %.3f',
                epoch, [list(s) for s in path], session.budget.lead_text(path, ', '), session.space.budget_flops(path),
                session.macs_table.path_macs(path), random_result['loss'],
                random_result['prec1'], random_result['prec5'])
    board_results = []
    if cfg.SUPERNET.EVAL_BOARD:
        for index in range(len(board)):
            result = evaluate_path(session, board[index].path, epoch=epoch, prefix=f'Test: {epoch} board #{index}',
                                   bn_batches=cfg.SUPERNET.BN_RECALIBRATION_BATCHES)
            board.record_val_prec1(index, result['prec1'])
            board_results.append(result)
    return {'random_path': [list(s) for s in path], 'random': random_result, 'board': board_results}


def ranking_metric(cfg, val: Dict[str, Any]) -> float:
    """The epoch's EVAL_METRICS over every path it validated: best prec1 (or lowest loss)."""
    results = [val['random']] + val['board']
    if cfg.EVAL_METRICS == 'loss':
        return min(r['loss'] for r in results)
    return max(r['prec1'] for r in results)
