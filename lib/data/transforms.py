"""Train and eval transforms, built by timm's create_transform."""
from typing import Optional

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform

from lib.config.table import choices
from lib.config.timm_names import auto_augment_or_none
from lib.errors import ConfigError

INTERPOLATIONS = choices('DATASET.INTERPOLATION')


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f'DATASET.INTERPOLATION {interpolation!r} is not one of {INTERPOLATIONS}')


def build_train_transform(*, image_size: int, interpolation: str = 'random',
                          auto_augment: Optional[str] = None, color_jitter: float = 0.4,
                          re_prob: float = 0.0, re_mode: str = 'const', re_count: int = 1,
                          scale=(0.08, 1.0), use_prefetcher: bool = False):
    """RandomResizedCrop (a crop of ``scale`` of the area) + hflip + RandAugment/colour jitter; with use_prefetcher the output is a
    uint8 tensor and normalization and random erasing are left to the prefetcher (done once there)."""
    _check_interpolation(interpolation)
    return create_transform(
        image_size, is_training=True, interpolation=interpolation, scale=tuple(scale),
        auto_augment=auto_augment_or_none(auto_augment),
        color_jitter=color_jitter if color_jitter else None,
        re_prob=re_prob, re_mode=re_mode, re_count=re_count,
        mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, use_prefetcher=use_prefetcher)


def build_eval_transform(*, image_size: int, interpolation: str = 'bilinear', crop_pct: float = 0.875,
                         use_prefetcher: bool = False):
    """Resize the shorter side to int(image_size / crop_pct), center crop image_size, ImageNet mean/std.

    'random' interpolation is a training augmentation; evaluation uses bilinear for it.
    """
    _check_interpolation(interpolation)
    if not 0.0 < crop_pct <= 1.0:
        raise ConfigError(f'DATASET.CROP_PCT must be in (0, 1], got {crop_pct}')
    return create_transform(
        image_size, is_training=False,
        interpolation='bilinear' if interpolation == 'random' else interpolation,
        crop_pct=crop_pct, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        use_prefetcher=use_prefetcher)
