"""Train and eval transforms, built by timm's create_transform."""
import re
from typing import Optional

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform

from lib.errors import ConfigError

INTERPOLATIONS = ('bilinear', 'bicubic', 'random')


def _check_interpolation(interpolation: str) -> None:
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f'DATASET.INTERPOLATION {interpolation!r} is not one of {INTERPOLATIONS}')


def auto_augment_or_none(auto_augment: Optional[str]) -> Optional[str]:
    """Config spelling of 'no AutoAugment' ('', 'none', None) -> None; else timm's policy string."""
    if auto_augment is None or str(auto_augment).strip().lower() in ('', 'none'):
        return None
    return auto_augment


def check_auto_augment(auto_augment: Optional[str]) -> None:
    """ConfigError unless timm's own parser takes AUGMENTATION.AA (by building the training transform with it), with
    a value in every ``-`` section: timm skips a section without one ('rand-m9-mstd' reads as 'rand-m9'), and a typo
    must not silently change the augmentation."""
    spec = auto_augment_or_none(auto_augment)
    if spec is None:
        return
    problem = next((f'its section {part!r} has no value' for part in spec.split('-')[1:]
                    if not re.search(r'\d', part)), None)
    if problem is None:
        try:
            build_train_transform(image_size=224, auto_augment=spec)
        except (AssertionError, ValueError, KeyError, TypeError) as err:
            problem = f'timm cannot parse it ({type(err).__name__}: {err or "unknown policy or section"})'
    if problem is not None:
        raise ConfigError(f'AUGMENTATION.AA is {spec!r}: {problem}. Give a timm augmentation spec, e.g. '
                          "'rand-m9-mstd0.5' (RandAugment), 'augmix-m5-w3', 'original' or 'v0' (AutoAugment), or '' "
                          'for none')


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
