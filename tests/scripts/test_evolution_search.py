"""The evolutionary search on a real (tiny) search run: as the search's final pick (SUPERNET.FINAL_PICK
evolution, both sides of the switch) and as tools/evolution_search.py on the finished folder, which gets the same
pick with the same settings, resumes without scoring again, and never overwrites the run's own best_arch.yaml
unless asked."""
import json

import pytest
import torch

import train
from lib.config import load_config
from lib.errors import ConfigError
from lib.experiments.supernet_scores import chosen_path
from lib.models.paths import path_key
from lib.search.final_pick import EVOLUTION_STATE_FILE
from tests.support.demo_search import TINY_SEARCH
from tests.support.scripts_as_modules import load_script

# The demo config at minimal size: one layer per stage at 64 px, 2 epochs of 3 steps, board from epoch 1.
SEARCH = dict(TINY_SEARCH, DETERMINISTIC=True, **{'SUPERNET.FINAL_PICK_BN_BATCHES': 1})
EVOLUTION = {'SUPERNET.FINAL_PICK': 'evolution', 'SUPERNET.EVOLUTION.POPULATION': 4,
             'SUPERNET.EVOLUTION.GENERATIONS': 2, 'SUPERNET.EVOLUTION.PARENTS': 2,
             'SUPERNET.EVOLUTION.MUTATIONS': 2, 'SUPERNET.EVOLUTION.CROSSOVERS': 2,
             'SUPERNET.EVOLUTION.MUTATION_PROB': 0.5}


@pytest.fixture(scope='module')
def data(demo_data):
    return demo_data(classes=3, train=4, val=2, size=32)


def search(repo_root, out, data, **extra):
    opts = dict(SEARCH, OUTPUT=out, DATA_DIR=data, **extra)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train.main(['--cfg', str(repo_root / 'configs/demo/train.yaml')]
                          + [str(x) for kv in opts.items() for x in kv])
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def evolved(repo_root, data, tmp_path_factory):
    out = tmp_path_factory.mktemp('evolved')
    result = search(repo_root, out, data, **EVOLUTION)
    return out / 'demo_search', result


def test_the_final_pick_by_evolution_is_the_best_scored_path(evolved):
    run_dir, result = evolved
    state = json.loads((run_dir / EVOLUTION_STATE_FILE).read_text())
    scores = state['scores']
    assert state['generation'] == 2 and len(state['history']) == 3
    assert 4 < len(scores) <= 4 + 2 * 4  # generation 0, then up to 4 children per generation
    best = max(scores.values())
    assert scores[path_key(result['best_arch'])] == best
    board = [tuple(tuple(s) for s in e['path']) for e in result['board']]
    assert all(path_key(p) in scores for p in board)  # generation 0 starts from the board's paths
    text = (run_dir / 'best_arch.yaml').read_text()
    assert text.startswith('# Best evolution path') and f'val prec1 {best:.3f}' in text
    assert 'by an evolutionary search' in (run_dir / 'train.log').read_text()


def test_the_default_final_pick_runs_no_evolution(repo_root, data, tmp_path):
    result = search(repo_root, tmp_path, data)
    run_dir = tmp_path / 'demo_search'
    assert not (run_dir / EVOLUTION_STATE_FILE).exists()
    assert (run_dir / 'best_arch.yaml').read_text().startswith('# Best board path')
    assert result['best_arch'] in [e['path'] for e in result['board']]
    # The finished run resumed with the switch (FINAL_PICK and EVOLUTION may change on resume): only the final pick
    resumed = search(repo_root, tmp_path, data, AUTO_RESUME=True, **EVOLUTION)
    state = json.loads((run_dir / EVOLUTION_STATE_FILE).read_text())
    assert resumed['board'] == result['board'] and len(state['history']) == 3
    assert state['scores'][path_key(resumed['best_arch'])] == max(state['scores'].values())
    assert (run_dir / 'best_arch.yaml').read_text().startswith('# Best evolution path')


def test_the_tool_gets_the_same_pick_resumes_and_keeps_the_runs_own(evolved, tmp_path):
    run_dir, result = evolved
    tool = load_script('tools/evolution_search.py')
    own = (run_dir / 'best_arch.yaml').read_text()
    report = tool.main([str(run_dir), '--out', str(tmp_path / 'evo')])
    search_state = json.loads((run_dir / EVOLUTION_STATE_FILE).read_text())
    assert report['best_path'] == result['best_arch'] and report['evaluations'] == len(search_state['scores'])
    assert report['evaluations'] == len(json.loads((tmp_path / 'evo' / 'evolution_state.json').read_text())['scores'])
    written = json.loads((tmp_path / 'evo' / 'evolution_report.json').read_text())
    assert written['best_path'] == report['best_path'] and written['evaluations'] == report['evaluations']
    assert [list(s) for s in chosen_path(str(tmp_path / 'evo'))] == result['best_arch']
    stamp = (tmp_path / 'evo' / 'evolution_state.json').stat().st_mtime_ns
    again = tool.main([str(run_dir), '--out', str(tmp_path / 'evo')])  # finished: resumes with nothing to score
    assert again['best_path'] == report['best_path'] and again['history'] == report['history']
    assert (tmp_path / 'evo' / 'evolution_state.json').stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match='would overwrite'):
        tool.main([str(run_dir), '--out', str(run_dir)])
    assert (run_dir / 'best_arch.yaml').read_text() == own
    with pytest.raises(ConfigError, match='other settings'):
        tool.main([str(run_dir), '--out', str(tmp_path / 'evo'), '--generations', '3'])
    other = tool.main([str(run_dir), '--out', str(tmp_path / 'more'), '--generations', '3', '--replace-run-pick'])
    assert other['evaluations'] > report['evaluations'] and other['best_score'] >= report['best_score']
    assert (run_dir / 'best_arch.yaml').read_text() == (tmp_path / 'more' / 'best_arch.yaml').read_text()


def test_evolution_with_sampled_candidates_is_refused():
    with pytest.raises(ConfigError, match='FINAL_PICK_SAMPLES'):
        load_config(None, ['SUPERNET.FINAL_PICK', 'evolution', 'SUPERNET.FINAL_PICK_SAMPLES', '3'])
    with pytest.raises(ConfigError, match='SUPERNET.FINAL_PICK'):
        load_config(None, ['SUPERNET.FINAL_PICK', 'genetic'])
