"""The search space a FLOPs budget allows (the original's budget rule), priced by an op-cost table: the
original's (SUPERNET.FLOPS_TABLE 'original') or our thop counts ('counted', from ``lib.search.macs_table``);
and the board's measure of a path (SUPERNET.BOARD_FLOPS, ``lib.search.flops_est``).

FLOPs are multiply-accumulates in millions; a path costs the fixed parts plus the chosen op of every
searchable layer, so a table of per-layer, per-op costs prices any path with a sum.
"""
import dataclasses
import functools
from dataclasses import dataclass
from typing import ClassVar, Optional, Sequence, Tuple, Union

from lib.config.table import choices
from lib.errors import ConfigError
from lib.models import ops
from lib.models.supernet import check_supported_options
from lib.search.flops_est import ORIGINAL_FLOPS_EST, WholePathTable
from lib.search.macs_table import MacsTable

SEARCH_RESOLUTION = 224  # the original's rule prices ops at 224 px and scales the budget for lower ones
RESOLUTION_STEP = 32
MIN_SIZE_FACTOR = 2  # resolution never below 2 * 32 = 64 px
# The original's greedy growth: searchable-stage indices in the order they get another layer, each up
# to the given count; a layer is added only while the largest network stays within the budget.
GROWTH_ORDER = (2, 3, 4, 1, 0, 2, 3, 4, 1, 0)
GROWTH_LIMITS = (3, 3, 3, 2, 2, 4, 4, 4, 4, 4)
# Stage 3 (80 ch) gets at most 4 layers, as the original trains it: its last block string repeats
# twice, so it builds a fifth block when 4 layers are granted, but samples 4 ops and never runs it.

# The original's per-op cost table (github.com/microsoft/Cream, Cream/lib/utils/op_by_layer_dict.py):
# MFLOPs at 224 px of each searchable stage's first layer and of a later layer, per op
# (k3e4, k3e6, k5e4, k5e6, k7e4, k7e6). Its comment calls the pair (stride 1, stride 2), but the rule
# reads the first number for a stage's first layer and the second for the layers after it, and the
# numbers fit that reading (e.g. stage 1, k3e4: 16->64->24 channels at 112->56 px gives the first).
ORIGINAL_FIRST_LAYER_MFLOPS = (
    (21.828704, 32.669328, 25.039968, 37.486224, 29.856864, 44.711568),
    (11.808656, 17.68624, 13.01288, 19.492576, 14.819216, 22.20208),
    (8.198, 12.292848, 8.69976, 13.045488, 9.4524, 14.174448),
    (12.006112, 18.028752, 13.009632, 19.534032, 14.514912, 21.791952),
    (11.307456, 17.007072, 11.608512, 17.458656, 12.060096, 18.136032),
)
ORIGINAL_LATER_LAYER_MFLOPS = (
    (18.820752, 28.16048, 23.637648, 35.385824, 30.862992, 46.22384),
    (11.86712, 17.780848, 13.87416, 20.791408, 16.88472, 25.307248),
    (10.99632, 16.5172, 11.99984, 18.02248, 13.50512, 20.2804),
    (15.61632, 23.46096, 16.820544, 25.267296, 18.62688, 27.9768),
    (15.292416, 23.1504, 15.894528, 24.053568, 16.797696, 25.40832),
)
FLOPS_TABLES = choices('SUPERNET.FLOPS_TABLE')
BOARD_FLOPS = choices('SUPERNET.BOARD_FLOPS')

class FlopsBudgetError(ConfigError):
    """A FLOPs budget no search space satisfies."""


@dataclass(frozen=True)
class OpCosts:
    """The budget's price list: per searchable stage and op, MFLOPs at 224 px of the stage's first layer
    (``first[stage][op]``) and of each later layer (``later[stage][op]``)."""

    first: Tuple[Tuple[float, ...], ...]
    later: Tuple[Tuple[float, ...], ...]
    source: str

    def path_cost(self, path: Sequence[Sequence[int]]) -> float:
        """MFLOPs at 224 px of the searchable layers of ``path``."""
        return sum(self.first[s][stage[0]] + sum(self.later[s][op] for op in stage[1:])
                   for s, stage in enumerate(path) if stage)


@dataclass(frozen=True)
class BudgetFlops:
    """The FLOPs budget's measure of the paths of one space (``lib.search.path_cost`` name 'budget_flops'): the
    searchable layers priced by ``op_costs`` at 224 px, divided by ``budget_scale``, the factor by which the
    rule multiplied the budget when it lowered the resolution (1 at 224 px)."""

    name: ClassVar[str] = 'budget_flops'
    unit: ClassVar[str] = 'MFLOPs'
    op_costs: OpCosts
    budget_scale: float
    layers_per_stage: Tuple[int, ...]

    def cost(self, path: Sequence[Sequence[int]]) -> float:
        return self.op_costs.path_cost(path) / self.budget_scale

    def extreme_path(self, pick=min) -> Tuple[Tuple[int, ...], ...]:
        """The cheapest (``pick=min``) or dearest (``max``) path of the space."""
        def op(costs: Sequence[float]) -> int:
            return pick(range(len(costs)), key=costs.__getitem__)
        return tuple((op(self.op_costs.first[s]),) + (op(self.op_costs.later[s]),) * (n - 1)
                     for s, n in enumerate(self.layers_per_stage))

    def cost_range(self) -> Tuple[float, float]:
        return self.cost(self.extreme_path(min)), self.cost(self.extreme_path(max))


@dataclass(frozen=True)
class SearchSpace:
    """Layers per searchable stage and input resolution, with the two FLOPs measures of a path.

    The budget's measure (``budget_measure``, ``budget_flops``) is the one the original's rule sizes the space
    with (``BudgetFlops``). In that measure the cheapest path of the space is within a budget whose
    FLOPS_MINIMUM is 0; a narrow budget can miss every path (``lib.search.budget_paths`` refuses it before any
    work). Under a FLOPs budget it decides which paths the final pick counts as within the budget.

    The board's FLOPs measure (``board_measure``, ``board_flops``; SUPERNET.BOARD_FLOPS) decides board admission
    and ties under a FLOPs budget: by default the original's ``FlopsEst`` count of the whole path
    (``board_table``, ``lib.search.flops_est``, measure 'flops_est'); with ``board_table`` None, the budget's
    measure. ``lib.search.measures`` says which measure decides what in a search."""

    layers_per_stage: Tuple[int, ...]
    resolution: int
    budget_scale: float
    op_costs: OpCosts
    board_table: Optional[WholePathTable] = ORIGINAL_FLOPS_EST

    @property
    def budget_measure(self) -> BudgetFlops:
        return BudgetFlops(self.op_costs, self.budget_scale, self.layers_per_stage)

    @property
    def board_measure(self) -> Union[WholePathTable, BudgetFlops]:
        return self.budget_measure if self.board_table is None else self.board_table

    def budget_flops(self, path: Sequence[Sequence[int]]) -> float:
        """MFLOPs of ``path`` in the budget's measure."""
        return self.budget_measure.cost(path)

    def board_flops(self, path: Sequence[Sequence[int]]) -> float:
        """MFLOPs of ``path`` in the board's FLOPs measure."""
        return self.board_measure.cost(path)

    @property
    def board_measure_text(self) -> str:
        """What ``board_flops`` counts, in a few words (for logs and board.json)."""
        if self.board_table is None:
            return "the FLOPs budget's measure"
        return "the original's FlopsEst: ptflops counts of the whole path at 224 px"

    def extreme_path(self, pick=min) -> Tuple[Tuple[int, ...], ...]:
        """The cheapest (``pick=min``) or dearest (``max``) path of the space in the budget's measure."""
        return self.budget_measure.extreme_path(pick)

    def budget_flops_range(self) -> Tuple[float, float]:
        """The budget's measure of the cheapest and of the dearest path of the space."""
        return self.budget_measure.cost_range()


# ---- search space from the budget -----------------------------------------------------------------
def original_op_costs() -> OpCosts:
    """The original's table (SUPERNET.FLOPS_TABLE 'original', the default)."""
    return OpCosts(ORIGINAL_FIRST_LAYER_MFLOPS, ORIGINAL_LATER_LAYER_MFLOPS,
                   "the original's per-op table")


@functools.lru_cache(maxsize=1)
def counted_op_costs() -> OpCosts:
    """Costs counted from our blocks at 224 px with thop (SUPERNET.FLOPS_TABLE 'counted'): MACs with BN,
    activations and the SE gate included, 2-10% above the original's table."""
    table = MacsTable.build((2,) * ops.NUM_SEARCH_STAGES, SEARCH_RESOLUTION)
    return OpCosts(tuple(stage[0] for stage in table.op_macs), tuple(stage[1] for stage in table.op_macs),
                   'thop counts of our blocks')


def op_costs_for(name: str) -> OpCosts:
    if name == 'original':
        return original_op_costs()
    if name == 'counted':
        return counted_op_costs()
    raise ValueError(f'SUPERNET.FLOPS_TABLE is {name!r}; choose one of {", ".join(FLOPS_TABLES)}')


def _budget_scale(size: int) -> float:
    """The rule's factor for resolution ``size`` * 32: 7/6 * 7/5 * ... * 7/size (compounding, as there)."""
    scale = 1.0
    for s in range(SEARCH_RESOLUTION // RESOLUTION_STEP - 1, size - 1, -1):
        scale *= SEARCH_RESOLUTION / RESOLUTION_STEP / s
    return scale


def feasible_range(costs: OpCosts) -> Tuple[float, float]:
    """(least FLOPS_MAXIMUM, greatest FLOPS_MINIMUM) the rule accepts, in MFLOPs."""
    smallest = sum(min(stage) for stage in costs.first)
    # Every stage is granted max(GROWTH_LIMITS) layers when nothing stops the growth.
    largest = sum(max(stage) for stage in costs.first) + sum(max(stage) for stage in costs.later) * (
        max(GROWTH_LIMITS) - 1)
    return smallest / _budget_scale(MIN_SIZE_FACTOR), largest


def search_space_for_budget(flops_minimum: float, flops_maximum: float,
                            costs: Optional[OpCosts] = None) -> SearchSpace:
    """Layers per searchable stage and input resolution for a budget, by the original's greedy rule.

    The rule prices the searchable layers only (not stem or head), at 224 px, always with the dearest
    op. (1) If even one cheapest layer per stage exceeds FLOPS_MAXIMUM, lower the resolution by 32 px at
    a time, multiplying both bounds by 7/size at each step (the original's compounding stand-in for the
    quadratic fall of FLOPs with resolution), down to 64 px. (2) Else, if the largest one-layer network
    is under FLOPS_MINIMUM, add layers in the growth order until it is not. (3) Then add layers in the
    growth order while the largest network stays within FLOPS_MAXIMUM, stopping at the first that does
    not fit.
    """
    costs = costs or original_op_costs()
    if flops_minimum > flops_maximum:
        raise FlopsBudgetError(f'FLOPs budget {flops_minimum}..{flops_maximum} MFLOPs is empty: '
                               'SUPERNET.FLOPS_MINIMUM must not exceed SUPERNET.FLOPS_MAXIMUM')
    low, high = feasible_range(costs)

    def infeasible() -> FlopsBudgetError:
        return FlopsBudgetError(
            f'FLOPs budget {flops_minimum:g}..{flops_maximum:g} MFLOPs is infeasible: feasible budgets have '
            f'SUPERNET.FLOPS_MAXIMUM >= {low:.1f} and SUPERNET.FLOPS_MINIMUM <= {high:.1f} (MFLOPs of the '
            f'searchable layers at 224 px by {costs.source}, the measure of the original rule)')

    granted = [1] * ops.NUM_SEARCH_STAGES
    size = SEARCH_RESOLUTION // RESOLUTION_STEP
    smallest = sum(min(stage) for stage in costs.first)
    largest = sum(max(stage) for stage in costs.first)
    later_max = [max(stage) for stage in costs.later]
    lo, hi = float(flops_minimum), float(flops_maximum)
    if smallest > hi:
        while smallest > hi and size >= MIN_SIZE_FACTOR:
            size -= 1
            scale = SEARCH_RESOLUTION / RESOLUTION_STEP / size
            lo, hi = lo * scale, hi * scale
        if size < MIN_SIZE_FACTOR:
            raise infeasible()
    elif largest < lo:
        for stage, limit in zip(GROWTH_ORDER, GROWTH_LIMITS):
            while largest < lo and granted[stage] < limit:
                largest += later_max[stage]
                granted[stage] += 1
        if largest < lo:
            raise infeasible()

    for stage, limit in zip(GROWTH_ORDER, GROWTH_LIMITS):
        while granted[stage] < limit and largest + later_max[stage] <= hi:
            largest += later_max[stage]
            granted[stage] += 1
        if granted[stage] < limit:
            break  # the first layer that does not fit ends the growth
    return SearchSpace(tuple(granted), size * RESOLUTION_STEP, _budget_scale(size), costs)


# ---- config ---------------------------------------------------------------------------------------
def build_search_space(cfg) -> SearchSpace:
    """The search space of ``cfg``'s FLOPs budget (SUPERNET.FLOPS_MINIMUM/MAXIMUM, SUPERNET.FLOPS_TABLE); a
    non-zero SUPERNET.RESOLUTION replaces the resolution the rule picked, and under a latency budget a given
    SUPERNET.SEARCH_LAYERS the layers per stage (the budget's measure and its scale stay the rule's)."""
    check_supported_options(dil_conv=cfg.SUPERNET.DIL_CONV, resunit=cfg.SUPERNET.RESUNIT)
    space = search_space_for_budget(cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM,
                                    op_costs_for(cfg.SUPERNET.FLOPS_TABLE))
    if cfg.SUPERNET.RESOLUTION:
        space = dataclasses.replace(space, resolution=int(cfg.SUPERNET.RESOLUTION))
    if cfg.SUPERNET.SEARCH_LAYERS:
        space = dataclasses.replace(space, layers_per_stage=tuple(int(n) for n in cfg.SUPERNET.SEARCH_LAYERS))
    return with_board_measure(space, cfg.SUPERNET.BOARD_FLOPS)


def with_board_measure(space: SearchSpace, board_flops: str) -> SearchSpace:
    """``space`` with the board's measure SUPERNET.BOARD_FLOPS: 'flops_est' (the original's FlopsEst) or 'budget'."""
    if board_flops not in BOARD_FLOPS:
        raise ValueError(f'SUPERNET.BOARD_FLOPS is {board_flops!r}; choose one of {", ".join(BOARD_FLOPS)}')
    return dataclasses.replace(space, board_table=ORIGINAL_FLOPS_EST if board_flops == 'flops_est' else None)
