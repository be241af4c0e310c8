"""MACs and parameter count of a network, with thop, counted the way the reference numbers were.

thop matches layers by exact type and only has rules for plain torch layers, so on our timm 1.x
networks it misses three kinds of module that the original implementation had as plain layers
(``thop_macs_M`` in the reference ``cream_models.json`` is thop run on that implementation):

* ``BatchNormAct2d`` (batch norm fused with its activation): thop's batch-norm rule;
* ``SqueezeExcite`` (squeezes with ``x.mean``, where the original had an ``AdaptiveAvgPool2d``):
  thop's adaptive-average-pool rule for the squeeze plus its conv rule for the two 1x1 convs;
* timm's ``Linear`` classifier (an ``nn.Linear`` subclass): thop's linear rule.

With these rules the counts equal the reference column to its rounding. Activations count zero, as
in thop. Parameters are counted exactly (``numel`` of every parameter), not with thop.
"""
import contextlib
import copy
import io
import warnings
from typing import Sequence, Tuple

import torch
import torch.nn as nn
with warnings.catch_warnings():
    warnings.simplefilter('ignore', DeprecationWarning)  # thop 0.1.1 compares versions with distutils
    import thop
from thop.vision.basic_hooks import count_linear, count_normalization
from thop.vision.calc_func import calculate_adaptive_avg, calculate_conv2d_flops
from timm.layers import BatchNormAct2d
from timm.layers import Linear as TimmLinear
from timm.models._efficientnet_blocks import SqueezeExcite


def _count_squeeze_excite(module: SqueezeExcite, inputs, output: torch.Tensor) -> None:
    batch, channels, height, width = inputs[0].shape
    squeeze = calculate_adaptive_avg(height * width, batch * channels)  # pooled to 1x1
    convs = _pointwise_macs(module.conv_reduce, batch) + _pointwise_macs(module.conv_expand, batch)
    module.total_ops += squeeze + convs


def _pointwise_macs(conv: nn.Conv2d, batch: int) -> int:
    """MACs of a 1x1 conv on a 1x1 map, by thop's conv rule."""
    return calculate_conv2d_flops([batch, conv.in_channels, 1, 1], [batch, conv.out_channels, 1, 1],
                                  list(conv.weight.shape), conv.groups)


CUSTOM_OPS = {
    BatchNormAct2d: count_normalization,
    SqueezeExcite: _count_squeeze_excite,
    TimmLinear: count_linear,
}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs_params(model: nn.Module, input_size: Sequence[int] = (1, 3, 224, 224)) -> Tuple[int, int]:
    """(MACs, parameters) of ``model`` for one input of ``input_size`` (N, C, H, W).

    Runs thop on a deep copy (thop leaves buffers behind in the modules it profiles), silently.
    """
    if len(input_size) != 4:
        raise ValueError(f'input_size must be (N, C, H, W), got {tuple(input_size)}')
    probe = copy.deepcopy(model).eval()
    reference = next(probe.parameters(), None)
    device = reference.device if reference is not None else torch.device('cpu')
    dtype = reference.dtype if reference is not None else torch.float32
    inputs = torch.zeros(tuple(input_size), device=device, dtype=dtype)
    with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        macs, _ = thop.profile(probe, inputs=(inputs,), custom_ops=CUSTOM_OPS, verbose=False)
    return int(round(float(macs))), count_params(model)

