"""retrain.py end to end on tiny generated data (CPU): the six recipes, a searched path, resume, errors, DDP."""
import csv
import importlib.util
import json
import os
import subprocess
import sys

import pytest
import torch

import retrain
from lib.data.demo import make_demo_dataset
from lib.engine.checkpoint_saver import CheckpointSaver
from lib.errors import CreamError
from lib.models import create_model

NATIVE = {14: 64, 43: 96, 114: 160, 287: 224, 481: 224, 604: 224}
SEARCHED = [[0], [5], [2, 0], [4], [1], [3], [0]]  # stages 1, 3, 4, 5 hold a single layer
SMALL = [[0], [0], [0], [0], [0], [0], [0]]


@pytest.fixture(scope='module')
def one_step_data(tmp_path_factory):
    """2 classes x (1 train, 1 val) images: one training step of 2 and one validation batch."""
    return make_demo_dataset(str(tmp_path_factory.mktemp('one') / 'data'), num_classes=2, train_per_class=1,
                             val_per_class=1, image_size=32)


@pytest.fixture(scope='module')
def four_step_data(tmp_path_factory):
    """2 classes x (4 train, 2 val) images: four steps of 2 per epoch."""
    return make_demo_dataset(str(tmp_path_factory.mktemp('four') / 'data'), num_classes=2, train_per_class=4,
                             val_per_class=2, image_size=32)


def tiny_overrides(out, data, **extra):
    opts = {'OUTPUT': out, 'DATA_DIR': data, 'WORKERS': 0, 'EPOCHS': 1, 'DATASET.BATCH_SIZE': 2,
            'DATASET.NUM_CLASSES': 2, 'LOG_INTERVAL': 1, 'DATASET.VAL_BATCH_MUL': 1}
    opts.update(extra)
    return [str(x) for kv in opts.items() for x in kv]


def load(path):
    return torch.load(path, map_location='cpu', weights_only=True)


def summary_rows(run_dir):
    with open(os.path.join(run_dir, 'summary.csv'), newline='') as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize('selection', sorted(NATIVE))
def test_each_released_recipe_trains_a_step_at_its_native_resolution(selection, repo_root, reference_dir,
                                                                     one_step_data, tmp_path):
    results = retrain.main(['--cfg', str(repo_root / f'configs/retrain/{selection}.yaml'),
                            *tiny_overrides(tmp_path, one_step_data)])
    run_dir = tmp_path / f'retrain_{selection}'
    assert results['resolution'] == NATIVE[selection] and results['model'] == f'cream_{selection:03d}'
    assert results['val']['images'] == 2 and results['val_ema']['images'] == 2
    assert json.loads((run_dir / 'results.json').read_text()) == json.loads(json.dumps(results))
    assert float(summary_rows(run_dir)[0]['train_loss']) > 0

    checkpoint = load(run_dir / 'last.pth.tar')  # weights-only loadable: our own format
    reference = json.loads((reference_dir / 'cream_models.json').read_text())['models'][str(selection)]
    expected = {k: s for k, s in reference['state_dict'] if not k.startswith('classifier.')}
    got = {k: list(v.shape) for k, v in checkpoint['state_dict'].items() if not k.startswith('classifier.')}
    assert got == expected
    assert checkpoint['arch'] == f'cream_{selection:03d}' and checkpoint['state_dict_ema'].keys() == \
        checkpoint['state_dict'].keys()
    model = create_model(selection, num_classes=2, checkpoint=run_dir / 'best.pth.tar')
    assert torch.equal(model.conv_stem.weight, checkpoint['state_dict_ema']['conv_stem.weight'])


def test_a_searched_path_trains_the_network_it_describes(repo_root, one_step_data, tmp_path):
    results = retrain.main(['--cfg', str(repo_root / 'configs/retrain.yaml'),
                            *tiny_overrides(tmp_path, one_step_data, MODEL='searched', MODEL_SELECTION=-1,
                                            INPUT_ARCH=SEARCHED, **{'DATASET.IMAGE_SIZE': 32})])
    assert results['arch'] == SEARCHED and results['resolution'] == 32
    checkpoint = load(tmp_path / 'searched' / 'last.pth.tar')
    weights = checkpoint['state_dict']
    # single-layer stages: stage 1 k7e6 from 16 channels, stage 3 k7e4 from 40, stage 4 k3e6 from 80
    assert list(weights['blocks.1.0.conv_dw.weight'].shape) == [96, 1, 7, 7]
    assert list(weights['blocks.3.0.conv_dw.weight'].shape) == [160, 1, 7, 7]
    assert list(weights['blocks.4.0.conv_dw.weight'].shape) == [480, 1, 3, 3]
    assert checkpoint['arch'] == SEARCHED
    log = (tmp_path / 'searched' / 'retrain.log').read_text()
    assert '[Model--1] cream_custom at 32x32: Flops:' in log and 'Params:' in log
    create_model(-1, arch=SEARCHED, num_classes=2, checkpoint=tmp_path / 'searched' / 'last.pth.tar')


RESUME_OPTS = {'MODEL_SELECTION': -1, 'INPUT_ARCH': SMALL, 'DATASET.IMAGE_SIZE': 32, 'EPOCHS': 2,
               'DETERMINISTIC': True, 'AUGMENTATION.MIXUP': 0.2, 'NET.DROP_PATH_RATE': 0.1,
               'NET.DROPOUT_RATE': 0.1, 'NET.EMA.DECAY': 0.9, 'CHECKPOINT_HIST': 2, 'LR': 0.01,
               'LR_REFERENCE_BATCH': 0, 'WARMUP_EPOCHS': 1, 'SEED': 3}


def _resume_run(repo_root, out, data, model, **extra):
    return retrain.main(['--cfg', str(repo_root / 'configs/retrain.yaml'),
                         *tiny_overrides(out, data, MODEL=model, **{**RESUME_OPTS, **extra})])


def _same_training(run_a, run_b):
    rows_a, rows_b = summary_rows(run_a), summary_rows(run_b)
    assert len(rows_a) == len(rows_b) == 2
    for a, b in zip(rows_a, rows_b):
        assert {k: v for k, v in a.items() if k != 'img_per_sec'} == {k: v for k, v in b.items() if k != 'img_per_sec'}
    last_a, last_b = load(os.path.join(run_a, 'last.pth.tar')), load(os.path.join(run_b, 'last.pth.tar'))
    for key in ('state_dict', 'state_dict_ema'):
        for name, tensor in last_a[key].items():
            assert torch.equal(tensor, last_b[key][name]), f'{key} {name} differs'
    assert last_a['global_step'] == last_b['global_step'] == 8


@pytest.fixture(scope='module')
def uninterrupted(repo_root, four_step_data, tmp_path_factory):
    out = tmp_path_factory.mktemp('uninterrupted')
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _resume_run(repo_root, out, four_step_data, 'run')
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    return out / 'run'


def test_a_run_interrupted_after_epoch_one_resumes_to_the_same_result(repo_root, four_step_data, tmp_path,
                                                                      monkeypatch, uninterrupted):
    original = CheckpointSaver.save_epoch

    def save_then_die(self, checkpoint, epoch, is_best, kept):
        original(self, checkpoint, epoch, is_best, kept)
        raise KeyboardInterrupt

    monkeypatch.setattr(CheckpointSaver, 'save_epoch', save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _resume_run(repo_root, tmp_path, four_step_data, 'run')
    monkeypatch.setattr(CheckpointSaver, 'save_epoch', original)
    assert load(tmp_path / 'run' / 'last.pth.tar')['epoch'] == 0
    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True)
    _same_training(uninterrupted, tmp_path / 'run')
    assert sorted(p.name for p in (tmp_path / 'run').glob('*.pth.tar')) == sorted(
        ['last.pth.tar', 'best.pth.tar', 'checkpoint-0.pth.tar', 'checkpoint-1.pth.tar'])


def test_a_recovery_checkpoint_resumes_mid_epoch(repo_root, four_step_data, tmp_path, monkeypatch, uninterrupted):
    original = CheckpointSaver.save_recovery

    def save_then_die(self, checkpoint):
        original(self, checkpoint)
        if (checkpoint['epoch'], checkpoint['step_in_epoch']) == (1, 2):
            raise KeyboardInterrupt

    monkeypatch.setattr(CheckpointSaver, 'save_recovery', save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _resume_run(repo_root, tmp_path, four_step_data, 'run', RECOVERY_INTERVAL=1)
    monkeypatch.setattr(CheckpointSaver, 'save_recovery', original)
    recovery = load(tmp_path / 'run' / 'recovery.pth.tar')
    assert (recovery['epoch'], recovery['step_in_epoch'], recovery['global_step']) == (1, 2, 6)
    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True, RECOVERY_INTERVAL=1)
    log = (tmp_path / 'run' / 'retrain.log').read_text()
    assert 'recovery.pth.tar: epoch 1, step 2 of 4' in log
    _same_training(uninterrupted, tmp_path / 'run')
    assert not (tmp_path / 'run' / 'recovery.pth.tar').exists()


def test_a_corrupt_checkpoint_of_the_run_folder_means_a_fresh_start_with_a_warning(repo_root, one_step_data,
                                                                                 tmp_path):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / 'last.pth.tar').write_bytes(b'truncated')
    results = _resume_run(repo_root, tmp_path, one_step_data, 'run', AUTO_RESUME=True, EPOCHS=1)
    assert results['epoch'] == 0
    assert 'STARTING FRESH' in (run_dir / 'retrain.log').read_text()
    assert load(run_dir / 'last.pth.tar')['epoch'] == 0


@pytest.mark.parametrize('content, message', [(None, 'checkpoint file not found'),
                                              (b'garbage', 'truncated or not a checkpoint')])
def test_a_bad_resume_path_is_a_clear_error(repo_root, one_step_data, tmp_path, content, message):
    path = tmp_path / 'given.pth.tar'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CreamError) as stop:
        _resume_run(repo_root, tmp_path, one_step_data, 'run', AUTO_RESUME=True, RESUME_PATH=path)
    assert 'cannot resume from RESUME_PATH' in str(stop.value) and message in str(stop.value)


@pytest.mark.parametrize('opts, message', [
    ({'MODEL_SELECTION': 100}, 'unsupported MODEL_SELECTION'),
    ({'MODEL_SELECTION': -1, 'INPUT_ARCH': [[0], [3], [3]]}, 'INPUT_ARCH must have 7 stages'),
    ({'MODEL_SELECTION': -1, 'INPUT_ARCH': [[0], [6], [3], [3], [3], [3], [0]]}, 'op index 6'),
    pytest.param({'APEX': True}, 'apex cannot be imported', marks=pytest.mark.skipif(
        importlib.util.find_spec('apex') is not None, reason='apex is installed')),
])
def test_a_bad_selection_or_arch_stops_before_any_work(repo_root, tmp_path, opts, message):
    data = tmp_path / 'never_created'
    with pytest.raises(CreamError) as stop:
        retrain.main(['--cfg', str(repo_root / 'configs/retrain.yaml'),
                      *tiny_overrides(tmp_path, data, **{'DATASET.GENERATE_DEMO': True}, **opts)])
    assert message in str(stop.value)
    assert not data.exists()  # the demo dataset would have been generated by the data step
    assert not list(tmp_path.glob('*/*.pth.tar'))


def test_two_processes_with_gloo(repo_root, four_step_data, tmp_path):
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
           str(repo_root / 'retrain.py'), '--cfg', str(repo_root / 'configs/demo/retrain.yaml'),
           *tiny_overrides(tmp_path, four_step_data, MODEL='ddp', INPUT_ARCH=SMALL, RECOVERY_INTERVAL=1,
                           **{'DATASET.IMAGE_SIZE': 32, 'DATASET.GENERATE_DEMO': False})]
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(repo_root)}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / 'ddp' / 'results.json').read_text())
    assert results['val']['images'] == 4  # each validation image counted once over both ranks
    checkpoint = load(tmp_path / 'ddp' / 'last.pth.tar')
    assert checkpoint['world_size'] == 2 and len(checkpoint['rank_states']) == 2
    assert checkpoint['steps_per_epoch'] == 2  # 8 images / (2 processes x 2)
    assert not any(k.startswith('module.') for k in checkpoint['state_dict'])
    log = (tmp_path / 'ddp' / 'retrain.log').read_text()
    assert 'LR' in log and '2 process(es)' in log


def test_test_py_reproduces_the_ema_accuracy_retrain_logged(repo_root, four_step_data, tmp_path):
    spec = importlib.util.spec_from_file_location('cream_test_script', repo_root / 'test.py')
    test_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_script)
    arch = json.dumps(SMALL)
    results = retrain.main(['--cfg', str(repo_root / 'configs/retrain.yaml'), 'MODEL', 'trained', 'MODEL_SELECTION',
                            '-1', 'INPUT_ARCH', arch, 'DATASET.IMAGE_SIZE', '32', 'NET.EMA.DECAY', '0.5',
                            *tiny_overrides(str(tmp_path), four_step_data, EPOCHS=2)])
    logged = json.loads((tmp_path / 'trained' / 'results.json').read_text())['val_ema']
    assert logged == json.loads(json.dumps(results['val_ema']))
    tested = test_script.main(['--cfg', str(repo_root / 'configs/test.yaml'), 'MODEL', 'tested', 'MODEL_SELECTION', '-1',
                               'INPUT_ARCH', arch, 'DATASET.IMAGE_SIZE', '32',
                               'RESUME_PATH', str(tmp_path / 'trained' / 'last.pth.tar'),
                               *tiny_overrides(str(tmp_path), four_step_data)])
    assert 'ema' in tested['weights']
    assert tested['images'] == logged['images'] == 4
    assert tested['prec1'] == pytest.approx(logged['prec1'])
    assert tested['loss'] == pytest.approx(logged['loss'], rel=1e-5)
