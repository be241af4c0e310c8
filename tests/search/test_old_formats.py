"""Files written before issue 24 renamed the board's cost still load: a search checkpoint whose board entries name
it 'flops', its board.json and best_arch.yaml (tests/search/old_format, written by the code of commit d2a9b4e)."""
from pathlib import Path

import torch

from lib.checkpoint.restore import load_search_state
from lib.experiments.supernet_scores import board_paths, chosen_path
from lib.search.board import PrioritizedBoard
from lib.search.flops import SearchSpace, op_costs_for, with_board_measure
from lib.search.flops_budget import FlopsBudget
from lib.search.meta_matching import MetaMatchingNetwork
from lib.search.outputs import best_arch_yaml, write_board_json
from lib.search.sampler import PathSampler

OLD = Path(__file__).resolve().parent / 'old_format'
LAYERS, CLASSES, SLICE = (1, 1, 1, 1, 1), 5, 2
PATHS = [((1,), (0,), (2,), (5,), (3,)), ((0,), (0,), (0,), (0,), (0,)), ((5,), (4,), (3,), (2,), (1,))]


def old_space() -> SearchSpace:
    return with_board_measure(SearchSpace(LAYERS, 32, 1.0, op_costs_for('original')), 'flops_est')


def test_an_old_search_checkpoint_resumes_with_its_board_costs():
    checkpoint = torch.load(OLD / 'search_state.pth.tar', weights_only=True)
    assert 'flops' in checkpoint['board']['entries'][0] and 'board_cost' not in checkpoint['board']['entries'][0]
    board, mmn, sampler = PrioritizedBoard(3, 5.0), MetaMatchingNetwork(SLICE, CLASSES), PathSampler(LAYERS, 6, seed=0)
    load_search_state(checkpoint, 'old', search_space={'layers_per_stage': list(LAYERS), 'resolution': 32},
                      supernet=torch.nn.Linear(1, 1), mmn=mmn, board=board, path_sampler=sampler, device='cpu')
    space = old_space()
    assert [entry.path for entry in board] == PATHS
    assert [entry.board_cost for entry in board] == [space.board_flops(path) for path in PATHS]
    assert [(entry.prec1, entry.val_prec1, entry.macs, entry.params) for entry in board] == [
        (60.0, 40.0, 50.0, 1.5), (58.0, 41.0, 51.0, 2.5), (56.0, None, 52.0, 3.5)]
    # Saved again, it names the cost for its measure, and loads back the same.
    state = board.state_dict()
    assert 'board_cost' in state['entries'][0] and 'flops' not in state['entries'][0]
    again = PrioritizedBoard(3, 5.0)
    again.load_state_dict(state)
    assert [(e.path, e.board_cost) for e in again] == [(e.path, e.board_cost) for e in board]


def old_board() -> PrioritizedBoard:
    board = PrioritizedBoard(3, 5.0)
    board.load_state_dict(torch.load(OLD / 'search_state.pth.tar', weights_only=True)['board'])
    return board


def test_old_board_json_and_best_arch_are_read():
    assert board_paths(str(OLD)) == PATHS
    assert chosen_path(str(OLD)) == PATHS[0]


def test_todays_code_writes_the_same_files_for_the_same_board(tmp_path):
    """Under the default measures, board.json and best_arch.yaml come out byte for byte as before the rename."""
    budget = FlopsBudget(old_space(), 0.0, 600.0)
    assert best_arch_yaml(old_board().best(), budget, epoch=4, run_dir='output/old_run') == \
        (OLD / 'best_arch.yaml').read_text()
    write_board_json(old_board(), str(tmp_path / 'board.json'), budget, epoch=4, flops_budget=(0, 600))
    assert (tmp_path / 'board.json').read_text() == (OLD / 'board.json').read_text()
