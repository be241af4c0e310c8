"""Whether any path of a search space lies within its FLOPs budget, and the one error before any work when none
does. The budget rule sizes the space by its dearest path only, so the cheapest path is within FLOPS_MAXIMUM but a
narrow budget (FLOPS_MINIMUM near FLOPS_MAXIMUM) can fall between the costs of the space's paths, or below them.

A space has up to 6**20 paths; their budget costs are sums of one op cost per layer, so the sums reachable on a
grid of GRID_MFLOPS are a bitset built layer by layer. Each op cost enters rounded down and rounded up, so every
path's exact cost lies within LAYERS x GRID of a reachable grid point: no grid point in the budget (widened by
one grid step) proves that no path is within it, and a grid point deeper inside than that tolerance proves one is.
"""
import math
from typing import List, Sequence, Tuple

import numpy as np

from lib.search.flops import FlopsBudgetError, OpCosts, SearchSpace, search_space_for_budget

GRID_MFLOPS = 0.001  # at 224 px, before the budget scale


def _layer_costs(space: SearchSpace) -> List[Sequence[float]]:
    costs = space.op_costs
    layers = []
    for stage, count in enumerate(space.layers_per_stage):
        layers += [costs.first[stage]] + [costs.later[stage]] * (count - 1)
    return layers


def reachable_grid(space: SearchSpace) -> np.ndarray:
    """reach[k]: some path's op costs, each rounded down or up to the grid, sum to k grid steps (224-px MFLOPs)."""
    layers = _layer_costs(space)
    reach = np.zeros(sum(math.ceil(max(layer) / GRID_MFLOPS) for layer in layers) + 1, dtype=bool)
    reach[0] = True
    for layer in layers:
        grown = np.zeros_like(reach)
        for steps in {bound(cost / GRID_MFLOPS) for cost in layer for bound in (math.floor, math.ceil)}:
            grown[steps:] |= reach[:len(reach) - steps]
        reach = grown
    return reach


def _grid_points_within(space: SearchSpace, reach: np.ndarray, low: float, high: float, margin: float) -> bool:
    """Whether a reachable grid point lies in [low, high] (budget-measure MFLOPs) shrunk by ``margin`` grid steps."""
    first = max(0, math.ceil(low * space.budget_scale / GRID_MFLOPS - margin))
    last = min(len(reach) - 1, math.floor(high * space.budget_scale / GRID_MFLOPS + margin))
    return first <= last and bool(reach[first:last + 1].any())


def some_path_within(space: SearchSpace, low: float, high: float) -> bool:
    """False only where no path of ``space`` costs ``low..high`` MFLOPs in the budget's measure."""
    return _grid_points_within(space, reachable_grid(space), low, high, margin=1)


def surely_a_path_within(space: SearchSpace, low: float, high: float) -> bool:
    """True only where some path of ``space`` costs ``low..high`` MFLOPs in the budget's measure."""
    cheapest, dearest = space.budget_flops_range()
    if low <= cheapest <= high or low <= dearest <= high:
        return True
    return _grid_points_within(space, reachable_grid(space), low, high, margin=-(len(_layer_costs(space)) + 1))


def _working_budgets(space: SearchSpace, low: float, high: float, costs: OpCosts) -> List[Tuple[int, int]]:
    """Whole-number budgets near (low, high) whose own space surely has a path within them."""
    reach = reachable_grid(space)
    sums = np.flatnonzero(reach) * GRID_MFLOPS / space.budget_scale
    slack = (len(_layer_costs(space)) + 2) * GRID_MFLOPS / space.budget_scale
    below, above = sums[sums <= low], sums[sums >= high]
    candidates = [(0, math.ceil(high))]
    if len(below):
        candidates.append((math.floor(below[-1] - slack), math.ceil(high)))
    if len(above):
        candidates.append((math.floor(low), math.ceil(above[0] + slack)))
    working = []
    for minimum, maximum in dict.fromkeys(candidates):
        try:
            candidate_space = search_space_for_budget(max(minimum, 0), maximum, costs)
        except FlopsBudgetError:
            continue
        if surely_a_path_within(candidate_space, max(minimum, 0), maximum):
            working.append((max(minimum, 0), maximum))
    return working


def check_budget_has_paths(space: SearchSpace, flops_minimum: float, flops_maximum: float) -> None:
    """FlopsBudgetError, before any work, for a budget that no path of ``space`` meets in the budget's measure,
    naming the space's range and whole-number budgets that would work."""
    if some_path_within(space, flops_minimum, flops_maximum):
        return
    cheapest, dearest = space.budget_flops_range()
    working = _working_budgets(space, flops_minimum, flops_maximum, space.op_costs)
    fixes = ('; budgets that would work: ' + ', '.join(f'FLOPS_MINIMUM {lo} FLOPS_MAXIMUM {hi}' for lo, hi in working)
             if working else '; widen the budget')
    raise FlopsBudgetError(
        f'FLOPs budget {flops_minimum:g}..{flops_maximum:g} MFLOPs holds no path of its search space (layers per '
        f'stage {list(space.layers_per_stage)} at {space.resolution} px): its paths cost {cheapest:.2f}..'
        f'{dearest:.2f} MFLOPs in the budget\'s measure ({space.op_costs.source}, budget scale '
        f'{space.budget_scale:.4g}) and none falls within the budget, so the search could pick none{fixes}')
