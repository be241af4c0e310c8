"""tools/miniature.py end to end on a tiny slice of the real digits: searches, the stand-alone ground truth (via
tools/ground_truth.py's library), the ranking report and picture; a rerun trains nothing again."""
import json

import numpy as np
import pytest

from lib.experiments import ground_truth as gt
from lib.experiments.digits import load_digits_arrays, write_digits_imagefolder
from tests.support.paths import REPO
from tests.support.scripts_as_modules import load_script


def _tool(name):
    return load_script(f'tools/{name}.py')


@pytest.fixture(scope='module')
def tiny_digits(tmp_path_factory):
    images, labels = load_digits_arrays()
    keep = np.concatenate([np.flatnonzero(labels == d)[:8] for d in range(10)])
    root = tmp_path_factory.mktemp('digits') / 'data'
    write_digits_imagefolder(str(root), image_size=16, val_fraction=0.25, images=images[keep], labels=labels[keep])
    return root


TINY = ['--seeds', '0', '--gt-seeds', '0', '--paths', '3', '--bn-batches', '1', '--jobs', '2',
        '--configs', 'defaults',
        '--search-opts', 'EPOCHS', '2', 'SUPERNET.META_STA_EPOCH', '0', 'SUPERNET.UPDATE_ITER', '2',
        'DATASET.BATCH_SIZE', '8', 'LOG_INTERVAL', '4',
        '--recipe-opts', 'EPOCHS', '1', 'WARMUP_EPOCHS', '0', 'DATASET.BATCH_SIZE', '8']


@pytest.mark.process
def test_miniature_runs_end_to_end_and_resumes(tmp_path, tiny_digits):
    out = tmp_path / 'mini'
    summary = _tool('miniature').main(['--out', str(out), '--data', str(tiny_digits), *TINY])
    assert set(summary['configs']) == {'defaults'}
    searches = out / 'searches'
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


def test_the_three_configs_differ_only_where_the_ablation_says():
    from lib.config import load_config
    configs = _tool('miniature').search_configs(['single-path', 'defaults', 'train_corrected'], ['EPOCHS', '5'])
    merged = {label: load_config(files, [str(v) for v in pairs]) for label, (files, pairs) in configs.items()}
    single, defaults, corrected = merged['single-path'], merged['defaults'], merged['train_corrected']
    # (a): no epoch comes after META_STA_EPOCH, so no board, teacher, distillation or meta update; the same sampling
    assert single.SUPERNET.META_STA_EPOCH == single.EPOCHS == defaults.EPOCHS == 5
    assert single.SUPERNET.HOW_TO_PROB == defaults.SUPERNET.HOW_TO_PROB == 'pre_prob'
    assert single.SUPERNET.PRE_PROB == defaults.SUPERNET.PRE_PROB
    # (c): every setting in which configs/train_corrected.yaml differs from configs/train.yaml, and nothing else
    switched = {f'SUPERNET.{k}' for k in corrected.SUPERNET if corrected.SUPERNET[k] != defaults.SUPERNET[k]}
    reference_corrected = load_config([str(REPO / 'configs' / 'train_corrected.yaml')])
    reference = load_config([str(REPO / 'configs' / 'train.yaml')])
    assert switched == {f'SUPERNET.{k}' for k in reference.SUPERNET
                        if reference.SUPERNET[k] != reference_corrected.SUPERNET[k]}
    assert switched >= {'SUPERNET.STEP_ONLY_PATH', 'SUPERNET.DETACH_KD_WEIGHT'}
    assert corrected.LR == defaults.LR and corrected.SUPERNET.RESOLUTION == defaults.SUPERNET.RESOLUTION == 32


@pytest.mark.parametrize('spread, noise, verdict', [(16.8, 3.2, 'differ by more than'), (2.5, 2.4, 'do NOT differ'),
                                                    (3.0, float('nan'), 'seed noise is unknown')])
def test_the_table_says_whether_the_ground_truth_separates_its_paths(spread, noise, verdict):
    from lib.experiments.miniature import table_markdown
    stat = {'mean': 0.2, 'std': 0.1, 'n': 3}
    pick = {'standalone_prec1': {'mean': 60.0, 'std': 1.0, 'n': 3}}
    summary = {'random_paths': {'count': 16, 'median': 63.9, 'p90': 75.8, 'min': 19.2, 'max': 79.9},
               'seed_noise': {'mean_seed_std': noise, 'std_of_path_means': spread, 'ratio': spread / noise},
               'configs': {'defaults': {'runs': 3, 'tau_prec1_shared': stat, 'tau_prec1_recalibrated': stat,
                                        'tau_params': stat, 'tau_flops': stat, 'best_arch': pick, 'top_scored': pick,
                                        'supernet_train_prec1_last_epoch': stat}}}
    table = table_markdown(summary)
    assert verdict in table.splitlines()[-1] and '| floor: FLOPs |' in table


@pytest.fixture(scope='module')
def tiny_digits_with_test(tmp_path_factory):
    """8 digits per class in train/val and 4 others per class in test/ (the held-out split)."""
    images, labels = load_digits_arrays()
    root = tmp_path_factory.mktemp('digits_test') / 'data'
    keep = np.concatenate([np.flatnonzero(labels == d)[:8] for d in range(10)])
    write_digits_imagefolder(str(root), image_size=16, val_fraction=0.25, images=images[keep], labels=labels[keep])
    held_out = np.concatenate([np.flatnonzero(labels == d)[8:12] for d in range(10)])
    other = root.parent / 'held_out'
    write_digits_imagefolder(str(other), image_size=16, val_fraction=0.5, images=images[held_out],
                             labels=labels[held_out])
    (other / 'val').rename(root / 'test')
    return root


PROTOCOL = ['--seeds', '0', '--gt-seeds', '0', '1', '--noise-paths', '2', '--paths', '3', '--bn-batches', '1',
            '--jobs', '2', '--configs', 'defaults', 'spos', 'random-search',
            '--search-opts', 'EPOCHS', '2', 'SUPERNET.META_STA_EPOCH', '0', 'SUPERNET.UPDATE_ITER', '2',
            'DATASET.BATCH_SIZE', '8', 'LOG_INTERVAL', '4', 'SUPERNET.FINAL_PICK_BN_BATCHES', '1',
            '--evolution-opts', 'SUPERNET.EVOLUTION.POPULATION', '3', 'SUPERNET.EVOLUTION.GENERATIONS', '1',
            'SUPERNET.EVOLUTION.PARENTS', '2', 'SUPERNET.EVOLUTION.MUTATIONS', '1',
            'SUPERNET.EVOLUTION.CROSSOVERS', '1',
            '--recipe-opts', 'EPOCHS', '1', 'WARMUP_EPOCHS', '0', 'DATASET.BATCH_SIZE', '8',
            '--random-search-opts', 'EPOCHS', '1']


@pytest.mark.process
def test_the_protocol_with_evolution_random_search_and_the_test_set_runs_end_to_end(tmp_path, tiny_digits_with_test):
    """Item 6's command at smoke size: a search, single-path one-shot with the evolutionary final pick, random search
    with the search's compute; the ground truth with seed noise; the picks on val and on the test set."""
    out = tmp_path / 'protocol'
    argv = ['--out', str(out), '--data', str(tiny_digits_with_test), *PROTOCOL]
    planned = _tool('miniature').main([*argv, '--plan'])
    assert not out.exists() and planned['training_images']['random_search'] == planned['training_images'][
        'searches']['defaults']
    summary = _tool('miniature').main(argv)
    assert set(summary['configs']) == {'defaults', 'spos', 'random-search'}
    spos_state = json.loads((out / 'searches' / 'spos_seed0' / 'evolution_state.json').read_text())
    assert len(spos_state['history']) == 2  # generation 0 and one bred generation
    rs = json.loads((out / 'random_search' / 'seed0' / 'random_search.json').read_text())
    assert rs['images_trained'] <= rs['search_images'] < rs['images_trained'] + rs['images_per_path']
    report = {r['label']: r for r in json.loads((out / 'report.json').read_text())['runs']}
    for label in ('defaults', 'spos', 'random-search'):
        pick = report[label]['best_arch']
        assert pick['standalone_prec1'] is not None and pick['test_prec1'] is not None
    assert report['random-search']['metrics'] == {} and report['spos']['metrics']['prec1_recalibrated']
    assert 'test_median' in summary['random_paths'] and summary['seed_noise']['mean_seed_std'] >= 0
    table = (out / 'table.md').read_text()
    assert '| random-search (1 seeds) |' in table and '90% bootstrap interval' in table
    phases = [json.loads(line)['phase'] for line in (out / 'cpu_time.jsonl').read_text().splitlines()]
    assert phases == ['searches', 'random search', 'ground truth', 'test set', 'ranking']
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / 'ground_truth' / 'results').iterdir()}
    _tool('miniature').main(argv)  # resumes: nothing trained again
    assert {p.name: p.stat().st_mtime_ns for p in (out / 'ground_truth' / 'results').iterdir()} == stamps


def test_the_best_config_turns_on_issue_23s_switches_and_evolution():
    configs = _tool('miniature').search_configs(['spos', 'defaults'], ['EPOCHS', '5'])
    from lib.config import load_config
    spos = load_config(*[configs['spos'][0], [str(v) for v in configs['spos'][1]]])
    assert spos.SUPERNET.HOW_TO_PROB == 'even' and spos.SUPERNET.META_STA_EPOCH == spos.EPOCHS == 5
    assert spos.SUPERNET.FINAL_PICK == 'evolution' and spos.SUPERNET.EVOLUTION.POPULATION == 20
    best = dict(zip(*[iter(_tool('miniature').BEST_SWITCHES)] * 2))
    assert best == {'SUPERNET.BOARD_ADMISSION': 'val_batch', 'SUPERNET.HOW_TO_PROB': 'fair',
                    'SUPERNET.SAMPLE_WITHIN_BUDGET': 'True', 'SUPERNET.FINAL_PICK': 'evolution'}
