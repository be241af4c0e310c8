"""The meta-matching update (lib/search/meta_update.py): its meta-gradient against central finite differences and
against backpropagating through the create_graph inner step, for both inner gradients (SUPERNET.META_INNER_GRAD
'full', the original's, and 'detached'); the probe replay; the forwards' order; the optimizer steps; two ranks."""
import copy

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.func import functional_call

from lib.comm import all_reduce_mean_
from lib.models.supernet import SuperNet
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.meta_matching import MetaMatchingNetwork, soft_cross_entropy
from lib.search.meta_update import (
    meta_gradient, meta_update, probe_delta_jvp, select_teacher_for_update, simulated_step)
from tests.support.toy_supernet import SLICE, STUDENT_PATH, setup
from tests.support.two_ranks import run_on_two_ranks

INNER_GRADS = [('full', True), ('full', False), ('detached', True)]  # (META_INNER_GRAD, per-entry probe forwards)


def split(x, y, slice_size):
    return x[:slice_size], x[slice_size:2 * slice_size], y[slice_size:2 * slice_size]


def reference_inner_step(model, path, board, index, per_entry, m_of_delta, x, y, lr, slice_size, full,
                         create_graph=False):
    """(W', g) computed independently of lib.search.meta_update, on ``model`` itself: the forwards in the update's
    order (probes as teacher selection runs them, the student on x_t, the teacher on x_t), g = d(m * KD)/dW with
    m = m_of_delta(delta of entry ``index``), delta keeping its graph to W when ``full``."""
    params = model.path_parameters(path)
    entries = list(board)
    with torch.set_grad_enabled(full):
        if per_entry:
            probs = [torch.softmax(model(e.probe_images, path), dim=-1) for e in entries]
        else:
            probs = torch.softmax(model(torch.cat([e.probe_images for e in entries]), path), dim=-1)
            probs = probs.reshape(len(entries), slice_size, -1).unbind(0)
    m = m_of_delta(probs[index] - entries[index].probe_probs)
    x_t, _, _ = split(x, y, slice_size)
    logits = model(x_t, path)
    with torch.no_grad():
        teacher_probs = torch.softmax(model(x_t, entries[index].path), dim=-1)
    kd = m * soft_cross_entropy(logits, teacher_probs)
    grads = torch.autograd.grad(kd, list(params.values()), create_graph=create_graph, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), grads)]
    return {name: p - lr * g for (name, p), g in zip(params.items(), grads)}, grads


def reference_val_loss(model, path, board, index, per_entry, rho, x, y, lr, slice_size, full, seed):
    """L_val(W'(rho)) with rho = (w, b) flattened, on a copy (BN running statistics), dropout drawn from ``seed``."""
    net = copy.deepcopy(model)
    torch.manual_seed(seed)
    weight, bias = rho[:-1], rho[-1]
    updated, _ = reference_inner_step(net, path, board, index, per_entry,
                                      lambda delta: torch.sigmoid(-(delta.reshape(-1) @ weight + bias)),
                                      x, y, lr, slice_size, full)
    _, x_v, y_v = split(x, y, slice_size)
    with torch.no_grad():
        return F.cross_entropy(functional_call(net, updated, (x_v, path)), y_v).item()


def analytic(model, mmn, board, path, x, y, lr, slice_size, inner_grad, per_entry, seed=5):
    torch.manual_seed(seed)
    teacher, replay = select_teacher_for_update(model, path, board, mmn, per_entry=per_entry, inner_grad=inner_grad)
    assert (replay is not None) == (inner_grad == 'full') == teacher.weight.requires_grad
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = meta_gradient(model, path, teacher, mmn, *split(x, y, slice_size), inner_lr=lr, replay=replay)
    for name, param in model.named_parameters():  # W is never modified in place
        assert torch.equal(param, before[name]), name
    return teacher, result


def check_by_finite_differences(model, mmn, board, path, x, y, lr, slice_size, inner_grad, per_entry,
                                directions=None):
    """Central differences per rho element, or along ``directions`` random unit vectors of rho."""
    reference = copy.deepcopy(model)  # the weights and BN statistics before the update's forwards
    teacher, result = analytic(model, mmn, board, path, x, y, lr, slice_size, inner_grad, per_entry)
    grads = torch.cat([g.reshape(-1) for g in result.meta_grads])
    rho = torch.cat([mmn.linear.weight.detach().reshape(-1), mmn.linear.bias.detach()])
    basis = torch.eye(rho.numel(), dtype=rho.dtype) if directions is None else torch.randn(
        directions, rho.numel(), dtype=rho.dtype, generator=torch.Generator().manual_seed(2))
    basis = basis / basis.norm(dim=1, keepdim=True)
    eps = 1e-6
    full = inner_grad == 'full'
    numeric = torch.tensor([
        (reference_val_loss(reference, path, board, teacher.index, per_entry, rho + eps * v, x, y, lr, slice_size,
                            full, seed=5)
         - reference_val_loss(reference, path, board, teacher.index, per_entry, rho - eps * v, x, y, lr, slice_size,
                              full, seed=5)) / (2 * eps) for v in basis], dtype=rho.dtype)
    assert numeric.norm() > 1e-6  # the check is not vacuous
    relative_error = (basis @ grads - numeric).norm() / numeric.norm()
    assert relative_error < 1e-6, (relative_error, basis @ grads, numeric)
    return result


@pytest.mark.parametrize('inner_grad, per_entry', INNER_GRADS)
def test_meta_gradient_matches_central_finite_differences(inner_grad, per_entry):
    model, mmn, board, x, y = setup()
    check_by_finite_differences(model, mmn, board, STUDENT_PATH, x, y, 0.5, SLICE, inner_grad, per_entry)


@pytest.mark.parametrize('inner_grad', ['full', 'detached'])
def test_meta_gradient_matches_finite_differences_on_the_real_supernet_with_dropout(inner_grad):
    """The real supernet (hardsigmoid SE gates: no double backward), dropout on: the probe replay draws the masks
    teacher selection drew."""
    torch.manual_seed(0)
    slice_size, num_classes, image = 2, 4, 64  # at 32 px, BN over 2 x 1 x 1 values: a curvature FD cannot follow
    model = SuperNet((1, 1, 1, 1, 1), num_classes=num_classes, drop_rate=0.2).double().train()
    mmn = MetaMatchingNetwork(slice_size, num_classes).double()
    entries = []
    for rank, path in enumerate((((0,), (1,), (2,), (3,), (4,)), ((5,), (4,), (3,), (2,), (1,)))):
        images = torch.randn(slice_size, 3, image, image, dtype=torch.float64)
        probs = torch.softmax(torch.randn(slice_size, num_classes, dtype=torch.float64), dim=-1)
        entries.append(BoardEntry(path=path, prec1=50.0 - rank, board_cost=1.0, probe_images=images, probe_probs=probs))
    board = PrioritizedBoard(pool_size=2, acc_gap=5.0, entries=entries)
    x = torch.randn(2 * slice_size, 3, image, image, dtype=torch.float64)
    y = torch.randint(0, num_classes, (2 * slice_size,))
    check_by_finite_differences(model, mmn, board, ((2,), (0,), (5,), (1,), (3,)), x, y, 0.5, slice_size,
                                inner_grad, per_entry=True, directions=2)


@pytest.mark.parametrize('inner_grad, per_entry', INNER_GRADS)
def test_meta_gradient_equals_backprop_through_the_create_graph_inner_step(inner_grad, per_entry):
    """The literal recipe (a double backward, which the stand-in's ops have): g = autograd.grad(m * KD, W,
    create_graph=True), m = sigmoid(-MMN(delta)) with delta's graph to W when 'full', W' = W - lr g, backprop L_val."""
    model, mmn, board, x, y = setup()
    lr = 0.5
    reference = copy.deepcopy(model)
    teacher, result = analytic(model, mmn, board, STUDENT_PATH, x, y, lr, SLICE, inner_grad, per_entry)
    torch.manual_seed(5)
    updated, grads = reference_inner_step(reference, STUDENT_PATH, board, teacher.index, per_entry,
                                          lambda delta: torch.sigmoid(-mmn(delta)), x, y, lr, SLICE,
                                          inner_grad == 'full', create_graph=True)
    _, x_v, y_v = split(x, y, SLICE)
    val_loss = F.cross_entropy(functional_call(reference, updated, (x_v, STUDENT_PATH)), y_v)
    expected = torch.autograd.grad(val_loss, list(mmn.parameters()))
    for got, want in zip(result.meta_grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-13)
    for got, want in zip(result.student_grads, grads):
        torch.testing.assert_close(got, want.detach(), rtol=1e-9, atol=1e-13)
    assert float(result.val_loss) == pytest.approx(float(val_loss.detach()), rel=1e-12)
    # the same BN running statistics: the update's forwards in the original's order, the replay counting none
    for (name, got), want in zip(model.named_buffers(), reference.buffers()):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12, msg=name)


def test_full_inner_gradient_adds_kd_times_the_kd_weights_gradient():
    """'full' and 'detached' differ exactly by KD * dm/dW in the student's step."""
    model, mmn, board, x, y = setup()
    results = {inner: analytic(copy.deepcopy(model), mmn, board, STUDENT_PATH, x, y, 0.5, SLICE, inner, True)[1]
               for inner in ('full', 'detached')}
    differences = [f - d for f, d in zip(results['full'].student_grads, results['detached'].student_grads)]
    assert max(float(d.abs().max()) for d in differences) > 1e-4
    torch.manual_seed(5)
    net = copy.deepcopy(model)
    teacher, _ = select_teacher_for_update(net, STUDENT_PATH, board, mmn, per_entry=True, inner_grad='full')
    dm_dw = torch.autograd.grad(teacher.weight, list(net.path_parameters(STUDENT_PATH).values()), allow_unused=True)
    kd = results['full'].kd_loss / results['full'].kd_weight
    for difference, grad in zip(differences, dm_dw):
        torch.testing.assert_close(difference, torch.zeros_like(difference) if grad is None else kd * grad,
                                   rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match='META_INNER_GRAD'):
        select_teacher_for_update(model, STUDENT_PATH, board, mmn, per_entry=True, inner_grad='half')


def test_probe_replay_leaves_bn_statistics_and_the_rng_alone():
    model, mmn, board, _, _ = setup()
    _, replay = select_teacher_for_update(model, STUDENT_PATH, board, mmn, per_entry=True, inner_grad='full')
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    tangents = {n: torch.randn_like(p) for n, p in model.path_parameters(STUDENT_PATH).items()}
    rng = torch.get_rng_state()
    jv = probe_delta_jvp(model, STUDENT_PATH, replay, tangents)
    assert jv.shape == board[replay.index].probe_probs.shape and float(jv.abs().max()) > 0
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())
    assert torch.equal(torch.get_rng_state(), rng)


def test_simulated_inner_step_is_a_descent_step():
    model, mmn, board, x, y = setup()
    teacher, result = analytic(model, mmn, board, STUDENT_PATH, x, y, 0.1, SLICE, 'detached', True)
    params = dict(model.path_parameters(STUDENT_PATH))
    with torch.no_grad():
        teacher_probs = torch.softmax(model(x[:SLICE], teacher.path), dim=-1)

        def kd_at(weights):
            return soft_cross_entropy(functional_call(model, weights, (x[:SLICE], STUDENT_PATH)), teacher_probs)
        kd_before = kd_at(params)
        kd_after = kd_at(simulated_step(params, result.student_grads, lr=1e-2))
    assert float(result.kd_loss) == pytest.approx(float(teacher.weight * kd_before), rel=1e-12)
    assert kd_after < kd_before


@pytest.mark.parametrize('inner_grad', ['full', 'detached'])
def test_meta_update_steps_rho_and_the_student_path_only(inner_grad):
    model, mmn, board, x, y = setup()
    lr, meta_lr, student_lr = 0.5, 0.3, 0.1
    _, expected = analytic(copy.deepcopy(model), copy.deepcopy(mmn), board, STUDENT_PATH, x, y, lr, SLICE, inner_grad,
                           per_entry=True)
    path_names = set(model.path_parameters(STUDENT_PATH))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rho_before = [p.detach().clone() for p in mmn.parameters()]
    meta_optimizer = torch.optim.SGD(mmn.parameters(), lr=meta_lr)
    student_optimizer = torch.optim.SGD(model.parameters(), lr=student_lr)

    torch.manual_seed(5)
    teacher, replay = select_teacher_for_update(model, STUDENT_PATH, board, mmn, per_entry=True, inner_grad=inner_grad)
    log = meta_update(model, STUDENT_PATH, teacher, mmn, x, y, SLICE, lr, meta_optimizer, student_optimizer,
                      replay=replay)

    def clipped(grads):
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
        return [g * min(1.0, 1.0 / (float(norm) + 1e-6)) for g in grads], float(norm)

    meta_grads, meta_norm = clipped(expected.meta_grads)
    assert log['meta_grad_norm'] == pytest.approx(meta_norm)
    for p, p0, g in zip(mmn.parameters(), rho_before, meta_grads):
        torch.testing.assert_close(p.detach(), p0 - meta_lr * g)
    student_grads, _ = clipped(expected.student_grads)
    grad_by_name = dict(zip(model.path_parameters(STUDENT_PATH), student_grads))
    for name, param in model.named_parameters():
        if name in path_names:
            torch.testing.assert_close(param.detach(), before[name] - student_lr * grad_by_name[name])
        else:
            assert torch.equal(param, before[name]), f'{name} is off the path but moved'
    assert all(p.grad is None for p in model.parameters()) and all(p.grad is None for p in mmn.parameters())
    assert set(log) >= {'kd_loss', 'val_loss', 'meta_grad_norm', 'kd_weight'}
    with pytest.raises(ValueError, match='2 \\* SUPERNET.SLICE'):
        meta_update(model, STUDENT_PATH, teacher, mmn, x[:SLICE + 1], y[:SLICE + 1], SLICE, lr, meta_optimizer)


def _distributed_worker(rank, world_size):
    value = torch.tensor([float(rank), 10.0 * rank])
    all_reduce_mean_([value])
    assert torch.equal(value, torch.tensor([0.5, 5.0]))
    model, mmn, board, _, _ = setup(seed=0)  # same weights and board on both ranks
    _, _, _, x, y = setup(seed=rank + 1)    # rank-local batches
    teacher, replay = select_teacher_for_update(model, STUDENT_PATH, board, mmn, per_entry=True)
    meta_update(model, STUDENT_PATH, teacher, mmn, x, y, SLICE, 0.5, torch.optim.SGD(mmn.parameters(), lr=0.3),
                torch.optim.SGD(model.parameters(), lr=0.1), replay=replay)
    flat = torch.cat([p.detach().reshape(-1) for p in [*mmn.parameters(), *model.parameters()]])
    gathered = [torch.empty_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1])


@pytest.mark.process
def test_meta_update_keeps_mmn_and_student_identical_across_ranks(tmp_path):
    run_on_two_ranks(_distributed_worker, tmp_path)
