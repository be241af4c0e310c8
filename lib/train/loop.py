"""The epoch loop both jobs run (detectron2's ``TrainerBase.train`` with the job as a client object).

From the session's resume point to its last epoch: restore this rank's RNG states, position the loader (mid-epoch
after a recovery checkpoint), train the epoch (``client.train_epoch``), evaluate it (``client.evaluate``), rank it
in the checkpoint saver, write the epoch's outputs (the client's files, a summary.csv row, TensorBoard scalars;
main rank), then the checkpoint. Logs first, checkpoint last: a run killed in between repeats this epoch, and its
rows are replaced. The client (``lib.search.epoch.SearchClient``, ``lib.retrain.epoch.RetrainClient``) says what
a step, an evaluation and a checkpoint are.
"""
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import torch

from lib.checkpoint.format import Position, gather_rank_states
from lib.checkpoint.restore import restore_rank_rng


@dataclass
class EpochStart:
    epoch: int
    start_step: int  # batches of the epoch already trained (mid-epoch resume), else 0
    global_step: int
    initial_totals: Optional[torch.Tensor]  # the running sums of those batches, mid-epoch only


@dataclass
class Evaluation:
    metric: float  # what ranks the epoch's checkpoint (EVAL_METRICS)
    row: Dict[str, Any]  # the epoch's summary.csv row and TensorBoard scalars
    details: Any = None  # whatever the client wants back in ``write_outputs`` and ``epoch_done``


class TrainingClient:
    """What the loop asks of a job; ``job`` names it in messages ('the search'), ``logger`` is the job's."""
    job = 'the run'
    logger = logging.getLogger('cream')

    def before_training(self) -> None:
        """Once, when there are epochs to train (before the RNG states are restored)."""

    def before_epoch(self, epoch: int) -> None:
        """Before the epoch's loader is positioned."""

    def train_epoch(self, start: EpochStart) -> Dict[str, Any]:  # must hold 'global_step'
        raise NotImplementedError

    def evaluate(self, epoch: int, train: Dict[str, Any]) -> Evaluation:
        raise NotImplementedError

    def write_outputs(self, epoch: int, train: Dict[str, Any], evaluation: Evaluation) -> None:
        """The client's own result files (main rank), before the summary row and the checkpoint."""

    def checkpoint(self, position: Position, metric: Optional[float], rank_states) -> Dict[str, Any]:
        raise NotImplementedError

    def rank_state(self) -> Optional[Dict[str, Any]]:
        """This rank's own state for the checkpoint (tensors on the CPU), gathered from every rank into its
        ``rank_states``; None: nothing beyond the RNG states."""
        return None

    def epoch_done(self, epoch: int, evaluation: Evaluation) -> None:
        """Every rank, after the epoch's checkpoint."""

    def finish(self, last_epoch: int, global_step: int, trained: bool) -> Dict[str, Any]:
        """What the run returns; ``trained`` is False when it had finished already."""
        raise NotImplementedError


def run_epochs(session, client: TrainingClient) -> Dict[str, Any]:
    """Train from ``session.resume`` (or the start) to ``session.num_epochs``; returns ``client.finish(...)``."""
    position = session.resume.position if session.resume is not None else Position()
    global_step = position.global_step
    epoch = position.epoch - 1
    if position.epoch >= session.num_epochs:
        client.logger.info('nothing to train: %s already finished its %d epochs', client.job, session.num_epochs)
        return client.finish(epoch, global_step, trained=False)
    client.before_training()
    restore_rank_rng(session.resume)
    for epoch in range(position.epoch, session.num_epochs):
        mid_epoch = session.resume is not None and epoch == position.epoch and position.step_in_epoch > 0
        start = EpochStart(epoch, position.step_in_epoch if mid_epoch else 0, global_step,
                           session.resume.epoch_totals if mid_epoch else None)
        client.before_epoch(epoch)
        session.train_loader.set_epoch(epoch, start_batch=start.start_step)
        train = client.train_epoch(start)
        global_step = train['global_step']
        evaluation = client.evaluate(epoch, train)
        is_best, kept = session.saver.record(evaluation.metric, epoch)
        rank_states = gather_rank_states(extra=client.rank_state())  # a collective: every rank takes part
        if session.dist.is_main:
            client.write_outputs(epoch, train, evaluation)
            session.summary.write(epoch, evaluation.row)
            session.tensorboard.scalars(evaluation.row, epoch, prefix='epoch/')
            end = Position(epoch=epoch, step_in_epoch=session.steps_per_epoch, global_step=global_step)
            session.saver.save_epoch(client.checkpoint(end, evaluation.metric, rank_states), epoch, is_best, kept)
        client.epoch_done(epoch, evaluation)
    return client.finish(epoch, global_step, trained=True)


def save_recovery(session, client: TrainingClient, position: Position, totals: torch.Tensor) -> None:
    """A mid-epoch checkpoint (RECOVERY_INTERVAL). A collective: every rank takes part."""
    rank_states = gather_rank_states(totals, extra=client.rank_state())
    if session.dist.is_main:
        session.saver.save_recovery(client.checkpoint(position, None, rank_states))
        client.logger.info('saved recovery checkpoint: epoch %d, step %d', position.epoch, position.step_in_epoch)


def train_run(run, build_session: Callable[[Any], Any], train: Callable[[Any], Dict[str, Any]]) -> Dict[str, Any]:
    """An entry script's job: build the session, write config.yaml (only once the set-up, resume included, has
    passed), ``train(session)``, and close TensorBoard however it ends."""
    session = build_session(run)
    run.save_config()
    try:
        return train(session)
    finally:
        session.tensorboard.close()
