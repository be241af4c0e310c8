"""One epoch of training steps, whatever a step does (torchvision's ``train_one_epoch`` with the step passed in).

Per batch: ``step_fn`` trains and returns the step's entries of the epoch's running sums (on the device: no host
sync); every LOG_INTERVAL steps (and on the first and last) the sums of all ranks are read for a progress line
(``report``), and a non-finite running loss stops the run; every RECOVERY_INTERVAL steps before the epoch's last,
and at the step where every rank agrees to stop on SIGTERM (``lib.engine.stop``), ``save_recovery``; then, on
SIGTERM, ``RunStopped``; then the hooks' ``after_step``. The sums are named by the job's sums type (a NamedTuple
with ``loss``, loss * images, and ``images`` among its fields).
"""
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Type

import torch

from lib.checkpoint.format import Position
from lib.comm import all_reduce_sum
from lib.engine.finite import check_loss_sum_finite
from lib.engine.stop import RunStopped, StopOnSigterm
from lib.train.progress import StepTimer

# step_fn(images, target, step, global_step) -> this step's sums; ``step`` counts the batches of the epoch
# before this one, ``global_step`` the optimizer updates including this one.
StepFn = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]
# report(last, sums, n, step, global_step, timer): a progress line from this step's and all ranks' epoch sums
# (both of the job's sums type).
ReportFn = Callable[[NamedTuple, NamedTuple, int, int, int, StepTimer], None]
# save_recovery(position, this rank's running sums of the epoch): a collective.
SaveFn = Callable[[Position, torch.Tensor], None]


@dataclass
class EpochStart:
    epoch: int
    start_step: int = 0  # batches of the epoch already trained (mid-epoch resume), else 0
    global_step: int = 0
    initial_totals: Optional[torch.Tensor] = None  # the running sums of those batches, mid-epoch only
    stop: Optional[StopOnSigterm] = None  # SIGTERM: polled at every step (a collective)
    after_step: Optional[Callable[[Position], None]] = None  # the hooks' ``after_step`` (``lib.train.hooks``)


@dataclass
class StepsDone:
    sums: NamedTuple  # the epoch's running sums over all ranks, of the job's sums type
    global_step: int
    img_per_sec: float


def run_steps(loader, step_fn: StepFn, start: EpochStart, *, sums_type: Type[NamedTuple], steps_per_epoch: int,
              device: torch.device, log_interval: int = 50, world_size: int = 1, report: Optional[ReportFn] = None,
              recovery_interval: int = 0, save_recovery: Optional[SaveFn] = None,
              on_short_epoch: Optional[Callable[[int], None]] = None) -> StepsDone:
    """Run the steps of ``loader`` (already positioned at ``start.start_step``); returns the epoch's sums over all
    ranks (including the steps before ``start_step`` when ``start.initial_totals`` carries their sums), the global
    step and the images per second. ``sums_type`` names the entries of the step's sums (a NamedTuple with at
    least ``loss``, loss * images, and ``images``). ``on_short_epoch(step)`` is called when the loader ended
    before ``steps_per_epoch``."""
    epoch, stop, global_step = start.epoch, start.stop, start.global_step
    totals = torch.zeros(len(sums_type._fields), dtype=torch.float64, device=device)
    if start.initial_totals is not None:
        totals += start.initial_totals.to(device=device, dtype=torch.float64)
    log_interval = max(log_interval, 1)
    timer = StepTimer(start.start_step)
    step, images_seen, start_time = start.start_step, 0, timer.start
    for images, target in loader:
        timer.data_loaded()
        n = target.shape[0]
        last_sums = step_fn(images, target, step, global_step + 1)
        totals += last_sums
        step += 1
        global_step += 1
        images_seen += n
        if step == start.start_step + 1 or step % log_interval == 0 or step == steps_per_epoch:
            sums = sums_type(*all_reduce_sum(totals.clone()).tolist())
            timer.logged(step)  # after the sync: the interval's device work is done
            # The running sum: a NaN on any step (and rank) since the epoch began, not only on this one.
            check_loss_sum_finite(sums.loss, epoch, step)
            if report is not None:
                report(sums_type(*last_sums.tolist()), sums, n, step, global_step, timer)
        stopping = stop is not None and stop.poll() and step < steps_per_epoch and save_recovery is not None
        if save_recovery is not None and step < steps_per_epoch and \
                (stopping or (recovery_interval > 0 and step % recovery_interval == 0)):
            save_recovery(Position(epoch=epoch, step_in_epoch=step, global_step=global_step), totals)
        if stopping:
            raise RunStopped(f'stopped on SIGTERM at epoch {epoch}, step {step} of {steps_per_epoch}, with a recovery '
                             'checkpoint of that point')
        if start.after_step is not None:
            start.after_step(Position(epoch=epoch, step_in_epoch=step, global_step=global_step))
        timer.fetching()
    if step != steps_per_epoch and on_short_epoch is not None:
        on_short_epoch(step)
    elapsed = time.perf_counter() - start_time
    all_reduce_sum(totals)
    return StepsDone(sums_type(*totals.tolist()), global_step, images_seen * world_size / max(elapsed, 1e-9))
