"""A FLOPs budget that no path of its space meets stops before any work, naming budgets that would work; the
grid test agrees with every path's exact cost, counted one by one, in the spaces small enough to list."""
import numpy as np
import pytest

from lib.search.budget_paths import GRID_MFLOPS, check_budget_has_paths, some_path_within, surely_a_path_within
from lib.search.flops import FlopsBudgetError, search_space_for_budget


def every_path_cost(space):
    """The budget-measure cost of every path of ``space``, exactly (a sum over all op combinations)."""
    layers = []
    for stage, count in enumerate(space.layers_per_stage):
        layers += [space.op_costs.first[stage]] + [space.op_costs.later[stage]] * (count - 1)
    totals = np.zeros(1)
    for layer in layers:
        totals = (totals[:, None] + np.asarray(layer)[None, :]).ravel()
    return totals / space.budget_scale


# Narrow budgets over the whole feasible range, where the spaces are small enough to list (at most 7 layers).
NARROW = [(low, low + width) for low in range(2, 200) for width in (0, 1)]


def test_the_grid_agrees_with_every_paths_exact_cost():
    """Never refuses a budget some path meets, never vouches for one none meets, and is unsure only where a path
    misses the budget by less than the grid's tolerance (a few thousandths of an MFLOP)."""
    checked = refused = 0
    for low, high in NARROW:
        try:
            space = search_space_for_budget(low, high)
        except FlopsBudgetError:
            continue
        if sum(space.layers_per_stage) > 7:
            continue
        costs = every_path_cost(space)
        exact = bool(((costs >= low) & (costs <= high)).any())
        maybe, surely = some_path_within(space, low, high), surely_a_path_within(space, low, high)
        checked += 1
        refused += not maybe
        assert maybe or not exact, (low, high)
        assert exact or not surely, (low, high)
        if maybe and not exact:
            miss = np.minimum(np.abs(costs - low), np.abs(costs - high)).min()
            assert miss < (sum(space.layers_per_stage) + 2) * GRID_MFLOPS / space.budget_scale, (low, high)
    assert checked > 300 and refused > 50


def test_a_budget_between_the_paths_costs_is_one_error_naming_budgets_that_work():
    space = search_space_for_budget(20, 20)  # the rule lowers the resolution to 96 px: paths cost 9.77..18.14
    assert space.resolution == 96
    with pytest.raises(FlopsBudgetError) as error:
        check_budget_has_paths(space, 20, 20)
    message = str(error.value)
    assert message.startswith('FLOPs budget 20..20 MFLOPs holds no path of its search space (layers per stage '
                              '[1, 1, 1, 1, 1] at 96 px): its paths cost 9.77..18.14 MFLOPs')
    assert '\n' not in message
    suggested = message.split('budgets that would work: ')[1].split(', ')
    assert suggested[0] == 'FLOPS_MINIMUM 0 FLOPS_MAXIMUM 20' and len(suggested) >= 2
    for text in suggested:
        _, low, _, high = text.split()
        fixed = search_space_for_budget(int(low), int(high))
        costs = every_path_cost(fixed)
        assert ((costs >= int(low)) & (costs <= int(high))).any(), text


@pytest.mark.parametrize('low, high', [(0, 600), (0, 14), (12, 13), (200, 201), (0, 3)])
def test_budgets_with_paths_pass(low, high):
    check_budget_has_paths(search_space_for_budget(low, high), low, high)


def test_a_point_budget_in_a_large_space_is_refused_or_met_as_its_paths_say():
    space = search_space_for_budget(113, 113)
    with pytest.raises(FlopsBudgetError, match='113..113 MFLOPs holds no path'):
        check_budget_has_paths(space, 113, 113)
    low, _ = space.budget_flops_range()
    check_budget_has_paths(space, low, low)  # the cheapest path's own cost is a budget it meets
