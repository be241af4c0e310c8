"""tools/random_search.py on a tiny real search run: K from the compute (the search's training images over one
stand-alone run's), K distinct random paths within the budget trained through retrain.py, the best on val as
best_arch.yaml; a rerun trains nothing again."""
import json

import pytest
import torch

import train
from lib.config import load_config
from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.experiments.random_search import search_budget, search_images
from lib.experiments.supernet_scores import chosen_path
from tests.support.demo_search import TINY_SEARCH
from tests.support.scripts_as_modules import load_script

SEARCH = TINY_SEARCH
# One epoch of 3 steps of 4 images: 12 images per path; the search saw 2 epochs x 3 steps x 4 = 24, so K = 2.
RECIPE_OPTS = ['EPOCHS', '1', 'WARMUP_EPOCHS', '0', 'DATASET.BATCH_SIZE', '4', 'DATASET.NUM_CLASSES', '3',
               'WORKERS', '0', 'DATASET.GENERATE_DEMO', 'False', 'LOG_INTERVAL', '1', 'NET.EMA.USE', 'False']


@pytest.fixture(scope='module')
def search_run(repo_root, tmp_path_factory, demo_data):
    root = tmp_path_factory.mktemp('rs')
    data = demo_data(classes=3, train=4, val=2, size=32)
    opts = dict(SEARCH, OUTPUT=root, DATA_DIR=data)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train.main(['--cfg', str(repo_root / 'configs/demo/train.yaml')] + [str(x) for kv in opts.items() for x in kv])
    finally:
        torch.set_num_threads(threads)
    return root / 'demo_search'


@pytest.mark.process
def test_random_search_spends_the_searchs_compute_and_picks_the_best_on_val(repo_root, search_run, tmp_path):
    assert search_images(str(search_run)) == 2 * 3 * 4
    tool = load_script('tools/random_search.py')
    argv = [str(search_run), '--recipe', str(repo_root / 'configs/demo/retrain.yaml'), '--recipe-opts', *RECIPE_OPTS,
            '--out', str(tmp_path / 'rs'), '--jobs', '2', '--seed', '1']
    report = tool.main(argv)
    assert report['k'] == 2 and report['images_per_path'] == 12 and report['images_trained'] == 24
    budget = search_budget(str(search_run))
    paths = gt.load_paths(str(tmp_path / 'rs'), sampled_only=True)
    assert len(set(paths)) == 2 and all(budget.within(p) for p in paths)
    assert report['best_val_prec1'] == max(report['paths'].values())
    assert report['paths'][gt.path_key(report['best_path'])] == report['best_val_prec1']
    assert [list(s) for s in chosen_path(str(tmp_path / 'rs'))] == report['best_path']
    assert load_config([str(tmp_path / 'rs' / 'best_arch.yaml')]).DATASET.IMAGE_SIZE == budget.space.resolution
    saved = json.loads((tmp_path / 'rs' / 'random_search.json').read_text())
    assert saved['best_path'] == report['best_path']
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / 'rs' / 'results').iterdir()}
    assert tool.main(argv)['best_path'] == report['best_path']  # resumed: nothing trained again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / 'rs' / 'results').iterdir()} == stamps


def test_a_recipe_longer_than_the_whole_search_is_refused(repo_root, search_run, tmp_path):
    tool = load_script('tools/random_search.py')
    with pytest.raises(ConfigError, match='not even one path'):
        tool.main([str(search_run), '--recipe', str(repo_root / 'configs/demo/retrain.yaml'), '--recipe-opts',
                   *RECIPE_OPTS[2:], 'EPOCHS', '3', '--out', str(tmp_path / 'rs')])
