"""Checkpoint files: the released format and its variants, hostile and broken files, atomic saving."""
import logging
import os
import pickle
import random
from collections import OrderedDict

import numpy as np
import pytest
import torch
from yacs.config import CfgNode

from lib.checkpoint.files import ReleasedCfgNode
from lib.checkpoint.files import (CheckpointError, CheckpointNotFoundError, CorruptCheckpointError, StateDictMismatchError, UnsafeCheckpointError, load_checkpoint_file, restricted_load, save_checkpoint_atomic)
from lib.checkpoint.format import capture_rng_state, make_checkpoint, restore_rng_state
from lib.checkpoint.weights import extract_state_dict, load_model_weights
from lib.models.childnet import build_released
from tests.support.released_checkpoints import RELEASED_KEYS



@pytest.fixture(scope='module')
def released(official):
    return load_checkpoint_file(official)


def logits_after_loading(source, expected, **kwargs):
    model = build_released(14).eval()
    which = load_model_weights(model, source, **kwargs)
    with torch.no_grad():
        return model(expected['input']), which


def assert_close(actual, wanted):
    assert (actual - wanted).abs().max().item() < 1e-5


# -- the released format -------------------------------------------------------------------------
def test_allowlist_unpickler_reads_the_released_format(official):
    checkpoint = restricted_load(official)
    assert list(checkpoint) == RELEASED_KEYS
    assert isinstance(checkpoint['args'], ReleasedCfgNode)  # the pickled yacs CfgNode, as a plain dict
    assert checkpoint['args']['NET']['SELECTION'] == 14


def test_load_checkpoint_file_returns_plain_python_config(released):
    assert list(released) == RELEASED_KEYS
    assert type(released['args']) is dict and type(released['args']['NET']) is dict
    assert released['args']['NET']['EMA']['DECAY'] == pytest.approx(0.9999)
    assert released['args']['SUPERNET']['PRE_PROB'] == (0.05, 0.2, 0.05, 0.5, 0.05, 0.15)
    assert released['args']['net'] == released['args']['NET'] and released['args']['START_EPOCH'] is None
    assert released['epoch'] == 449 and released['version'] == 2


@pytest.mark.parametrize('use_ema, key, which', [(True, 'logits_ema', 'state_dict_ema'),
                                                  (False, 'logits', 'state_dict')])
def test_released_file_reproduces_the_original_outputs(official, expected, use_ema, key, which):
    logits, used = logits_after_loading(official, expected, use_ema=use_ema)
    assert used == which
    assert_close(logits, expected[key])


def test_allowlist_result_loads_the_same_weights(official, expected):
    logits, used = logits_after_loading(restricted_load(official), expected)
    assert used == 'state_dict_ema'
    assert_close(logits, expected['logits_ema'])


# -- variants found in the wild ------------------------------------------------------------------
def test_zip_serialization_of_the_released_dict(released, expected, tmp_path):
    path = tmp_path / 'zip.pth.tar'
    torch.save(released, path)  # zip format; args is a plain dict now, so weights-only can read it
    assert list(torch.load(path, weights_only=True)) == RELEASED_KEYS
    logits, _ = logits_after_loading(path, expected)
    assert_close(logits, expected['logits_ema'])


@pytest.mark.parametrize('prefix', ['module.', 'module._orig_mod.'])  # DDP, DDP of a compiled model
def test_wrapper_prefixes_are_stripped(released, expected, tmp_path, prefix):
    prefixed = dict(released)
    for key in ('state_dict', 'state_dict_ema'):
        prefixed[key] = OrderedDict((prefix + k, v) for k, v in released[key].items())
    path = tmp_path / 'ddp.pth.tar'
    torch.save(prefixed, path, _use_new_zipfile_serialization=False)
    for use_ema, key in ((True, 'logits_ema'), (False, 'logits')):
        logits, _ = logits_after_loading(path, expected, use_ema=use_ema)
        assert_close(logits, expected[key])


def test_no_ema_falls_back_to_raw_weights_and_says_so(released, expected, tmp_path, caplog):
    raw_only = {k: v for k, v in released.items() if k != 'state_dict_ema'}
    path = tmp_path / 'raw.pth.tar'
    torch.save(raw_only, path)
    with caplog.at_level(logging.INFO, logger='cream.checkpoint'):
        logits, which = logits_after_loading(path, expected, use_ema=True)
    assert which == 'state_dict'
    assert 'no EMA weights' in caplog.text
    assert_close(logits, expected['logits'])


def test_model_keys_and_bare_state_dicts(released):
    ema, raw = released['state_dict_ema'], released['state_dict']
    sd, which = extract_state_dict({'model': raw, 'model_ema': ema})
    assert which == 'model_ema' and torch.equal(sd['conv_stem.weight'], ema['conv_stem.weight'])
    sd, which = extract_state_dict({'model': raw, 'model_ema': ema}, use_ema=False)
    assert which == 'model' and torch.equal(sd['conv_stem.weight'], raw['conv_stem.weight'])
    sd, which = extract_state_dict(raw)
    assert which == 'bare' and list(sd) == list(raw)


def test_raw_weights_asked_for_but_only_ema_present(released):
    with pytest.raises(CheckpointError, match="only has 'state_dict_ema'"):
        extract_state_dict({'state_dict_ema': released['state_dict_ema']}, use_ema=False)


def test_no_weights_at_all_is_an_error():
    with pytest.raises(CheckpointError, match='no weights'):
        extract_state_dict({'epoch': 3, 'optimizer': {}})


# -- weights that do not fit -----------------------------------------------------------------------
def test_missing_and_unexpected_keys_are_listed(released):
    weights = OrderedDict(released['state_dict_ema'])
    del weights['classifier.bias']
    weights['extra.weight'] = torch.zeros(1)
    with pytest.raises(StateDictMismatchError) as info:
        load_model_weights(build_released(14), {'state_dict': weights})
    message = str(info.value)
    assert 'missing keys: classifier.bias' in message and 'unexpected keys: extra.weight' in message


def test_non_strict_allows_missing_keys_but_never_other_shapes(released):
    weights = OrderedDict(released['state_dict'])
    del weights['classifier.bias']
    model = build_released(14)
    assert load_model_weights(model, {'state_dict': weights}, strict=False) == 'state_dict'
    assert torch.equal(model.conv_stem.weight, weights['conv_stem.weight'])
    with pytest.raises(StateDictMismatchError, match=r'shape mismatches: classifier\.weight'):
        load_model_weights(build_released(14, num_classes=10), {'state_dict': weights}, strict=False)


# -- hostile and broken files ----------------------------------------------------------------------
class _Hostile:
    marker = None

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


@pytest.mark.parametrize('fmt', ['zip', 'legacy', 'plain_pickle', 'inside_released_dict'])
def test_hostile_pickle_is_refused_without_running(fmt, tmp_path, released):
    marker = tmp_path / 'pwned'
    _Hostile.marker = str(marker)
    path = tmp_path / f'{fmt}.pth.tar'
    if fmt == 'zip':
        torch.save({'state_dict': {}, 'payload': _Hostile()}, path)
    elif fmt == 'legacy':
        torch.save({'payload': _Hostile()}, path, _use_new_zipfile_serialization=False)
    elif fmt == 'plain_pickle':
        path.write_bytes(pickle.dumps({'payload': _Hostile()}, protocol=2))
    else:
        torch.save(dict(released, args=_Hostile()), path, _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint_file(path)
    assert "'posix.system'" in str(info.value) or "'nt.system'" in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_timm_train_args_namespace_is_read_as_data_and_stays_guarded(tmp_path):
    # timm's train.py stores its argparse.Namespace under 'args'; it becomes a plain dict.
    import argparse
    weights = {'w': torch.ones(2)}
    path = tmp_path / 'timm.pth.tar'
    torch.save({'state_dict': weights, 'args': argparse.Namespace(model='cream_043', lr=0.1)}, path)
    checkpoint = load_checkpoint_file(path)
    assert checkpoint['args'] == {'model': 'cream_043', 'lr': 0.1} and type(checkpoint['args']) is dict
    assert torch.equal(checkpoint['state_dict']['w'], weights['w'])
    marker = tmp_path / 'pwned'
    _Hostile.marker = str(marker)
    torch.save({'args': argparse.Namespace(hook=_Hostile())}, tmp_path / 'hostile.pth.tar')
    with pytest.raises(UnsafeCheckpointError, match='system'):
        load_checkpoint_file(tmp_path / 'hostile.pth.tar')
    assert not marker.exists()


def test_truncated_released_file(official, tmp_path):
    data = official.read_bytes()
    for name, cut in (('half', len(data) // 2), ('header', 100)):
        path = tmp_path / f'{name}.pth.tar'
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptCheckpointError, match='truncated or not a checkpoint') as info:
            load_checkpoint_file(path)
        assert str(path) in str(info.value)


def test_truncated_zip_and_garbage_files(tmp_path):
    good = tmp_path / 'good.pt'
    torch.save({'state_dict': {'w': torch.ones(1000)}}, good)
    files = {'zip': good.read_bytes()[:-200], 'garbage': b'not a checkpoint at all', 'empty': b''}
    for name, content in files.items():
        path = tmp_path / f'{name}.pt'
        path.write_bytes(content)
        with pytest.raises(CorruptCheckpointError, match='truncated or not a checkpoint'):
            load_checkpoint_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match='not found'):
        load_checkpoint_file(tmp_path / 'nope.pth.tar')
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


# -- writing ---------------------------------------------------------------------------------------
def test_atomic_save_survives_a_crash_mid_write(tmp_path, monkeypatch):
    path = tmp_path / 'last.pth.tar'
    save_checkpoint_atomic({'epoch': 1}, path)
    real_save = torch.save

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b'PARTIAL')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', crashing_save)
    with pytest.raises(OSError, match='disk full'):
        save_checkpoint_atomic({'epoch': 2}, path)
    monkeypatch.setattr(torch, 'save', real_save)
    assert load_checkpoint_file(path) == {'epoch': 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last.pth.tar']  # no temp file left behind
    save_checkpoint_atomic({'epoch': 2}, path)
    assert load_checkpoint_file(path) == {'epoch': 2}


def test_make_checkpoint_is_released_format_and_weights_only(tmp_path, expected, released):
    from timm.utils import ModelEmaV3

    model = build_released(14)
    load_model_weights(model, released, use_ema=False)
    ema = ModelEmaV3(build_released(14))
    load_model_weights(ema.module, released)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    cfg = CfgNode({'NET': CfgNode({'SELECTION': 14, 'INPUT_ARCH': [[0], [3]]}), 'LR': 0.1})
    checkpoint = make_checkpoint(model, ema, optimizer, epoch=7, arch='cream_014', cfg=cfg, metric=53.5,
                                 extra={'global_step': 70})
    assert set(RELEASED_KEYS) <= set(checkpoint) and checkpoint['global_step'] == 70
    path = save_checkpoint_atomic(checkpoint, tmp_path / 'best.pth.tar')
    reloaded = torch.load(path, weights_only=True)  # no pickled classes: plain torch can read it
    assert reloaded['args'] == {'NET': {'SELECTION': 14, 'INPUT_ARCH': [[0], [3]]}, 'LR': 0.1}
    assert reloaded['epoch'] == 7 and reloaded['metric'] == 53.5 and reloaded['arch'] == 'cream_014'
    for use_ema, key in ((True, 'logits_ema'), (False, 'logits')):
        logits, _ = logits_after_loading(path, expected, use_ema=use_ema)
        assert_close(logits, expected[key])
    with pytest.raises(ValueError, match="'epoch'"):
        make_checkpoint(model, epoch=1, arch='x', extra={'epoch': 2})
    assert 'state_dict_ema' not in make_checkpoint(model, epoch=1, arch='x')
    wrapped = torch.nn.Module()
    wrapped.module = model  # what DDP looks like to make_checkpoint
    assert list(make_checkpoint(wrapped, epoch=1, arch='x')['state_dict']) == list(model.state_dict())


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    path = save_checkpoint_atomic({'rng': state}, tmp_path / 'rng.pt')
    restore_rng_state(torch.load(path, weights_only=True)['rng'])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


@pytest.mark.process
def test_loader_alone_reads_released_files_without_timm_or_models(official, repo_root):
    """In a fresh process (no weights-only alias registered by lib.models) the allowlist path is used."""
    import subprocess
    import sys

    code = (
        'import sys; from lib.checkpoint.weights import load_model_weights; from lib.checkpoint.files import load_checkpoint_file\n'
        f'c = load_checkpoint_file({str(official)!r})\n'
        "assert type(c['args']) is dict and c['args']['NET']['SELECTION'] == 14\n"
        "assert 'lib.models' not in sys.modules and 'timm' not in sys.modules, 'lib.checkpoint.files and weights must stay torch-only'\n"
    )
    result = subprocess.run([sys.executable, '-c', code], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
