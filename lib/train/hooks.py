"""Hooks: code that runs at fixed points of the training core, for either job (detectron2's ``HookBase``).

The core (``lib.train.loop.run_epochs``) calls every hook it is given (a ``Hooks`` list), in order, at:

``before_train(session)``                 once, when there are epochs to train, before the first step
``after_step(session, position)``         after every step, once its recovery checkpoint (if due) is written;
                                          ``position`` counts that step (``step_in_epoch`` steps of the epoch done)
``after_epoch(session, epoch, evaluation)`` every rank, after the epoch's checkpoint and outputs are written
``after_train(session, result)``          once the last epoch is done (not when the run stops or fails, nor
                                          when it had no epoch left to train: then no hook runs)

After the given hooks the core adds its own: ``lib.train.loop.StopBetweenEpochs`` (a SIGTERM stops the run after
the epoch's checkpoint). A hook that raises stops the run there, as a crash or Ctrl-C at that point would: tests
use this to interrupt a run right after a checkpoint, tools to watch a run. ``train.py`` and ``retrain.py`` take
hooks through ``main(argv, hooks=...)``.
"""
from typing import Any, Iterable, Optional

from lib.checkpoint.format import Position


class Hook:
    """Override the points you need; the others do nothing."""

    def before_train(self, session) -> None:
        pass

    def after_step(self, session, position: Position) -> None:
        pass

    def after_epoch(self, session, epoch: int, evaluation) -> None:
        pass

    def after_train(self, session, result: Any) -> None:
        pass


class Hooks(list):
    """The session's hooks, called in order."""

    def __init__(self, hooks: Optional[Iterable[Hook]] = None):
        super().__init__(hooks or ())

    def before_train(self, session) -> None:
        for hook in self:
            hook.before_train(session)

    def after_step(self, session, position: Position) -> None:
        for hook in self:
            hook.after_step(session, position)

    def after_epoch(self, session, epoch: int, evaluation) -> None:
        for hook in self:
            hook.after_epoch(session, epoch, evaluation)

    def after_train(self, session, result: Any) -> None:
        for hook in self:
            hook.after_train(session, result)
