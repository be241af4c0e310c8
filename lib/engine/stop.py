"""Stopping on SIGTERM, which cluster schedulers (SLURM preemption, Kubernetes) and torchrun send before they kill.

While the training core runs its epochs (``lib.train.loop.run_epochs``), SIGTERM is a request to stop: at the next
step boundary every rank agrees to stop (``StopOnSigterm.poll``), the core writes a recovery checkpoint and raises
``RunStopped``, which ends the script with one line saying how to resume and exit status 143, on every rank.

The decision is a collective, so that all ranks stop at the same step even when the signal reaches them at
different moments: one all-reduce of one number (this rank's flag) per step, over a CPU (gloo) group of its own,
started at a step boundary and read at the next one. It never syncs the GPU and its round trip overlaps a whole
step, so it costs next to nothing (``tools/benchmark_stop_check.py``); the stop comes one step after the signal.
Within SIGTERM_GRACE seconds of the signal the process exits in any case (a watchdog thread): a step or an epoch
end that takes longer (a long validation, a hung collective) ends the run without a new checkpoint, before the
scheduler's SIGKILL, with a line saying so. Outside the training epochs (set-up, test.py) SIGTERM ends the process
at once, as by default: nothing is lost there (every write is atomic). Under torchrun a worker stopped by another
rank's signal then sends SIGTERM to its agent (``end_the_torchrun_job``): the job ends on every node, as
preempted, rather than being restarted by agents that did not get the signal.
"""
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Optional

import torch
import torch.distributed as dist

from lib import comm

STOPPED_STATUS = 143  # 128 + SIGTERM: what a shell reports for a process ended by SIGTERM


_SIGNALLED_HERE = []  # set when this process got SIGTERM during training (not only heard of another rank's)


def end_the_torchrun_job() -> bool:
    """After a stop on another rank's SIGTERM under torchrun: SIGTERM to this worker's agent (its parent), so that
    the job ends on this node too, as the scheduler meant it to, instead of the agent taking the stop for a failure
    and restarting its workers (--max-restarts) to wait for nodes that are gone. A worker that got the signal
    itself leaves its agent alone: the signal came through it, or reached it too. Whether the agent was signalled."""
    if 'TORCHELASTIC_RUN_ID' not in os.environ or _SIGNALLED_HERE:
        return False
    agent = os.getppid()
    try:
        command = Path(f'/proc/{agent}/cmdline').read_bytes().replace(b'\0', b' ')
    except OSError:
        return False
    if b'torchrun' not in command and b'torch.distributed.run' not in command:
        return False  # another launcher in between: leave it alone
    os.kill(agent, signal.SIGTERM)
    return True


class RunStopped(BaseException):
    """The run stopped on SIGTERM with its state saved; ``str()`` says how to resume. A BaseException, as
    KeyboardInterrupt: no ``except Exception`` on the way swallows it."""


class StopOnSigterm:
    """``with StopOnSigterm(grace_s, logger) as stop:`` SIGTERM sets ``stop.requested``; ``stop.poll()`` at every step
    boundary and ``stop.poll_now()`` at an epoch end give every rank the same answer. Enter and use it on all ranks
    alike (the polls are collectives)."""

    def __init__(self, grace_s: float, logger: logging.Logger):
        self.grace_s, self.logger = grace_s, logger
        self.requested = False
        self._group = None
        self._flag: Optional[torch.Tensor] = None
        self._pending = None
        self._previous_handler = None
        self._watchdog: Optional[threading.Timer] = None

    def __enter__(self) -> 'StopOnSigterm':
        if comm.get_world_size() > 1:
            self._group = dist.new_group(backend='gloo')  # CPU tensors under any backend: no GPU sync
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._previous_handler is not None:
            # Once stopped, a further SIGTERM (torchrun passes its own on) must not cut the way out short.
            stopped = exc_type is not None and issubclass(exc_type, RunStopped)
            signal.signal(signal.SIGTERM, signal.SIG_IGN if stopped else self._previous_handler)
        if self._watchdog is not None:
            self._watchdog.cancel()
        if exc_type is None and self._pending is not None:
            self._pending.wait()  # every rank started it; on an error path a rank may be gone
        return False

    def _on_sigterm(self, signum, frame) -> None:
        if self.requested:
            return
        self.requested = True
        _SIGNALLED_HERE.append(signum)
        self.logger.warning('SIGTERM: stopping at the next step boundary with a recovery checkpoint (within '
                            'SIGTERM_GRACE %g s)', self.grace_s)
        self._watchdog = threading.Timer(self.grace_s, self._give_up)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _give_up(self) -> None:
        self.logger.error('SIGTERM: no step boundary reached within SIGTERM_GRACE %g s; exiting without a new '
                          'checkpoint. AUTO_RESUME True continues from the last saved checkpoint', self.grace_s)
        for handler in self.logger.handlers:
            handler.flush()
        os._exit(STOPPED_STATUS)

    def poll(self) -> bool:
        """At a step boundary: whether every rank stops now, i.e. whether any rank had been asked to stop by the
        previous boundary (one process: whether it has been asked)."""
        if self._group is None:
            return self.requested
        decided = False
        if self._pending is not None:
            self._pending.wait()
            decided = self._flag.item() > 0
        self._flag = torch.tensor([1.0 if self.requested else 0.0])
        self._pending = dist.all_reduce(self._flag, group=self._group, async_op=True)
        return decided

    def poll_now(self) -> bool:
        """At an epoch end: whether any rank has been asked to stop by now (waits for the answer)."""
        decided = self.poll()
        if self._pending is not None:
            self._pending.wait()
            decided = decided or self._flag.item() > 0
            self._pending = None
        return decided
