"""test.py end to end on the reference checkpoint and tiny generated data."""
import json
import os
import subprocess
import sys

from pathlib import Path

import pytest
import torch

from lib.engine.evaluate import evaluate
from lib.errors import CreamError
from tests.support.scripts_as_modules import load_script

# Loaded by path: ``import test`` could find the standard library's test package.
REPO = Path(__file__).resolve().parents[2]
test_script = load_script('test.py')


def run_test(tmp_path, data, checkpoint, *overrides, name='t'):
    argv = ['--cfg', str(REPO / 'configs/test.yaml'), 'DATA_DIR', str(data), 'MODEL_SELECTION', '14',
            'RESUME_PATH', str(checkpoint), 'OUTPUT', str(tmp_path), 'MODEL', name, 'WORKERS', '0',
            'DEVICE', 'cpu', 'LOG_INTERVAL', '1', *overrides]
    results = test_script.main(argv)
    saved = json.loads((tmp_path / name / 'test_results.json').read_text())
    assert saved['prec1'] == results['prec1']
    assert (tmp_path / name / 'config.yaml').exists()
    return results


def test_official_checkpoint_ema_and_raw(tmp_path, tiny_imagefolder, official):
    ema = run_test(tmp_path, tiny_imagefolder, official, name='ema')
    raw = run_test(tmp_path, tiny_imagefolder, official, 'NET.EMA.USE', 'False', name='raw')
    assert ema['images'] == raw['images'] == 9
    assert 'ema' in ema['weights'] and 'ema' not in raw['weights']
    assert ema['loss'] != raw['loss']
    assert ema['resolution'] == 64
    assert abs(ema['macs_M'] - 14.418) / 14.418 < 0.01


def test_tta_amp_and_channels_last(tmp_path, tiny_imagefolder, official, monkeypatch):
    plain = run_test(tmp_path, tiny_imagefolder, official, name='plain')
    fast = run_test(tmp_path, tiny_imagefolder, official, 'AMP', 'True', 'CHANNELS_LAST', 'True', name='fast')
    assert abs(fast['loss'] - plain['loss']) < 0.05 * plain['loss']
    # The reference checkpoint's random weights give logits that barely depend on the input, so TTA's effect on
    # the loss is invisible here; the evaluator's TTA maths is tested in tests/engine/test_evaluate.py. Here:
    # test.py hands TTA to the evaluator and records it.
    seen = []
    def spy(*args, **kwargs):
        seen.append(kwargs['tta'])
        return evaluate(*args, **kwargs)
    monkeypatch.setattr(test_script, 'evaluate', spy)
    tta = run_test(tmp_path, tiny_imagefolder, official, 'TTA', '1', name='tta')
    assert seen == [1] and tta['tta'] == 1 and plain['tta'] == 0 and tta['images'] == 9


@pytest.mark.process
def test_two_processes_count_every_image_once(tmp_path, tiny_imagefolder, official, repo_root, free_port):
    single = run_test(tmp_path, tiny_imagefolder, official, name='single')
    cmd = [sys.executable, '-m', 'torch.distributed.launch', '--nproc_per_node=2', f'--master_port={free_port}', 'test.py',
           '--cfg', 'configs/test.yaml', 'DATA_DIR', str(tiny_imagefolder), 'MODEL_SELECTION', '14',
           'RESUME_PATH', str(official), 'OUTPUT', str(tmp_path), 'MODEL', 'dist', 'WORKERS', '0',
           'DEVICE', 'cpu', 'DATASET.BATCH_SIZE', '1']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    dist = json.loads((tmp_path / 'dist' / 'test_results.json').read_text())
    assert dist['images'] == 9  # 9 val images over 2 ranks: 5 + 4, no padded duplicates
    assert abs(dist['loss'] - single['loss']) < 1e-4
    assert dist['prec1'] == single['prec1']


@pytest.mark.parametrize('overrides, words', [
    (['RESUME_PATH', ''], 'RESUME_PATH'),
    (['MODEL_SELECTION', '42'], 'MODEL_SELECTION'),
    (['RESUME_PATH', '/nonexistent/43.pth.tar'], '43.pth.tar'),
])
def test_bad_input_is_one_clear_error(tmp_path, tiny_imagefolder, official, overrides, words):
    with pytest.raises(CreamError) as info:
        run_test(tmp_path, tiny_imagefolder, official, *overrides)
    assert words in str(info.value)


def test_missing_data_folder(tmp_path, official):
    with pytest.raises(CreamError) as info:
        run_test(tmp_path, tmp_path / 'no_data', official)
    assert str(info.value).startswith('DATA_DIR/val not found') and 'no_data' in str(info.value)


@pytest.mark.process
def test_the_command_line_prints_a_user_error_as_one_line_and_exits_2(tmp_path, official, repo_root):
    cmd = [sys.executable, 'test.py', '--cfg', 'configs/test.yaml', 'MODEL_SELECTION', '42',
           'RESUME_PATH', str(official), 'OUTPUT', str(tmp_path), 'DEVICE', 'cpu']
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'MODEL_SELECTION' in lines[0], proc.stderr


def test_a_checkpoint_with_non_finite_weights_is_evaluated_with_a_warning_and_flagged(tmp_path, tiny_imagefolder,
                                                                                      official):
    from lib.checkpoint.files import load_checkpoint_file
    checkpoint = load_checkpoint_file(official)
    next(iter(checkpoint['state_dict_ema'].values())).view(-1)[0] = float('nan')  # a diverged run's weights
    torch.save(checkpoint, tmp_path / 'diverged.pth.tar')
    results = run_test(tmp_path, tiny_imagefolder, tmp_path / 'diverged.pth.tar', name='diverged')
    assert results['weights_finite'] is False and results['weights_problem'].startswith('1 of ')
    saved = json.loads((tmp_path / 'diverged' / 'test_results.json').read_text())
    assert saved['weights_finite'] is False and saved['weights_problem'] == results['weights_problem']
    log = (tmp_path / 'diverged' / 'test.log').read_text()
    assert 'WARNING the state_dict_ema weights of' in log and 'are not finite: 1 of' in log
    assert run_test(tmp_path, tiny_imagefolder, official, name='finite')['weights_finite'] is True
