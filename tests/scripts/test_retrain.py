"""retrain.py end to end on tiny generated data (CPU): the six recipes, a searched path, resume, errors, DDP."""
import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import retrain
from lib.engine.guard import exit_on_error
from lib.errors import CreamError
from lib.models import create_model
from lib.train.hooks import Hook
from tests.support.scripts_as_modules import load_script

NATIVE = {14: 64, 43: 96, 114: 160, 287: 224, 481: 224, 604: 224}
SEARCHED = [[0], [5], [2, 0], [4], [1], [3], [0]]  # stages 1, 3, 4, 5 hold a single layer
SMALL = [[0], [0], [0], [0], [0], [0], [0]]


@pytest.fixture(scope='module')
def one_step_data(demo_data):
    """2 classes x (1 train, 1 val) images: one training step of 2 and one validation batch."""
    return demo_data(classes=2, train=1, val=1, size=32)


@pytest.fixture(scope='module')
def four_step_data(demo_data):
    """2 classes x (4 train, 2 val) images: four steps of 2 per epoch."""
    return demo_data(classes=2, train=4, val=2, size=32)


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
    best = load(run_dir / 'best.pth.tar')  # cosine recipes add cooldown epochs: best may precede last
    model = create_model(selection, num_classes=2, checkpoint=run_dir / 'best.pth.tar')
    assert torch.equal(model.conv_stem.weight, best['state_dict_ema']['conv_stem.weight'])


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


def _resume_run(repo_root, out, data, model, hooks=(), **extra):
    """retrain.py as the command line runs it: a user error is one ``error:`` line and SystemExit(2), Ctrl-C
    SystemExit(130)."""
    return exit_on_error(lambda argv: retrain.main(argv, hooks=hooks),
                         ['--cfg', str(repo_root / 'configs/retrain.yaml'),
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


class CtrlCAfterEpoch(Hook):
    """Ctrl-C right after the first epoch's checkpoint and outputs are written."""

    def after_epoch(self, session, epoch, evaluation):
        raise KeyboardInterrupt


def test_a_run_interrupted_after_epoch_one_resumes_to_the_same_result(repo_root, four_step_data, tmp_path,
                                                                      uninterrupted):
    with pytest.raises(SystemExit, match='130'):  # Ctrl-C on the command line
        _resume_run(repo_root, tmp_path, four_step_data, 'run', hooks=[CtrlCAfterEpoch()])
    assert load(tmp_path / 'run' / 'last.pth.tar')['epoch'] == 0
    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True)
    _same_training(uninterrupted, tmp_path / 'run')
    assert sorted(p.name for p in (tmp_path / 'run').glob('*.pth.tar')) == sorted(
        ['last.pth.tar', 'best.pth.tar', 'checkpoint-0.pth.tar', 'checkpoint-1.pth.tar'])


class CtrlCAfterStep(Hook):
    """Ctrl-C right after step ``step`` of ``epoch`` (and its recovery checkpoint, under RECOVERY_INTERVAL 1)."""

    def __init__(self, epoch, step):
        self.epoch, self.step = epoch, step

    def after_step(self, session, position):
        if (position.epoch, position.step_in_epoch) == (self.epoch, self.step):
            raise KeyboardInterrupt


def test_a_recovery_checkpoint_resumes_mid_epoch(repo_root, four_step_data, tmp_path, uninterrupted):
    with pytest.raises(SystemExit, match='130'):  # Ctrl-C on the command line
        _resume_run(repo_root, tmp_path, four_step_data, 'run', hooks=[CtrlCAfterStep(1, 2)], RECOVERY_INTERVAL=1)
    recovery = load(tmp_path / 'run' / 'recovery.pth.tar')
    assert (recovery['epoch'], recovery['step_in_epoch'], recovery['global_step']) == (1, 2, 6)
    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True, RECOVERY_INTERVAL=1)
    log = (tmp_path / 'run' / 'retrain.log').read_text()
    assert 'recovery.pth.tar: epoch 1, step 2 of 4' in log
    _same_training(uninterrupted, tmp_path / 'run')
    assert not (tmp_path / 'run' / 'recovery.pth.tar').exists()


def _same_weights(run_a, run_b):
    last_a, last_b = load(os.path.join(run_a, 'last.pth.tar')), load(os.path.join(run_b, 'last.pth.tar'))
    for key in ('state_dict', 'state_dict_ema'):
        for name, tensor in last_a[key].items():
            assert torch.equal(tensor, last_b[key][name]), f'{key} {name} differs'


def test_a_corrupt_last_checkpoint_is_skipped_for_the_newest_good_one(repo_root, four_step_data, tmp_path,
                                                                       uninterrupted):
    """A 0-byte last.pth.tar and a junk best beside a good checkpoint-0: AUTO_RESUME continues from checkpoint-0
    (never a fresh start over them) and ends where the uninterrupted run ended."""
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    shutil.copy(uninterrupted / 'checkpoint-0.pth.tar', run_dir / 'checkpoint-0.pth.tar')
    (run_dir / 'last.pth.tar').write_bytes(b'')
    (run_dir / 'best.pth.tar').write_bytes(b'junk')
    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True)
    log = (run_dir / 'retrain.log').read_text()
    assert 'skipping' in log and f'resuming from {run_dir / "checkpoint-0.pth.tar"}' in log
    _same_weights(uninterrupted, run_dir)


def test_only_a_corrupt_checkpoint_is_an_error_that_changes_nothing(repo_root, one_step_data, tmp_path):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / 'last.pth.tar').write_bytes(b'truncated')
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path, one_step_data, 'run', AUTO_RESUME=True, EPOCHS=1)
    assert stop.value.code == 2 and 'no checkpoint of' in str(stop.value) and 'OVERWRITE True' in str(stop.value)
    assert (run_dir / 'last.pth.tar').read_bytes() == b'truncated' and not (run_dir / 'config.yaml').exists()


@pytest.mark.parametrize('content, message', [(None, 'checkpoint file not found'),
                                              (b'garbage', 'truncated or not a checkpoint')])
def test_a_bad_resume_path_is_a_clear_error(repo_root, one_step_data, tmp_path, content, message):
    path = tmp_path / 'given.pth.tar'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path, one_step_data, 'run', AUTO_RESUME=True, RESUME_PATH=path)
    assert stop.value.code == 2 and 'cannot resume from RESUME_PATH' in str(stop.value) and message in str(stop.value)


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


@pytest.mark.process
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
    test_script = load_script('test.py')
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


# ---- safety: divergence, reruns, workers, other networks, bad values ---------------------------------------
def _scaled_loss(monkeypatch, factors):
    """The training loss times ``factors[k]`` from its k-th call on (the last k reached wins)."""
    import lib.retrain.setup as setup
    real = setup.build_criterion

    def build_poisoned(cfg, num_classes):
        loss_fn, mixup_fn = real(cfg, num_classes)
        calls = []

        def poisoned(output, target):
            calls.append(1)
            reached = [k for k in factors if len(calls) >= k]
            return loss_fn(output, target) * (factors[max(reached)] if reached else 1.0)
        return poisoned, mixup_fn
    monkeypatch.setattr(setup, 'build_criterion', build_poisoned)


def _nan_from_call(monkeypatch, first_bad_call):
    """The training loss turns NaN from its ``first_bad_call``-th call on: the weights diverge at that step."""
    _scaled_loss(monkeypatch, {first_bad_call: float('nan')})


def test_divergence_leaves_only_finite_checkpoints_and_auto_resume_continues(repo_root, four_step_data, tmp_path,
                                                                             monkeypatch, uninterrupted):
    from lib.engine.finite import nonfinite_tensors
    _nan_from_call(monkeypatch, 7)  # epoch 1, step 3
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path, four_step_data, 'run', RECOVERY_INTERVAL=1)
    assert stop.value.code == 2 and 'training loss became nan by epoch 1 step 3' in str(stop.value)
    run_dir = tmp_path / 'run'
    for path in run_dir.glob('*.pth.tar'):
        assert nonfinite_tensors(load(path))[0] == [], path
    assert load(run_dir / 'recovery.pth.tar')['step_in_epoch'] == 2
    monkeypatch.undo()
    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True, RECOVERY_INTERVAL=1)
    assert 'recovery.pth.tar: epoch 1, step 2 of 4' in (run_dir / 'retrain.log').read_text()
    _same_training(uninterrupted, run_dir)


def test_after_a_divergence_auto_resume_goes_back_to_before_the_loss_exploded_with_a_lower_lr(
        repo_root, four_step_data, tmp_path, monkeypatch, uninterrupted):
    """The loss explodes at epoch 1 step 2 (x1000: the recovery checkpoint of that step holds finite but ruined
    weights) and turns NaN at step 3. The error names the checkpoint AUTO_RESUME would take, last.pth.tar of epoch 0,
    and a lower LR; the resumed run skips the exploded recovery checkpoint and trains epoch 1 at that LR."""
    _scaled_loss(monkeypatch, {6: 1000.0, 7: float('nan')})
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path, four_step_data, 'run', RECOVERY_INTERVAL=1)
    run_dir, message = tmp_path / 'run', str(stop.value)
    assert stop.value.code == 2 and 'training loss became nan by epoch 1 step 3' in message
    assert f'AUTO_RESUME True continues from {run_dir / "last.pth.tar"} (after epoch 0, training loss ' in message
    assert 'the newest checkpoint written while the loss was healthy: resume with a lower LR, e.g. LR 0.005' in message
    exploded = load(run_dir / 'recovery.pth.tar')
    assert exploded['step_in_epoch'] == 2 and exploded['loss_health']['loss'] > 10 * exploded['loss_health']['reference']
    monkeypatch.undo()

    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True, RECOVERY_INTERVAL=1, LR=0.005)
    log = (run_dir / 'retrain.log').read_text()
    assert f'skipping {run_dir / "recovery.pth.tar"}: it was written after the training loss left its healthy range' in log
    assert f'resuming from {run_dir / "last.pth.tar"}: epoch 1, step 0 of 4' in log
    assert 'LR 0.005 instead of the 0.01 that' in log
    rows, whole = summary_rows(run_dir), summary_rows(uninterrupted)
    rows[0].pop('img_per_sec'), whole[0].pop('img_per_sec')
    assert [r['epoch'] for r in rows] == ['0', '1'] and rows[0] == whole[0]  # epoch 0 as it was
    assert float(rows[1]['lr']) == pytest.approx(float(whole[1]['lr']) / 2)


def test_a_nan_validation_loss_is_an_error_not_a_result(repo_root, one_step_data, tmp_path, monkeypatch):
    import lib.retrain.epoch as loop
    real = loop.evaluate
    monkeypatch.setattr(loop, 'evaluate', lambda *a, **k: {**real(*a, **k), 'loss': float('nan')})
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path, one_step_data, 'run', EPOCHS=1)
    assert stop.value.code == 2 and 'validation loss of the model weights is nan after epoch 0' in str(stop.value)
    assert not (tmp_path / 'run' / 'results.json').exists() and not (tmp_path / 'run' / 'last.pth.tar').exists()


def test_a_workers_2_run_killed_after_a_recovery_checkpoint_resumes_exactly(repo_root, four_step_data, tmp_path,
                                                                          uninterrupted):
    """Each image's augmentation is seeded by (SEED + rank, epoch, position): the run with 2 worker processes,
    killed and resumed, ends with the weights of the uninterrupted run, which loaded in the main process."""
    with pytest.raises(SystemExit, match='130'):
        _resume_run(repo_root, tmp_path, four_step_data, 'run', hooks=[CtrlCAfterStep(1, 2)], RECOVERY_INTERVAL=1,
                    WORKERS=2)
    _resume_run(repo_root, tmp_path, four_step_data, 'run', AUTO_RESUME=True, RECOVERY_INTERVAL=1, WORKERS=2)
    assert 'recovery.pth.tar: epoch 1, step 2 of 4' in (tmp_path / 'run' / 'retrain.log').read_text()
    _same_training(uninterrupted, tmp_path / 'run')


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob('*')) if p.is_file()}


def test_a_rerun_keeps_every_byte_of_the_first_run_until_overwrite_is_asked(repo_root, one_step_data, tmp_path,
                                                                           capsys):
    _resume_run(repo_root, tmp_path, one_step_data, 'run', EPOCHS=1)
    run_dir = tmp_path / 'run'
    (run_dir / 'best_arch.yaml').write_text('MODEL_SELECTION: -1\n')  # a stale output of some earlier run
    first = _snapshot(run_dir)
    capsys.readouterr()
    for opts in ({}, {'LR': -0.1, 'AUTO_RESUME': True}, {'AUTO_RESUME': True, 'WEIGHT_DECAY': 0.5},
                 {'AUTO_RESUME': True, 'MODEL_SELECTION': 100}):
        with pytest.raises(SystemExit) as stop:
            _resume_run(repo_root, tmp_path, one_step_data, 'run', EPOCHS=1, **opts)
        assert stop.value.code == 2, opts
        assert capsys.readouterr().err.count('error:') == 1
        now = _snapshot(run_dir)
        # config.yaml included: nothing was rewritten. A refused resume appends its error to the run's log.
        assert now.pop('retrain.log').startswith(first['retrain.log'])
        assert now == {k: v for k, v in first.items() if k != 'retrain.log'}, opts
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path, one_step_data, 'run', EPOCHS=1)
    assert 'already holds a run' in str(stop.value) and 'AUTO_RESUME True' in str(stop.value) \
        and 'OVERWRITE True' in str(stop.value)

    _resume_run(repo_root, tmp_path, one_step_data, 'run', EPOCHS=1, OVERWRITE=True, SEED=5)
    assert not (run_dir / 'best_arch.yaml').exists()
    assert 'deleted the previous run' in (run_dir / 'retrain.log').read_text()
    assert (run_dir / 'retrain.log').read_text().count('config:\n') == 1  # a fresh log
    assert load(run_dir / 'last.pth.tar')['args']['SEED'] == 5


def test_resuming_from_another_networks_checkpoint_is_one_clear_error(repo_root, one_step_data, tmp_path):
    _resume_run(repo_root, tmp_path, one_step_data, 'small', EPOCHS=1)
    other = [[0], [1], [1], [1], [1], [1], [0]]
    theirs = load(tmp_path / 'small' / 'last.pth.tar')
    with pytest.raises(SystemExit) as stop:  # our own checkpoint: its config names the difference
        _resume_run(repo_root, tmp_path, one_step_data, 'other', AUTO_RESUME=True, INPUT_ARCH=other,
                    RESUME_PATH=tmp_path / 'small' / 'last.pth.tar')
    assert stop.value.code == 2 and 'NET.INPUT_ARCH (checkpoint [[0], [0]' in str(stop.value)
    released_like = {k: theirs[k] for k in ('epoch', 'arch', 'state_dict', 'state_dict_ema', 'optimizer')}
    torch.save(released_like, tmp_path / 'released_like.pth.tar')
    with pytest.raises(SystemExit) as stop:  # the released format: the weights name the difference
        _resume_run(repo_root, tmp_path, one_step_data, 'other', AUTO_RESUME=True, INPUT_ARCH=other,
                    RESUME_PATH=tmp_path / 'released_like.pth.tar')
    assert stop.value.code == 2 and 'weights of another network' in str(stop.value)
    assert 'shape mismatches' in str(stop.value) and 'Traceback' not in str(stop.value)


@pytest.mark.parametrize('key, value, words', [
    ('EPOCHS', -2, 'EPOCHS is -2; it must be at least 1'),
    ('WORKERS', -1, 'WORKERS is -1'),
    ('LR', -0.1, 'LR is -0.1; it must be positive'),
    ('LR', '1e999', 'LR is inf; it must be a finite number'),
    ('SEED', 2 ** 64, f'SEED is {2 ** 64}; it must be 0 or more and below 2**63'),
    ('OPT', 'bogus', "OPT is 'bogus', which timm cannot build (ValueError: Optimizer bogus not found"),
    ('NET.GP', 'bogus', "NET.GP is 'bogus', which is no timm pooling"),
    ('AUGMENTATION.AA', 'bogus', "AUGMENTATION.AA is 'bogus': timm cannot parse it"),
    ('AUGMENTATION.AA', 'rand-m9-mstd', "AUGMENTATION.AA is 'rand-m9-mstd': its section 'mstd' has no value"),
    ('SCHED', 'bogus', "SCHED 'bogus' is not a timm LR schedule"),
    ('DATA_DIR', '/no/such/data', "DATA_DIR/train not found: '/no/such/data/train' is not a directory"),
    ('MODEL_SELECTION', 100, 'unsupported MODEL_SELECTION 100'),
    ('SIGTERM_GRACE', 0, 'SIGTERM_GRACE is 0.0; it must be a positive number of seconds'),
    ('RECOVERY_INTERVAL', -5, 'RECOVERY_INTERVAL is -5'),
    ('SUPERNET.POOL_SIZE', 0, 'SUPERNET.POOL_SIZE is 0'),
    ('SUPERNET.UPDATE_ITER', 0, 'SUPERNET.UPDATE_ITER is 0'),
])
def test_each_bad_value_is_one_line_before_anything_is_written(repo_root, one_step_data, tmp_path, capsys,
                                                               key, value, words):
    """Before any work, and before the run folder exists (no folder left behind)."""
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path, one_step_data, 'run', **{key: value})
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.strip().splitlines() == [str(stop.value)] and words in err
    assert not (tmp_path / 'run').exists()


def test_an_unwritable_output_is_one_line(repo_root, one_step_data, tmp_path, capsys):
    (tmp_path / 'a_file').write_text('')
    with pytest.raises(SystemExit) as stop:
        _resume_run(repo_root, tmp_path / 'a_file', one_step_data, 'run')
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1 and err[0].startswith('error: cannot write to the run folder')
    assert 'set OUTPUT to a writable folder' in err[0]


def test_temporary_files_of_a_killed_write_are_removed_at_the_start(repo_root, one_step_data, tmp_path):
    run_dir = tmp_path / 'run'
    run_dir.mkdir()
    (run_dir / '.last.pth.tar.x1y2.tmp').write_bytes(b'')  # save_checkpoint_atomic killed mid-write
    (run_dir / '.summary.csv.k3.tmp').write_text('epoch')
    _resume_run(repo_root, tmp_path, one_step_data, 'run', EPOCHS=1)
    assert not [p for p in run_dir.iterdir() if p.name.endswith('.tmp')]
    assert 'removed 2 temporary file(s)' in (run_dir / 'retrain.log').read_text()
