"""One epoch of training steps, whatever a step does (torchvision's ``train_one_epoch`` with the step passed in).

Per batch: ``step_fn`` trains and returns the step's entries of the epoch's running sums (on the device: no host
sync); every LOG_INTERVAL steps (and on the first and last) the sums of all ranks are read for a progress line
(``report``), and a non-finite running loss stops the run; every RECOVERY_INTERVAL steps before the epoch's last,
and at the step where every rank agrees to stop on SIGTERM (``lib.engine.stop``), ``save_recovery``; then, on
SIGTERM, ``RunStopped``. Entry 0 of the sums is loss * images for every client.
"""
import time
from typing import Callable, Dict, Optional

import torch

from lib.checkpoint.format import Position
from lib.comm import all_reduce_sum
from lib.engine.finite import check_loss_sum_finite
from lib.engine.stop import RunStopped, StopOnSigterm
from lib.train.progress import StepTimer

# step_fn(images, target, step, global_step) -> this step's sums; ``step`` counts the batches of the epoch
# before this one, ``global_step`` the optimizer updates including this one.
StepFn = Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]
# report(last, sums, n, step, global_step, timer): a progress line from this step's and all ranks' epoch sums.
ReportFn = Callable[[list, list, int, int, int, StepTimer], None]
# save_recovery(position, this rank's running sums of the epoch): a collective.
SaveFn = Callable[[Position, torch.Tensor], None]


def run_steps(loader, step_fn: StepFn, *, epoch: int, steps_per_epoch: int, num_sums: int, device: torch.device,
              start_step: int = 0, global_step: int = 0, initial_totals: Optional[torch.Tensor] = None,
              log_interval: int = 50, world_size: int = 1, report: Optional[ReportFn] = None,
              recovery_interval: int = 0, save_recovery: Optional[SaveFn] = None,
              stop: Optional[StopOnSigterm] = None, on_step_end: Optional[Callable[[int, int, int], None]] = None,
              on_short_epoch: Optional[Callable[[int], None]] = None) -> Dict[str, object]:
    """Run the steps of ``loader`` (already positioned at ``start_step``); returns the epoch's sums over all ranks
    (including the steps before ``start_step`` when ``initial_totals`` carries their sums), the global step and
    the images per second. ``on_short_epoch(step)`` is called when the loader ended before ``steps_per_epoch``.
    ``stop.poll()`` runs at every step on every rank (a collective)."""
    totals = torch.zeros(num_sums, dtype=torch.float64, device=device)
    if initial_totals is not None:
        totals += initial_totals.to(device=device, dtype=torch.float64)
    log_interval = max(log_interval, 1)
    timer = StepTimer(start_step)
    step, images_seen, start = start_step, 0, timer.start
    for images, target in loader:
        timer.data_loaded()
        n = target.shape[0]
        last_sums = step_fn(images, target, step, global_step + 1)
        totals += last_sums
        step += 1
        global_step += 1
        images_seen += n
        if step == start_step + 1 or step % log_interval == 0 or step == steps_per_epoch:
            sums = all_reduce_sum(totals.clone()).tolist()
            timer.logged(step)  # after the sync: the interval's device work is done
            # The running sum: a NaN on any step (and rank) since the epoch began, not only on this one.
            check_loss_sum_finite(sums[0], epoch, step)
            if report is not None:
                report(last_sums.tolist(), sums, n, step, global_step, timer)
        stopping = stop is not None and stop.poll() and step < steps_per_epoch and save_recovery is not None
        if save_recovery is not None and step < steps_per_epoch and \
                (stopping or (recovery_interval > 0 and step % recovery_interval == 0)):
            save_recovery(Position(epoch=epoch, step_in_epoch=step, global_step=global_step), totals)
        if stopping:
            raise RunStopped(f'stopped on SIGTERM at epoch {epoch}, step {step} of {steps_per_epoch}, with a recovery '
                             'checkpoint of that point')
        if on_step_end is not None:
            on_step_end(epoch, step, global_step)
        timer.fetching()
    if step != steps_per_epoch and on_short_epoch is not None:
        on_short_epoch(step)
    elapsed = time.perf_counter() - start
    all_reduce_sum(totals)
    return {'sums': totals.tolist(), 'global_step': global_step,
            'img_per_sec': images_seen * world_size / max(elapsed, 1e-9)}
