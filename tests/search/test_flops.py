"""FLOPs table (sums agree with a direct count) and the search space chosen for a FLOPs budget."""
import json
import random
import time
from pathlib import Path

import pytest

from lib.models import ops
from lib.models.childnet import build_childnet
from lib.models.complexity import count_macs_params
from lib.models.supernet import path_to_arch
from lib.search.flops import (
    ORIGINAL_FIRST_LAYER_MFLOPS,
    ORIGINAL_LATER_LAYER_MFLOPS,
    FlopsBudgetError,
    MacsTable,
    OpCosts,
    counted_op_costs,
    feasible_range,
    original_op_costs,
    search_space_for_budget,
)


def random_path(layers, rng):
    return tuple(tuple(rng.randrange(ops.NUM_OPS) for _ in range(n)) for n in layers)


@pytest.mark.parametrize('layers, resolution', [((2, 1, 2, 1, 1), 64), ((1, 1, 2, 1, 2), 96)])
def test_table_sums_agree_with_a_direct_count(layers, resolution):
    table = MacsTable.build(layers, resolution, num_classes=10)
    rng = random.Random(resolution)
    paths = [random_path(layers, rng) for _ in range(2)] + [tuple((5,) * n for n in layers)]
    for path in paths:
        macs, params = count_macs_params(build_childnet(path_to_arch(path), num_classes=10),
                                         (1, 3, resolution, resolution))
        assert table.path_macs(path) == pytest.approx(macs / 1e6, rel=0.01)
        assert table.path_params(path) == pytest.approx(params / 1e6, rel=1e-6)
    low, high = table.macs_range()
    assert low == pytest.approx(table.path_macs(tuple((0,) * n for n in layers)))
    assert high == pytest.approx(table.path_macs(tuple((5,) * n for n in layers)))


def test_table_shape_and_json():
    table = MacsTable.build((1, 2, 1, 1, 3), 32, num_classes=10)
    assert [len(stage) for stage in table.op_macs] == [1, 2, 1, 1, 3]
    assert all(len(layer) == ops.NUM_OPS for stage in table.op_macs for layer in stage)
    # Later layers of a stage share one shape and so one cost; the first (strided) one differs.
    assert table.op_macs[4][1] == table.op_macs[4][2] != table.op_macs[4][0]
    data = json.loads(json.dumps(table.to_dict()))
    assert data['resolution'] == 32 and data['op_names'][3] == 'k5e6'
    with pytest.raises(ValueError, match='does not fit'):
        table.path_macs(((0,),) * 5)


@pytest.fixture(scope='module')
def table_600m():
    start = time.perf_counter()
    table = MacsTable.build((4, 4, 4, 4, 4), 224)
    return table, time.perf_counter() - start


def test_full_600m_table_is_quick(table_600m):
    table, seconds = table_600m
    # About 1.5 s on an idle CPU core; the bound is loose for a shared test machine.
    assert seconds < 30
    low, high = table.macs_range()
    assert 250 < low < high < 650


def test_counted_costs_come_from_the_model(table_600m):
    """SUPERNET.FLOPS_TABLE 'counted': first and later layer costs of each op, counted at 224 px."""
    table, _ = table_600m
    costs = counted_op_costs()
    for stage in range(5):
        assert costs.first[stage] == table.op_macs[stage][0]
        assert costs.later[stage] == table.op_macs[stage][1]
    # Our blocks counted with thop cost a few % more than the original's table says.
    original = original_op_costs()
    for counted, table_row in zip(costs.first + costs.later, original.first + original.later):
        for ours, theirs in zip(counted, table_row):
            assert 1.0 < ours / theirs < 1.15


RULE_FACTS = json.loads((Path(__file__).parent / 'original_budget_rule.json').read_text())


def test_every_budget_gives_the_original_layers_and_resolution():
    """The original's search_for_layer on its own table, run over 1094 budgets (min 0 with max 1..700,
    pairs with a nonzero minimum, min = max): ours gives the same layers and resolution, and an error
    exactly where it returned None."""
    mismatches = []
    for low, high, layers, resolution in RULE_FACTS['rows']:
        try:
            space = search_space_for_budget(low, high)
            got = [list(space.layers_per_stage), space.resolution]
        except FlopsBudgetError:
            got = [None, None]
        if got != [layers, resolution]:
            mismatches.append((low, high, got, layers, resolution))
    assert len(RULE_FACTS['rows']) > 1000 and not mismatches


def test_counted_table_gives_other_spaces_for_some_budgets():
    """The alternative table sizes some budgets differently (why the original's table is the default)."""
    counted = counted_op_costs()
    assert search_space_for_budget(0, 300).layers_per_stage == (1, 2, 3, 3, 3)
    assert search_space_for_budget(0, 300, counted).layers_per_stage == (1, 1, 3, 3, 3)
    assert search_space_for_budget(0, 40).resolution == 160
    assert search_space_for_budget(0, 40, counted).resolution == 128


@pytest.mark.parametrize('low, high', [(0, 14), (0, 43), (0, 114), (0, 287), (0, 481), (0, 600), (0, 7),
                                       (100, 300), (250, 400)])
def test_no_path_costs_more_than_the_budget_in_its_measure(low, high):
    """For these budgets the rule sizes the space so that its dearest path fits FLOPS_MAXIMUM in the budget's
    measure, unless even one-layer stages do not (then the cheapest still does). Not every feasible budget has
    paths in it: tests/search/test_budget_paths.py has the narrow ones the search refuses."""
    space = search_space_for_budget(low, high)
    cheapest, dearest = space.budget_flops_range()
    assert cheapest <= high
    if space.layers_per_stage != (1, 1, 1, 1, 1):  # a grown stage: the growth kept the dearest path in
        assert dearest <= high
    # The measure is the table's sum over the searchable layers, divided by the rule's resolution scale.
    path = space.extreme_path(max)
    by_hand = sum(ORIGINAL_FIRST_LAYER_MFLOPS[s][stage[0]] + sum(ORIGINAL_LATER_LAYER_MFLOPS[s][op] for op in stage[1:])
                  for s, stage in enumerate(path))
    assert space.budget_flops(path) == pytest.approx(by_hand / space.budget_scale)


def test_stage_3_gets_at_most_four_layers():
    """The original builds a fifth block in stage 3 when granting four, but never samples or counts it."""
    space = search_space_for_budget(0, 600)
    assert space.layers_per_stage == (4, 4, 4, 4, 4)
    assert space.budget_flops_range()[1] <= 600


def toy_costs(first_min=10, first_max=20, later=10) -> OpCosts:
    row = (first_min,) + (15,) * 4 + (first_max,)
    return OpCosts(first=(row,) * 5, later=((5,) * 5 + (later,),) * 5, source='toy')


def test_rule_on_toy_costs():
    toy = toy_costs()
    # 100 max-cost: one layer each (100), then grow stages 2, 3, 4 while within the budget.
    assert search_space_for_budget(0, 100, toy).layers_per_stage == (1, 1, 1, 1, 1)
    assert search_space_for_budget(0, 125, toy).layers_per_stage == (1, 1, 3, 1, 1)
    # The growth stops at the first layer that does not fit (stage 3 would need 10 more).
    assert search_space_for_budget(0, 139, toy).layers_per_stage == (1, 1, 3, 2, 1)
    assert search_space_for_budget(0, 250, toy).layers_per_stage == (4, 4, 4, 4, 4)
    # Budget below the smallest network (50): resolution drops, the bounds grow by 7/6, 7/5, ...
    space = search_space_for_budget(0, 45, toy)
    assert (space.resolution, space.budget_scale) == (192, pytest.approx(7 / 6))  # 45 * 7/6 = 52.5
    space = search_space_for_budget(0, 30, toy)  # 30 * 7/6 * 7/5 = 49 < 50; * 7/4 fits
    assert (space.resolution, space.budget_scale) == (128, pytest.approx(7 / 6 * 7 / 5 * 7 / 4))
    # A minimum above the one-layer maximum (100) grows the network until it reaches it (here to 130,
    # past the maximum, as in the original: only the later growth respects the maximum).
    assert search_space_for_budget(125, 125, toy).layers_per_stage == (1, 1, 3, 2, 1)
    assert search_space_for_budget(115, 1000, toy).layers_per_stage == (4, 4, 4, 4, 4)


def test_infeasible_budgets_raise_one_clear_error():
    low, high = feasible_range(original_op_costs())
    assert 2 < low < 4 and 500 < high < 600
    with pytest.raises(FlopsBudgetError, match=r'600\.\.800 MFLOPs is infeasible.*FLOPS_MINIMUM <= '):
        search_space_for_budget(600, 800)
    with pytest.raises(FlopsBudgetError, match=r'0\.\.1 MFLOPs is infeasible.*FLOPS_MAXIMUM >= '):
        search_space_for_budget(0, 1)
    with pytest.raises(FlopsBudgetError, match='must not exceed'):
        search_space_for_budget(300, 200)
    assert search_space_for_budget(0, low * 1.001).resolution == 64
    assert search_space_for_budget(high * 0.999, 1000).layers_per_stage == (4, 4, 4, 4, 4)


def test_supernet_resolution_replaces_only_the_rules_resolution():
    from lib.config import load_config
    from lib.search.flops import build_search_space
    rule = build_search_space(load_config(None, ['FLOPS_MAXIMUM', '20']))
    assert (rule.layers_per_stage, rule.resolution) == ((1, 1, 1, 1, 1), 96)
    small = build_search_space(load_config(None, ['FLOPS_MAXIMUM', '20', 'SUPERNET.RESOLUTION', '32']))
    assert small.resolution == 32 and small.layers_per_stage == rule.layers_per_stage
    assert small.budget_flops(((3,),) * 5) == rule.budget_flops(((3,),) * 5)  # the budget's measure is the rule's
