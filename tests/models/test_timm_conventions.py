"""timm's conventions for the cream_* names: they are built by timm's own MobileNetV3 path, so the keyword
arguments of timm's MobileNetV3 entrypoints work (features_only, in_chans, global_pool, num_classes, ...)."""
import pytest
import timm
import torch
from timm.layers import DropPath

import lib.models  # noqa: F401  (registers the cream_* names)
from lib.checkpoint.files import save_checkpoint_atomic
from lib.models import RELEASED_MODELS
from lib.models.childnet import build_released

NAMES = [m.name for m in RELEASED_MODELS.values()]
# out_indices (1, 2, 3, 4): the ends of the stride-4/8/16/32 levels (stages 1, 2, 4 and the final 1x1 conv).
PYRAMID_STRIDES = [4, 8, 16, 32]
PYRAMID_CHANNELS = [24, 40, 96, 320]


def image(channels=3, height=64, width=96):
    return torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize('name', NAMES)
def test_default_build_is_the_released_network(name):
    model = timm.create_model(name)
    reference = build_released(int(name.split('_')[1]))
    assert [(k, v.shape) for k, v in model.state_dict().items()] == \
        [(k, v.shape) for k, v in reference.state_dict().items()]
    native = RELEASED_MODELS[int(name.split('_')[1])].resolution
    assert model.pretrained_cfg['input_size'] == (3, native, native)
    assert (model.pretrained_cfg['crop_pct'], model.pretrained_cfg['interpolation']) == (0.875, 'bicubic')


def test_timm_evaluation_transform_is_the_originals_bicubic_one():
    """timm's validate.py builds its transform from the model's pretrained_cfg: for the cream_* names that is the
    original's evaluation (bicubic resize to res/0.875, center crop), the transform test.py uses by default."""
    from PIL import Image
    from timm.data import create_transform, resolve_model_data_config

    from lib.config import load_config
    from lib.data.transforms import build_eval_transform
    model = timm.create_model('cream_043')
    data_config = resolve_model_data_config(model)
    assert data_config['interpolation'] == 'bicubic' and data_config['input_size'] == (3, 96, 96)
    cfg = load_config(None, [])
    ours = build_eval_transform(image_size=96, interpolation=cfg.DATASET.EVAL_INTERPOLATION,
                                crop_pct=cfg.DATASET.CROP_PCT)
    pixels = torch.randint(0, 256, (150, 200, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    picture = Image.fromarray(pixels.numpy())
    torch.testing.assert_close(create_transform(**data_config)(picture), ours(picture), rtol=0, atol=0)
    bilinear = build_eval_transform(image_size=96, interpolation='bilinear')(picture)
    assert not torch.equal(bilinear, ours(picture))  # the test can see the interpolation


@pytest.mark.parametrize('name', NAMES)
def test_features_only_gives_a_detection_pyramid(name):
    torch.manual_seed(0)
    full = timm.create_model(name).eval()
    backbone = timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4)).eval()
    assert backbone.feature_info.reduction() == PYRAMID_STRIDES
    assert backbone.feature_info.channels() == PYRAMID_CHANNELS
    missing, unexpected = backbone.load_state_dict(full.state_dict(), strict=False)
    assert not missing and all(k.startswith(('conv_head', 'classifier')) for k in unexpected)
    x = image(height=64, width=96)  # not square: each side is divided by the stride
    with torch.no_grad():
        maps = backbone(x)
        last = full.forward_features(x)
    assert [tuple(m.shape) for m in maps] == [(2, c, 64 // s, 96 // s) for c, s in zip(PYRAMID_CHANNELS, PYRAMID_STRIDES)]
    assert torch.allclose(maps[-1], last, atol=1e-5)  # the same network up to the head


@pytest.mark.parametrize('name', NAMES)
def test_in_chans(name):
    model = timm.create_model(name, in_chans=1, num_classes=5).eval()
    assert model.conv_stem.in_channels == 1
    with torch.no_grad():
        assert model(image(channels=1)).shape == (2, 5)


@pytest.mark.parametrize('name', NAMES)
def test_global_pool(name):
    model = timm.create_model(name, global_pool='max').eval()
    x = image()
    with torch.no_grad():
        pooled = model.forward_features(x).amax(dim=(2, 3), keepdim=True)
        by_hand = model.classifier(model.flatten(model.act2(model.conv_head(pooled))))
        assert torch.allclose(model(x), by_hand, atol=1e-5)
    assert timm.create_model(name, global_pool='catavgmax').conv_head.in_channels == 2 * 320


@pytest.mark.parametrize('name', NAMES)
def test_num_classes(name):
    assert timm.create_model(name, num_classes=7).classifier.out_features == 7
    headless = timm.create_model(name, num_classes=0).eval()
    with torch.no_grad():
        assert headless(image()).shape == (2, 1280)  # timm: num_classes=0 returns the pre-logits features


@pytest.mark.parametrize('name', NAMES)
def test_drop_rate_and_drop_path_rate(name):
    model = timm.create_model(name, drop_rate=0.3, drop_path_rate=0.2)
    assert model.drop_rate == 0.3
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates and max(rates) <= 0.2 and max(rates) > 0.1  # timm scales it up with depth
    x = image()
    model.train()
    assert not torch.equal(model(x), model(x))  # dropout and dropped paths at work
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


@pytest.mark.parametrize('name', NAMES)
def test_other_mobilenetv3_arguments(name):
    model = timm.create_model(name, bn_momentum=0.01, bn_eps=1e-3, act_layer='relu')
    assert (model.bn1.momentum, model.bn1.eps) == (0.01, 1e-3)
    assert isinstance(model.bn1.act, torch.nn.ReLU)
    with pytest.raises(TypeError, match='not_an_argument'):
        timm.create_model(name, not_an_argument=1)


def test_pretrained_file_adapts_to_in_chans_and_num_classes(tmp_path):
    torch.manual_seed(1)
    released = build_released(14)
    path = tmp_path / 'cream14.pth.tar'
    save_checkpoint_atomic({'state_dict': released.state_dict(), 'arch': 'cream_014'}, path)
    gray = timm.create_model('cream_014', pretrained=True, in_chans=1, num_classes=3,
                             pretrained_cfg_overlay=dict(file=str(path)))
    # timm's adaptation: the RGB stem filters summed over the colour channels; a new classifier.
    assert torch.allclose(gray.conv_stem.weight, released.conv_stem.weight.sum(dim=1, keepdim=True))
    assert torch.equal(gray.conv_head.weight, released.conv_head.weight)
    assert gray.classifier.out_features == 3
    assert 'state_dict' not in gray.pretrained_cfg
    backbone = timm.create_model('cream_014', pretrained=True, features_only=True,
                                 pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(backbone.blocks[5][0].conv_pw.weight, released.blocks[5][0].conv_pw.weight)
