"""The public model API: ``create_model`` and timm's ``cream_014`` ... ``cream_604``.

Importing this module registers the six released networks in timm's registry, so that
``timm.create_model('cream_287', checkpoint_path='287.pth.tar')`` works. timm loads such a path with
``torch.load(weights_only=True)``, which refuses the released files' pickled yacs ``CfgNode``; we
therefore register torch's sanctioned alias that reads that one global as a plain ``OrderedDict``
(``allow_released_checkpoints_in_weights_only_loads``): safe, nothing in the file is executed.
``timm.create_model('cream_287', pretrained=True, pretrained_cfg_overlay=dict(file='287.pth.tar'))``
works too (through our own safe loader); there is no download URL.
"""
from typing import Optional, Sequence, Union

import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import generate_default_cfgs, register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._efficientnet_builder import resolve_act_layer, resolve_bn_args
from timm.models.mobilenetv3 import _create_mnv3

from lib.checkpoint.files import PathLike, allow_released_checkpoints_in_weights_only_loads, load_checkpoint_file
from lib.checkpoint.weights import extract_state_dict, load_model_weights

from .childnet import (CUSTOM_SELECTION, RELEASED_MODELS, ArchError, build_childnet, build_released, childnet_kwargs,
                       resolve_selection)

__all__ = ['create_model', 'released_pretrained_cfg', 'CUSTOM_SELECTION']

DEFAULT_RESOLUTION = 224

allow_released_checkpoints_in_weights_only_loads()


def released_pretrained_cfg(resolution: int) -> dict:
    """Data settings that reproduce the published accuracy: resize to res/0.875 with bicubic interpolation, as the
    original's test.py did (its published top-1 were measured so; NNI's bilinear re-evaluation is 0.06-0.3 points
    lower), center crop. timm's validate.py and ``resolve_data_config`` read these."""
    return dict(
        url='',
        num_classes=1000,
        input_size=(3, resolution, resolution),
        pool_size=(-(-resolution // 32),) * 2,
        crop_pct=0.875,
        interpolation='bicubic',
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv='conv_stem',
        classifier='classifier',
        license='mit',
        paper_ids='arXiv:2010.15821',
    )


default_cfgs = generate_default_cfgs({
    released.name: released_pretrained_cfg(released.resolution) for released in RELEASED_MODELS.values()
})


def _is_custom(name_or_selection) -> bool:
    return name_or_selection is None or str(name_or_selection).strip() == str(CUSTOM_SELECTION)


def create_model(
    name_or_selection: Union[int, str, None],
    num_classes: int = 1000,
    checkpoint: Optional[PathLike] = None,
    use_ema: bool = True,
    arch: Optional[Sequence[Sequence[int]]] = None,
    resolution: Optional[int] = None,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
    keep_single_layer_default: bool = False,
    strict: bool = True,
) -> nn.Module:
    """A Cream child network in eval mode, with ``checkpoint``'s weights when given (EMA preferred).

    ``name_or_selection``: 14, '14', 'cream_14', 'cream_014', 112 (= 114), ... for a released network,
    or -1 together with ``arch`` (7 lists of op indices) for any other path. ``resolution`` only sets
    ``model.pretrained_cfg['input_size']`` (default: native for released networks, 224 otherwise).
    ``keep_single_layer_default`` applies to ``arch`` only (released networks always have it).
    """
    if _is_custom(name_or_selection):
        if arch is None:
            raise ArchError('selection -1 needs arch=[[0], [...], ..., [0]] (7 lists of op indices)')
        model = build_childnet(arch, num_classes=num_classes, drop_rate=drop_rate, drop_path_rate=drop_path_rate,
                               keep_single_layer_default=keep_single_layer_default)
        pretrained_cfg = released_pretrained_cfg(resolution or DEFAULT_RESOLUTION)
        pretrained_cfg.update(architecture='cream_custom')
    else:
        if arch is not None:
            raise ArchError(f'give either a released selection ({name_or_selection!r}) or arch with selection -1, '
                            'not both')
        selection = resolve_selection(name_or_selection)
        released = RELEASED_MODELS[selection]
        model = build_released(selection, num_classes=num_classes, drop_rate=drop_rate,
                               drop_path_rate=drop_path_rate)
        pretrained_cfg = released_pretrained_cfg(resolution or released.resolution)
        pretrained_cfg.update(architecture=released.name)
    pretrained_cfg['num_classes'] = num_classes
    model.pretrained_cfg = model.default_cfg = pretrained_cfg
    if checkpoint is not None:
        load_model_weights(model, checkpoint, use_ema=use_ema, strict=strict)
    return model.eval()


def _create_released(selection: int, pretrained: bool = False, pretrained_cfg=None, pretrained_cfg_overlay=None,
                     **kwargs) -> nn.Module:
    """timm entrypoint body: timm's own MobileNetV3 path (``_create_mnv3`` -> ``build_model_with_cfg``).

    So the cream_* names take what timm's MobileNetV3 entrypoints take: num_classes, in_chans, global_pool,
    drop_rate, drop_path_rate, features_only/out_indices/feature_location/output_stride, bn_momentum,
    bn_eps, act_layer, pad_type, ... . timm itself loads ``checkpoint_path`` after this returns.
    """
    released = RELEASED_MODELS[selection]
    name = released.name
    bn_args = resolve_bn_args(kwargs)
    model_kwargs = childnet_kwargs(released.arch, keep_single_layer_default=True,
                                   bn_momentum=bn_args.get('momentum', 0.1), bn_eps=bn_args.get('eps', 1e-5))
    model_kwargs['act_layer'] = resolve_act_layer(kwargs, model_kwargs['act_layer'])
    model_kwargs = dict(**model_kwargs, **kwargs)  # a shape argument given twice is timm's TypeError
    overlay = dict(pretrained_cfg_overlay or {})
    if pretrained:
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay)
        if not cfg.file:
            raise ValueError(f'{name} has no download URL: pass checkpoint_path=<file>, or pretrained=True with '
                             "pretrained_cfg_overlay=dict(file=<file>)")
        # Read safely here (EMA weights preferred); timm adapts them (in_chans, num_classes, features).
        overlay['state_dict'], _ = extract_state_dict(load_checkpoint_file(cfg.file), use_ema=True)
    model = _create_mnv3(name, pretrained, pretrained_cfg=pretrained_cfg, pretrained_cfg_overlay=overlay,
                         **model_kwargs)
    for cfg_dict in (model.pretrained_cfg, model.default_cfg):
        cfg_dict.pop('state_dict', None)  # the weights are in the model; the config stays small
    return model


@register_model
def cream_014(pretrained: bool = False, **kwargs) -> nn.Module:
    return _create_released(14, pretrained, **kwargs)


@register_model
def cream_043(pretrained: bool = False, **kwargs) -> nn.Module:
    return _create_released(43, pretrained, **kwargs)


@register_model
def cream_114(pretrained: bool = False, **kwargs) -> nn.Module:
    return _create_released(114, pretrained, **kwargs)


@register_model
def cream_287(pretrained: bool = False, **kwargs) -> nn.Module:
    return _create_released(287, pretrained, **kwargs)


@register_model
def cream_481(pretrained: bool = False, **kwargs) -> nn.Module:
    return _create_released(481, pretrained, **kwargs)


@register_model
def cream_604(pretrained: bool = False, **kwargs) -> nn.Module:
    return _create_released(604, pretrained, **kwargs)
