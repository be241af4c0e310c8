"""The epoch loop both jobs run (detectron2's ``TrainerBase.train`` with the job as a client object).

From the session's resume point to its last epoch: restore this rank's RNG states, position the loader (mid-epoch
after a recovery checkpoint), train the epoch (``client.train_epoch``), evaluate it (``client.evaluate``), step the
LR schedule to the next epoch (``session.scheduler.step_epoch``: the one place it steps per epoch), rank the epoch
in the checkpoint saver, write the checkpoint, then the epoch's outputs (the client's files, a summary.csv row,
TensorBoard scalars; main rank). Checkpoint first, outputs after: no result file ever claims an epoch whose
checkpoint was not written (a full disk stops the run at the checkpoint). The checkpoint carries the epoch's
evaluation, so a run resumed from it writes that epoch's outputs again (a run killed between the two loses nothing,
and rows of epochs after the resume point go). SIGTERM stops the loop at the next step boundary or epoch end with
the state saved (``lib.engine.stop``). The client (``lib.search.epoch.SearchClient``,
``lib.retrain.epoch.RetrainClient``) says what a step, an evaluation and a checkpoint are; the hooks
(``lib.train.hooks``) run before training, after every step, after every epoch and after training.
"""
import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, NamedTuple, Optional, Type

import torch

from lib.checkpoint.format import Position, gather_rank_states
from lib.checkpoint.restore import restore_rank_rng
from lib.checkpoint.resume import healthy_resume_choice
from lib.comm import all_reduce_sum
from lib.engine.finite import DivergedError, check_loss_sum_finite
from lib.engine.stop import RunStopped, StopOnSigterm
from lib.fileio import finite_or_none
from lib.train.hooks import Hook, Hooks
from lib.train.steps import EpochStart


@dataclass
class EpochResult:
    """An epoch's training, over all ranks (the means are per image)."""
    loss: float
    prec1: float
    prec5: float
    lr: float  # at the epoch's end, before the schedule's epoch step
    img_per_sec: float
    global_step: int


@dataclass
class Evaluation:
    metric: float  # what ranks the epoch's checkpoint (EVAL_METRICS)
    row: Dict[str, Any]  # the epoch's summary.csv row and TensorBoard scalars
    details: Any = None  # whatever the client wants back in ``write_outputs`` and ``epoch_done`` (plain data)

    def record(self) -> Dict[str, Any]:
        """As the epoch's checkpoint stores it: plain numbers, strings, lists and dicts."""
        return json.loads(json.dumps(finite_or_none(vars(self)), default=float))


class TrainingClient:
    """What the loop asks of a job; ``job`` names it in messages ('the search'), ``logger`` is the job's,
    ``sums_type`` (each client sets it) names the entries of its running sums (``lib.train.steps.run_steps``)."""
    job = 'the run'
    logger = logging.getLogger('cream')
    sums_type: Type[NamedTuple]

    def before_training(self) -> None:
        """Once, when there are epochs to train (before the RNG states are restored)."""

    def before_epoch(self, epoch: int) -> None:
        """Before the epoch's loader is positioned."""

    def train_epoch(self, start: EpochStart) -> EpochResult:
        raise NotImplementedError

    def evaluate(self, epoch: int, train: EpochResult) -> Evaluation:
        """Evaluate the trained epoch (nothing else: the loop steps the schedule)."""
        raise NotImplementedError

    def write_outputs(self, epoch: int, evaluation: Evaluation) -> None:
        """The client's own result files (main rank), after the epoch's checkpoint; also when a run resumes from
        that checkpoint (with the stored evaluation)."""

    def checkpoint(self, position: Position, metric: Optional[float], rank_states) -> Dict[str, Any]:
        raise NotImplementedError

    def rank_state(self) -> Optional[Dict[str, Any]]:
        """This rank's own state for the checkpoint (tensors on the CPU), gathered from every rank into its
        ``rank_states``; None: nothing beyond the RNG states."""
        return None

    def epoch_done(self, epoch: int, evaluation: Evaluation) -> None:
        """Every rank, after the epoch's checkpoint and outputs."""

    def finish(self, last_epoch: int, global_step: int, trained: bool) -> Dict[str, Any]:
        """What the run returns; ``trained`` is False when it had finished already."""
        raise NotImplementedError


def _write_outputs(session, client: TrainingClient, epoch: int, evaluation: Evaluation) -> None:
    client.write_outputs(epoch, evaluation)
    session.summary.write(epoch, evaluation.row)


def run_epochs(session, client: TrainingClient, hooks: Optional[Iterable[Hook]] = None) -> Dict[str, Any]:
    """Train from ``session.resume`` (or the start) to ``session.num_epochs`` with ``hooks``; returns
    ``client.finish(...)``."""
    hooks = Hooks(hooks)
    resume = session.resume
    position = resume.position if resume is not None else Position()
    if resume is not None and resume.evaluation is not None and session.dist.is_main:
        _write_outputs(session, client, position.epoch - 1, Evaluation(**resume.evaluation))
    if position.epoch >= session.num_epochs:
        client.logger.info('nothing to train: %s already finished its %d epochs', client.job, session.num_epochs)
        return client.finish(position.epoch - 1, position.global_step, trained=False)
    client.before_training()
    hooks.before_train(session)
    restore_rank_rng(resume)
    try:
        with StopOnSigterm(session.cfg.SIGTERM_GRACE, client.logger) as stop:
            result = _train(session, client, position, stop, Hooks([*hooks, StopBetweenEpochs(stop)]))
        hooks.after_train(session, result)
        return result
    except RunStopped as stopped:
        raise RunStopped(f'{stopped} in {session.run_dir}; run the same command with AUTO_RESUME True to '
                         'continue') from None
    except DivergedError as err:
        raise DivergedError(f'{err}. {_resume_hint(session)}') from None


def _train(session, client: TrainingClient, position: Position, stop: StopOnSigterm, hooks: Hooks
           ) -> Dict[str, Any]:
    global_step, saver = position.global_step, session.saver

    def after_step(step_position: Position) -> None:
        hooks.after_step(session, step_position)

    for epoch in range(position.epoch, session.num_epochs):
        mid_epoch = session.resume is not None and epoch == position.epoch and position.step_in_epoch > 0
        start = EpochStart(epoch, position.step_in_epoch if mid_epoch else 0, global_step,
                           session.resume.epoch_totals if mid_epoch else None, stop, after_step)
        client.before_epoch(epoch)
        session.train_loader.set_epoch(epoch, start_batch=start.start_step)
        train = client.train_epoch(start)
        global_step = train.global_step
        evaluation = client.evaluate(epoch, train)
        session.scheduler.step_epoch(epoch, evaluation.metric)  # before the checkpoint, which holds the schedule
        is_best, kept = saver.record(evaluation.metric, epoch)
        loss_health = saver.loss_health(train.loss)
        saver.epoch_loss(train.loss)
        rank_states = gather_rank_states(extra=client.rank_state())  # a collective: every rank takes part
        if session.dist.is_main:
            end = Position(epoch=epoch, step_in_epoch=session.steps_per_epoch, global_step=global_step)
            checkpoint = client.checkpoint(end, evaluation.metric, rank_states)
            checkpoint.update(loss_health=loss_health, evaluation=evaluation.record())
            saver.save_epoch(checkpoint, epoch, is_best, kept)
            _write_outputs(session, client, epoch, evaluation)
            session.tensorboard.scalars(evaluation.row, epoch, prefix='epoch/')
        client.epoch_done(epoch, evaluation)
        hooks.after_epoch(session, epoch, evaluation)
    return client.finish(epoch, global_step, trained=True)


class StopBetweenEpochs(Hook):
    """The last hook of every run: a SIGTERM that came during the epoch's evaluation or checkpoint stops the run
    here, with that checkpoint (within an epoch the step loop stops at the next step, ``lib.train.steps``)."""

    def __init__(self, stop: StopOnSigterm):
        self.stop = stop

    def after_epoch(self, session, epoch: int, evaluation: Evaluation) -> None:
        if epoch + 1 < session.num_epochs and self.stop.poll_now():  # a collective: every rank agrees
            raise RunStopped(f'stopped on SIGTERM after epoch {epoch}, whose checkpoint holds that point')


def save_recovery(session, client: TrainingClient, position: Position, totals: torch.Tensor) -> None:
    """A mid-epoch checkpoint (RECOVERY_INTERVAL, or a stop on SIGTERM) from this rank's running sums ``totals``,
    unless the running loss of all ranks is not finite (DivergedError). A collective: every rank takes part."""
    # Every rank decides alike, before the next collective.
    sums = client.sums_type(*all_reduce_sum(totals.clone()).tolist())
    loss = sums.loss / sums.images if sums.images else None
    check_loss_sum_finite(loss, position.epoch, position.step_in_epoch)
    rank_states = gather_rank_states(totals, extra=client.rank_state())
    loss_health = session.saver.loss_health(loss)
    if session.dist.is_main:
        checkpoint = client.checkpoint(position, None, rank_states)
        checkpoint['loss_health'] = loss_health
        session.saver.save_recovery(checkpoint)
        client.logger.info('saved recovery checkpoint: epoch %d, step %d', position.epoch, position.step_in_epoch)


def _resume_hint(session) -> str:
    """Where AUTO_RESUME would continue a diverged run, and how to keep it from diverging again."""
    lower = f'resume with a lower LR, e.g. LR {session.cfg.LR / 2:g} (LR and CLIP_GRAD may change on resume)'
    if not session.dist.is_main:
        return f'Rank 0\'s error names the checkpoint AUTO_RESUME True would continue from; {lower}'
    choice = healthy_resume_choice(session.run_dir)
    if choice is None:
        return (f'No checkpoint in {session.run_dir} was written while the training loss was healthy: start afresh '
                f'(OVERWRITE True) with a lower LR, e.g. LR {session.cfg.LR / 2:g}')
    return f'AUTO_RESUME True continues from {choice}, the newest checkpoint written while the loss was healthy: {lower}'


def train_run(run, build_session: Callable[[Any], Any], train: Callable[[Any], Dict[str, Any]]) -> Dict[str, Any]:
    """An entry script's job: build the session, write config.yaml (only once the set-up, resume included, has
    passed), ``train(session)``, and close TensorBoard and the loaders' workers however it ends."""
    session = build_session(run)
    run.save_config()
    try:
        return train(session)
    finally:
        session.tensorboard.close()
        session.train_loader.close()
        session.val_loader.close()
