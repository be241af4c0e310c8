"""SUPERNET.ZERO_INIT_RESIDUAL: by default every op starts as the original's did (last BN weight 1); switched on, each
residual searchable op starts as the identity and the first (non-residual) layer of each stage is untouched."""
import pytest
import torch

from lib.config import load_config
from lib.models.supernet import SuperNet
from lib.search.parts import build_search_parts

LAYERS = (1, 2, 1, 3, 2)


def searchable_ops(supernet):
    return [(layer, block) for stage in supernet.blocks[1:-1] for layer, choices in enumerate(stage)
            for block in choices]


@pytest.mark.parametrize('zero_init', [False, True])
def test_residual_ops_start_as_the_identity_only_when_asked(zero_init):
    torch.manual_seed(0)
    supernet = SuperNet(LAYERS, num_classes=5, zero_init_residual=zero_init).train()
    ops = searchable_ops(supernet)
    assert sum(block.has_skip for _, block in ops) == 6 * (sum(LAYERS) - len(LAYERS))
    for layer, block in ops:
        assert block.has_skip == (layer > 0)  # later layers of a stage are residual, first layers are not
        starts_at_zero = bool((block.bn3.weight == 0).all())
        assert starts_at_zero == (zero_init and block.has_skip)
        if block.has_skip:
            x = torch.randn(4, block.conv_pw.in_channels, 8, 8)
            assert torch.allclose(block(x), x) == zero_init


def test_the_search_builds_its_supernet_with_the_switch():
    cfg = load_config('configs/experiments/fashion_search.yaml', ['SUPERNET.ZERO_INIT_RESIDUAL', 'True'])
    supernet = build_search_parts(cfg, total_steps=1).supernet
    residual = [block for _, block in searchable_ops(supernet) if block.has_skip]
    assert residual and all((block.bn3.weight == 0).all() for block in residual)
    assert not load_config('configs/experiments/fashion_search.yaml').SUPERNET.ZERO_INIT_RESIDUAL  # the original's
