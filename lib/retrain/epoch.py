"""Retraining as a client of the training core: its epoch (``retrain_one_epoch``), the per-epoch validation of
the model and its EMA, results.json, and its checkpoints (``fit`` runs it all)."""
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, Optional, Tuple

import torch

from lib.checkpoint.format import Position, run_checkpoint
from lib.engine.evaluate import evaluate
from lib.engine.finite import DIVERGENCE_FIX, DivergedError
from lib.fileio import write_json_atomic
from lib.retrain.step import RetrainStep, RetrainSums, retrain_one_epoch
from lib.retrain.wrappers import sync_buffers_from_rank0
from lib.train.hooks import Hook
from lib.train.loop import EpochResult, Evaluation, TrainingClient, run_epochs, save_recovery
from lib.train.steps import EpochStart

logger = logging.getLogger('cream.retrain')

RESULTS_FILE = 'results.json'


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


def _check_val_finite(val: Dict[str, float], ema_val: Optional[Dict[str, float]], epoch: int) -> None:
    for name, result in (('model', val), ('EMA', ema_val)):
        if result is not None and not math.isfinite(result['loss']):
            raise DivergedError(f'the validation loss of the {name} weights is {result["loss"]} after epoch {epoch}: '
                                f'the training diverged; this epoch\'s results and checkpoint were not written; '
                                f'{DIVERGENCE_FIX}')


def _strip(result: Optional[Dict[str, float]]) -> Optional[Dict[str, float]]:
    return None if result is None else {k: result[k] for k in ('loss', 'prec1', 'prec5', 'images')}


def _summary_row(train: EpochResult, val: Dict[str, float], ema_val: Optional[Dict[str, float]]) -> Dict:
    ema = ema_val or {}
    return {'train_loss': train.loss, 'train_prec1': train.prec1, 'val_loss': val['loss'],
            'val_prec1': val['prec1'], 'val_prec5': val['prec5'], 'ema_val_loss': ema.get('loss'),
            'ema_val_prec1': ema.get('prec1'), 'ema_val_prec5': ema.get('prec5'), 'lr': train.lr,
            'img_per_sec': train.img_per_sec}


@dataclass
class RetrainDetails:
    """What an epoch's ``Evaluation.details`` holds for the retraining; stored in the checkpoint as the list
    [val, ema_val, ranked_by, train] (plain data: the format older checkpoints have)."""
    val: Dict[str, float]
    ema_val: Optional[Dict[str, float]]
    ranked_by: str  # 'EMA' or 'model': whose result ranks the checkpoints
    train: Dict[str, Any]  # the EpochResult's fields

    def record(self) -> list:
        return [self.val, self.ema_val, self.ranked_by, self.train]

    @classmethod
    def of(cls, evaluation: Evaluation) -> 'RetrainDetails':
        return cls(*evaluation.details)


class RetrainClient(TrainingClient):
    job = 'the run'
    logger = logger
    sums_type = RetrainSums

    def __init__(self, session):
        self.session = session
        self.results_path = os.path.join(session.run_dir, RESULTS_FILE)
        self.results: Dict[str, Any] = {}

    def before_epoch(self, epoch: int) -> None:
        mixup_off = self.session.cfg.AUGMENTATION.MIXUP_OFF_EPOCH
        if self.session.mixup_fn is not None and mixup_off and epoch >= mixup_off:
            self.session.mixup_fn.mixup_enabled = False

    def save_recovery(self, position: Position, totals: torch.Tensor) -> None:
        save_recovery(self.session, self, position, totals)

    def train_epoch(self, start: EpochStart) -> EpochResult:
        s, cfg = self.session, self.session.cfg
        return retrain_one_epoch(RetrainStep.of_session(s), s.train_loader, start, steps_per_epoch=s.steps_per_epoch,
                                 log_interval=cfg.LOG_INTERVAL, world_size=s.dist.world_size, tensorboard=s.tensorboard,
                                 recovery_interval=cfg.RECOVERY_INTERVAL, save_recovery=self.save_recovery)

    def evaluate(self, epoch: int, train: EpochResult) -> Evaluation:
        val, ema_val = validate(self.session, epoch)
        _check_val_finite(val, ema_val, epoch)  # before this epoch's results and checkpoint are written
        # Checkpoints are ranked by the EMA's result when there is one, as the original does.
        ranked, ranked_by = (ema_val, 'EMA') if ema_val is not None else (val, 'model')
        details = RetrainDetails(val, ema_val, ranked_by, asdict(train))
        return Evaluation(ranked[self.session.cfg.EVAL_METRICS], _summary_row(train, val, ema_val),
                          details=details.record())

    def _results(self, epoch: int, evaluation: Evaluation) -> Dict[str, Any]:
        s, details = self.session, RetrainDetails.of(evaluation)
        val, ema_val, ranked_by, train = details.val, details.ema_val, details.ranked_by, details.train
        best_metric, best_epoch = s.saver.best
        return {'model': s.info.name, 'selection': s.info.selection, 'arch': s.info.arch,
                'resolution': s.info.resolution, 'epoch': epoch, 'epochs': s.num_epochs,
                'checkpoint': 'last.pth.tar', 'val': _strip(val), 'val_ema': _strip(ema_val),
                'best': {'metric': s.cfg.EVAL_METRICS, 'of': ranked_by, 'value': best_metric, 'epoch': best_epoch},
                'train': {k: train[k] for k in ('loss', 'prec1', 'lr', 'img_per_sec')}}

    def write_outputs(self, epoch: int, evaluation: Evaluation) -> None:
        write_json_atomic(self._results(epoch, evaluation), self.results_path)

    def checkpoint(self, position: Position, metric: Optional[float], rank_states) -> Dict[str, Any]:
        s = self.session
        return run_checkpoint(s, position, metric, rank_states, model=s.model, ema=s.ema, arch=s.info.checkpoint_arch)

    def epoch_done(self, epoch: int, evaluation: Evaluation) -> None:
        self.results = self._results(epoch, evaluation)
        best_metric, best_epoch = self.session.saver.best
        logger.info('*** epoch %d done; best %s %s: %.4f (epoch %d)', epoch, RetrainDetails.of(evaluation).ranked_by,
                    self.session.cfg.EVAL_METRICS, best_metric, best_epoch)

    def finish(self, last_epoch: int, global_step: int, trained: bool) -> Dict[str, Any]:
        if not trained and os.path.exists(self.results_path):
            with open(self.results_path) as f:
                self.results = json.load(f)
        return self.results


def fit(session, hooks: Optional[Iterable[Hook]] = None) -> Dict[str, Any]:
    """Train from the session's resume point to the last epoch with ``hooks`` (``lib.train.hooks``); returns what
    results.json holds."""
    return run_epochs(session, RetrainClient(session), hooks)
