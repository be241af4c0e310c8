import pytest
import torch
from PIL import Image
from timm.data.auto_augment import RandAugment
from timm.data.random_erasing import RandomErasing
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from lib.data import build_eval_transform, build_train_transform


def _steps(transform, kind):
    return [t for t in transform.transforms if isinstance(t, kind)]


@pytest.mark.parametrize('res, resized', [(64, 73), (96, 109), (160, 182), (224, 256)])
def test_eval_resizes_shorter_side_to_res_over_crop_pct(res, resized):
    transform = build_eval_transform(image_size=res, crop_pct=0.875)
    (resize,) = _steps(transform, T.Resize)
    assert resize.size == resized == int(res / 0.875)
    assert resize.interpolation == InterpolationMode.BILINEAR
    (crop,) = _steps(transform, T.CenterCrop)
    assert tuple(crop.size) == (res, res)

    image = Image.new('RGB', (300, 400), (124, 116, 104))  # ~ImageNet mean colour
    assert min(resize(image).size) == resized
    out = transform(image)
    assert out.shape == (3, res, res) and out.dtype == torch.float32
    assert out.abs().max() < 0.05  # normalized with ImageNet mean/std


def test_eval_random_interpolation_means_bilinear_and_bicubic_is_kept():
    (resize,) = _steps(build_eval_transform(image_size=64, interpolation='random'), T.Resize)
    assert resize.interpolation == InterpolationMode.BILINEAR
    (resize,) = _steps(build_eval_transform(image_size=64, interpolation='bicubic'), T.Resize)
    assert resize.interpolation == InterpolationMode.BICUBIC


def test_bad_interpolation_and_crop_pct_are_errors():
    with pytest.raises(ValueError, match='INTERPOLATION'):
        build_eval_transform(image_size=64, interpolation='nearest')
    with pytest.raises(ValueError, match='INTERPOLATION'):
        build_train_transform(image_size=64, interpolation='lanczos')
    with pytest.raises(ValueError, match='CROP_PCT'):
        build_eval_transform(image_size=64, crop_pct=1.5)


def test_train_transform_with_prefetcher_leaves_uint8_and_erasing_to_it():
    transform = build_train_transform(image_size=32, auto_augment='rand-m9-mstd0.5', re_prob=0.5,
                                      interpolation='random', use_prefetcher=True)
    assert _steps(transform, RandAugment) and not _steps(transform, RandomErasing)
    assert not _steps(transform, T.ColorJitter)  # timm turns colour jitter off under RandAugment
    out = transform(Image.new('RGB', (50, 70), (10, 200, 30)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.uint8


def test_train_transform_without_prefetcher_normalizes_and_erases():
    transform = build_train_transform(image_size=32, auto_augment='none', color_jitter=0.4,
                                      re_prob=0.5, re_mode='pixel', re_count=2,
                                      use_prefetcher=False)
    (erasing,) = _steps(transform, RandomErasing)
    assert erasing.probability == 0.5 and erasing.max_count == 2
    assert _steps(transform, T.ColorJitter) and not _steps(transform, RandAugment)
    out = transform(Image.new('RGB', (50, 70), (10, 200, 30)))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32


def test_no_color_jitter_when_zero():
    transform = build_train_transform(image_size=32, color_jitter=0.0, use_prefetcher=False)
    assert not _steps(transform, T.ColorJitter)


def test_random_resized_crop_takes_the_configured_area_range():
    from timm.data.transforms import RandomResizedCropAndInterpolation
    (default,) = _steps(build_train_transform(image_size=32, use_prefetcher=False), RandomResizedCropAndInterpolation)
    assert default.scale == (0.08, 1.0)  # timm's default, the original's
    (mild,) = _steps(build_train_transform(image_size=32, scale=[0.5, 1.0], use_prefetcher=False),
                     RandomResizedCropAndInterpolation)
    assert mild.scale == (0.5, 1.0)
