"""The supernet: paths map onto child networks exactly; path parameters; functional calls."""
import copy

import pytest
import torch
from torch.func import functional_call

from lib.errors import ConfigError
from lib.models import ops
from lib.models.childnet import build_childnet
from lib.models.supernet import PathError, SuperNet, frozen_running_stats, path_to_arch

LAYERS = (2, 1, 2, 1, 1)
PATH = ((3, 5), (1,), (0, 4), (2,), (5,))
OTHER = ((3, 5), (1,), (0, 2), (2,), (5,))  # differs from PATH in one layer


@pytest.fixture(scope='module')
def supernet():
    torch.manual_seed(0)
    net = SuperNet(LAYERS, num_classes=10)
    # Non-trivial BN statistics in every op of every layer.
    net.train()
    with torch.no_grad():
        for op in range(ops.NUM_OPS):
            net(torch.randn(4, 3, 32, 32), tuple((op,) * n for n in LAYERS))
    return net.eval()


def test_modules_per_layer_and_op(supernet):
    assert len(supernet.blocks) == 7
    assert [len(stage) for stage in supernet.blocks[1:6]] == list(LAYERS)
    assert all(len(layer) == ops.NUM_OPS for stage in supernet.blocks[1:6] for layer in stage)
    # No sharing between ops: every op block has its own parameters.
    ids = [id(p) for op in (0, 1) for p in supernet.blocks[2][0][op].parameters()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize('path', [PATH, OTHER, ((0, 0), (0,), (0, 0), (0,), (0,))])
def test_child_network_gives_same_logits(supernet, path):
    child = build_childnet(path_to_arch(path), num_classes=10, keep_single_layer_default=False)
    state = supernet.child_state_dict(path)
    assert list(state) == list(child.state_dict())
    child.load_state_dict(state, strict=True)
    child.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(supernet(x, path), child(x), rtol=0, atol=1e-6)


def test_path_to_arch():
    assert path_to_arch(PATH) == [[0], [3, 5], [1], [0, 4], [2], [5], [0]]


def test_path_parameters_are_the_child_parameters(supernet):
    params = supernet.path_parameters(PATH)
    child = build_childnet(path_to_arch(PATH), num_classes=10)
    child_params = dict(child.named_parameters())
    assert len(params) == len(child_params)
    assert sum(p.numel() for p in params.values()) == sum(p.numel() for p in child_params.values())
    assert 'blocks.3.1.4.conv_pw.weight' in params and 'blocks.3.1.2.conv_pw.weight' not in params
    supernet_params = dict(supernet.named_parameters())
    assert all(supernet_params[name] is p for name, p in params.items())
    assert supernet.path_parameters(PATH) is params  # cached
    other = supernet.path_parameters(OTHER)
    assert set(params) ^ set(other) == {n for n in set(params) | set(other) if n.startswith('blocks.3.1.')}


def test_cache_is_dropped_when_parameters_are_converted():
    net = SuperNet((1, 1, 1, 1, 1), num_classes=10)
    path = ((0,),) * 5
    before = net.path_parameters(path)
    net.to(torch.float64)
    after = net.path_parameters(path)
    assert all(p.dtype == torch.float64 for p in after.values())
    assert after is not before


def test_only_the_path_gets_gradients(supernet):
    supernet(torch.randn(2, 3, 32, 32), PATH).sum().backward()
    used = set(supernet.path_parameters(PATH))
    try:
        for name, p in supernet.named_parameters():
            assert (p.grad is not None) == (name in used), name
    finally:
        supernet.zero_grad(set_to_none=True)


def test_functional_call_with_replaced_path_parameters(supernet):
    x = torch.randn(2, 3, 32, 32)
    params = {name: p.detach().clone().requires_grad_() for name, p in supernet.path_parameters(PATH).items()}
    out = functional_call(supernet, params, (x, PATH))
    torch.testing.assert_close(out, supernet(x, PATH))
    out.sum().backward()
    assert all(p.grad is not None for p in params.values())
    assert all(p.grad is None for p in supernet.parameters())
    shifted = dict(params, **{'classifier.bias': params['classifier.bias'] + 1.0})
    torch.testing.assert_close(functional_call(supernet, shifted, (x, PATH)), out + 1.0)


def _bn_state(net):
    return {name: buf.clone() for name, buf in net.named_buffers()}


@pytest.mark.parametrize('teacher, shared_blocks', [
    (((0, 5), (1,), (0, 4), (2,), (5,)), 1),   # differs from the first searchable layer: stem + stage 0
    (OTHER, 5),                                # differs in the fifth searchable layer
    (PATH, 9),                                 # the same path: every block, the final one included
])
@pytest.mark.parametrize('momentum', [0.1, None])
def test_forward_with_teacher_equals_student_then_teacher(supernet, teacher, shared_blocks, momentum):
    """One forward with the common prefix run once = the original's two forwards, the student's and then the
    teacher's without gradient: logits, gradients, dropout draws, and every BN buffer to 1e-6 (the shared BN layers
    count the batch twice). Float64, dropout on."""
    fused, separate = copy.deepcopy(supernet).double().train(), copy.deepcopy(supernet).double().train()
    for net in (fused, separate):
        net.head_drop = torch.nn.Dropout(0.3)
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = momentum
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    calls = []
    blocks = set(fused.path_blocks(PATH)) | set(fused.path_blocks(teacher))
    for block in blocks:
        block.register_forward_hook(lambda *_: calls.append(1))
    torch.manual_seed(7)
    logits, teacher_logits = fused.forward_with_teacher(x, PATH, teacher)
    torch.manual_seed(7)
    expected = separate(x, PATH)
    with torch.no_grad():
        expected_teacher = separate(x, teacher)
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(teacher_logits, expected_teacher, rtol=0, atol=1e-10)
    assert not teacher_logits.requires_grad and logits.requires_grad
    # The common leading blocks ran once, not twice.
    assert len(calls) == 2 * len(fused.path_blocks(PATH)) - shared_blocks
    logits.square().sum().backward()
    expected.square().sum().backward()
    for (name, a), b in zip(fused.named_parameters(), separate.parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12, msg=name)
    fused_buffers, separate_buffers = _bn_state(fused), _bn_state(separate)
    for name, value in separate_buffers.items():
        torch.testing.assert_close(fused_buffers[name], value, rtol=1e-6, atol=1e-6, msg=name)  # counts exactly
    assert all(m.momentum == momentum for m in fused.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))


def test_frozen_running_stats_normalize_with_the_batch_and_leave_the_buffers(supernet):
    net = copy.deepcopy(supernet).train()
    x = torch.randn(3, 3, 32, 32)
    before = _bn_state(net)
    with frozen_running_stats(net):
        frozen = net(x, PATH)
    assert all(torch.equal(value, before[name]) for name, value in _bn_state(net).items())
    assert all(m.track_running_stats for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    torch.testing.assert_close(frozen, net(x, PATH), rtol=0, atol=0)  # train mode: the batch's statistics
    assert not all(torch.equal(value, before[name]) for name, value in _bn_state(net).items())


def test_path_bn_layers_are_the_paths_bn_modules_listed_once_per_path(supernet, monkeypatch):
    """One list per path, cached: the distillation step, teacher selection and BN re-estimation read it
    without walking the modules again; and with the frozen statistics above it freezes exactly the path's."""
    bn = torch.nn.modules.batchnorm._BatchNorm
    walked = [m for *_, module in supernet.path_modules(PATH) for m in module.modules() if isinstance(m, bn)]
    assert supernet.path_bn_layers(PATH) == walked and len(walked) == len(set(walked))
    differing = [m for op in (4, 2) for m in supernet.blocks[3][1][op].modules() if isinstance(m, bn)]
    assert supernet.bn1 in walked
    assert set(walked) ^ set(supernet.path_bn_layers(OTHER)) == set(differing)  # OTHER differs in one layer
    monkeypatch.setattr(torch.nn.Module, 'modules', lambda self: pytest.fail('walked the modules again'))
    assert supernet.path_bn_layers(PATH) == walked  # from the cache
    net = copy.deepcopy(supernet).train()
    layers = net.path_bn_layers(PATH)
    monkeypatch.undo()
    before = _bn_state(net)
    with frozen_running_stats(layers):
        net(torch.randn(3, 3, 32, 32), PATH)
    assert all(torch.equal(value, before[name]) for name, value in _bn_state(net).items())


def test_channels_last_and_autocast(supernet):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = supernet(x, PATH)
        net = SuperNet(LAYERS, num_classes=10)
        net.load_state_dict(supernet.state_dict())
        net = net.eval().to(memory_format=torch.channels_last)
        out = net(x.to(memory_format=torch.channels_last), PATH)
        torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = net(x.to(memory_format=torch.channels_last), PATH)
    assert low.dtype == torch.bfloat16
    assert torch.allclose(low.float(), reference, atol=0.1 * reference.abs().max().item() + 0.05)


def test_bad_paths_are_refused(supernet):
    with pytest.raises(PathError, match='layers per stage'):
        supernet(torch.randn(1, 3, 32, 32), ((0,),) * 5)
    with pytest.raises(PathError, match='op index'):
        supernet.path_parameters(((0, 6), (1,), (0, 4), (2,), (5,)))
    with pytest.raises(PathError, match='sequence of op indices'):
        supernet.child_state_dict(None)


@pytest.mark.parametrize('option', ['dil_conv', 'resunit'])
def test_extra_op_options_are_refused(option):
    with pytest.raises(ConfigError, match=f'SUPERNET.{option.upper()}.*False'):
        SuperNet((1, 1, 1, 1, 1), num_classes=10, **{option: True})
