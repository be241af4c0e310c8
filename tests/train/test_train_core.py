"""The training core on its own, with a recording client: the epoch loop's order (the schedule's epoch step, the
checkpoint before the outputs, which a resumed run writes again, the hooks), a mid-epoch start from a resume point,
and the step loop's named sums, progress lines, recovery points with their loss, finiteness, and a stop on a real
SIGTERM."""
import logging
import os
import signal
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import torch

from lib.checkpoint.format import Position
from lib.checkpoint.restore import ResumePoint
from lib.engine.finite import DivergedError
from lib.engine.stop import RunStopped, StopOnSigterm, end_the_torchrun_job
from lib.train.hooks import Hook
from lib.train.loop import EpochResult, Evaluation, TrainingClient, run_epochs
from lib.train.steps import EpochStart, run_steps


class Sums(NamedTuple):
    loss: float
    images: float


class Loader(list):
    def set_epoch(self, epoch, start_batch=0):
        self.positioned = (epoch, start_batch)


class Recorder:
    def __init__(self, calls, name):
        self.calls, self.name = calls, name

    def __getattr__(self, method):
        return lambda *args, **kwargs: self.calls.append((self.name, method, args))


class Saver(Recorder):
    best = (1.0, 0)

    def record(self, metric, epoch):
        self.calls.append(('saver', 'record', (metric, epoch)))
        return True, True

    def loss_health(self, loss):
        return {'loss': loss, 'reference': 1.0}


class Client(TrainingClient):
    sums_type = Sums

    def __init__(self, calls):
        self.calls = calls

    def train_epoch(self, start):
        self.calls.append(('client', 'train', (start.epoch, start.start_step, start.global_step)))
        for step in range(start.start_step, 3):
            start.after_step(Position(start.epoch, step + 1, start.global_step + step + 1 - start.start_step))
        return EpochResult(loss=1.0, prec1=0.0, prec5=0.0, lr=0.1, img_per_sec=1.0,
                           global_step=start.global_step + 3)

    def evaluate(self, epoch, train):
        return Evaluation(float(epoch), {'loss': 1.0}, details={'epoch': epoch})

    def write_outputs(self, epoch, evaluation):
        self.calls.append(('client', 'outputs', (epoch, evaluation.details)))

    def checkpoint(self, position, metric, rank_states):
        return {'position': position}

    def finish(self, last_epoch, global_step, trained):
        return {'last_epoch': last_epoch, 'global_step': global_step, 'trained': trained}


def session(calls, resume=None, num_epochs=3):
    return SimpleNamespace(resume=resume, num_epochs=num_epochs, steps_per_epoch=3, train_loader=Loader(),
                           cfg=SimpleNamespace(SIGTERM_GRACE=30.0, LR=0.1), run_dir='run',
                           dist=SimpleNamespace(is_main=True), saver=Saver(calls, 'saver'),
                           summary=Recorder(calls, 'summary'), tensorboard=Recorder(calls, 'tensorboard'),
                           scheduler=Recorder(calls, 'scheduler'))


class RecordingHook(Hook):
    def __init__(self, calls):
        self.calls = calls

    def before_train(self, session):
        self.calls.append(('hook', 'before_train', ()))

    def after_step(self, session, position):
        self.calls.append(('hook', 'after_step', (position,)))

    def after_epoch(self, session, epoch, evaluation):
        self.calls.append(('hook', 'after_epoch', (epoch, evaluation.metric)))

    def after_train(self, session, result):
        self.calls.append(('hook', 'after_train', (result,)))


def test_every_epoch_writes_its_checkpoint_before_its_outputs_and_rows():
    """A failed checkpoint write (a full disk) stops the epoch before any result file claims it. The schedule
    takes its epoch step after the evaluation, before the checkpoint that holds it."""
    calls = []
    result = run_epochs(session(calls, num_epochs=2), Client(calls))
    assert result == {'last_epoch': 1, 'global_step': 6, 'trained': True}
    epoch0 = [(who, what) for who, what, _ in calls][:8]
    assert epoch0 == [('client', 'train'), ('scheduler', 'step_epoch'), ('saver', 'record'), ('saver', 'epoch_loss'),
                      ('saver', 'save_epoch'), ('client', 'outputs'), ('summary', 'write'), ('tensorboard', 'scalars')]
    assert [args for who, what, args in calls if what == 'step_epoch'] == [(0, 0.0), (1, 1.0)]
    saved = [args for who, what, args in calls if what == 'save_epoch']
    assert [c['position'] for c, *_ in saved] == [Position(0, 3, 3), Position(1, 3, 6)]
    assert saved[1][0]['evaluation'] == {'metric': 1.0, 'row': {'loss': 1.0}, 'details': {'epoch': 1}}
    assert saved[1][0]['loss_health'] == {'loss': 1.0, 'reference': 1.0}


def test_a_run_resumed_after_an_epoch_writes_that_epochs_outputs_again_first():
    """A run killed between an epoch's checkpoint and its outputs (or resumed from an earlier checkpoint) gets the
    outputs of the epoch it continues from, from the checkpoint, before it trains on."""
    calls = []
    stored = {'metric': 0.5, 'row': {'loss': 2.0}, 'details': {'epoch': 4}}
    resume = ResumePoint(Position(epoch=5, global_step=15), 'x', rng_state=None, epoch_totals=None, evaluation=stored)
    run_epochs(session(calls, resume=resume, num_epochs=6), Client(calls))
    assert calls[:3] == [('client', 'outputs', (4, {'epoch': 4})), ('summary', 'write', (4, {'loss': 2.0})),
                         ('client', 'train', (5, 0, 15))]


def test_a_resume_point_mid_epoch_continues_that_epoch_at_its_step():
    calls = []
    totals = torch.ones(4, dtype=torch.float64)
    resume = ResumePoint(Position(epoch=1, step_in_epoch=2, global_step=5), 'x', rng_state=None, epoch_totals=totals)
    s = session(calls, resume=resume)
    run_epochs(s, Client(calls))
    assert [args for who, what, args in calls if what == 'train'] == [(1, 2, 5), (2, 0, 8)]


def test_the_hooks_run_before_training_after_every_step_and_epoch_and_after_training():
    calls = []
    result = run_epochs(session(calls, num_epochs=2), Client(calls), hooks=[RecordingHook(calls)])
    hooks = [(what, args) for who, what, args in calls if who == 'hook']
    assert hooks == [('before_train', ()), *[('after_step', (Position(0, s, s),)) for s in (1, 2, 3)],
                     ('after_epoch', (0, 0.0)), *[('after_step', (Position(1, s, 3 + s),)) for s in (1, 2, 3)],
                     ('after_epoch', (1, 1.0)), ('after_train', (result,))]
    # after_epoch: once the epoch's checkpoint and outputs are written
    order = [(who, what) for who, what, _ in calls]
    assert order.index(('hook', 'after_epoch')) > order.index(('tensorboard', 'scalars'))


def test_a_hook_that_raises_stops_the_run_there_with_that_epochs_checkpoint_written():
    """As a crash right after the epoch's checkpoint: the next epoch never starts."""
    class CrashAfterEpoch0(Hook):
        def after_epoch(self, session, epoch, evaluation):
            raise KeyboardInterrupt

    calls = []
    with pytest.raises(KeyboardInterrupt):
        run_epochs(session(calls, num_epochs=3), Client(calls), hooks=[CrashAfterEpoch0()])
    assert [args[1] for who, what, args in calls if what == 'save_epoch'] == [0]
    assert [args for who, what, args in calls if what == 'train'] == [(0, 0, 0)]


def test_a_finished_run_trains_nothing():
    calls = []
    resume = ResumePoint(Position(epoch=3), 'x', rng_state=None, epoch_totals=None)
    assert run_epochs(session(calls, resume=resume), Client(calls)) == {'last_epoch': 2, 'global_step': 0,
                                                                          'trained': False}
    assert calls == []


def batches(n):
    return [(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long)) for _ in range(n)]


def test_the_step_loop_sums_reports_and_offers_recovery_points():
    reports, recoveries = [], []
    done = run_steps(batches(5), lambda images, target, step, updates: torch.tensor([2.0 * (step + 1), 2.0],
                                                                                      dtype=torch.float64),
                     EpochStart(0, global_step=10), sums_type=Sums, steps_per_epoch=5, device=torch.device('cpu'),
                     log_interval=2, recovery_interval=2,
                     report=lambda last, sums, n, step, updates, timer: reports.append((step, updates, last, sums)),
                     save_recovery=lambda position, totals: recoveries.append(position))
    assert done.sums == Sums(loss=30.0, images=10.0) and done.global_step == 15
    assert [r[:2] for r in reports] == [(1, 11), (2, 12), (4, 14), (5, 15)]  # first, every 2nd, last
    assert reports[1][2:] == (Sums(loss=4.0, images=2.0), Sums(loss=6.0, images=4.0))  # the step's, the epoch's
    assert recoveries == [Position(0, 2, 12), Position(0, 4, 14)]  # not at the epoch's last step


def test_a_non_finite_running_loss_stops_on_the_next_progress_line():
    values = iter([1.0, float('nan'), 1.0])
    with pytest.raises(DivergedError, match='epoch 4 step 2'):
        run_steps(batches(3), lambda *args: torch.tensor([next(values), 2.0], dtype=torch.float64), EpochStart(4),
                  sums_type=Sums, steps_per_epoch=3, device=torch.device('cpu'), log_interval=2)


def test_a_recovery_checkpoint_carries_the_running_loss_and_a_non_finite_one_is_refused():
    from lib.checkpoint.saver import CheckpointSaver
    from lib.train.loop import save_recovery
    saved = []
    saver = CheckpointSaver('run', 1, True)
    saver.save_recovery = saved.append
    saver.epoch_loss(0.5)  # a finished epoch: the healthy reference
    client = Client([])
    s = SimpleNamespace(saver=saver, dist=SimpleNamespace(is_main=True))
    save_recovery(s, client, Position(2, 3, 9), torch.tensor([6.0, 4.0], dtype=torch.float64))
    assert saved[0]['loss_health'] == {'loss': 1.5, 'reference': 0.5} and saved[0]['position'] == Position(2, 3, 9)
    with pytest.raises(DivergedError, match='training loss became inf by epoch 2 step 4'):
        save_recovery(s, client, Position(2, 4, 10), torch.tensor([float('inf'), 4.0], dtype=torch.float64))
    assert len(saved) == 1


def test_a_real_sigterm_stops_at_the_next_step_boundary_with_a_recovery_checkpoint():
    saved = []

    def step(images, target, step_no, updates):
        if step_no == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # arrives during the second step
        return torch.tensor([2.0, 2.0], dtype=torch.float64)

    previous = signal.getsignal(signal.SIGTERM)
    with StopOnSigterm(30.0, logging.getLogger('cream.test')) as stop:
        with pytest.raises(RunStopped, match='stopped on SIGTERM at epoch 0, step 2 of 5'):
            run_steps(batches(5), step, EpochStart(0, stop=stop), sums_type=Sums, steps_per_epoch=5,
                      device=torch.device('cpu'), log_interval=100, recovery_interval=0,
                      save_recovery=lambda position, totals: saved.append(position))
    assert saved == [Position(0, 2, 2)]
    assert signal.getsignal(signal.SIGTERM) is previous  # put back after training


def test_after_a_stop_sigterm_is_ignored_on_the_way_out_and_otherwise_put_back(monkeypatch):
    """Once stopped, the process only saves and exits: a SIGTERM that torchrun passes on then must not cut that
    short. The agent is signalled only by a worker under torchrun (a parent that is not torchrun is left alone)."""
    previous = signal.getsignal(signal.SIGTERM)
    with StopOnSigterm(30.0, logging.getLogger('cream.test')):
        pass
    assert signal.getsignal(signal.SIGTERM) is previous
    try:
        with pytest.raises(RunStopped):
            with StopOnSigterm(30.0, logging.getLogger('cream.test')):
                raise RunStopped('stopped on SIGTERM at epoch 0, step 2 of 5')
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert not end_the_torchrun_job()  # not under torchrun
    monkeypatch.setenv('TORCHELASTIC_RUN_ID', 'job')
    assert not end_the_torchrun_job()  # under torchrun's variables, but the parent is pytest
