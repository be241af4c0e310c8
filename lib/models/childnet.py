"""Child networks: a fixed path through the search space, built with timm's EfficientNet builder.

An *arch* lists one op index per layer for all seven stages, e.g. the 287M model::

    [[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]]

Stage 0 (depthwise-separable, 16 ch) and stage 6 (1x1 conv to 320 ch) are fixed and written ``[0]``;
stages 1-5 are the searchable ones, any number of layers each, op indices into ``ops.OP_CHOICES``.
"""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

import torch.nn as nn
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.mobilenetv3 import MobileNetV3

from lib.errors import CreamError

from . import ops

Arch = List[List[int]]


@dataclass(frozen=True)
class ReleasedModel:
    selection: int
    arch: Tuple[Tuple[int, ...], ...]
    resolution: int

    @property
    def name(self) -> str:
        return f'cream_{self.selection:03d}'


# The six networks published with the paper (the checkpoints on the authors' drives), by MFLOPs.
CUSTOM_SELECTION = -1  # MODEL_SELECTION of "any path given as arch" (NET.INPUT_ARCH)
RELEASED_MODELS = {
    m.selection: m
    for m in (
        ReleasedModel(14, ((0,), (3,), (3, 3), (3, 3), (3,), (3,), (0,)), 64),
        ReleasedModel(43, ((0,), (3,), (3, 1), (3, 1), (3, 3, 3), (3, 3), (0,)), 96),
        ReleasedModel(114, ((0,), (3,), (3, 3), (3, 3), (3, 3, 3), (3, 3), (0,)), 160),
        ReleasedModel(287, ((0,), (3,), (3, 3), (3, 1, 3), (3, 3, 3, 3), (3, 3, 3), (0,)), 224),
        ReleasedModel(481, ((0,), (3, 4, 3, 1), (3, 2, 3, 0), (3, 3, 3, 1, 1), (3, 3, 3, 3), (3, 3, 3, 3), (0,)), 224),
        ReleasedModel(604, ((0,), (3, 3, 2, 3, 3), (3, 2, 3, 2, 3), (3, 2, 3, 2, 3), (3, 3, 2, 2, 3, 3), (3, 3, 2, 3, 3, 3), (0,)), 224),
    )
}
# The NNI port calls the 114M network 112.
SELECTION_ALIASES = {112: 114}


class ArchError(CreamError, ValueError):
    """An architecture or model selection that does not describe a network of the search space."""


def resolve_selection(selection: Union[int, str]) -> int:
    """14, '14', 'cream_14', 'cream_014' and the alias 112 -> the canonical selection (14 ... 604)."""
    text = str(selection).strip().lower()
    if text.startswith('cream_'):
        text = text[len('cream_'):]
    try:
        value = int(text)
    except ValueError:
        value = None
    value = SELECTION_ALIASES.get(value, value)
    if value not in RELEASED_MODELS:
        raise ArchError(
            f'unsupported MODEL_SELECTION {selection!r}: choose one of '
            f'{sorted(RELEASED_MODELS) + sorted(SELECTION_ALIASES)} (a released network), '
            'or -1 together with INPUT_ARCH for any other path')
    return value


def validate_arch(arch: Sequence[Sequence[int]]) -> Arch:
    """Check an arch (7 stages; stage 0 and 6 are ``[0]``) and return it as plain lists."""
    example = '[[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]]'
    try:
        stages = [[int(op) for op in stage] for stage in arch]
    except (TypeError, ValueError):
        raise ArchError(f'INPUT_ARCH must be a list of 7 lists of op indices, e.g. {example}; got {arch!r}')
    if len(stages) != ops.NUM_SEARCH_STAGES + 2:
        raise ArchError(f'INPUT_ARCH must have 7 stages (got {len(stages)}), e.g. {example}')
    if stages[0] != [0] or stages[-1] != [0]:
        raise ArchError(f'INPUT_ARCH stages 0 and 6 are fixed and must be [0]; got {arch!r}')
    for i, stage in enumerate(stages[1:-1], start=1):
        if not stage:
            raise ArchError(f'INPUT_ARCH stage {i} is empty: every searchable stage needs at least one layer')
        bad = [op for op in stage if not 0 <= op < ops.NUM_OPS]
        if bad:
            raise ArchError(f'INPUT_ARCH stage {i} has op index {bad[0]}: valid are 0..{ops.NUM_OPS - 1} '
                            f'({", ".join(ops.op_name(j) for j in range(ops.NUM_OPS))})')
    return stages


def arch_to_block_strings(arch: Sequence[Sequence[int]], keep_single_layer_default: bool = False) -> List[List[str]]:
    """timm block strings for every stage of ``arch``.

    ``keep_single_layer_default`` reproduces the original child builder, which gave a stage of a
    single layer its default op whatever the arch said. The released 14/43/114 checkpoints are shaped
    by that rule; a newly searched arch must not be (the retrained net would not be the searched one).
    """
    searchable = [ops.stage_block_strings(stage, layer_ops)
                  for stage, layer_ops in enumerate(built_searchable_ops(arch, keep_single_layer_default))]
    return [[ops.STAGE0_BLOCK_STRING], *searchable, [ops.FINAL_BLOCK_STRING]]


def built_searchable_ops(arch: Sequence[Sequence[int]], keep_single_layer_default: bool = False) -> List[List[int]]:
    """The op of every layer of every searchable stage the network of ``arch`` is built with (validated; under
    ``keep_single_layer_default`` a single-layer stage has its default op, see ``arch_to_block_strings``)."""
    return [[ops.STAGE_DEFAULT_OPS[stage]] if keep_single_layer_default and len(layer_ops) == 1 else list(layer_ops)
            for stage, layer_ops in enumerate(validate_arch(arch)[1:-1])]


def childnet_kwargs(
    arch: Sequence[Sequence[int]],
    keep_single_layer_default: bool = False,
    bn_momentum: float = 0.1,
    bn_eps: float = 1e-5,
) -> dict:
    """timm ``MobileNetV3`` constructor arguments that shape the child network of ``arch`` (the head and
    the input are left to the caller: num_classes, in_chans, global_pool, drop rates, ...)."""
    return dict(
        block_args=decode_arch_def(arch_to_block_strings(arch, keep_single_layer_default)),
        stem_size=ops.STEM_CHANNELS,
        num_features=ops.NUM_FEATURES,
        head_bias=True,
        act_layer=ops.ACT_LAYER,
        norm_layer=ops.make_norm_layer(bn_momentum, bn_eps),
        se_layer=ops.SE_LAYER,
        se_from_exp=True,
    )


def build_childnet(
    arch: Sequence[Sequence[int]],
    num_classes: int = 1000,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    keep_single_layer_default: bool = False,
    bn_momentum: float = 0.1,
    bn_eps: float = 1e-5,
    global_pool: str = 'avg',
) -> MobileNetV3:
    """The child network of ``arch``: stem, the seven stages, pool -> conv head (bias) -> classifier."""
    return MobileNetV3(
        **childnet_kwargs(arch, keep_single_layer_default, bn_momentum, bn_eps),
        num_classes=num_classes,
        drop_rate=drop_rate,
        drop_path_rate=drop_path_rate,
        global_pool=global_pool,
    )


def build_released(selection: Union[int, str], num_classes: int = 1000, **kwargs) -> MobileNetV3:
    """One of the six released networks, shaped exactly as its checkpoint."""
    model = RELEASED_MODELS[resolve_selection(selection)]
    return build_childnet(model.arch, num_classes=num_classes, keep_single_layer_default=True, **kwargs)


def fixed_parts(num_classes: int, global_pool: str = 'avg') -> Dict[str, nn.Module]:
    """The parts every child network has whatever its path, in order: 'stem', 'stage0', 'final', 'head'; cut
    from the smallest child network, so they are a child network's own modules (for counting and timing them)."""
    net = build_childnet([[0]] * (ops.NUM_SEARCH_STAGES + 2), num_classes=num_classes, global_pool=global_pool)
    head = nn.Sequential(net.global_pool, net.conv_head, net.norm_head, net.act2, net.flatten, net.classifier)
    return {'stem': nn.Sequential(net.conv_stem, net.bn1), 'stage0': net.blocks[0], 'final': net.blocks[-1],
            'head': head}
