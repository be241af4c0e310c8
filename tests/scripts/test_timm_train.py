"""timm's own train.py (a copy in tests/timm_train, Apache-2.0) trains a cream model for an epoch on tiny data
once ``lib.models`` is imported; its checkpoint loads in timm and in our loader alike."""
import csv
import os
import subprocess
import sys

import pytest
import timm
import torch

from lib.models import create_model

pytestmark = pytest.mark.process

TIMM_TRAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'timm_train', 'train.py')
# What a user types: import lib.models (registers cream_*), then timm's script as __main__.
LAUNCH = ("import sys, runpy; import lib.models; sys.argv = ['train.py'] + sys.argv[1:]; "
          f"runpy.run_path({TIMM_TRAIN!r}, run_name='__main__')")


def test_timm_train_py_trains_cream_043_for_an_epoch(repo_root, tmp_path, demo_data):
    data = demo_data(classes=2, train=2, val=1, size=32)
    args = ['--data-dir', data, '--train-split', 'train', '--val-split', 'val', '--model', 'cream_043',
            '--num-classes', '2', '--input-size', '3', '32', '32', '--epochs', '1', '--warmup-epochs', '0',
            '-b', '4', '--device', 'cpu', '--workers', '0', '--no-prefetcher', '--log-interval', '1',
            '--output', str(tmp_path / 'out'), '--experiment', 'cream043']
    env = dict(os.environ, PYTHONPATH=str(repo_root), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', LAUNCH, *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = tmp_path / 'out' / 'cream043'
    with open(run_dir / 'summary.csv', newline='') as f:
        rows = list(csv.DictReader(f))
    assert [row['epoch'] for row in rows] == ['0'] and float(rows[0]['train_loss']) > 0

    checkpoint = str(run_dir / 'last.pth.tar')
    ours = create_model(43, num_classes=2, checkpoint=checkpoint)  # safe loader: timm's args Namespace is data
    theirs = timm.create_model('cream_043', num_classes=2, checkpoint_path=checkpoint).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
