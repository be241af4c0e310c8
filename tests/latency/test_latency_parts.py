"""lib/latency/parts.py: the shape every part sees is the shape it sees in a real child network."""
import torch

from lib.latency.parts import FIXED_PARTS, fixed_part_shapes, layer_slots
from lib.models.childnet import fixed_parts
from lib.models import childnet
from lib.models.supernet import path_to_arch


def test_parts_see_the_shapes_of_a_real_child_network():
    layers, resolution = (2, 1, 3, 1, 2), 70  # odd sizes on the way: 35, 18, 9, 5, 5, 3
    path = ((1, 4), (2,), (0, 5, 3), (1,), (2, 2))
    net = childnet.build_childnet(path_to_arch(path), num_classes=3).eval()
    seen = {}
    hooks = [net.blocks[0].register_forward_pre_hook(lambda m, a: seen.__setitem__('stage0', a[0].shape[1:])),
             net.blocks[-1].register_forward_pre_hook(lambda m, a: seen.__setitem__('final', a[0].shape[1:])),
             net.global_pool.register_forward_pre_hook(lambda m, a: seen.__setitem__('head', a[0].shape[1:]))]
    for s, stage in enumerate(path):
        for l in range(len(stage)):
            hooks.append(net.blocks[s + 1][l].register_forward_pre_hook(
                lambda m, a, key=(s, l): seen.__setitem__(key, a[0].shape[1:])))
    with torch.no_grad():
        net(torch.zeros(1, 3, resolution, resolution))
    shapes = fixed_part_shapes(resolution)
    for name in ('stage0', 'final', 'head'):
        assert tuple(seen[name]) == shapes[name]
    assert shapes['stem'] == (3, resolution, resolution)
    for stage in layer_slots(layers, resolution):
        for slot in stage:
            assert tuple(seen[(slot.stage, slot.layer)]) == slot.input_shape
            op = path[slot.stage][slot.layer]
            block = net.blocks[slot.stage + 1][slot.layer]
            assert str(slot.op_module(op)) == str(block)  # the very block the child network has there


def test_fixed_parts_run_in_sequence_like_the_network():
    torch.manual_seed(0)
    parts = fixed_parts(num_classes=4)
    assert tuple(parts) == FIXED_PARTS
    shapes = fixed_part_shapes(64)
    with torch.no_grad():
        out = parts['head'].eval()(torch.zeros(2, *shapes['head']))
    assert out.shape == (2, 4)
