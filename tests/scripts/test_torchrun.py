"""train.py and retrain.py under real torchrun agents on 127.0.0.1 (c10d rendezvous, gloo, one process per agent,
as two nodes): a worker killed mid-epoch and restarted by torchrun ends as an uninterrupted run (issue 25, item 1);
SIGTERM to one agent stops every rank with a recovery checkpoint and the same command continues exactly (2); a node
that leaves an elastic job for good stops it with one line (3); a rank that never arrives is one error in bounded
time with nothing written (4)."""
import csv
import os
import signal
from pathlib import Path

import pytest
import torch

from tests.support.processes import Running, retrain_args, script_env

pytestmark = pytest.mark.slow

# Kills, in the first start of the job only (TORCHELASTIC_RESTART_COUNT 0), this worker (CREAM_TEST_KILL 'worker')
# or its whole node, agent and worker (CREAM_TEST_KILL 'node'), with SIGKILL when it has trained CREAM_TEST_KILL_AT
# steps. Only the agent given these variables passes them to its worker.
DRIVER = '''
import os, runpy, signal, sys
import lib.train.progress as progress
steps, real_fetching = [], progress.StepTimer.fetching
def fetching(self):
    steps.append(1)
    if str(len(steps)) == os.environ.get('CREAM_TEST_KILL_AT') and os.environ['TORCHELASTIC_RESTART_COUNT'] == '0':
        print('KILLED at step', len(steps), flush=True)
        if os.environ['CREAM_TEST_KILL'] == 'node':
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
    real_fetching(self)
progress.StepTimer.fetching = fetching
script = sys.argv.pop(1)
sys.argv[0] = script
runpy.run_path(script, run_name='__main__')
'''

# The search of tests/scripts/test_train.py on 3 classes x 12 images: 9 steps of 2 + 2 per epoch on two processes.
SEARCH = {'FLOPS_MAXIMUM': 6, 'WORKERS': 0, 'EPOCHS': 2, 'DATASET.BATCH_SIZE': 2, 'DATASET.NUM_CLASSES': 3,
          'DATASET.VAL_BATCH_MUL': 2, 'DATASET.GENERATE_DEMO': False, 'LOG_INTERVAL': 1, 'LR': 0.05,
          'SUPERNET.SLICE': 1, 'SUPERNET.POOL_SIZE': 2, 'SUPERNET.META_STA_EPOCH': 0, 'SUPERNET.UPDATE_ITER': 2,
          'DETERMINISTIC': True, 'RECOVERY_INTERVAL': 4}
RETRAIN = {'EPOCHS': 2, 'DETERMINISTIC': True, 'RECOVERY_INTERVAL': 2}  # 2 classes x 10 images: 5 steps per epoch


@pytest.fixture(scope='module')
def data(demo_data):
    return {'search': demo_data(classes=3, train=12, val=2, size=32),
            'retrain': demo_data(classes=2, train=10, val=1, size=32)}


def search_args(out, data, **extra):
    opts = dict(SEARCH, OUTPUT=out, DATA_DIR=data, **extra)
    return ['train.py', '--cfg', 'configs/demo/train.yaml', *[str(x) for kv in opts.items() for x in kv]]


def retraining_args(out, data, **extra):
    return retrain_args(out, data, **dict(RETRAIN, **extra))


_STARTED = []


def _kill_tree(pid):
    """SIGKILL ``pid`` and its descendants, each with its process group (torchrun starts every worker in a session
    of its own)."""
    try:
        children = Path(f'/proc/{pid}/task/{pid}/children').read_text().split()
    except OSError:
        children = []
    for child in children:
        _kill_tree(int(child))
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """SIGKILL every process a test started (an agent with its workers) that a failed test left running."""
    yield
    while _STARTED:
        agent = _STARTED.pop()
        if agent.proc.poll() is None:
            _kill_tree(agent.pid)
        agent.proc.wait(timeout=60)


def agent(args, port, tmp_path, *, nnodes='2', restarts=1, rdzv_conf='', **env):
    """One torchrun agent (a node) of one process running ``args`` (a script and its options) through the driver."""
    driver = tmp_path / 'driver.py'
    driver.write_text(DRIVER)
    command = ['-m', 'torch.distributed.run', '--nnodes', nnodes, '--nproc-per-node', '1', '--rdzv-backend', 'c10d',
               '--rdzv-endpoint', f'127.0.0.1:{port}', '--rdzv-id', 'cream-test', '--max-restarts', str(restarts),
               *(['--rdzv-conf', rdzv_conf] if rdzv_conf else []), str(driver), *args]
    started = Running(command, env=script_env(**{k: str(v) for k, v in env.items()}), start_new_session=True)
    _STARTED.append(started)
    return started


def two_agents(args, port, tmp_path, second_env=None, rdzv_conf='', **options):
    """Two nodes of one job, started together; the first hosts the rendezvous (the second is told it does not), so
    the second is the one a test may take away."""
    first = agent(args, port, tmp_path, rdzv_conf=rdzv_conf, **options)
    second_conf = ','.join(filter(None, [rdzv_conf, 'is_host=0']))
    return first, agent(args, port, tmp_path, rdzv_conf=second_conf, **options, **(second_env or {}))


def finish(agents, timeout=240):
    return [a.finish(timeout=timeout) for a in agents]


def outputs(agents):
    return '\n=====\n'.join(a.output() for a in agents)


def worker_tracebacks(agents):
    """The tracebacks of the workers (torchrun prefixes their stderr lines with [rankN]:; the agents' own
    ChildFailedError and SignalException tracebacks are torchrun's)."""
    return [line for a in agents for line in a.out + a.err if line.startswith('[rank') and 'Traceback' in line]


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def summary_rows(run_dir):
    with open(run_dir / 'summary.csv', newline='') as f:
        return [{k: v for k, v in row.items() if k != 'img_per_sec'} for row in csv.DictReader(f)]


def standalone(args):
    """The same job uninterrupted: one agent, two processes (the same world size); started beside the job under
    test, to share its waits."""
    run = Running(['-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2', *args],
                  start_new_session=True)
    _STARTED.append(run)
    return run


def assert_same_run(run_dir, whole_dir, state_keys):
    resumed, whole = load(run_dir / 'last.pth.tar'), load(whole_dir / 'last.pth.tar')
    for key in state_keys:
        assert resumed[key].keys() == whole[key].keys()
        for name, value in whole[key].items():
            assert torch.equal(resumed[key][name], value), (key, name)
    assert summary_rows(run_dir) == summary_rows(whole_dir)
    return resumed, whole


def test_a_worker_killed_mid_epoch_is_restarted_by_torchrun_and_the_search_ends_as_if_uninterrupted(
        data, tmp_path, free_port):
    whole = standalone(search_args(tmp_path / 'whole', data['search']))
    args = search_args(tmp_path, data['search'])  # no AUTO_RESUME: a restart turns it on
    agents = two_agents(args, free_port, tmp_path, second_env={'CREAM_TEST_KILL': 'worker', 'CREAM_TEST_KILL_AT': 6})
    assert finish(agents) == [0, 0], outputs(agents)
    assert whole.finish() == 0, whole.output()
    log = '\n'.join(agents[0].out + agents[1].out)
    assert 'KILLED at step 6' in log and 'lost another process of the job' in log
    assert 'torchrun restarted this job (restart 1 of 1): AUTO_RESUME True and OVERWRITE False' in log
    assert 'recovery.pth.tar: epoch 0, step 4 of 9' in log  # the newest checkpoint, a mid-epoch one
    assert not worker_tracebacks(agents), outputs(agents)

    run_dir, whole_dir = tmp_path / 'demo_search', tmp_path / 'whole' / 'demo_search'
    resumed, whole = assert_same_run(run_dir, whole_dir, ('state_dict', 'mmn'))
    assert len(whole['board']['entries']) == 2
    for a, b in zip(resumed['board']['entries'], whole['board']['entries']):
        assert a['path'] == b['path'] and torch.equal(a['probe_images'], b['probe_images'])
    for rank_a, rank_b in zip(resumed['rank_states'], whole['rank_states']):  # every process's own board probes
        for a, b in zip(rank_a['extra']['board_probes'], rank_b['extra']['board_probes']):
            assert all(torch.equal(x, y) for x, y in zip(a.values(), b.values()))
    best = [(d / 'best_arch.yaml').read_text().splitlines() for d in (run_dir, whole_dir)]
    assert [line for line in best[0] if str(run_dir) not in line] == \
        [line for line in best[1] if str(whole_dir) not in line]


def test_sigterm_to_one_agent_stops_every_rank_with_a_recovery_checkpoint_and_the_same_command_continues(
        data, tmp_path, free_port):
    whole = standalone(retraining_args(tmp_path / 'whole', data['retrain']))
    args = retraining_args(tmp_path, data['retrain'], AUTO_RESUME=True)
    agents = two_agents(args, free_port, tmp_path)
    agents[0].wait_for('Train: 0 [2/5]')
    agents[1].signal(signal.SIGTERM)  # as a scheduler preempting one node: torchrun passes it to its worker
    finish(agents)  # the other node's agent ends too (its worker tells it), rather than restarting to wait
    stopped = [line for a in agents for line in a.out if 'stopped on SIGTERM' in line]
    assert len(stopped) == 2 and len(set(line.split('] ', 1)[1] for line in stopped)) == 1, outputs(agents)
    assert 'with a recovery checkpoint of that point' in stopped[0] or 'whose checkpoint holds' in stopped[0]
    assert not worker_tracebacks(agents), outputs(agents)
    assert not any(' ERROR ' in line for a in agents for line in a.out), outputs(agents)

    again = two_agents(args, free_port, tmp_path)  # the job started again: the same command
    assert finish(again) == [0, 0], outputs(again)
    assert 'resuming from' in '\n'.join(again[0].out + again[1].out)
    assert whole.finish() == 0, whole.output()
    assert_same_run(tmp_path / 'run', tmp_path / 'whole' / 'run', ('state_dict', 'state_dict_ema'))


def test_a_node_that_leaves_an_elastic_job_for_good_stops_it_with_one_line(data, tmp_path, free_port):
    """After epoch 0's checkpoint (no recovery checkpoints) a node dies; torchrun restarts the job on the node left,
    which would go on with half the global batch: it stops, saying how to go on."""
    args = retraining_args(tmp_path, data['retrain'], RECOVERY_INTERVAL=0)
    conf = 'last_call_timeout=10,keep_alive_interval=1,keep_alive_max_attempt=2'
    agents = two_agents(args, free_port, tmp_path, nnodes='1:2', rdzv_conf=conf,
                        second_env={'CREAM_TEST_KILL': 'node', 'CREAM_TEST_KILL_AT': 7})  # epoch 1, step 2 of 5
    assert agents[0].finish() != 0, agents[0].output()
    refusal = [line for line in agents[0].err if line.startswith('error: cannot resume')]
    assert refusal and set(refusal) == {
        f'error: cannot resume from {tmp_path}/run/last.pth.tar on 1 process(es): it was trained by 2 process(es) '
        '(a global batch of 4 images per step), and a run continues on the world size it started with. Start it '
        'again on 2 process(es) (torchrun --nnodes x --nproc-per-node = 2), or start a new run (another MODEL) on '
        'this one'}, agents[0].output()
    assert load(tmp_path / 'run' / 'last.pth.tar')['epoch'] == 0  # nothing trained on one process


@pytest.mark.parametrize('present', [0, 1])
def test_a_rank_that_never_arrives_is_one_error_in_bounded_time_and_nothing_is_written(data, tmp_path, free_port,
                                                                                       present):
    """Two processes launched as a scheduler launches them (rank in the environment); only one of them comes."""
    env = script_env(RANK=str(present), LOCAL_RANK='0', WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
                     MASTER_PORT=str(free_port))
    alone = Running(retraining_args(tmp_path, data['retrain'], DIST_INIT_TIMEOUT=3), env=env)
    _STARTED.append(alone)
    assert alone.finish(timeout=120) == 2, alone.output()
    assert len(alone.err) == 1, alone.output()
    if present == 0:
        assert alone.err[0].startswith('error: rank 1 of the 2 process(es) never joined the job within '
                                       'DIST_INIT_TIMEOUT 3 s; nothing was written.')
    else:
        assert alone.err[0].startswith(f'error: rank 0 did not open the job\'s store at MASTER_ADDR:MASTER_PORT '
                                       f'127.0.0.1:{free_port} within DIST_INIT_TIMEOUT 3 s; nothing was written.')
    assert not (tmp_path / 'run').exists()
