"""The checkpoint files of a run folder: last, recovery, and the top-N by the validation metric.

``last.pth.tar``        every epoch                ``recovery.pth.tar``  mid-epoch (RECOVERY_INTERVAL)
``best.pth.tar``        the best epoch so far      ``checkpoint-<epoch>.pth.tar``  the CHECKPOINT_HIST best

Every file is written atomically (``lib.fileio.atomic_write``); only the main rank writes. A checkpoint
with NaN or infinite weights is never written: ``DivergedError`` stops the run first. The saver also keeps the
run's healthy training loss, from which every checkpoint's ``loss_health`` record is made
(``lib.engine.finite``); it is saved and restored with the best-epoch history.
"""
import math
import os
import re
from typing import Any, Dict, List, Optional, Tuple

from lib.checkpoint.files import save_checkpoint_atomic
from lib.engine.finite import check_checkpoint_finite
from lib.errors import ConfigError
from lib.fileio import copy_file_atomic

LAST = 'last.pth.tar'
BEST = 'best.pth.tar'
RECOVERY = 'recovery.pth.tar'
EPOCH_FILE_PATTERN = re.compile(r'^checkpoint-(\d+)\.pth\.tar$')


def epoch_file(epoch: int) -> str:
    return f'checkpoint-{epoch}.pth.tar'


class CheckpointSaver:
    """Keeps ``history``: the best ``max_history`` (metric, epoch) pairs, best first."""

    def __init__(self, run_dir: str, max_history: int, higher_is_better: bool, is_main: bool = True):
        if max_history < 0:
            raise ConfigError(f'CHECKPOINT_HIST must be >= 0; got {max_history}')
        self.run_dir = run_dir
        self.max_history = max_history
        self.higher_is_better = higher_is_better
        self.is_main = is_main
        self.history: List[Tuple[float, int]] = []
        self.healthy_loss: Optional[float] = None  # the run's reference for loss_health records

    # -- loss health -----------------------------------------------------------------------------
    def loss_health(self, loss: Optional[float]) -> Dict[str, Optional[float]]:
        """The ``loss_health`` record of a checkpoint written when the epoch's running training loss is ``loss``."""
        return {'loss': loss, 'reference': self.healthy_loss}

    def epoch_loss(self, mean_loss: Optional[float]) -> None:
        """A finished epoch's mean training loss: the reference is the lowest of them."""
        if mean_loss is not None and math.isfinite(mean_loss):
            self.healthy_loss = mean_loss if self.healthy_loss is None else min(self.healthy_loss, mean_loss)

    def path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    # -- ranking ---------------------------------------------------------------------------------
    def _sorted(self, entries):
        return sorted(entries, key=lambda e: (-e[0] if self.higher_is_better else e[0], e[1]))

    def record(self, metric: float, epoch: int) -> Tuple[bool, bool]:
        """Rank ``epoch``; returns (is_best, kept among the top ``max_history``)."""
        entries = self._sorted([e for e in self.history if e[1] != epoch] + [(float(metric), int(epoch))])
        is_best = entries[0][1] == epoch
        self.history = entries[:max(self.max_history, 1)]  # the best entry is tracked even with 0
        kept = self.max_history > 0 and any(e[1] == epoch for e in self.history)
        return is_best, kept

    @property
    def best(self) -> Optional[Tuple[float, int]]:
        return self.history[0] if self.history else None

    def state_dict(self) -> Dict[str, Any]:
        return {'history': [[m, e] for m, e in self.history], 'healthy_loss': self.healthy_loss}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.history = self._sorted([(float(m), int(e)) for m, e in state.get('history', [])])[
            :max(self.max_history, 1)]
        self.healthy_loss = state.get('healthy_loss')

    # -- files ------------------------------------------------------------------------------------
    def save_recovery(self, checkpoint: Dict[str, Any]) -> None:
        if self.is_main:
            check_checkpoint_finite(checkpoint, RECOVERY)
            save_checkpoint_atomic(checkpoint, self.path(RECOVERY))

    def save_epoch(self, checkpoint: Dict[str, Any], epoch: int, is_best: bool, kept: bool) -> None:
        """Write last.pth.tar, copy it to best/checkpoint-<epoch> as ranked, prune, drop the recovery."""
        if not self.is_main:
            return
        check_checkpoint_finite(checkpoint, LAST)
        last = save_checkpoint_atomic(checkpoint, self.path(LAST))
        if kept:
            copy_file_atomic(str(last), self.path(epoch_file(epoch)))
        if is_best:
            copy_file_atomic(str(last), self.path(BEST))
        self._prune()
        # The epoch's checkpoint supersedes any mid-epoch one.
        if os.path.exists(self.path(RECOVERY)):
            os.unlink(self.path(RECOVERY))

    def _prune(self) -> None:
        keep = {epoch_file(e) for _, e in self.history} if self.max_history > 0 else set()
        for name in os.listdir(self.run_dir):
            if EPOCH_FILE_PATTERN.match(name) and name not in keep:
                os.unlink(self.path(name))
