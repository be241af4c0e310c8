"""Teacher selection's probe forwards (lib/search/probes.py) against one train-mode forward per board entry,
the way the original (and this repository before the grouped forward) computed them: the same chosen teacher,
the same KD weight m, the same gradients of every parameter and of the MMN, the same BN running statistics and
num_batches_tracked, step after step, in the distillation step and in the meta-matching update's selection."""
import copy
import random
from contextlib import contextmanager

import pytest
import torch

from lib.search import meta_update as meta_updates
from lib.search import step as search_steps
from lib.search.meta_matching import TeacherChoice
from lib.search.probes import probabilities
from tests.support.tiny_search import batch, make_search_parts

BATCH = 8


def per_entry_select_teacher(student, path, board, pick_method, mmn=None, *, per_entry=False,
                             differentiable_weight=False, cpu_channels_last=False):
    """The reference: one train-mode forward per entry, each keeping its graph while m keeps its graph."""
    assert pick_method == 'meta' and per_entry and not cpu_channels_last
    with torch.set_grad_enabled(differentiable_weight):
        deltas = [probabilities(student(entry.probe_images, path)) - entry.probe_probs for entry in board]
    with torch.no_grad():
        scores = mmn(torch.stack([delta.detach() for delta in deltas]))
    index = int(torch.argmax(scores))
    weight = torch.sigmoid(-mmn(deltas[index])) if differentiable_weight else torch.sigmoid(-scores[index])
    return TeacherChoice(index=index, entry=board[index], weight=weight, scores=scores,
                         delta=deltas[index].detach())


def random_path(rng):
    return tuple((rng.randrange(6),) for _ in range(5))


def make_session(entries: int, dtype, *overrides):
    """A board of ``entries`` random paths with random probes, the supernet, MMN and probes in ``dtype``."""
    rng = random.Random(entries)
    return make_search_parts('SUPERNET.POOL_SIZE', '10', 'SUPERNET.META_STA_EPOCH', '0', *overrides,
                             board_paths=[random_path(rng) for _ in range(entries)], dtype=dtype)


@contextmanager
def recorded_selection(monkeypatch, select, choices):
    def recording(*args, **kwargs):
        choice = select(*args, **kwargs)
        choices.append((choice.index, choice.weight.detach().clone()))
        return choice
    with monkeypatch.context() as patch:  # the distillation step's and the meta-matching update's
        patch.setattr(search_steps, 'select_teacher', recording)
        patch.setattr(meta_updates, 'select_teacher', recording)
        yield


def bn_layers(net):
    return [(name, m) for name, m in net.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def assert_relatively_close(got, want, rtol, name, floor=0.0):
    """|got - want| <= rtol * (want's largest entry, or ``floor`` if larger)."""
    scale = max(float(want.detach().abs().max()), floor)
    difference = float((got.detach() - want.detach()).abs().max())
    assert difference <= rtol * scale, (name, difference, scale)


def assert_same_state(session, reference, rtol):
    """Every parameter and its gradient, the MMN's, every BN layer's running statistics and count. Tensors that
    are zero up to rounding (e.g. the gradient of a bias that the next BN layer cancels) are judged on a floor of
    1e-4 of the largest entry of all parameters (all gradients), not on their own size."""
    for module, ref_module in ((session.supernet, reference.supernet), (session.mmn, reference.mmn)):
        ref_params = list(ref_module.parameters())
        param_floor = 1e-4 * max(float(p.detach().abs().max()) for p in ref_params)
        grad_floor = 1e-4 * max([float(p.grad.abs().max()) for p in ref_params if p.grad is not None] or [0.0])
        for (name, param), ref_param in zip(module.named_parameters(), ref_params):
            assert_relatively_close(param, ref_param, rtol, name, param_floor)
            assert (param.grad is None) == (ref_param.grad is None), name
            if param.grad is not None:
                assert_relatively_close(param.grad, ref_param.grad, rtol, name + '.grad', grad_floor)
    for (name, bn), (_, ref_bn) in zip(bn_layers(session.supernet), bn_layers(reference.supernet)):
        assert torch.equal(bn.num_batches_tracked, ref_bn.num_batches_tracked), name
        # A running mean near zero is judged on the scale of the channel's spread.
        spread = ref_bn.running_var.sqrt()
        tolerance = rtol * (ref_bn.running_mean.abs() + spread)
        assert torch.all((bn.running_mean - ref_bn.running_mean).abs() <= tolerance), name
        assert_relatively_close(bn.running_var, ref_bn.running_var, rtol, name + '.running_var')


def run_steps(monkeypatch, session, reference, steps, dtype, rtol):
    """Distillation steps (and meta-matching updates) with the grouped forward and the reference."""
    images, target = batch(BATCH)
    images = images.to(dtype)
    rng = random.Random(100)
    choices, ref_choices = [], []
    for step in range(steps):
        path = random_path(rng)
        if step % 2 == 1:  # a meta-matching update's teacher selection (no graph) before this step
            with recorded_selection(monkeypatch, search_steps.select_teacher, choices):
                search_steps.run_meta_update(session, path, images, target, epoch=1, step=step)
            with recorded_selection(monkeypatch, per_entry_select_teacher, ref_choices):
                search_steps.run_meta_update(reference, path, images, target, epoch=1, step=step)
            assert_same_state(session, reference, rtol)
        with recorded_selection(monkeypatch, search_steps.select_teacher, choices):
            search_steps._forward_backward(session, path, images, target, distill=True)
        with recorded_selection(monkeypatch, per_entry_select_teacher, ref_choices):
            search_steps._forward_backward(reference, path, images, target, distill=True)
        assert [c[0] for c in choices] == [c[0] for c in ref_choices]
        for (_, m), (_, ref_m) in zip(choices, ref_choices):
            assert torch.equal(m, ref_m)
        assert_same_state(session, reference, rtol)
    return choices


@pytest.mark.parametrize('entries', [1, 3, 10])
def test_grouped_selection_is_the_per_entry_computation_in_float64(monkeypatch, entries):
    session = make_session(entries, torch.float64)
    reference = copy.deepcopy(session)
    choices = run_steps(monkeypatch, session, reference, steps=3, dtype=torch.float64, rtol=1e-8)
    assert len(choices) == 4
    if entries == 10:  # the steps pick different teachers: the comparison covers more than one entry
        assert len({index for index, _ in choices}) > 1


def test_grouped_selection_in_float32(monkeypatch):
    """float32: the chosen entry's forward is the per-entry one (the same kernels on the same images), so the
    chosen teacher, m, every parameter and every gradient come out bit for bit equal; the running statistics
    (grouped, closed form) agree to 1e-3 relative here, where the last stages' BN statistics come from 2 values
    per channel (tests/models/test_grouped_bn.py holds them to the float64 truth)."""
    session = make_session(10, torch.float32)
    reference = copy.deepcopy(session)
    run_steps(monkeypatch, session, reference, steps=2, dtype=torch.float32, rtol=1e-3)
    for module, ref_module in ((session.supernet, reference.supernet), (session.mmn, reference.mmn)):
        for param, ref_param in zip(module.parameters(), ref_module.parameters()):
            assert torch.equal(param, ref_param)
            assert (param.grad is None and ref_param.grad is None) or torch.equal(param.grad, ref_param.grad)


def test_head_dropout_draws_the_same_noise_as_per_entry_forwards(monkeypatch):
    """With dropout before the classifier, the grouped forward draws each entry's noise in entry order and the
    chosen entry's second forward replays its noise: the same numbers and the same random state afterwards."""
    session = make_session(4, torch.float64, 'NET.DROPOUT_RATE', '0.3')
    reference = copy.deepcopy(session)
    torch.manual_seed(5)
    states = []
    original_steps = search_steps._forward_backward

    def step_then_record(*args, **kwargs):
        out = original_steps(*args, **kwargs)
        states.append(torch.get_rng_state())
        return out
    monkeypatch.setattr(search_steps, '_forward_backward', step_then_record)
    images, target = batch(BATCH)
    for sess, select in ((session, search_steps.select_teacher), (reference, per_entry_select_teacher)):
        torch.manual_seed(5)
        with recorded_selection(monkeypatch, select, []):
            for path in (random_path(random.Random(1)), random_path(random.Random(2))):
                search_steps._forward_backward(sess, path, images.double(), target, distill=True)
    assert torch.equal(states[1], states[3]) and torch.equal(states[0], states[2])
    assert_same_state(session, reference, rtol=1e-8)
