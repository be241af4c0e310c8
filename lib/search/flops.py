"""FLOPs of the search space: the per-op cost table and the search space a FLOPs budget allows.

FLOPs are multiply-accumulates in millions as ``lib.models.complexity`` counts them (thop with the
reference conventions); params are in millions. A path costs the fixed parts (stem, stage 0, final
block, head, classifier) plus the chosen op of every searchable layer, so a table of per-layer,
per-op costs prices any path with a sum.
"""
import contextlib
import functools
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from lib.models import childnet, ops
from lib.models.complexity import count_macs_params
from lib.models.supernet import check_supported_options

SEARCH_RESOLUTION = 224  # the original's rule prices ops at 224 px and scales the budget for lower ones
RESOLUTION_STEP = 32
MIN_SIZE_FACTOR = 2  # resolution never below 2 * 32 = 64 px
# The original's greedy growth: searchable-stage indices in the order they get another layer, each up
# to the given count; a layer is added only while the largest network stays within the budget.
GROWTH_ORDER = (2, 3, 4, 1, 0, 2, 3, 4, 1, 0)
GROWTH_LIMITS = (3, 3, 3, 2, 2, 4, 4, 4, 4, 4)
# The original's stage 3 (80 ch, searchable index 2) ends with a block repeated twice, so its 4th
# granted layer is two layers: that stage holds up to 5 layers. The budget is charged for one layer,
# as there.
LAYERS_FOR_GRANTED = {2: (1, 2, 3, 5)}

class FlopsBudgetError(ValueError):
    """A FLOPs budget no search space satisfies."""


@dataclass(frozen=True)
class SearchSpace:
    layers_per_stage: Tuple[int, ...]
    resolution: int


@dataclass(frozen=True)
class FlopsTable:
    """Costs at one resolution: fixed parts plus ``op_flops[stage][layer][op]`` (MMACs / M params)."""

    layers_per_stage: Tuple[int, ...]
    resolution: int
    num_classes: int
    fixed_flops: float
    fixed_params: float
    op_flops: Tuple[Tuple[Tuple[float, ...], ...], ...]
    op_params: Tuple[Tuple[Tuple[float, ...], ...], ...]

    @classmethod
    def build(cls, layers_per_stage: Sequence[int], resolution: int, num_classes: int = 1000,
              global_pool: str = 'avg') -> 'FlopsTable':
        with _single_thread():
            return _build_table(tuple(int(n) for n in layers_per_stage), int(resolution), int(num_classes),
                                global_pool)

    @property
    def num_ops(self) -> int:
        return len(self.op_flops[0][0])

    def _sum(self, fixed: float, table, path: Sequence[Sequence[int]]) -> float:
        if tuple(len(stage) for stage in path) != self.layers_per_stage:
            raise ValueError(f'path {path} does not fit this table ({self.layers_per_stage} layers per stage)')
        return fixed + sum(table[s][l][op] for s, stage in enumerate(path) for l, op in enumerate(stage))

    def path_flops(self, path: Sequence[Sequence[int]]) -> float:
        """MMACs of the child network of ``path`` at this table's resolution."""
        return self._sum(self.fixed_flops, self.op_flops, path)

    def path_params(self, path: Sequence[Sequence[int]]) -> float:
        """Millions of parameters of the child network of ``path``."""
        return self._sum(self.fixed_params, self.op_params, path)

    def flops_range(self) -> Tuple[float, float]:
        """MMACs of the cheapest and of the most expensive path."""
        low = high = self.fixed_flops
        for stage in self.op_flops:
            for layer in stage:
                low, high = low + min(layer), high + max(layer)
        return low, high

    def to_dict(self) -> dict:
        return {
            'layers_per_stage': list(self.layers_per_stage),
            'resolution': self.resolution,
            'num_classes': self.num_classes,
            'op_names': [ops.op_name(i) for i in range(self.num_ops)],
            'fixed_flops_M': self.fixed_flops,
            'fixed_params_M': self.fixed_params,
            'path_flops_range_M': list(self.flops_range()),
            'op_flops_M': [[list(layer) for layer in stage] for stage in self.op_flops],
            'op_params_M': [[list(layer) for layer in stage] for stage in self.op_params],
        }


@contextlib.contextmanager
def _single_thread():
    # Batch-1 passes through single blocks gain nothing from threads, and on a busy machine
    # oversubscribed threads make them many times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _count(module: nn.Module, x: torch.Tensor) -> Tuple[float, float, torch.Tensor]:
    """(MMACs, M params, output) of ``module`` on ``x``."""
    macs, params = count_macs_params(module, tuple(x.shape))
    with torch.no_grad():
        out = module.eval()(x)
    return macs / 1e6, params / 1e6, out


def _build_table(layers_per_stage: Tuple[int, ...], resolution: int, num_classes: int, global_pool: str) -> FlopsTable:
    if len(layers_per_stage) != ops.NUM_SEARCH_STAGES or min(layers_per_stage) < 1:
        raise ValueError(f'layers_per_stage must give {ops.NUM_SEARCH_STAGES} positive layer counts; '
                         f'got {layers_per_stage}')
    # The fixed parts are taken from a real child network, so they are the very module types it has.
    smallest = childnet.build_childnet([[0]] * (ops.NUM_SEARCH_STAGES + 2), num_classes=num_classes,
                                       global_pool=global_pool)
    stem = nn.Sequential(smallest.conv_stem, smallest.bn1)
    head = nn.Sequential(smallest.global_pool, smallest.conv_head, smallest.norm_head, smallest.act2,
                         smallest.flatten, smallest.classifier)
    fixed_flops = fixed_params = 0.0
    x = torch.zeros(1, 3, resolution, resolution)
    for module in (stem, smallest.blocks[0]):
        flops, params, x = _count(module, x)
        fixed_flops, fixed_params = fixed_flops + flops, fixed_params + params

    op_flops: List[tuple] = []
    op_params: List[tuple] = []
    in_chs = ops.STAGE0_CHANNELS
    for stage, num_layers in enumerate(layers_per_stage):
        out_chs = ops.STAGE_OUT_CHANNELS[stage]
        stage_flops, stage_params = [], []
        # Layers after the first share input and output shape, so one count serves them all.
        for layer in range(min(num_layers, 2)):
            stride = ops.STAGE_STRIDES[stage] if layer == 0 else 1
            costs = []
            for op in range(ops.NUM_OPS):
                costs.append(_count(ops.inverted_residual(in_chs, out_chs, op, stride), x))
            stage_flops.append(tuple(c[0] for c in costs))
            stage_params.append(tuple(c[1] for c in costs))
            x, in_chs = costs[0][2], out_chs
        stage_flops += stage_flops[-1:] * (num_layers - len(stage_flops))
        stage_params += stage_params[-1:] * (num_layers - len(stage_params))
        op_flops.append(tuple(stage_flops))
        op_params.append(tuple(stage_params))

    for module in (smallest.blocks[-1], head):
        flops, params, x = _count(module, x)
        fixed_flops, fixed_params = fixed_flops + flops, fixed_params + params
    return FlopsTable(layers_per_stage, resolution, num_classes, fixed_flops, fixed_params,
                      tuple(op_flops), tuple(op_params))


# ---- search space from the budget -----------------------------------------------------------------
@dataclass(frozen=True)
class StageCosts:
    """Per searchable stage, MMACs at the rule's resolution: first layer with its cheapest and its
    dearest op, and a later layer with its dearest op."""

    first_min: Tuple[float, ...]
    first_max: Tuple[float, ...]
    later_max: Tuple[float, ...]

    @classmethod
    def from_table(cls, table: FlopsTable) -> 'StageCosts':
        if min(table.layers_per_stage) < 2:
            raise ValueError('StageCosts needs a table with at least 2 layers per stage')
        return cls(tuple(min(stage[0]) for stage in table.op_flops),
                   tuple(max(stage[0]) for stage in table.op_flops),
                   tuple(max(stage[1]) for stage in table.op_flops))


@functools.lru_cache(maxsize=1)
def reference_stage_costs() -> StageCosts:
    """The rule's costs, counted from the model's blocks at 224 px."""
    return StageCosts.from_table(FlopsTable.build((2,) * ops.NUM_SEARCH_STAGES, SEARCH_RESOLUTION))


def _layers_from_granted(granted: Sequence[int]) -> Tuple[int, ...]:
    return tuple(LAYERS_FOR_GRANTED[s][n - 1] if s in LAYERS_FOR_GRANTED else n for s, n in enumerate(granted))


def feasible_range(costs: StageCosts) -> Tuple[float, float]:
    """(least FLOPS_MAXIMUM, greatest FLOPS_MINIMUM) the rule accepts, in MFLOPs."""
    budget_scale = 1.0
    for size in range(SEARCH_RESOLUTION // RESOLUTION_STEP - 1, MIN_SIZE_FACTOR - 1, -1):
        budget_scale *= SEARCH_RESOLUTION / RESOLUTION_STEP / size
    # Every stage is granted max(GROWTH_LIMITS) layers when nothing stops the growth.
    largest = sum(costs.first_max) + sum(costs.later_max) * (max(GROWTH_LIMITS) - 1)
    return sum(costs.first_min) / budget_scale, largest


def search_space_for_budget(flops_minimum: float, flops_maximum: float,
                            costs: Optional[StageCosts] = None) -> SearchSpace:
    """Layers per searchable stage and input resolution for a budget, by the original's greedy rule.

    The rule prices the searchable layers only (not stem or head), at 224 px, always with the dearest
    op, as the original did. (1) If even one cheapest layer per stage exceeds FLOPS_MAXIMUM, lower the
    resolution by 32 px at a time, multiplying both bounds by 7/size at each step (the original's
    compounding stand-in for the quadratic fall of FLOPs with resolution), down to 64 px. (2) Else, if
    the largest one-layer network is under FLOPS_MINIMUM, add layers in the growth order until it is not.
    (3) Then add layers in the growth order while the largest network stays within FLOPS_MAXIMUM,
    stopping at the first that does not fit.
    """
    costs = costs or reference_stage_costs()
    if flops_minimum > flops_maximum:
        raise FlopsBudgetError(f'FLOPs budget {flops_minimum}..{flops_maximum} MFLOPs is empty: '
                               'SUPERNET.FLOPS_MINIMUM must not exceed SUPERNET.FLOPS_MAXIMUM')
    low, high = feasible_range(costs)

    def infeasible() -> FlopsBudgetError:
        return FlopsBudgetError(
            f'FLOPs budget {flops_minimum:g}..{flops_maximum:g} MFLOPs is infeasible: feasible budgets have '
            f'SUPERNET.FLOPS_MAXIMUM >= {low:.1f} and SUPERNET.FLOPS_MINIMUM <= {high:.1f} (MFLOPs of the '
            'searchable layers at 224 px, the measure of the original rule)')

    granted = [1] * ops.NUM_SEARCH_STAGES
    size = SEARCH_RESOLUTION // RESOLUTION_STEP
    smallest, largest = sum(costs.first_min), sum(costs.first_max)
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
                largest += costs.later_max[stage]
                granted[stage] += 1
        if largest < lo:
            raise infeasible()

    for stage, limit in zip(GROWTH_ORDER, GROWTH_LIMITS):
        while granted[stage] < limit and largest + costs.later_max[stage] <= hi:
            largest += costs.later_max[stage]
            granted[stage] += 1
        if granted[stage] < limit:
            break  # the first layer that does not fit ends the growth
    return SearchSpace(_layers_from_granted(granted), size * RESOLUTION_STEP)


# ---- config ---------------------------------------------------------------------------------------
def build_search_space(cfg) -> SearchSpace:
    """The search space of ``cfg``'s FLOPs budget (SUPERNET.FLOPS_MINIMUM/MAXIMUM)."""
    check_supported_options(dil_conv=cfg.SUPERNET.DIL_CONV, resunit=cfg.SUPERNET.RESUNIT)
    return search_space_for_budget(cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM)


def build_flops_table(cfg, space: SearchSpace) -> FlopsTable:
    """The cost table of ``space`` at its resolution, for ``cfg``'s class count and pooling."""
    return FlopsTable.build(space.layers_per_stage, space.resolution, num_classes=cfg.DATASET.NUM_CLASSES,
                            global_pool=cfg.NET.GP)
