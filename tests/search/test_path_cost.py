"""One interface for what a path costs (lib.search.path_cost), each measure named for what it counts, and the one
place (lib.search.measures.search_budget) that says which measure is the budget's and which the board's."""
import pytest

from tests.support.handmade_latency import handmade_table
from lib.config import load_config
from lib.search.flops import BudgetFlops, SearchSpace, op_costs_for, with_board_measure
from lib.search.flops_budget import FlopsBudget
from lib.search.flops_est import ORIGINAL_FLOPS_EST, ORIGINAL_PARAMS_EST
from lib.search.latency_budget import LatencyBudget
from lib.search.macs_table import MacsTable
from lib.search.measures import search_budget
from lib.search.path_cost import PathCost, SpaceCost
from lib.search.sampling_budget import sampling_budget

LAYERS = (1, 1, 1, 1, 1)
PATHS = [((0,), (0,), (0,), (0,), (0,)), ((5,), (4,), (3,), (2,), (1,)), ((5,), (5,), (5,), (5,), (5,))]


def space(board_flops='flops_est') -> SearchSpace:
    return with_board_measure(SearchSpace(LAYERS, 32, 1.25, op_costs_for('original')), board_flops)


def test_the_four_tables_are_path_costs_named_for_what_they_count():
    macs, table = MacsTable.build(LAYERS, 32, num_classes=5), handmade_table()
    measures = {'macs': macs, 'budget_flops': space().budget_measure, 'flops_est': ORIGINAL_FLOPS_EST,
                'latency_ms': table}
    for name, measure in measures.items():
        assert isinstance(measure, PathCost) and measure.name == name
    assert [m.unit for m in measures.values()] == ['MMACs', 'MFLOPs', 'MFLOPs', 'ms']
    assert ORIGINAL_PARAMS_EST.name == 'params_est'  # the same kind of table, counting params
    for path in PATHS:  # cost is each table's own sum
        assert macs.cost(path) == macs.path_macs(path)
        assert space().budget_measure.cost(path) == space().op_costs.path_cost(path) / 1.25
        assert ORIGINAL_FLOPS_EST.cost(path) == ORIGINAL_FLOPS_EST.path_cost(path)
        assert table.cost(path) == table.predict_ms(path)
    # The ones bound to a space know its range: here all k3e4 is the cheapest path and all k7e6 the dearest.
    for measure in (macs, space().budget_measure, table):
        assert isinstance(measure, SpaceCost)
        assert measure.cost_range() == pytest.approx((measure.cost(PATHS[0]), measure.cost(PATHS[2])))
    assert table.cost_range() == (6.0, 23.5)


def test_the_search_budget_says_which_measure_decides_what():
    cfg = load_config(None, ['SUPERNET.FLOPS_MAXIMUM', '100'])
    default = search_budget(cfg, space())
    assert isinstance(default, FlopsBudget) and isinstance(default.measure, BudgetFlops)
    assert default.board_measure is ORIGINAL_FLOPS_EST and (default.minimum, default.maximum) == (0.0, 100.0)
    assert [default.within(p) for p in PATHS] == [0 <= space().budget_flops(p) <= 100 for p in PATHS]
    assert sampling_budget(default) is None  # the original's sampler: the whole space
    one_measure = search_budget(cfg, space('budget'))
    assert one_measure.board_measure.name == 'budget_flops'
    latency = search_budget(cfg, space(), LatencyBudget(handmade_table(), 0.0, 10.0))
    assert latency.measure.name == latency.board_measure.name == 'latency_ms' and latency.space == space()
    assert [latency.within(p) for p in PATHS] == [True, False, False]
    assert sampling_budget(latency).within(PATHS[0]) and not sampling_budget(latency).within(PATHS[2])


def test_each_budget_words_its_own_measure():
    cfg = load_config(None, ['SUPERNET.FLOPS_MAXIMUM', '100'])
    flops, latency = search_budget(cfg, space()), search_budget(cfg, space(), LatencyBudget(handmade_table(), 0.0, 10.0))
    assert flops.lead_text(PATHS[0], ', ') == '' and latency.lead_text(PATHS[0], ', ') == 'predicted 6 ms, '
    assert flops.columns(12.5, PATHS[0]) == {'board_flops_M': 12.5}
    assert latency.columns(6.0, PATHS[0]) == {'predicted_ms': 6.0, 'board_flops_M': space().board_flops(PATHS[0])}
    assert flops.text() == '0..100 MFLOPs' and latency.text() == '0..10 ms'
    assert 'MFLOPs' in flops.outside_warning([1.0, 2.0], 'best_arch.yaml')
    assert 'predicted at 1..2 ms' in latency.outside_warning([1.0, 2.0], 'best_arch.yaml')
