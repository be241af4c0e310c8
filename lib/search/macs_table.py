"""The MACs and params table of a search space at one resolution: the fixed parts (stem, stage 0, final block,
head, classifier) and every searchable layer's ops, counted on real blocks by ``lib.models.complexity`` (thop with
the reference conventions); MMACs and M params. It prices any path with a sum (board MACs, the log)."""
import contextlib
from dataclasses import dataclass
from typing import ClassVar, List, Sequence, Tuple

import torch
import torch.nn as nn

from lib.models import childnet, ops
from lib.models.complexity import count_macs_params


@dataclass(frozen=True)
class MacsTable:
    """Costs at one resolution: fixed parts plus ``op_macs[stage][layer][op]`` (MMACs / M params); a
    ``lib.search.path_cost.SpaceCost`` named 'macs'."""

    name: ClassVar[str] = 'macs'
    unit: ClassVar[str] = 'MMACs'

    layers_per_stage: Tuple[int, ...]
    resolution: int
    num_classes: int
    fixed_macs: float
    fixed_params: float
    op_macs: Tuple[Tuple[Tuple[float, ...], ...], ...]
    op_params: Tuple[Tuple[Tuple[float, ...], ...], ...]

    @classmethod
    def build(cls, layers_per_stage: Sequence[int], resolution: int, num_classes: int = 1000,
              global_pool: str = 'avg') -> 'MacsTable':
        with _single_thread():
            return _build_table(tuple(int(n) for n in layers_per_stage), int(resolution), int(num_classes),
                                global_pool)

    @property
    def num_ops(self) -> int:
        return len(self.op_macs[0][0])

    def _sum(self, fixed: float, table, path: Sequence[Sequence[int]]) -> float:
        if tuple(len(stage) for stage in path) != self.layers_per_stage:
            raise ValueError(f'path {path} does not fit this table ({self.layers_per_stage} layers per stage)')
        return fixed + sum(table[s][l][op] for s, stage in enumerate(path) for l, op in enumerate(stage))

    def path_macs(self, path: Sequence[Sequence[int]]) -> float:
        """MMACs of the child network of ``path`` at this table's resolution."""
        return self._sum(self.fixed_macs, self.op_macs, path)

    def path_params(self, path: Sequence[Sequence[int]]) -> float:
        """Millions of parameters of the child network of ``path``."""
        return self._sum(self.fixed_params, self.op_params, path)

    def cost(self, path: Sequence[Sequence[int]]) -> float:
        return self.path_macs(path)

    def cost_range(self) -> Tuple[float, float]:
        return self.macs_range()

    def macs_range(self) -> Tuple[float, float]:
        """MMACs of the cheapest and of the most expensive path."""
        low = high = self.fixed_macs
        for stage in self.op_macs:
            for layer in stage:
                low, high = low + min(layer), high + max(layer)
        return low, high

    def to_dict(self) -> dict:
        # The keys tools/flops_table.py has always printed (its output format), though the numbers are MACs.
        return {
            'layers_per_stage': list(self.layers_per_stage),
            'resolution': self.resolution,
            'num_classes': self.num_classes,
            'op_names': [ops.op_name(i) for i in range(self.num_ops)],
            'fixed_flops_M': self.fixed_macs,
            'fixed_params_M': self.fixed_params,
            'path_flops_range_M': list(self.macs_range()),
            'op_flops_M': [[list(layer) for layer in stage] for stage in self.op_macs],
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


def _build_table(layers_per_stage: Tuple[int, ...], resolution: int, num_classes: int, global_pool: str) -> MacsTable:
    if len(layers_per_stage) != ops.NUM_SEARCH_STAGES or min(layers_per_stage) < 1:
        raise ValueError(f'layers_per_stage must give {ops.NUM_SEARCH_STAGES} positive layer counts; '
                         f'got {layers_per_stage}')
    fixed = childnet.fixed_parts(num_classes, global_pool)  # a real child network's modules
    fixed_macs = fixed_params = 0.0
    x = torch.zeros(1, 3, resolution, resolution)
    for module in (fixed['stem'], fixed['stage0']):
        flops, params, x = _count(module, x)
        fixed_macs, fixed_params = fixed_macs + flops, fixed_params + params

    op_macs: List[tuple] = []
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
        op_macs.append(tuple(stage_flops))
        op_params.append(tuple(stage_params))

    for module in (fixed['final'], fixed['head']):
        flops, params, x = _count(module, x)
        fixed_macs, fixed_params = fixed_macs + flops, fixed_params + params
    return MacsTable(layers_per_stage, resolution, num_classes, fixed_macs, fixed_params,
                      tuple(op_macs), tuple(op_params))




def build_macs_table(cfg, space) -> MacsTable:
    """The cost table of ``space`` at its resolution, for ``cfg``'s class count and pooling."""
    return MacsTable.build(space.layers_per_stage, space.resolution, num_classes=cfg.DATASET.NUM_CLASSES,
                            global_pool=cfg.NET.GP)
