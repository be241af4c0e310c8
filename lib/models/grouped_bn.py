"""Batch norm that treats a batch as consecutive groups, each normalised with its own batch statistics.

``grouped_batch_norm(model, groups)`` lets one train-mode forward over the probes of several board entries
compute what one forward per entry computes: inside it, every training BN layer of ``model`` normalises
each of ``groups`` equal consecutive parts of its input with that part's mean and (biased) variance, and
its running statistics end where ``groups`` forwards in group order leave them: with momentum m,
    r <- (1 - m)^G r + sum_j m (1 - m)^(G - 1 - j) s_j,
with momentum None (cumulative average over n batches seen so far) r <- (n r + sum_j s_j) / (n + G), and
``num_batches_tracked`` advances by G. Dropout layers (``nn.Dropout``) draw their noise group by group, in
group order, as separate forwards would; the random state before each group's draw is kept, so that one
group's forward can be run again with the same noise (``replayed_rng``).

It swaps the forward of the layers it changes for the time of the block (plain, synchronized and timm's
norm + activation BN layers; statistics are per process, as under ``lib.search.builder.unsynced_bn``). To run
one group's forward again without a second update: ``lib.models.supernet.frozen_running_stats``.
Layers in eval mode normalise each image on its own and are left alone. Statistics are computed in at
least float32 (under autocast too), as torch's kernels do; the output has the input's dtype and layout.
"""
import contextlib
import functools
import math
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import BatchNormAct2d
from timm.layers.norm_act import SyncBatchNormAct

_PLAIN_FORWARDS = (nn.modules.batchnorm._BatchNorm.forward, nn.SyncBatchNorm.forward)
_NORM_ACT_FORWARDS = (BatchNormAct2d.forward, SyncBatchNormAct.forward)


def _all_modules(model) -> List[nn.Module]:
    """``model``'s modules; for a sequence of modules (e.g. ``SuperNet.path_bn_layers`` and a dropout layer), each's."""
    return list(model.modules()) if isinstance(model, nn.Module) else [m for part in model for m in part.modules()]


def _training_batch_norms(modules: List[nn.Module]) -> List[nn.modules.batchnorm._BatchNorm]:
    layers = [m for m in modules if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for layer in layers:
        if type(layer).forward not in _PLAIN_FORWARDS + _NORM_ACT_FORWARDS:
            raise TypeError(f'{type(layer).__name__} has its own forward; grouped batch statistics support '
                            f'torch BatchNorm/SyncBatchNorm and timm BatchNormAct2d/SyncBatchNormAct')
    return layers


def _after_norm(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a norm + activation layer applies after normalising (nothing for plain BN)."""
    if type(layer).forward in _NORM_ACT_FORWARDS:
        drop, act = getattr(layer, 'drop', None), getattr(layer, 'act', None)
        x = drop(x) if drop is not None else x
        x = act(x) if act is not None else x
    return x


def _grouped_forward(groups: int, layer, x: torch.Tensor) -> torch.Tensor:
    n, channels = x.shape[0], x.shape[1]
    if n % groups:
        raise ValueError(f'grouped batch norm: a batch of {n} does not split into {groups} equal groups')
    size = n // groups
    count = size * math.prod(x.shape[2:])
    if count == 1:
        raise ValueError(f'Expected more than 1 value per channel when training, got {size} per group of '
                         f'input size {list(x.shape)}')
    stats_dtype = torch.promote_types(x.dtype, torch.float32)
    grouped = x.reshape(groups, size, *x.shape[1:])  # a view for contiguous and channels_last inputs
    dims = (1, *range(3, grouped.dim()))
    mean = grouped.mean(dims, keepdim=True, dtype=stats_dtype)
    # Two passes, as torch's kernel (exact for large means too); then out = x * alpha + beta, as torch's kernel.
    var = (grouped - mean).square_().mean(dims, keepdim=True)
    if layer.track_running_stats and layer.running_mean is not None:
        _update_running_stats(layer, mean.view(groups, channels), var.view(groups, channels) * (count / (count - 1)))
    shape = (1, 1, channels) + (1,) * (x.dim() - 2)
    alpha = var.add_(layer.eps).rsqrt_()  # in place: few kernels (on a GPU, launches are the cost here)
    if layer.weight is not None:
        alpha = alpha * layer.weight.view(shape)
    if layer.bias is None:
        beta = -mean * alpha
    else:
        beta = torch.addcmul(layer.bias.view(shape).to(mean.dtype), mean, alpha, value=-1)
    out = torch.addcmul(beta, grouped, alpha)
    out = out.to(x.dtype).reshape(x.shape)
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        out = out.contiguous(memory_format=torch.channels_last)
    return _after_norm(layer, out)


@functools.lru_cache(maxsize=64)
def _update_weights(groups: int, momentum: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """m (1 - m)^(G - 1 - j) for j = 0..G-1: the weight of group j's statistics after G updates."""
    ages = torch.arange(groups - 1, -1, -1, dtype=torch.float64)
    return (momentum * (1.0 - momentum) ** ages).to(dtype=dtype, device=device)


@torch.no_grad()
def _update_running_stats(layer, means: torch.Tensor, variances: torch.Tensor) -> None:
    """The running statistics after one update per group, in group order (closed form); no host sync
    except the read of num_batches_tracked that torch's cumulative average makes too."""
    groups = means.shape[0]
    running = layer.running_mean
    if layer.momentum is None:  # cumulative average over the batches seen so far
        seen = float(layer.num_batches_tracked)
        keep = seen / (seen + groups)
        weights = torch.full((groups,), 1.0 / (seen + groups), dtype=running.dtype, device=running.device)
    else:
        keep = (1.0 - layer.momentum) ** groups
        weights = _update_weights(groups, float(layer.momentum), running.dtype, running.device)
    with torch.autocast(running.device.type, enabled=False):  # the buffers' precision, not autocast's
        layer.running_mean.addmv_(means.to(running.dtype).t(), weights, beta=keep)
        layer.running_var.addmv_(variances.to(running.dtype).t(), weights, beta=keep)
    layer.num_batches_tracked.add_(groups)


def _grouped_dropout(groups: int, rng_states: list, layer: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    parts = []
    for part in x.chunk(groups):
        rng_states.append(get_rng_state(x.device))
        parts.append(F.dropout(part, layer.p, True, layer.inplace))
    return torch.cat(parts)


def get_rng_state(device: torch.device) -> torch.Tensor:
    """The state of the generator that draws random numbers on ``device`` (no device sync)."""
    if device.type == 'cpu':
        return torch.get_rng_state()
    return torch.get_device_module(device.type).get_rng_state(device)


@contextlib.contextmanager
def replayed_rng(state, device: torch.device):
    """Inside, the generator of ``device`` starts from ``state`` (None: as it is); afterwards it is back
    where it was, as if the block drew nothing."""
    if state is None:
        yield
        return
    devices = [] if device.type == 'cpu' else [device]
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else 'cuda'):
        if device.type == 'cpu':
            torch.set_rng_state(state)
        else:
            torch.get_device_module(device.type).set_rng_state(state, device)
        yield


@contextlib.contextmanager
def _swapped_forwards(layers, forward):
    """Each layer's forward(x) becomes forward(layer, x) inside the block."""
    for layer in layers:
        layer.forward = functools.partial(forward, layer)
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward


@contextlib.contextmanager
def grouped_batch_norm(model, groups: int):
    """See the module docstring; ``model``: a module, or the sequence of modules whose layers to change. Yields
    the list that receives, per group in order, the random state before the group's dropout noise (empty when no
    dropout layer draws)."""
    if groups < 1:
        raise ValueError(f'groups must be >= 1; got {groups}')
    modules = _all_modules(model)
    norms = _training_batch_norms(modules)
    drops = [m for m in modules if type(m) is nn.Dropout and m.training and m.p > 0]
    if len(drops) > 1:
        raise ValueError('grouped forwards keep the random draws of per-group forwards with one dropout layer '
                         f'only; the model has {len(drops)}')
    for layer in norms:
        drop = getattr(layer, 'drop', None)
        if drop is not None and not isinstance(drop, nn.Identity):
            raise ValueError(f'grouped batch norm: the drop layer {type(drop).__name__} of a norm + activation '
                             f'layer would draw its noise once for all groups')
    rng_states: list = []
    with _swapped_forwards(norms, functools.partial(_grouped_forward, groups)), \
            _swapped_forwards(drops, functools.partial(_grouped_dropout, groups, rng_states)):
        yield rng_states
