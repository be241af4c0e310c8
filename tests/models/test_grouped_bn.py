"""Grouped batch statistics (lib/models/grouped_bn.py) against one forward per group, in order."""
import copy

import pytest
import torch
import torch.nn as nn
from timm.layers import BatchNormAct2d, convert_sync_batchnorm

from lib.models.grouped_bn import get_rng_state, grouped_batch_norm, replayed_rng
from lib.models.supernet import SuperNet, frozen_running_stats

STUDENT = ((1,), (0,), (2,), (5,), (3,))


def small_net(norm: str, momentum, dropout: float = 0.0) -> nn.Module:
    if norm in ('torch', 'torch-sync'):
        first, second = nn.BatchNorm2d(6, momentum=momentum), nn.BatchNorm2d(5, momentum=momentum)
    else:
        first = BatchNormAct2d(6, momentum=momentum, act_layer=nn.SiLU)
        second = BatchNormAct2d(5, momentum=momentum, apply_act=False)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), first, nn.Conv2d(6, 5, 3, stride=2), second,
                        nn.Flatten(), nn.Dropout(dropout) if dropout else nn.Identity())
    # Synchronized layers normalise per process here (no process group), as under unsynced_bn.
    if norm == 'sync':
        net = convert_sync_batchnorm(net)  # timm's SyncBatchNormAct
    elif norm == 'torch-sync':
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    return net


def per_group(net, x, groups, *args):
    return torch.cat([net(part, *args) for part in x.chunk(groups)])


def assert_same_buffers(net, reference, rtol=1e-12):
    for (name, got), want in zip(net.named_buffers(), reference.buffers()):
        if name.endswith('num_batches_tracked'):
            assert torch.equal(got, want), name
        else:
            torch.testing.assert_close(got, want, rtol=rtol, atol=rtol, msg=name)


@pytest.mark.parametrize('norm', ['torch', 'timm', 'sync', 'torch-sync'])
@pytest.mark.parametrize('momentum', [0.1, None])
@pytest.mark.parametrize('groups', [1, 3, 10])
def test_one_grouped_forward_is_one_forward_per_group_in_float64(norm, momentum, groups):
    torch.manual_seed(0)
    net = small_net(norm, momentum).double().train()
    with torch.no_grad():  # a few batches already seen: the cumulative average has a count to continue from
        for _ in range(2):
            net(torch.randn(4, 3, 7, 7, dtype=torch.float64))
    reference = copy.deepcopy(net)
    x = torch.randn(groups * 2, 3, 7, 7, dtype=torch.float64) * 3 + 2
    with torch.no_grad():
        want = per_group(reference, x, groups)
        with grouped_batch_norm(net, groups):
            got = net(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert_same_buffers(net, reference)
    assert 'forward' not in vars(net[1])  # the layers' own forward is back


def test_eval_layers_untouched_and_untracked_layers_normalise_per_group():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, track_running_stats=False),
                        nn.BatchNorm2d(4)).double().train()
    net[2].eval()
    reference = copy.deepcopy(net)
    x = torch.randn(6, 3, 5, 5, dtype=torch.float64)
    with torch.no_grad(), grouped_batch_norm(net, 3):
        got = net(x)
    torch.testing.assert_close(got, per_group(reference, x, 3), rtol=1e-12, atol=1e-12)
    assert_same_buffers(net, reference)


def test_float32_statistics_are_as_accurate_as_per_entry_forwards():
    """float32 tolerance: against the float64 per-entry truth, the grouped forward's outputs and running
    statistics are off by no more than twice what float32 per-entry forwards are off (plus 1e-6 of the scale)."""
    torch.manual_seed(0)
    net = SuperNet((1, 1, 1, 1, 1), num_classes=10).train()
    truth, per_entry = copy.deepcopy(net).double(), copy.deepcopy(net)
    x = torch.randn(10 * 4, 3, 64, 64)
    with torch.no_grad():
        want = per_group(truth, x.double(), 10, STUDENT)
        plain = per_group(per_entry, x, 10, STUDENT)
        with grouped_batch_norm(net, 10):
            got = net(x, STUDENT)
    truth_buffers = dict(truth.named_buffers())
    pairs = [('logits', got, plain, want, want.abs().max())]
    for (name, grouped), ungrouped in zip(net.named_buffers(), per_entry.buffers()):
        if grouped.is_floating_point() and truth_buffers[name].abs().max() > 0:  # the path's layers
            # A running mean near zero is judged on the scale of its channels' spread.
            spread = truth_buffers[name.replace('running_mean', 'running_var')].sqrt().max()
            pairs.append((name, grouped, ungrouped, truth_buffers[name], spread))
    for name, grouped, ungrouped, exact, scale in pairs:
        tolerance = 2 * (ungrouped.double() - exact).abs().max() + 1e-6 * scale
        assert (grouped.double() - exact).abs().max() <= tolerance, name


def test_layout_and_bf16_autocast_follow_the_per_group_forward():
    torch.manual_seed(0)
    net = small_net('timm', 0.1).train().to(memory_format=torch.channels_last)
    reference = copy.deepcopy(net)
    x = torch.randn(8, 3, 7, 7).contiguous(memory_format=torch.channels_last)
    features = []
    net[1].register_forward_hook(lambda module, args, out: features.append(out))
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        want = per_group(reference, x, 4)
        with grouped_batch_norm(net, 4):
            got = net(x)
    assert got.dtype == want.dtype == torch.bfloat16
    assert features[0].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)  # bf16 outputs: a few units in their last place
    assert_same_buffers(net, reference, rtol=1e-5)


def test_dropout_draws_its_noise_group_by_group_and_replays_it():
    torch.manual_seed(0)
    net = small_net('timm', 0.1, dropout=0.5).double().train()
    reference = copy.deepcopy(net)
    x = torch.randn(6, 3, 7, 7, dtype=torch.float64)
    torch.manual_seed(1)
    with torch.no_grad():
        want = per_group(reference, x, 3)
    after_reference = torch.get_rng_state()
    torch.manual_seed(1)
    with torch.no_grad(), grouped_batch_norm(net, 3) as rng_states:
        got = net(x)
    assert torch.equal(torch.get_rng_state(), after_reference)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert len(rng_states) == 3
    with torch.no_grad(), frozen_running_stats(net), replayed_rng(rng_states[1], x.device):
        again = net(x[2:4])
    torch.testing.assert_close(again, want[2:4], rtol=1e-12, atol=1e-12)
    assert torch.equal(get_rng_state(x.device), after_reference)  # the replay drew nothing for good


def test_inputs_it_cannot_group_are_refused():
    net = small_net('torch', 0.1).train()
    with pytest.raises(ValueError, match='equal groups'), grouped_batch_norm(net, 3):
        net(torch.randn(4, 3, 7, 7))
    with pytest.raises(ValueError, match='more than 1 value per channel'), grouped_batch_norm(net, 4):
        net(torch.randn(4, 3, 3, 3))  # the second BN sees 1 x 1 px per image

    class OwnForward(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) * 2

    with pytest.raises(TypeError, match='OwnForward'), grouped_batch_norm(nn.Sequential(OwnForward(3)), 2):
        pass
    with pytest.raises(ValueError, match='one dropout layer'), \
            grouped_batch_norm(nn.Sequential(nn.Dropout(0.1), nn.Dropout(0.2)), 2):
        pass
