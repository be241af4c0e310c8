"""The board's FLOPs measure (SUPERNET.BOARD_FLOPS): the original's FlopsEst table by default, the budget's
measure as the alternative."""
import json
from pathlib import Path

import pytest
import torch

from lib.config import load_config
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.flops import build_search_space, search_space_for_budget
from lib.search.flops_est import ORIGINAL_FLOPS_EST, ORIGINAL_PARAMS_EST
from lib.search.step import StepOutput, offer_to_board
from tests.support.tiny_search import NUM_CLASSES, SLICE, STUDENT, batch, make_search_parts

REFERENCE = Path(__file__).resolve().parents[1] / 'reference' / 'original_flops_table_0_600.json'

# Two paths of the 0-600 space that the two measures order oppositely (found by enumerating one-op changes).
CHEAPER_BY_BUDGET = ((0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0), (0, 1, 0, 0), (0, 0, 0, 0))
CHEAPER_BY_FLOPS_EST = ((0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0), (0, 1, 0, 0))


@pytest.mark.parametrize('kind, table', [('flops', ORIGINAL_FLOPS_EST), ('params', ORIGINAL_PARAMS_EST)])
def test_every_stage_layer_and_op_is_the_originals_flops_est(kind, table):
    """The original's FlopsEst table on its 0-600 supernet (tests/reference), entry by entry, incl. stage 3's
    fifth layer that the original builds and never runs."""
    reference = json.loads(REFERENCE.read_text())
    measured = reference[kind]
    assert table.fixed == reference[f'{kind}_fixed']
    assert (table.stage0, table.final_stage) == (measured['0']['0']['0'], measured['6']['0']['0'])
    checked = 0
    for stage in range(1, 6):
        for layer, ops in measured[str(stage)].items():
            for op, value in ops.items():
                assert table.layer_cost(stage - 1, int(layer), int(op)) == value, (stage, layer, op)
                checked += 1
    assert checked == 6 * (4 + 4 + 5 + 4 + 4)


def test_a_path_costs_what_the_originals_get_flops_sums():
    """get_flops: the path's entries (the fixed stages as op 0) plus the fixed part."""
    reference = json.loads(REFERENCE.read_text())
    path = ((3, 1, 0, 5), (2, 2, 4, 0), (1, 3, 5, 2), (0, 0, 1, 4), (5, 4, 3, 2))
    arch = [[0], *[list(stage) for stage in path], [0]]
    expected = reference['flops_fixed'] + sum(reference['flops'][str(s)][str(layer)][str(op)]
                                              for s, stage in enumerate(arch) for layer, op in enumerate(stage))
    assert ORIGINAL_FLOPS_EST.path_cost(path) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize('measure', ['flops_est', 'budget'])
def test_the_board_measure_decides_admission(measure):
    space = build_search_space(load_config(None, ['SUPERNET.BOARD_FLOPS', measure]))
    assert space.layers_per_stage == (4, 4, 4, 4, 4)
    if measure == 'flops_est':
        assert space.board_flops(STUDENT_600) == pytest.approx(ORIGINAL_FLOPS_EST.path_cost(STUDENT_600))
    else:
        assert space.board_flops(STUDENT_600) == space.budget_flops(STUDENT_600)
    # The two measures order these paths oppositely: a path better by less than ACC_GAP enters only if it is
    # cheaper in the board's measure.
    assert space.budget_flops(CHEAPER_BY_BUDGET) < space.budget_flops(CHEAPER_BY_FLOPS_EST)
    assert ORIGINAL_FLOPS_EST.path_cost(CHEAPER_BY_BUDGET) > ORIGINAL_FLOPS_EST.path_cost(CHEAPER_BY_FLOPS_EST)
    board = PrioritizedBoard(pool_size=1, acc_gap=5.0)
    probe = dict(probe_images=torch.zeros(1, 3, 4, 4), probe_probs=torch.zeros(1, 10))
    board.offer(BoardEntry(path=CHEAPER_BY_FLOPS_EST, prec1=50.0, board_cost=space.board_flops(CHEAPER_BY_FLOPS_EST),
                           **probe))
    admitted = board.offer(BoardEntry(path=CHEAPER_BY_BUDGET, prec1=51.0,
                                      board_cost=space.board_flops(CHEAPER_BY_BUDGET), **probe))
    assert admitted == (measure == 'budget')


STUDENT_600 = ((3, 3, 1, 0), (1, 1, 1, 1), (5, 0, 2, 3), (3, 3, 3, 3), (0, 1, 2, 3))


@pytest.mark.parametrize('measure', ['flops_est', 'budget'])
def test_the_search_step_offers_the_board_measure(measure):
    session = make_search_parts('SUPERNET.BOARD_FLOPS', measure)
    session.space = build_search_space(load_config(None, ['SUPERNET.FLOPS_MAXIMUM', '20',
                                                          'SUPERNET.BOARD_FLOPS', measure]))
    assert session.space.layers_per_stage == (1, 1, 1, 1, 1)
    images, _ = batch(2 * SLICE)
    logits = torch.randn(2 * SLICE, NUM_CLASSES)
    out = StepOutput(logits=logits, loss=torch.tensor(1.0), kd=None, teacher_logits=None)
    assert offer_to_board(session, STUDENT, images, out, torch.tensor(2.0), 2 * SLICE)
    entry = session.board[0]
    expected = (ORIGINAL_FLOPS_EST.path_cost(STUDENT) if measure == 'flops_est'
                else session.space.budget_flops(STUDENT))
    assert entry.board_cost == pytest.approx(expected)
    assert entry.board_cost != pytest.approx(session.space.budget_flops(STUDENT) if measure == 'flops_est'
                                        else ORIGINAL_FLOPS_EST.path_cost(STUDENT))


def test_the_budget_rule_keeps_its_own_table():
    """The measure of the board never sizes the space: both settings give the same space for every budget."""
    for budget in ((0, 14), (0, 43), (0, 114), (0, 287), (0, 481), (0, 600), (100, 300)):
        spaces = [build_search_space(load_config(None, ['SUPERNET.FLOPS_MINIMUM', str(budget[0]),
                                                        'SUPERNET.FLOPS_MAXIMUM', str(budget[1]),
                                                        'SUPERNET.BOARD_FLOPS', measure]))
                  for measure in ('flops_est', 'budget')]
        assert spaces[0].layers_per_stage == spaces[1].layers_per_stage
        assert spaces[0].resolution == spaces[1].resolution
        dearest = spaces[0].extreme_path(max)
        assert spaces[0].budget_flops(dearest) == spaces[1].budget_flops(dearest)
    assert search_space_for_budget(0, 600).board_table is ORIGINAL_FLOPS_EST  # the default is the original's
