"""The parts of a child network that a latency table times, each with the input shape it sees in a space.

A child network is stem -> stage 0 -> the searchable layers -> final block -> head (pool, conv head,
classifier). Every searchable layer (stage, layer) sees one input shape whatever ops the path takes, so
each of its ops can be timed alone on that shape; the fixed parts are taken from a real child network
so that they are the very modules every network has.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch.nn as nn

from lib.models import ops

FIXED_PARTS = ('stem', 'stage0', 'final', 'head')  # in the order the network runs them
Shape = Tuple[int, int, int]  # (channels, height, width) of one image


def feature_size(size: int, stride: int) -> int:
    """Output size of the network's convolutions (odd kernels padded by kernel // 2): ceil(size / stride)."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class LayerSlot:
    """Searchable layer ``layer`` of searchable stage ``stage`` (both 0-based) and what every op there sees."""
    stage: int
    layer: int
    in_chs: int
    out_chs: int
    stride: int
    input_shape: Shape

    def op_module(self, op: int) -> nn.Module:
        """Op ``op`` at this layer: the block ``lib.models.childnet`` builds there."""
        return ops.inverted_residual(self.in_chs, self.out_chs, op, self.stride)


def check_space(layers_per_stage: Sequence[int], resolution: int) -> Tuple[Tuple[int, ...], int]:
    layers = tuple(int(n) for n in layers_per_stage)
    if len(layers) != ops.NUM_SEARCH_STAGES or min(layers) < 1:
        raise ValueError(f'layers per stage must be {ops.NUM_SEARCH_STAGES} positive counts; got {list(layers)}')
    if int(resolution) < 32:
        raise ValueError(f'resolution must be at least 32 px (the network downsamples 32x); got {resolution}')
    return layers, int(resolution)


def layer_slots(layers_per_stage: Sequence[int], resolution: int) -> List[List[LayerSlot]]:
    """``slots[stage][layer]`` of a space with ``layers_per_stage`` at ``resolution`` px."""
    layers, resolution = check_space(layers_per_stage, resolution)
    size = feature_size(resolution, 2)  # after the stem; stage 0 keeps it
    in_chs, slots = ops.STAGE0_CHANNELS, []
    for stage, count in enumerate(layers):
        out_chs, stage_slots = ops.STAGE_OUT_CHANNELS[stage], []
        for layer in range(count):
            stride = ops.STAGE_STRIDES[stage] if layer == 0 else 1
            stage_slots.append(LayerSlot(stage, layer, in_chs, out_chs, stride, (in_chs, size, size)))
            size, in_chs = feature_size(size, stride), out_chs
        slots.append(stage_slots)
    return slots


def fixed_part_shapes(resolution: int) -> Dict[str, Shape]:
    """The input shape of each fixed part (the same in every space at ``resolution``)."""
    after_stem = feature_size(int(resolution), 2)
    last = after_stem
    for stride in ops.STAGE_STRIDES:
        last = feature_size(last, stride)
    return {'stem': (3, int(resolution), int(resolution)), 'stage0': (ops.STEM_CHANNELS, after_stem, after_stem),
            'final': (ops.STAGE_OUT_CHANNELS[-1], last, last), 'head': (ops.FINAL_CHANNELS, last, last)}

