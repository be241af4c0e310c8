"""retrain.py as real processes under real signals: SIGTERM (a scheduler's preemption) stops the run at the next
step boundary with a recovery checkpoint and a line saying how to resume (one process, a whole process group
with loader workers, two gloo ranks of which only one is signalled), or at SIGTERM_GRACE without one; Ctrl-C
during a checkpoint write finishes it, twice abandons it; a second run into a running run's folder is refused,
and a run killed with SIGKILL leaves no stale lock."""
import json
import os
import re
import signal
import socket
import time

import pytest
import torch

import retrain
from lib.engine.guard import exit_on_error
from lib.engine.run_lock import LOCK_FILE
from tests.support.processes import Running, retrain_args, script_env

pytestmark = pytest.mark.process

STEPS = 50  # per epoch: 100 training images in batches of 2 (25 for two ranks)


@pytest.fixture(scope='module')
def data(demo_data):
    return demo_data(classes=2, train=50, val=1, size=32)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def stopped_line(run):
    return next(line for line in run.out if 'stopped on SIGTERM' in line)


def stop_point(run, run_dir, steps=STEPS):
    """Where the run says it stopped, checked against the checkpoint that holds it: 'epoch E, step S of N' (a
    recovery checkpoint, the signal came during the steps) or 'epoch E+1, step 0 of N' (the epoch's checkpoint,
    the signal came during the epoch's end), as a resume reports it."""
    line = stopped_line(run)
    assert f'in {run_dir}; run the same command with AUTO_RESUME True to continue' in line
    during = re.search(rf'stopped on SIGTERM at epoch (\d+), step (\d+) of {steps}, with a recovery checkpoint', line)
    if during:
        checkpoint = load(run_dir / 'recovery.pth.tar')
        assert (checkpoint['epoch'], checkpoint['step_in_epoch']) == tuple(map(int, during.groups()))
        return f'recovery.pth.tar: epoch {during[1]}, step {during[2]} of {steps}'
    after = re.search(r'stopped on SIGTERM after epoch (\d+), whose checkpoint holds that point', line)
    assert after, line
    assert load(run_dir / 'last.pth.tar')['epoch'] == int(after[1]) and not (run_dir / 'recovery.pth.tar').exists()
    return f'last.pth.tar: epoch {int(after[1]) + 1}, step 0 of {steps}'


def test_one_run_per_folder_sigterm_saves_and_resumes_and_a_kill_leaves_no_stale_lock(data, tmp_path, capsys):
    run_dir = tmp_path / 'run'
    first = Running(retrain_args(tmp_path, data))
    first.wait_for('Train: 0 [ 2/50]')
    config = (run_dir / 'config.yaml').read_bytes()

    with pytest.raises(SystemExit) as second:  # the same job submitted again (this process)
        exit_on_error(retrain.main, retrain_args(tmp_path, data, AUTO_RESUME=True)[1:])
    assert second.value.code == 2 and capsys.readouterr().err == f'{second.value}\n'
    assert str(second.value).startswith(f'error: {run_dir} is in use by another run: retrain (pid {first.pid} on host '
                                        f'{socket.gethostname()}, started ')
    assert 'nothing was changed' in str(second.value) and (run_dir / 'config.yaml').read_bytes() == config

    first.signal(signal.SIGTERM)
    assert first.finish() == 143, first.output()
    resume_point = stop_point(first, run_dir)
    assert 'Traceback' not in '\n'.join(first.err) and (run_dir / LOCK_FILE).read_bytes() == b''
    modes = {p.name: p.stat().st_mode & 0o777 for p in run_dir.glob('*.pth.tar')}
    assert modes and set(modes.values()) == {0o666 & ~_umask()}  # checkpoints honour the umask

    killed = Running(retrain_args(tmp_path, data, AUTO_RESUME=True))
    assert resume_point in killed.wait_for('resuming from')  # where the first run stopped
    killed.signal(signal.SIGKILL)  # no handler, no cleanup: the lock dies with the process
    assert killed.finish() == -signal.SIGKILL

    epoch = int(re.search(r'epoch (\d+)', resume_point)[1])
    retrain.main(retrain_args(tmp_path, data, AUTO_RESUME=True, EPOCHS=epoch + 1)[1:])  # the folder is free again
    assert json.loads((run_dir / 'results.json').read_text())['epoch'] == epoch


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sigterm_to_the_whole_process_group_keeps_the_loader_workers_until_the_state_is_saved(data, tmp_path):
    """SLURM signals every process of a job step, the loader's workers too: they serve on until the run has
    saved its state and shut them down; nothing of the group is left afterwards."""
    run = Running(retrain_args(tmp_path, data, WORKERS=2), start_new_session=True)
    run.wait_for('Train: 0 [ 2/50]')
    os.killpg(run.pid, signal.SIGTERM)
    assert run.finish() == 143, run.output()
    stop_point(run, tmp_path / 'run')
    assert not any('DataLoader worker' in line or 'Traceback' in line for line in run.err), run.output()
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # the workers are gone with it
            os.killpg(run.pid, 0)
            time.sleep(0.1)


def another_free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def two_ranks(args, port):
    """The two ranks of a gloo run, launched as a scheduler launches tasks (one process each, rank in the env)."""
    return [Running(args, env=script_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE='2',
                                         MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port)))
            for rank in (0, 1)]


def test_two_ranks_stop_together_when_only_one_is_signalled_and_a_second_run_stops_on_every_rank(data, tmp_path,
                                                                                                free_port):
    run_dir = tmp_path / 'run'
    ranks = two_ranks(retrain_args(tmp_path, data), free_port)
    ranks[0].wait_for('Train: 0 [ 2/25]')

    for rank in ranks:  # held still (the lock with them) while the second run tries: it gets the cores
        rank.signal(signal.SIGSTOP)
    others = two_ranks(retrain_args(tmp_path, data, AUTO_RESUME=True), another_free_port())
    refusals = [(other.finish(), other.err) for other in others]
    for rank in ranks:
        rank.signal(signal.SIGCONT)
    assert refusals[0][0] == refusals[1][0] == 2, [other.output() for other in others]
    assert refusals[0][1] == refusals[1][1] and len(refusals[0][1]) == 1  # every rank: the same one line
    assert refusals[0][1][0].startswith(f'error: {run_dir} is in use by another run: retrain (pid {ranks[0].pid} ')

    ranks[1].signal(signal.SIGTERM)  # the signal reaches one rank only
    assert [rank.finish() for rank in ranks] == [143, 143], [rank.output() for rank in ranks]
    assert stop_point(ranks[0], run_dir, steps=25) == stop_point(ranks[1], run_dir, steps=25)  # every rank alike
    saved = load(run_dir / ('recovery.pth.tar' if (run_dir / 'recovery.pth.tar').exists() else 'last.pth.tar'))
    assert saved['world_size'] == 2 and len(saved['rank_states']) == 2


DRIVER = '''
import sys, time
sys.argv[0] = 'retrain.py'
import retrain, torch
from lib.engine.guard import exit_on_error
hooks = []
{patch}
exit_on_error(lambda argv: retrain.main(argv, hooks=hooks), sys.argv[1:])
'''

SLOW_STEP = '''
from lib.train.hooks import Hook
class SlowStep(Hook):  # stuck in the step loop after step 2, before step 3
    def after_step(self, session, position):
        if position.step_in_epoch == 2:
            print('SLOW STEP', flush=True)
            time.sleep(120)
hooks.append(SlowStep())
'''

SLOW_WRITE = '''
real_save = torch.save
class SlowFile:
    def __init__(self, f): self.f, self.first = f, True
    def write(self, data):
        if self.first:
            self.first = False
            print('WRITING CHECKPOINT', flush=True)
            time.sleep(3)
        return self.f.write(data)
    def flush(self): return self.f.flush()
torch.save = lambda obj, f, *args, **kwargs: real_save(obj, SlowFile(f), *args, **kwargs)
'''


def driven(patch, args):
    return Running(['-c', DRIVER.format(patch=patch), *args[1:]])


def test_sigterm_ends_a_run_stuck_in_a_step_at_the_grace_time_without_a_new_checkpoint(data, tmp_path):
    run = driven(SLOW_STEP, retrain_args(tmp_path, data, SIGTERM_GRACE=2))
    run.wait_for('SLOW STEP')
    run.signal(signal.SIGTERM)
    assert run.finish(timeout=60) == 143, run.output()  # the step would have slept 120 s
    assert any('no step boundary reached within SIGTERM_GRACE 2 s; exiting without a new checkpoint' in line
               for line in run.out), run.output()
    assert not (tmp_path / 'run' / 'recovery.pth.tar').exists()


@pytest.mark.parametrize('presses', [1, 2])
def test_ctrl_c_during_a_checkpoint_write_finishes_it_and_twice_abandons_it(data, tmp_path, presses):
    run_dir = tmp_path / 'run'
    run = driven(SLOW_WRITE, retrain_args(tmp_path, data, RECOVERY_INTERVAL=2))
    run.wait_for('WRITING CHECKPOINT')  # the recovery checkpoint of step 2, inside torch's zip writer
    run.signal(signal.SIGINT)
    if presses == 2:
        time.sleep(0.5)
        run.signal(signal.SIGINT)
    assert run.finish() == 130, run.output()
    assert not any('Traceback' in line for line in run.err), run.output()
    assert [line for line in run.out if 'interrupted' in line][0].endswith(
        'retraining interrupted; AUTO_RESUME True continues from the last saved checkpoint')
    assert not [p.name for p in run_dir.iterdir() if '.tmp' in p.name]
    if presses == 2:  # abandoned: the file was never there
        assert not (run_dir / 'recovery.pth.tar').exists()
    else:  # finished, whole
        assert load(run_dir / 'recovery.pth.tar')['step_in_epoch'] == 2
