"""tools/miniature.py end to end on a tiny slice of the real digits: searches, the stand-alone ground truth (via
tools/ground_truth.py's library), the ranking report and picture; a rerun trains nothing again."""
import importlib.util
import json
import os

import numpy as np
import pytest

from conftest import REPO
from lib.experiments import ground_truth as gt
from lib.experiments.digits import load_digits_arrays, write_digits_imagefolder


def _tool(name):
    spec = importlib.util.spec_from_file_location(f'{name}_tool', REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tiny_digits(tmp_path_factory):
    images, labels = load_digits_arrays()
    keep = np.concatenate([np.flatnonzero(labels == d)[:8] for d in range(10)])
    root = tmp_path_factory.mktemp('digits') / 'data'
    write_digits_imagefolder(str(root), image_size=16, val_fraction=0.25, images=images[keep], labels=labels[keep])
    return root


TINY = ['--seeds', '0', '--gt-seeds', '0', '--paths', '3', '--bn-batches', '1', '--jobs', '2',
        '--configs', 'single-path', 'defaults',
        '--search-opts', 'EPOCHS', '2', 'SUPERNET.META_STA_EPOCH', '0', 'SUPERNET.UPDATE_ITER', '2',
        'DATASET.BATCH_SIZE', '8', 'LOG_INTERVAL', '4',
        '--recipe-opts', 'EPOCHS', '1', 'WARMUP_EPOCHS', '0', 'DATASET.BATCH_SIZE', '8']


def test_miniature_runs_end_to_end_and_resumes(tmp_path, tiny_digits):
    out = tmp_path / 'mini'
    summary = _tool('miniature').main(['--out', str(out), '--data', str(tiny_digits), *TINY])
    assert set(summary['configs']) == {'single-path', 'defaults'}
    # (a) never fills a board (META_STA_EPOCH = EPOCHS), (b) does and writes its pick
    searches = out / 'searches'
    assert not (searches / 'single-path_seed0' / 'best_arch.yaml').exists()
    assert (searches / 'defaults_seed0' / 'best_arch.yaml').exists()
    truth = json.loads((out / 'ground_truth' / gt.SUMMARY_FILE).read_text())
    sampled = gt.load_paths(str(out / 'ground_truth'), sampled_only=True)
    assert len(sampled) == 3 and all(gt.path_key(p) in truth for p in sampled)
    report = json.loads((out / 'report.json').read_text())['runs']
    defaults = next(r for r in report if r['label'] == 'defaults')
    assert defaults['best_arch']['standalone_prec1'] is not None  # the pick was trained stand-alone too
    assert defaults['board'] and set(defaults['metrics']) >= {'prec1_shared', 'prec1_recalibrated', 'params', 'flops'}
    assert (out / 'ranking.png').stat().st_size > 1000 and '| floor: FLOPs |' in (out / 'table.md').read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / 'ground_truth' / 'results').iterdir()}

    _tool('miniature').main(['--out', str(out), '--data', str(tiny_digits), *TINY])  # resumes: nothing to do
    assert {p.name: p.stat().st_mtime_ns for p in (out / 'ground_truth' / 'results').iterdir()} == stamps

    ranking = _tool('rank_paths').main(['--ground-truth', str(out / 'ground_truth'), '--run',
                                        f'defaults={searches / "defaults_seed0"}', '--bn-batches', '0',
                                        '--resamples', '20', '--out', str(tmp_path / 'r.json')])
    assert 'prec1_recalibrated' not in ranking['runs'][0]['metrics']
