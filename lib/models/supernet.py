"""The one-shot supernet: every searchable layer holds one block per op; a *path* picks one per layer.

A path is a tuple with one tuple of op indices per searchable stage, e.g. for layers_per_stage
(1, 2, 1, 1, 1): ``((3,), (0, 5), (1,), (2,), (4,))``. Module names mirror the child network
(timm's MobileNetV3) so that a path's weights become a child's by dropping the op index:
``blocks.{stage}.{layer}.{op}.*`` -> ``blocks.{stage}.{layer}.*``.
"""
import contextlib
from collections import OrderedDict
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from timm.layers import Linear, SelectAdaptivePool2d, create_conv2d, get_norm_act_layer
from timm.models._efficientnet_builder import efficientnet_init_weights

from lib.errors import ConfigError, CreamError

from . import ops
from .paths import Path

FIXED_STAGE = 0  # blocks.0: the depthwise-separable stage
FINAL_STAGE = ops.NUM_SEARCH_STAGES + 1  # blocks.6: the 1x1 conv to 320 channels
PATH_CACHE_SIZE = 64  # paths whose parameter and BN lists are kept (the board's plus recent students)
BatchNorm = nn.modules.batchnorm._BatchNorm


class PathError(CreamError, ValueError):
    """A path that does not fit the supernet's layers or ops."""


def check_supported_options(dil_conv: bool = False, resunit: bool = False) -> None:
    """Refuse the original's optional extra ops (SUPERNET.DIL_CONV / SUPERNET.RESUNIT).

    In the original, DIL_CONV added inverted-residual blocks with expansion 0 (8 hidden channels) and
    no dilation at all, RESUNIT a ReLU bottleneck; its child builder could build neither, so a path
    using them could never be retrained. Our child builder cannot either.
    """
    for key, value in (('SUPERNET.DIL_CONV', dil_conv), ('SUPERNET.RESUNIT', resunit)):
        if value:
            raise ConfigError(
                f'{key} is not supported: child networks cannot be built with its extra ops, so a path '
                f'using them could not be retrained; set {key}: False (the default) in the config')


def path_to_arch(path: Sequence[Sequence[int]]) -> List[List[int]]:
    """The 7-stage arch of ``childnet.build_childnet`` for ``path``: fixed stages written ``[0]``."""
    return [[0], *[[int(op) for op in stage] for stage in path], [0]]


class SuperNet(nn.Module):
    """Stem, stage 0, the searchable stages (one block per op per layer), final block, head."""

    def __init__(
        self,
        layers_per_stage: Sequence[int],
        num_classes: int = 1000,
        drop_rate: float = 0.0,
        norm_layer=nn.BatchNorm2d,
        dil_conv: bool = False,
        resunit: bool = False,
        global_pool: str = 'avg',
        zero_init_residual: bool = False,
    ):
        super().__init__()
        check_supported_options(dil_conv=dil_conv, resunit=resunit)
        layers_per_stage = tuple(int(n) for n in layers_per_stage)
        if len(layers_per_stage) != ops.NUM_SEARCH_STAGES or min(layers_per_stage) < 1:
            raise ValueError(f'layers_per_stage must give {ops.NUM_SEARCH_STAGES} positive layer counts; '
                             f'got {layers_per_stage}')
        self.layers_per_stage = layers_per_stage
        self.num_ops = ops.NUM_OPS
        self.num_classes = num_classes

        # Same layout and layer types as timm's MobileNetV3 (what childnet builds).
        self.conv_stem = create_conv2d(3, ops.STEM_CHANNELS, 3, stride=2)
        self.bn1 = get_norm_act_layer(norm_layer, ops.ACT_LAYER)(ops.STEM_CHANNELS, inplace=True)
        stages = [nn.ModuleList([ops.stage0_block(norm_layer=norm_layer)])]
        in_chs = ops.STAGE0_CHANNELS
        for stage, num_layers in enumerate(layers_per_stage):
            out_chs = ops.STAGE_OUT_CHANNELS[stage]
            layers = nn.ModuleList()
            for layer in range(num_layers):
                stride = ops.STAGE_STRIDES[stage] if layer == 0 else 1
                layers.append(nn.ModuleList(
                    ops.inverted_residual(in_chs, out_chs, op, stride, norm_layer=norm_layer)
                    for op in range(self.num_ops)))
                in_chs = out_chs
            stages.append(layers)
        stages.append(nn.ModuleList([ops.final_block(in_chs, norm_layer=norm_layer)]))
        self.blocks = nn.ModuleList(stages)
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        self.conv_head = create_conv2d(ops.FINAL_CHANNELS * self.global_pool.feat_mult(), ops.NUM_FEATURES, 1,
                                       bias=True)
        self.act2 = ops.ACT_LAYER(inplace=True)
        self.flatten = nn.Flatten(1)
        # A module (not F.dropout) so that grouped probe forwards draw its noise entry by entry (grouped_bn).
        self.head_drop = nn.Dropout(drop_rate) if drop_rate > 0.0 else nn.Identity()
        self.classifier = Linear(ops.NUM_FEATURES, num_classes)
        efficientnet_init_weights(self)
        if zero_init_residual:
            self.zero_init_residual_ops()

        # A new student path every step: keep only the recent ones (board paths recur).
        self._path_params: 'OrderedDict[Path, OrderedDict[str, nn.Parameter]]' = OrderedDict()
        self._path_bns: 'OrderedDict[Path, Tuple[Tuple[BatchNorm, ...], ...]]' = OrderedDict()

    def zero_init_residual_ops(self) -> None:
        """Every residual searchable op starts as the identity (its last BN's weight 0): an op not yet trained adds
        nothing to its input instead of a term as large as it (SUPERNET.ZERO_INIT_RESIDUAL, docs/own_data.md)."""
        for stage in self.blocks[1:FINAL_STAGE]:
            for choices in stage:
                for block in choices:
                    if block.has_skip:
                        nn.init.zeros_(block.bn3.weight)

    @property
    def drop_rate(self) -> float:
        """The head's dropout rate (timm's attribute name); head_drop is what applies it."""
        return self.head_drop.p if isinstance(self.head_drop, nn.Dropout) else 0.0

    # ---- paths ----------------------------------------------------------------------------------
    def check_path(self, path: Sequence[Sequence[int]]) -> Path:
        """``path`` as a tuple of tuples, after checking it against the layers and ops."""
        try:
            path = tuple(tuple(int(op) for op in stage) for stage in path)
        except (TypeError, ValueError):
            raise PathError(f'a path is one sequence of op indices per searchable stage; got {path!r}') from None
        lengths = tuple(len(stage) for stage in path)
        if lengths != self.layers_per_stage:
            raise PathError(f'path {path} has {lengths} layers per stage; this supernet has '
                            f'{self.layers_per_stage}')
        if any(not 0 <= op < self.num_ops for stage in path for op in stage):
            raise PathError(f'path {path} has an op index outside 0..{self.num_ops - 1}')
        return path

    def path_modules(self, path: Sequence[Sequence[int]]) -> List[Tuple[str, str, nn.Module]]:
        """(child-network name, supernet name, module) of every module ``path`` runs, in forward order."""
        path = self.check_path(path)
        entries = [('conv_stem', 'conv_stem', self.conv_stem), ('bn1', 'bn1', self.bn1),
                   ('blocks.0.0', 'blocks.0.0', self.blocks[FIXED_STAGE][0])]
        for stage, stage_ops in enumerate(path, start=1):
            for layer, op in enumerate(stage_ops):
                entries.append((f'blocks.{stage}.{layer}', f'blocks.{stage}.{layer}.{op}',
                                self.blocks[stage][layer][op]))
        final = f'blocks.{FINAL_STAGE}.0'
        entries += [(final, final, self.blocks[FINAL_STAGE][0]), ('conv_head', 'conv_head', self.conv_head),
                    ('classifier', 'classifier', self.classifier)]
        return entries

    def _cached(self, cache: OrderedDict, path: Sequence[Sequence[int]], build):
        """``cache[path]``, built by ``build(checked path)`` when absent; the PATH_CACHE_SIZE most recent kept."""
        path = self.check_path(path)
        value = cache.get(path)
        if value is None:
            value = cache[path] = build(path)
            while len(cache) > PATH_CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(path)
        return value

    def path_parameters(self, path: Sequence[Sequence[int]]) -> 'OrderedDict[str, nn.Parameter]':
        """The parameters ``path`` uses, by their supernet names (cached for recent paths)."""
        return self._cached(self._path_params, path, lambda path: OrderedDict(
            (f'{name}.{key}', param) for _, name, module in self.path_modules(path)
            for key, param in module.named_parameters()))

    def path_bn_groups(self, path: Sequence[Sequence[int]]) -> Tuple[Tuple[BatchNorm, ...], ...]:
        """The BN layers of each entry of ``path_modules(path)``, in forward order (cached for recent paths: the
        distillation step, teacher selection and BN re-estimation read them without walking the modules)."""
        return self._cached(self._path_bns, path, lambda path: tuple(
            tuple(m for m in module.modules() if isinstance(m, BatchNorm)) for *_, module in self.path_modules(path)))

    def path_bn_layers(self, path: Sequence[Sequence[int]]) -> List[BatchNorm]:
        """The BN layers ``path`` runs (stem, fixed stages and head included), each once, in forward order."""
        return [m for group in self.path_bn_groups(path) for m in group]

    def child_state_dict(self, path: Sequence[Sequence[int]]) -> 'OrderedDict[str, torch.Tensor]':
        """A state_dict that ``childnet.build_childnet(path_to_arch(path))`` loads strictly."""
        state = OrderedDict()
        for child_name, _, module in self.path_modules(path):
            module.state_dict(destination=state, prefix=f'{child_name}.')
        return state

    def _apply(self, fn, *args, **kwargs):
        # .to()/.cuda()/.half() may replace Parameter objects: cached references would go stale.
        self._path_params.clear()
        return super()._apply(fn, *args, **kwargs)

    # ---- forward --------------------------------------------------------------------------------
    def path_blocks(self, path: Sequence[Sequence[int]]) -> List[nn.Module]:
        """The blocks ``path`` runs after the stem, in order: stage 0, one op per searchable layer, the final block."""
        path = self.check_path(path)
        blocks = [self.blocks[FIXED_STAGE][0]]
        for stage_ops, layers in zip(path, self.blocks[1:FINAL_STAGE]):
            blocks.extend(choices[op] for op, choices in zip(stage_ops, layers))
        blocks.append(self.blocks[FINAL_STAGE][0])
        return blocks

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn1(self.conv_stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(x)
        x = self.act2(self.conv_head(x))
        x = self.flatten(x)
        return self.classifier(self.head_drop(x))

    def forward(self, x: torch.Tensor, path: Sequence[Sequence[int]]) -> torch.Tensor:
        x = self.forward_stem(x)
        for block in self.path_blocks(path):
            x = block(x)
        return self.forward_head(x)

    def forward_with_teacher(self, x: torch.Tensor, path: Sequence[Sequence[int]],
                             teacher_path: Sequence[Sequence[int]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(``self(x, path)``, ``self(x, teacher_path)`` without gradient) for distillation, computing once
        what both compute: the stem and the leading blocks where the two paths pick the same op see the same
        input, so they give the same output; their BN layers update their running statistics twice with the
        same batch statistics. After the parting, the student's blocks and head run first, then the teacher's:
        every other BN running statistic and dropout draw ends where the two separate forwards, student then
        teacher, leave it (the original's order)."""
        student_blocks, teacher_blocks = self.path_blocks(path), self.path_blocks(teacher_path)
        shared = 0
        while shared < len(student_blocks) and student_blocks[shared] is teacher_blocks[shared]:
            shared += 1
        # path_modules: conv_stem, bn1, then the path's blocks in order: the BN layers of bn1 and the shared blocks.
        with bn_updates_counted_twice([m for group in self.path_bn_groups(path)[:2 + shared] for m in group]):
            x = self.forward_stem(x)
            for block in student_blocks[:shared]:
                x = block(x)
        parted = x.detach()
        for block in student_blocks[shared:]:
            x = block(x)
        logits = self.forward_head(x)
        with torch.no_grad():
            for block in teacher_blocks[shared:]:
                parted = block(parted)
            teacher_logits = self.forward_head(parted)
        return logits, teacher_logits


def _counting_batch_norms(modules) -> List[BatchNorm]:
    """The BN layers among ``modules`` (a module or a sequence of them, e.g. ``path_bn_layers``; each walked) that
    train and update running statistics."""
    modules = [modules] if isinstance(modules, nn.Module) else modules
    return [m for module in modules for m in module.modules()
            if isinstance(m, BatchNorm) and m.training and m.track_running_stats]


@contextlib.contextmanager
def bn_updates_counted_twice(modules: Sequence[nn.Module]):
    """Inside the block, each training BN layer in ``modules`` updates its running statistics as if it ran
    twice in a row on the same batch: momentum m becomes 1 - (1 - m)^2 (cumulative averaging after n batches:
    2 / (n + 2)) and num_batches_tracked advances by two."""
    layers = _counting_batch_norms(modules)
    saved = [m.momentum for m in layers]
    for m in layers:
        if m.momentum is None:  # a host read, as torch's own cumulative average makes
            m.momentum = 2.0 / (float(m.num_batches_tracked) + 2.0)
        else:
            m.momentum = 1.0 - (1.0 - m.momentum) ** 2
    try:
        yield
    finally:
        for m, momentum in zip(layers, saved):
            m.momentum = momentum
    for m in layers:
        m.num_batches_tracked.add_(1)  # the forward added the first


@contextlib.contextmanager
def frozen_running_stats(modules):
    """Inside the block, the BN layers of ``modules`` (a module, or a sequence such as ``path_bn_layers``) in training
    mode still normalize with the batch's statistics but leave their running statistics and num_batches_tracked
    alone (for replaying a forward that already counted)."""
    layers = _counting_batch_norms(modules)
    for m in layers:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in layers:
            m.track_running_stats = True
