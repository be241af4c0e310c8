"""retrain.py on a full disk, as a real process whose writes the kernel refuses: a file-size limit (RLIMIT_FSIZE,
``ulimit -f``) makes every write past 1 MB fail with EFBIG, as ENOSPC fails them on a full disk, through the same
writer (torch's zip writer included). The small files (log, summary.csv, results.json) still fit and the
checkpoints (13 MB) do not: exactly the case where a result file could claim an epoch whose checkpoint is missing.
The error is one line naming the file, the earlier checkpoints are intact, and nothing claims the epoch, also when
the run is resumed on the still-full disk."""
import csv
import json
import resource

import pytest

import retrain
from tests.support.processes import Running, retrain_args

pytestmark = pytest.mark.process

LIMIT = 1 << 20  # bytes per file


@pytest.fixture(scope='module')
def data(demo_data):
    return demo_data(classes=2, train=2, val=1, size=32)


def args(out, data, **extra):
    return retrain_args(out, data, **{'EPOCHS': 1, **extra})[1:]


def limited():
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def epochs_claimed(run_dir):
    with open(run_dir / 'summary.csv', newline='') as f:
        rows = [int(row['epoch']) for row in csv.DictReader(f)]
    return rows, json.loads((run_dir / 'results.json').read_text())['epoch']


def test_a_full_disk_is_one_error_line_keeps_the_checkpoints_and_no_result_claims_the_lost_epoch(data, tmp_path,
                                                                                                 repo_root):
    run_dir = tmp_path / 'run'
    retrain.main(args(tmp_path, data))  # epoch 0, with room
    kept = {p.name: p.read_bytes() for p in run_dir.glob('*.pth.tar')}
    assert sorted(kept) == ['best.pth.tar', 'checkpoint-0.pth.tar', 'last.pth.tar'] and \
        len(kept['last.pth.tar']) > LIMIT

    for attempt in range(2):  # the resumed run on the still-full disk claims nothing either
        full = Running(['retrain.py', *args(tmp_path, data, AUTO_RESUME=True, EPOCHS=2)], preexec_fn=limited)
        assert full.finish() == 2, full.output()
        assert full.err == [f'error: cannot write {run_dir / "last.pth.tar"}: the file-size limit (ulimit -f) is '
                            f'reached (File too large) in {run_dir}. Files written before, the previous version of '
                            'this one included, are intact; free space there (or write to another disk) and run '
                            'again: a training run continues from its last checkpoint with AUTO_RESUME True'], attempt
        assert {p.name: p.read_bytes() for p in run_dir.glob('*.pth.tar')} == kept
        assert epochs_claimed(run_dir) == ([0], 0)
        assert not [p.name for p in run_dir.iterdir() if '.tmp' in p.name]
        assert 'Traceback' not in (run_dir / 'retrain.log').read_text()

    retrain.main(args(tmp_path, data, AUTO_RESUME=True, EPOCHS=2))  # room again: epoch 1 goes on from epoch 0
    assert epochs_claimed(run_dir) == ([0, 1], 1)
