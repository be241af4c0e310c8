"""The Cream search space: its op table, stage layout and the timm blocks every network is made of.

Block-string grammar (timm's, documented once here): ``ir_r1_k5_s2_e6_c40_se0.25`` is an
inverted-residual block (``ir``), repeated once (``r1``), depthwise kernel 5, stride 2, expansion 6,
40 output channels, squeeze-excite at 0.25 of the expanded width. ``ds`` is a depthwise-separable
block, ``cn`` a plain conv-bn-act block.

Both the supernet and the child networks build their blocks with the factories below, so that a
path trained in the supernet and the same path built as a child network are the same modules.
"""
from functools import partial
from typing import Sequence, Tuple

import torch.nn as nn
from timm.layers import make_divisible
from timm.models._efficientnet_blocks import (
    ConvBnAct,
    DepthwiseSeparableConv,
    InvertedResidual,
    SqueezeExcite,
)

# Choice index i of a searchable layer -> (depthwise kernel, expansion ratio).
OP_CHOICES: Tuple[Tuple[int, int], ...] = ((3, 4), (3, 6), (5, 4), (5, 6), (7, 4), (7, 6))
NUM_OPS = len(OP_CHOICES)

STEM_CHANNELS = 16
STAGE0_CHANNELS = 16  # the fixed depthwise-separable stage
# The five searchable stages.
STAGE_OUT_CHANNELS: Tuple[int, ...] = (24, 40, 80, 96, 192)
STAGE_STRIDES: Tuple[int, ...] = (2, 2, 2, 1, 2)
# Index into OP_CHOICES of each stage's default op: k3e4, k5e4, k3e6, k3e6, k5e6.
STAGE_DEFAULT_OPS: Tuple[int, ...] = (0, 2, 1, 1, 3)
NUM_SEARCH_STAGES = len(STAGE_OUT_CHANNELS)
FINAL_CHANNELS = 320  # stage 6: 1x1 conv-bn-act
NUM_FEATURES = 1280  # head: pool -> 1x1 conv with bias -> act -> dropout -> linear
SE_RATIO = 0.25

ACT_LAYER = nn.SiLU  # Swish everywhere except inside squeeze-excite

# Squeeze-excite as the released networks have it: ReLU inside, hard-sigmoid gate, reduced width
# = expanded width * 0.25 rounded to a multiple of 8.
SE_LAYER = partial(
    SqueezeExcite,
    gate_layer='hard_sigmoid',
    force_act_layer=nn.ReLU,
    rd_round_fn=partial(make_divisible, divisor=8),
)


def op_name(op_index: int) -> str:
    kernel, expansion = OP_CHOICES[op_index]
    return f'k{kernel}e{expansion}'


def op_block_string(op_index: int, stride: int, out_chs: int) -> str:
    kernel, expansion = OP_CHOICES[op_index]
    return f'ir_r1_k{kernel}_s{stride}_e{expansion}_c{out_chs}_se{SE_RATIO}'


STAGE0_BLOCK_STRING = f'ds_r1_k3_s1_e1_c{STAGE0_CHANNELS}_se{SE_RATIO}'
FINAL_BLOCK_STRING = f'cn_r1_k1_s1_c{FINAL_CHANNELS}'


def stage_block_strings(stage: int, ops: Sequence[int]) -> list:
    """Block strings of searchable stage ``stage`` (0-based) with one op index per layer."""
    return [
        op_block_string(op, STAGE_STRIDES[stage] if layer == 0 else 1, STAGE_OUT_CHANNELS[stage])
        for layer, op in enumerate(ops)
    ]


def make_norm_layer(bn_momentum: float = 0.1, bn_eps: float = 1e-5):
    return partial(nn.BatchNorm2d, momentum=bn_momentum, eps=bn_eps)


def inverted_residual(
    in_chs: int,
    out_chs: int,
    op_index: int,
    stride: int,
    norm_layer=nn.BatchNorm2d,
    drop_path_rate: float = 0.0,
) -> InvertedResidual:
    """One searchable op: the same module timm's builder makes from ``op_block_string``."""
    kernel, expansion = OP_CHOICES[op_index]
    return InvertedResidual(
        in_chs,
        out_chs,
        dw_kernel_size=kernel,
        stride=stride,
        exp_ratio=float(expansion),
        act_layer=ACT_LAYER,
        norm_layer=norm_layer,
        se_layer=partial(SE_LAYER, rd_ratio=SE_RATIO),
        drop_path_rate=drop_path_rate,
    )


def stage0_block(norm_layer=nn.BatchNorm2d, drop_path_rate: float = 0.0) -> DepthwiseSeparableConv:
    return DepthwiseSeparableConv(
        STEM_CHANNELS,
        STAGE0_CHANNELS,
        dw_kernel_size=3,
        stride=1,
        act_layer=ACT_LAYER,
        norm_layer=norm_layer,
        se_layer=partial(SE_LAYER, rd_ratio=SE_RATIO),
        drop_path_rate=drop_path_rate,
    )


def final_block(in_chs: int, norm_layer=nn.BatchNorm2d) -> ConvBnAct:
    return ConvBnAct(in_chs, FINAL_CHANNELS, kernel_size=1, act_layer=ACT_LAYER, norm_layer=norm_layer)
