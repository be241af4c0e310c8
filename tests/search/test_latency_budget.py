"""A latency budget (SUPERNET.BUDGET_MEASURE latency) with a hand-made table: its config checks, the space it
searches, its feasibility error, the wrong-space refusal, the sampler's redraws, the board's admission and ties,
the final pick, board.json and best_arch.yaml in predicted ms. Nothing is timed."""
import json
import logging
from types import SimpleNamespace

import pytest
import torch

from lib.config import load_config
from lib.errors import ConfigError
from lib.latency.table import LatencyTableError
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.flops import build_search_space, original_op_costs, search_space_for_budget
from lib.search.measures import search_budget
from lib.search.latency_budget import LatencyBudget, LatencyBudgetError, latency_budget
from lib.search.outputs import write_board_json, write_final_arch
from lib.search.sampler import PathSampler
from lib.search.step import StepOutput, offer_to_board
from lib.search.validate import validation_path
from tests.support.handmade_latency import handmade_table
from tests.support.tiny_search import NUM_CLASSES, SLICE, batch, make_search_parts

# Hand-made table (tests/support/handmade_latency.py): fixed parts 1 ms; k3 1 ms, k5 2 ms, k7 4 ms, expansion 6 +0.5 ms.
FAST = ((0,), (0,), (0,), (0,), (0,))  # 6 ms
SLOW = ((5,), (5,), (5,), (5,), (5,))  # 23.5 ms
K5 = ((2,), (2,), (2,), (2,), (2,))  # 11 ms
MIXED = ((4,), (1,), (0,), (0,), (0,))  # 1 + 4 + 1.5 + 3 = 9.5 ms


def latency_cfg(table_file, *extra, maximum=10.0, minimum=0.0):
    return load_config(None, ['SUPERNET.BUDGET_MEASURE', 'latency', 'SUPERNET.LATENCY_TABLE', str(table_file),
                              'SUPERNET.LATENCY_MINIMUM', str(minimum), 'SUPERNET.LATENCY_MAXIMUM', str(maximum),
                              'DATASET.NUM_CLASSES', '5', 'SUPERNET.FLOPS_MAXIMUM', '6', *extra])


@pytest.fixture
def table_file(tmp_path):
    path = tmp_path / 'latency.json'
    handmade_table(resolution=64, num_classes=5).save(str(path))  # FLOPS_MAXIMUM 6: one layer per stage at 64 px
    return path


@pytest.mark.parametrize('overrides, message', [
    (['SUPERNET.BUDGET_MEASURE', 'latency', 'SUPERNET.LATENCY_MAXIMUM', '5'], 'needs SUPERNET.LATENCY_TABLE'),
    (['SUPERNET.BUDGET_MEASURE', 'latency', 'SUPERNET.LATENCY_TABLE', 't.json'], 'give a positive LATENCY_MAXIMUM'),
    (['SUPERNET.BUDGET_MEASURE', 'latency', 'SUPERNET.LATENCY_TABLE', 't.json', 'SUPERNET.LATENCY_MAXIMUM', '5',
      'SUPERNET.LATENCY_MINIMUM', '6'], 'not below LATENCY_MINIMUM'),
    (['SUPERNET.SEARCH_LAYERS', '[1, 1, 1, 1, 1]'], 'leave it out'),
    (['SUPERNET.BUDGET_MEASURE', 'latency', 'SUPERNET.LATENCY_TABLE', 't.json', 'SUPERNET.LATENCY_MAXIMUM', '5',
      'SUPERNET.SEARCH_LAYERS', '[1, 1, 1]'], '5 positive layer counts'),
    (['SUPERNET.BUDGET_MEASURE', 'time'], "SUPERNET.BUDGET_MEASURE is 'time'"),
])
def test_config_checks(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_the_space_comes_from_the_config_or_from_the_flops_budget(table_file):
    given = build_search_space(latency_cfg(table_file, 'SUPERNET.SEARCH_LAYERS', '[1, 2, 1, 3, 1]',
                                           'SUPERNET.RESOLUTION', '160'))
    assert (given.layers_per_stage, given.resolution) == ((1, 2, 1, 3, 1), 160)
    rule = search_space_for_budget(0, 6, original_op_costs())  # FLOPS_MAXIMUM 6: the rule's measure is kept
    assert given.budget_scale == rule.budget_scale and rule.resolution == 64
    from_flops = build_search_space(latency_cfg(table_file))
    assert (from_flops.layers_per_stage, from_flops.resolution) == ((1, 1, 1, 1, 1), 64)
    assert latency_budget(load_config(None, ['SUPERNET.FLOPS_MAXIMUM', '6']), from_flops) is None  # FLOPs: none


def test_a_table_of_another_space_is_refused(table_file):
    for extra in (['SUPERNET.SEARCH_LAYERS', '[1, 2, 1, 1, 1]'], ['SUPERNET.RESOLUTION', '96'],
                  ['DATASET.NUM_CLASSES', '10']):
        cfg = latency_cfg(table_file, *extra)
        with pytest.raises(LatencyTableError, match=r'was measured for \[1, 1, 1, 1, 1\] layers per stage at 64 px, '
                                                    r'5 classes, but this search has'):
            latency_budget(cfg, build_search_space(cfg))


@pytest.mark.parametrize('minimum, maximum, message', [
    (0.0, 5.0, r'latency budget 0..5 ms is infeasible: .* predicted at 6..23.5 ms .* SUPERNET.LATENCY_MAXIMUM >= 6 '
               r'and SUPERNET.LATENCY_MINIMUM <= 23.5'),
    (24.0, 30.0, r'latency budget 24..30 ms is infeasible'),
    (6.2, 6.3, r'admits almost no path of this space'),
])
def test_an_infeasible_latency_budget_is_one_clear_error(table_file, minimum, maximum, message):
    cfg = latency_cfg(table_file, minimum=minimum, maximum=maximum)
    with pytest.raises(LatencyBudgetError, match=message):
        latency_budget(cfg, build_search_space(cfg))


def test_the_sampler_redraws_paths_outside_the_budget():
    budget = LatencyBudget(handmade_table(), 0.0, 10.0)
    plain = PathSampler((1, 1, 1, 1, 1), 6, how_to_prob='even', seed=3)
    bounded = PathSampler((1, 1, 1, 1, 1), 6, how_to_prob='even', seed=3, accept=budget.within)
    stream = [plain.sample() for _ in range(2000)]
    drawn = [bounded.sample() for _ in range(40)]
    assert all(budget.predict_ms(path) <= 10.0 for path in drawn)
    # The same generator: the bounded draws are the plain stream's paths within the budget, in order.
    assert drawn == [path for path in stream if budget.within(path)][:40]
    assert any(not budget.within(path) for path in stream[:40])
    assert 0.05 < budget.within_fraction() < 0.95
    assert all(budget.within(validation_path(load_config(None, []), (1, 1, 1, 1, 1), 6, epoch, budget.within))
               for epoch in range(20))


def offer(session, path, prec1):
    images, _ = batch(2 * SLICE)
    out = StepOutput(logits=torch.randn(2 * SLICE, NUM_CLASSES), loss=torch.tensor(1.0), kd=None, teacher_logits=None)
    return offer_to_board(session, path, images, out, torch.tensor(prec1 / 100 * 2 * SLICE), 2 * SLICE)


def test_the_board_admits_and_orders_by_predicted_latency():
    budget = LatencyBudget(handmade_table(), 0.0, 30.0)
    session = make_search_parts('SUPERNET.POOL_SIZE', '2', 'ACC_GAP', '5')
    session.latency = budget
    assert offer(session, K5, 50.0) and offer(session, SLOW, 50.0)
    assert [e.board_cost for e in session.board] == [23.5, 11.0]  # predicted ms; the original's tie order: dearer first
    # Board full; the worst holds 50 % at 11 ms. Slightly better and faster enters, slightly better and slower not.
    assert not offer(session, ((5,), (4,), (3,), (2,), (1,)), 50.0 + 2.5)  # 1 + 4.5 + 4 + 2.5 + 2 + 1.5 = 15.5 ms
    assert offer(session, MIXED, 50.0 + 2.5)
    assert [(e.path, e.board_cost) for e in session.board] == [(MIXED, 9.5), (SLOW, 23.5)]


def test_final_pick_board_json_and_best_arch_use_the_predicted_latency(tmp_path, caplog):
    table = handmade_table()
    budget = LatencyBudget(table, 0.0, 10.0)
    space = build_search_space(load_config(None, ['SUPERNET.FLOPS_MAXIMUM', '6']))
    board = PrioritizedBoard(3, 5.0)
    probe = dict(probe_images=torch.zeros(1, 3, 4, 4), probe_probs=torch.zeros(1, NUM_CLASSES))
    for path, val in ((K5, 70.0), (MIXED, 40.0), (FAST, 60.0)):  # K5 is the best but over the budget (11 ms)
        board.offer(BoardEntry(path=path, prec1=50.0, board_cost=table.predict_ms(path), val_prec1=val, **probe))
    cfg = load_config(None, ['SUPERNET.FLOPS_MAXIMUM', '6'])
    session = SimpleNamespace(cfg=cfg, board=board, space=space, latency=budget, budget=search_budget(cfg, space, budget),
                              run_dir=str(tmp_path), dist=SimpleNamespace(is_main=True))
    with caplog.at_level(logging.INFO, logger='cream.search'):
        chosen = write_final_arch(session, epoch=3)
    assert chosen.path == FAST
    text = (tmp_path / 'best_arch.yaml').read_text()
    assert '#   predicted latency 6 ms (latency budget 0..10 ms, which chose it; table handmade.json: torch on cpu ' \
           '(hand-made), batch 1, 1 thread(s); plain sum)' in text
    assert f'--latency {table.source}' in text and f'budget FLOPs {space.budget_flops(FAST):.2f}M' in text
    assert 'predicted latency 6 ms (budget 0..10 ms)' in caplog.text
    write_board_json(board, str(tmp_path / 'board.json'), session.budget, epoch=3, flops_budget=(0, 6))
    written = json.loads((tmp_path / 'board.json').read_text())
    assert written['budget_measure'] == 'latency' and written['latency_budget_ms'] == [0.0, 10.0]
    assert written['latency_table'] == 'handmade.json' and written['measures'].startswith('predicted_ms:')
    assert [row['predicted_ms'] for row in written['entries']] == [11.0, 9.5, 6.0]
    assert written['entries'][0]['board_flops_M'] == pytest.approx(space.board_flops(K5))
