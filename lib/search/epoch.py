"""The search as a client of the training core: one epoch of supernet training (``search_one_epoch``), its
validation, board.json, and its checkpoints (``run_search`` runs it all, then writes best_arch.yaml)."""
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

import torch

from lib.checkpoint.format import SEARCH_ARCH_NAME, Position, run_checkpoint, search_state
from lib.engine.logger import progress_line
from lib.engine.run_folder import drop_stale_output
from lib.search import step as search_steps
from lib.search.builder import SearchSession
from lib.search.outputs import BEST_ARCH_FILE, BOARD_FILE, board_rows, log_board, write_board_json, write_final_arch
from lib.search.step import SearchSums
from lib.search.validate import average_bn_buffers_, ranking_metric, validate
from lib.train.hooks import Hook
from lib.train.loop import EpochResult, Evaluation, TrainingClient, run_epochs, save_recovery
from lib.train.progress import meter
from lib.train.steps import EpochStart, SaveFn, run_steps

logger = logging.getLogger('cream.search')


@dataclass
class SearchEpochResult(EpochResult):
    kd_loss: Optional[float]  # per image of the distillation steps; None: no distillation step
    meta_updates: int


def search_one_epoch(session: SearchSession, start: EpochStart, save_recovery_at: Optional[SaveFn] = None
                     ) -> SearchEpochResult:
    """Train the supernet over ``session.train_loader`` (already positioned at ``start.start_step``): per step,
    sample the student path, the meta-matching update when one is due, then ``search_step``."""
    cfg, dist_ctx, board, epoch = session.cfg, session.dist, session.board, start.epoch
    steps_per_epoch = session.steps_per_epoch
    session.supernet.train()
    session.mmn.train()
    batch_global = cfg.DATASET.BATCH_SIZE * dist_ctx.world_size

    def step(images, target, step_no, _updates):
        path = session.path_sampler.sample()
        meta_updates = 0
        if search_steps.meta_update_due(cfg, epoch, step_no, len(board)):
            search_steps.run_meta_update(session, path, images, target, epoch=epoch, step=step_no)
            meta_updates = 1
        return search_steps.search_step(session, path, images, target, epoch=epoch, meta_updates=meta_updates)

    def report(last: SearchSums, sums: SearchSums, n, step_no, updates, timer):
        meters = {'loss': meter(last.loss / n, sums.loss, sums.images),
                  'kd': meter(last.kd / max(last.kd_images, 1), sums.kd, sums.kd_images),
                  'prec@1': meter(100 * last.top1 / n, 100 * sums.top1, sums.images),
                  'prec@5': meter(100 * last.top5 / n, 100 * sums.top5, sums.images)}
        lr = search_steps.supernet_lr(session.optimizer)
        logger.info(progress_line(f'Train: {epoch}', step_no, steps_per_epoch, meters, lr, timer, batch_global)
                    + f'  board {len(board)}')
        session.tensorboard.scalars({'loss': meters['loss'].avg, 'prec1': meters['prec@1'].avg, 'lr': lr,
                                     'board_size': len(board), 'img_per_sec': timer.images_per_second(batch_global)},
                                    updates, prefix='train/')

    def short_epoch(step_no):
        raise RuntimeError(f'epoch {epoch} ended after {step_no} of {steps_per_epoch} steps: the training set '
                           'changed while training; restart the run')

    done = run_steps(session.train_loader, step, start, sums_type=SearchSums, steps_per_epoch=steps_per_epoch,
                     device=dist_ctx.device, log_interval=cfg.LOG_INTERVAL, world_size=dist_ctx.world_size,
                     report=report, recovery_interval=cfg.RECOVERY_INTERVAL, save_recovery=save_recovery_at,
                     on_short_epoch=short_epoch)
    sums, count = done.sums, max(done.sums.images, 1)
    return SearchEpochResult(loss=sums.loss / count, prec1=100 * sums.top1 / count, prec5=100 * sums.top5 / count,
                             lr=search_steps.supernet_lr(session.optimizer), img_per_sec=done.img_per_sec,
                             global_step=done.global_step,
                             kd_loss=sums.kd / sums.kd_images if sums.kd_images else None,
                             meta_updates=int(sums.meta_updates))


def state_digest(session: SearchSession) -> Dict[str, str]:
    """Short hashes of the board, of its probe tensors and of all weights: equal on every rank, but for the probes
    under SUPERNET.PROBE_SOURCE 'rank' (each rank's own)."""
    def digest(tensors_and_values) -> str:
        h = hashlib.sha256()
        for item in tensors_and_values:
            if isinstance(item, torch.Tensor):
                h.update(item.detach().float().cpu().contiguous().numpy().tobytes())
            else:
                h.update(repr(item).encode())
        return h.hexdigest()[:16]
    board_items: List[Any] = []
    probes: List[Any] = []
    for entry in session.board:
        board_items += [entry.path, round(entry.prec1, 6), entry.board_cost, entry.val_prec1]
        probes += [entry.probe_images, entry.probe_probs]
    weights = list(session.supernet.state_dict().values()) + list(session.mmn.state_dict().values())
    return {'board': digest(board_items), 'probes': digest(probes), 'weights': digest(weights)}


def _write_rank_digest(session: SearchSession, epoch: int) -> None:
    digests = state_digest(session)
    path = os.path.join(session.run_dir, f'state_digest.rank{session.dist.rank}.txt')
    with open(path, 'a') as f:
        f.write(f'epoch {epoch} board {digests["board"]} weights {digests["weights"]} probes {digests["probes"]} '
                f'size {len(session.board)}\n')


class SearchClient(TrainingClient):
    job = 'the search'
    logger = logger
    sums_type = SearchSums

    def __init__(self, session: SearchSession):
        self.session = session

    def before_training(self) -> None:
        if self.session.dist.is_main:  # e.g. resumed with more EPOCHS
            drop_stale_output(os.path.join(self.session.run_dir, BEST_ARCH_FILE), logger, 'the search goes on; it '
                              'is written again from the final board')

    def rank_state(self) -> Optional[Dict[str, Any]]:
        """Under SUPERNET.PROBE_SOURCE 'rank' each process's board holds its own probes: all go into the checkpoint."""
        s = self.session
        if s.dist.distributed and s.cfg.SUPERNET.PROBE_SOURCE == 'rank':
            return {'board_probes': s.board.probe_state()}
        return None

    def save_recovery(self, position: Position, totals: torch.Tensor) -> None:
        if self.session.dist.distributed:
            average_bn_buffers_(self.session.supernet)  # the saved statistics are those every rank continues with
        save_recovery(self.session, self, position, totals)

    def train_epoch(self, start: EpochStart) -> SearchEpochResult:
        return search_one_epoch(self.session, start, self.save_recovery)

    def evaluate(self, epoch: int, train: SearchEpochResult) -> Evaluation:
        val = validate(self.session, epoch)
        board = self.session.board
        best_val = max((e.val_prec1 for e in board if e.val_prec1 is not None), default=None)
        row = {'train_loss': train.loss, 'train_kd_loss': train.kd_loss, 'train_prec1': train.prec1,
               'train_prec5': train.prec5, 'val_loss': val['random']['loss'], 'val_prec1': val['random']['prec1'],
               'val_prec5': val['random']['prec5'], 'board_size': len(board),
               'board_best_prec1': board.best().prec1 if len(board) else None,
               'board_best_val_prec1': best_val, 'meta_updates': train.meta_updates, 'lr': train.lr,
               'img_per_sec': train.img_per_sec}
        return Evaluation(ranking_metric(self.session.cfg, val), row, details=val)

    def write_outputs(self, epoch: int, evaluation: Evaluation) -> None:
        s, sn = self.session, self.session.cfg.SUPERNET
        write_board_json(s.board, os.path.join(s.run_dir, BOARD_FILE), s.budget, epoch=epoch,
                         flops_budget=(sn.FLOPS_MINIMUM, sn.FLOPS_MAXIMUM))

    def checkpoint(self, position: Position, metric: Optional[float], rank_states) -> Dict[str, Any]:
        s = self.session
        extra = search_state(space=s.space, supernet=s.supernet, mmn=s.mmn, board=s.board,
                             path_sampler=s.path_sampler)
        return run_checkpoint(s, position, metric, rank_states, model=s.supernet, ema=None, arch=SEARCH_ARCH_NAME,
                              extra=extra)

    def epoch_done(self, epoch: int, evaluation: Evaluation) -> None:
        s = self.session
        if s.cfg.VERBOSE:
            _write_rank_digest(s, epoch)
        log_board(s, epoch)
        best_metric, best_epoch = s.saver.best
        logger.info('*** epoch %d done: %s of its best path %.4f; best %.4f (epoch %d)', epoch, s.cfg.EVAL_METRICS,
                    evaluation.metric, best_metric, best_epoch)

    def finish(self, last_epoch: int, global_step: int, trained: bool) -> Dict[str, Any]:
        s = self.session
        chosen = write_final_arch(s, max(last_epoch, 0))
        return {'board': board_rows(s.board, s.budget),
                'best_arch': None if chosen is None else [list(x) for x in chosen.path],
                'resolution': s.space.resolution, 'global_step': global_step}


def run_search(session: SearchSession, hooks: Optional[Iterable[Hook]] = None) -> Dict[str, Any]:
    """Train from the session's resume point to EPOCHS with ``hooks`` (``lib.train.hooks``); returns the final
    board and chosen path."""
    return run_epochs(session, SearchClient(session), hooks)
