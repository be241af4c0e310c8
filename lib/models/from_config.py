"""The child network a retrain/test config describes: a released selection or ``-1`` with INPUT_ARCH."""
import logging
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from lib.models.childnet import (CUSTOM_SELECTION, RELEASED_MODELS, ArchError, build_childnet, resolve_selection,
                                 validate_arch)

CUSTOM_NATIVE_RESOLUTION = 224  # the original retrains any INPUT_ARCH at 224 px
CUSTOM_NAME = 'cream_custom'


@dataclass
class ChildInfo:
    name: str  # 'cream_014' ... 'cream_604', or 'cream_custom' for an INPUT_ARCH
    arch: List[List[int]]
    resolution: int  # training/eval image size
    keep_single_layer_default: bool
    selection: int  # canonical selection (14 ... 604) or -1
    macs: Optional[float] = None  # multiply-accumulates at ``resolution`` (thop), once counted
    params: Optional[int] = None

    @property
    def checkpoint_arch(self):
        """What checkpoints store under 'arch': the released name, or the path itself."""
        return self.name if self.selection != CUSTOM_SELECTION else self.arch


def resolve_child(cfg) -> ChildInfo:
    """Read NET.SELECTION / NET.INPUT_ARCH / DATASET.IMAGE_SIZE; raise ArchError before any work."""
    selection = cfg.NET.SELECTION
    if isinstance(selection, int) and selection == CUSTOM_SELECTION:
        arch = validate_arch(cfg.NET.INPUT_ARCH)
        name, native, keep = CUSTOM_NAME, CUSTOM_NATIVE_RESOLUTION, bool(cfg.NET.SINGLE_LAYER_DEFAULT_OP)
    else:
        selection = resolve_selection(selection)
        released = RELEASED_MODELS[selection]
        arch = [list(stage) for stage in released.arch]
        # The released checkpoints are shaped by the original builder's single-layer rule.
        name, native, keep = released.name, released.resolution, True
    image_size = cfg.DATASET.IMAGE_SIZE
    if image_size < 0:
        raise ArchError(f'DATASET.IMAGE_SIZE is {image_size}; use 0 (the native resolution) or a size in pixels')
    return ChildInfo(name=name, arch=arch, resolution=image_size or native,
                     keep_single_layer_default=keep, selection=selection)


def build_child_from_cfg(cfg) -> Tuple[torch.nn.Module, ChildInfo]:
    """The network of the config (classes, dropout, drop-path, BN settings, pool) and what it is."""
    info = resolve_child(cfg)
    model = build_childnet(
        info.arch,
        num_classes=cfg.DATASET.NUM_CLASSES,
        drop_rate=cfg.NET.DROPOUT_RATE,
        drop_path_rate=cfg.NET.DROP_PATH_RATE,
        keep_single_layer_default=info.keep_single_layer_default,
        bn_momentum=cfg.BATCHNORM.BN_MOMENTUM,
        bn_eps=cfg.BATCHNORM.BN_EPS,
        global_pool=cfg.NET.GP,
    )
    return model, info


def log_model_complexity(model: torch.nn.Module, info: ChildInfo, logger: logging.Logger) -> ChildInfo:
    """Count MACs/params at the run's resolution (thop), store them in ``info`` and log them."""
    from lib.models.complexity import count_macs_params

    macs, params = count_macs_params(model, (1, 3, info.resolution, info.resolution))
    info.macs, info.params = float(macs), int(params)
    logger.info('[Model-%s] %s at %dx%d: Flops: %.2fM MACs  Params: %.2fM  (arch %s%s)',
                info.selection, info.name, info.resolution, info.resolution, info.macs / 1e6,
                info.params / 1e6, info.arch,
                ', single-layer stages keep their default op' if info.keep_single_layer_default else '')
    return info
