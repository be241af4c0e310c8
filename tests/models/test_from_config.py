import pytest

from lib.config import load_config
from lib.models.childnet import RELEASED_MODELS, ArchError
from lib.models.from_config import build_child_from_cfg, resolve_child
from lib.models.ops import OP_CHOICES, STAGE_DEFAULT_OPS

NATIVE = {14: 64, 43: 96, 114: 160, 287: 224, 481: 224, 604: 224}


def cfg_of(*opts):
    return load_config(None, list(opts))


@pytest.mark.parametrize('selection', sorted(NATIVE))
def test_released_selection_uses_native_resolution_and_the_single_layer_rule(selection):
    info = resolve_child(cfg_of('MODEL_SELECTION', str(selection)))
    assert info.resolution == NATIVE[selection]
    assert info.keep_single_layer_default is True
    assert info.arch == [list(s) for s in RELEASED_MODELS[selection].arch]
    assert info.name == f'cream_{selection:03d}' and info.checkpoint_arch == info.name


def test_alias_112_and_explicit_image_size():
    info = resolve_child(cfg_of('MODEL_SELECTION', '112', 'DATASET.IMAGE_SIZE', '128'))
    assert info.selection == 114 and info.resolution == 128


def test_input_arch_defaults_to_224_and_its_own_single_layer_setting():
    arch = [[0], [5], [2, 0], [1], [4], [3, 1], [0]]
    info = resolve_child(cfg_of('MODEL_SELECTION', '-1', 'INPUT_ARCH', str(arch)))
    assert (info.resolution, info.keep_single_layer_default, info.arch) == (224, False, arch)
    assert info.checkpoint_arch == arch
    keep = resolve_child(cfg_of('MODEL_SELECTION', '-1', 'INPUT_ARCH', str(arch),
                                'NET.SINGLE_LAYER_DEFAULT_OP', 'True'))
    assert keep.keep_single_layer_default is True


def _kernel_expansion(block):
    return block.conv_dw.kernel_size[0], block.conv_pw.out_channels // block.conv_pw.in_channels


def test_single_layer_stages_get_the_searched_op():
    arch = [[0], [5], [2, 0], [4], [1], [3], [0]]  # stages 1, 3, 4, 5 hold one layer
    model, _ = build_child_from_cfg(cfg_of('MODEL_SELECTION', '-1', 'INPUT_ARCH', str(arch),
                                           'DATASET.NUM_CLASSES', '3', 'NET.DROP_PATH_RATE', '0.1'))
    for stage in (1, 3, 4, 5):
        assert _kernel_expansion(model.blocks[stage][0]) == OP_CHOICES[arch[stage][0]]
    assert model.classifier.out_features == 3
    assert model.blocks[5][0].drop_path.drop_prob > 0


def test_quirk_on_request_gives_the_default_op():
    arch = [[0], [5], [2, 0], [4], [1], [3], [0]]
    model, _ = build_child_from_cfg(cfg_of('MODEL_SELECTION', '-1', 'INPUT_ARCH', str(arch),
                                           'NET.SINGLE_LAYER_DEFAULT_OP', 'True'))
    assert _kernel_expansion(model.blocks[1][0]) == OP_CHOICES[STAGE_DEFAULT_OPS[0]]
    assert _kernel_expansion(model.blocks[2][0]) == OP_CHOICES[2]  # two layers: the searched ops


@pytest.mark.parametrize('opts, message', [
    (('MODEL_SELECTION', '100'), 'unsupported MODEL_SELECTION'),
    (('MODEL_SELECTION', '-1', 'INPUT_ARCH', '[[0], [3], [3]]'), '7 stages'),
    (('MODEL_SELECTION', '-1', 'INPUT_ARCH', '[[0], [3], [9, 3], [3], [3], [3], [0]]'), 'op index 9'),
    (('MODEL_SELECTION', '-1', 'INPUT_ARCH', '[[0], [3], [], [3], [3], [3], [0]]'), 'empty'),
    (('DATASET.IMAGE_SIZE', '-3'), 'IMAGE_SIZE'),
])
def test_bad_selection_or_arch_is_one_clear_error(opts, message):
    with pytest.raises(ArchError, match=message):
        build_child_from_cfg(cfg_of(*opts))


def test_complexity_is_counted_at_the_run_resolution_and_logged(reference_dir, caplog):
    import json
    import logging

    from lib.models.from_config import log_model_complexity
    reference = json.loads((reference_dir / 'cream_models.json').read_text())['models']['14']
    model, info = build_child_from_cfg(cfg_of('MODEL_SELECTION', '14'))
    logger = logging.getLogger('test.model_builder')
    with caplog.at_level(logging.INFO, logger='test.model_builder'):
        log_model_complexity(model, info, logger)
    assert info.params == reference['params']
    assert abs(info.macs / 1e6 - reference['thop_macs_M']) < 0.01
    assert '[Model-14]' in caplog.text and 'Flops' in caplog.text and 'Params' in caplog.text
    assert not any(name.startswith('total_') for name, _ in model.named_buffers())  # thop left no trace


def test_sync_bn_conversion_keeps_the_swish_after_every_bn():
    import logging

    import torch
    from timm.layers import SyncBatchNormAct

    from lib.config import load_config
    from lib.engine.distributed import DistContext
    from lib.retrain.wrappers import convert_sync_bn
    from lib.models.childnet import build_released

    cfg = load_config(None, ['BATCHNORM.SYNC_BN', 'True'])
    ctx = DistContext(rank=0, world_size=2, local_rank=0, device=torch.device('cuda'))  # conversion only
    model = convert_sync_bn(build_released(14), cfg, ctx, logging.getLogger('test'))
    bn = model.blocks[1][0].bn1
    assert isinstance(bn, SyncBatchNormAct) and isinstance(bn.act, torch.nn.SiLU)
    assert not any(type(m) is torch.nn.BatchNorm2d for m in model.modules())
