"""The LR schedules of both jobs behind one small protocol (``LRSchedule``), so that the epoch loop and a resume
with another LR (``lib.checkpoint.restore.rescale_lr``) treat them alike.

The search's ``LinearToZero`` is torch's ``LambdaLR`` (the original's); the retraining's ``TimmSchedule`` wraps
timm's scheduler (SCHED), ``FixedLR`` stands for SCHED none. The per-update step stays inside each job's training
step, as each original has it (``search_step``: ``scheduler.step()``; ``retrain_step``:
``scheduler.step_update(updates)``), which the step-equivalence tests pin; the epoch's step is taken in one place,
``lib.train.loop``, after the epoch's evaluation and before its checkpoint. ``state_dict`` is the wrapped
scheduler's own, so checkpoints keep their format.
"""
from typing import Any, Dict, Optional, Sequence

import torch

from lib.checkpoint.format import Position


class LRSchedule:
    """What the core asks of a schedule."""

    def step_epoch(self, epoch: int, metric: Optional[float]) -> None:
        """Epoch ``epoch`` is trained and evaluated (``metric``: its EVAL_METRICS value): set the next epoch's LR."""

    def jump_to(self, position: Position) -> None:
        """A fresh schedule continuing at ``position`` (a released checkpoint: no schedule state to load)."""

    def rescale(self, factor: float, groups: Sequence[int]) -> None:
        """Multiply every LR the schedule will still give the param groups ``groups`` by ``factor`` (the groups'
        current LRs are the caller's)."""

    def state_dict(self) -> Optional[Dict[str, Any]]:
        return None

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        pass


class FixedLR(LRSchedule):
    """SCHED none: the LR stays as set; checkpoints hold no schedule (``state_dict`` None)."""

    def step_update(self, num_updates: int) -> None:
        pass


class LinearToZero(torch.optim.lr_scheduler.LambdaLR, LRSchedule):
    """The search's schedule: every group's LR falls linearly from its initial value to 0 over ``total_steps``
    optimizer steps; ``step()`` once per update (it counts them in ``last_epoch``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int):
        super().__init__(optimizer, _linear_to_zero(total_steps))

    def step_epoch(self, epoch: int, metric: Optional[float]) -> None:
        pass  # a function of the update count only

    def jump_to(self, position: Position) -> None:
        self.last_epoch = position.global_step - 1
        self.step()

    def rescale(self, factor: float, groups: Sequence[int]) -> None:
        for i in groups:
            self.base_lrs[i] *= factor
            self._last_lr[i] *= factor


def _linear_to_zero(total_steps: int):
    def factor(step: int) -> float:
        return max(0.0, 1.0 - step / total_steps)
    return factor


class TimmSchedule(LRSchedule):
    """timm's scheduler (``timm.scheduler.Scheduler``): a function of the epoch and, within it, of the update
    count that the training code passes in."""

    def __init__(self, scheduler):
        self.scheduler = scheduler

    def step_update(self, num_updates: int) -> None:
        self.scheduler.step_update(num_updates=num_updates)

    def step_epoch(self, epoch: int, metric: Optional[float]) -> None:
        self.scheduler.step(epoch + 1, metric)

    def jump_to(self, position: Position) -> None:
        # timm schedules are functions of their counter: this sets the LR of that point, as timm's train does.
        self.scheduler.step(position.epoch)
        self.scheduler.step_update(position.global_step)

    def rescale(self, factor: float, groups: Sequence[int]) -> None:
        s = self.scheduler
        for i in groups:
            s.base_values[i] *= factor
        if getattr(s, 'warmup_t', 0) and hasattr(s, 'warmup_steps'):  # the warm-up slope, from base_values
            s.warmup_steps = [(v - s.warmup_lr_init) / s.warmup_t for v in s.base_values]

    def state_dict(self) -> Dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)
