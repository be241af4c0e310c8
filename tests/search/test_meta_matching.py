import math
from collections import OrderedDict

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from lib.search.board import BoardEntry, PrioritizedBoard
from lib.comm import all_reduce_mean_
from lib.search.meta_matching import MetaMatchingNetwork, distillation_loss, select_teacher, soft_cross_entropy
from lib.search.meta_update import meta_gradient, meta_update, simulated_step
from two_ranks import run_on_two_ranks

SLICE, NUM_CLASSES, CHANNELS, IMAGE = 3, 5, 4, 8
STUDENT_PATH = ((1,), (0, 2))
TEACHER_PATHS = (((0,), (1, 1)), ((2,), (2, 0)), ((1,), (0, 1)))


def make_op(index):
    if index == 0:
        return nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False),
                             nn.BatchNorm2d(CHANNELS), nn.SiLU())
    if index == 1:
        return nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 5, padding=2, groups=CHANNELS),
                             nn.Conv2d(CHANNELS, CHANNELS, 1), nn.Tanh())
    return nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 1), nn.SiLU())


class TinySupernet(nn.Module):
    """Stand-in with the supernet's interface: forward(x, path) and path_parameters(path)."""

    def __init__(self, layers_per_stage=(1, 2), num_ops=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, CHANNELS, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(CHANNELS), nn.SiLU())
        self.stages = nn.ModuleList(
            nn.ModuleList(nn.ModuleList(make_op(op) for op in range(num_ops)) for _ in range(layers))
            for layers in layers_per_stage)
        self.classifier = nn.Linear(CHANNELS, NUM_CLASSES)
        self.forward_calls = 0

    def forward(self, x, path):
        self.forward_calls += 1
        x = self.stem(x)
        for stage, ops in zip(self.stages, path):
            for layer, op in zip(stage, ops):
                x = x + layer[op](x)
        return self.classifier(x.mean(dim=(2, 3)))

    def path_parameters(self, path):
        params = OrderedDict((f'stem.{n}', p) for n, p in self.stem.named_parameters())
        for s, ops in enumerate(path):
            for layer, op in enumerate(ops):
                for n, p in self.stages[s][layer][op].named_parameters():
                    params[f'stages.{s}.{layer}.{op}.{n}'] = p
        params.update((f'classifier.{n}', p) for n, p in self.classifier.named_parameters())
        return params


def make_board(model, paths=TEACHER_PATHS, seed=0):
    generator = torch.Generator().manual_seed(seed)
    board = PrioritizedBoard(pool_size=len(paths), acc_gap=5.0)
    for rank, path in enumerate(paths):
        images = torch.randn(SLICE, 3, IMAGE, IMAGE, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            probs = torch.softmax(model(images, path), dim=-1)
        board.offer(BoardEntry(path=path, prec1=90.0 - 10 * rank, flops=10.0, probe_images=images,
                               probe_probs=probs))
    return board


def setup(seed=0, batch=2 * SLICE + 2):
    torch.manual_seed(seed)
    model = TinySupernet().double().train()
    mmn = MetaMatchingNetwork(SLICE, NUM_CLASSES).double()
    board = make_board(model, seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(batch, 3, IMAGE, IMAGE, generator=generator, dtype=torch.float64)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    return model, mmn, board, x, y


def reference_val_loss(model, path, teacher, teacher_probs, rho, x, y, lr, slice_size=SLICE):
    """L_val(W - lr * g(rho)) computed independently of meta_matching.py, for finite differences."""
    weight, bias = rho[:-1], rho[-1]
    m = torch.sigmoid(-(teacher.delta.reshape(-1) @ weight + bias))
    params = model.path_parameters(path)
    x_t, x_v, y_v = x[:slice_size], x[slice_size:2 * slice_size], y[slice_size:2 * slice_size]
    log_probs = F.log_softmax(functional_call(model, params, (x_t, path)), dim=-1)
    kd = m * (-(teacher_probs * log_probs).sum(dim=-1).mean())
    grads = torch.autograd.grad(kd, list(params.values()))
    updated = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    with torch.no_grad():
        return F.cross_entropy(functional_call(model, updated, (x_v, path)), y_v).item()


def check_meta_gradient_by_finite_differences(model, mmn, board, path, x, y, lr, slice_size, directions=None):
    """Central differences per rho element, or along ``directions`` random unit vectors of rho."""
    teacher = select_teacher(model, path, board, 'meta', mmn)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = meta_gradient(model, path, teacher, mmn, x[:slice_size], x[slice_size:2 * slice_size],
                           y[slice_size:2 * slice_size], inner_lr=lr)
    for name, param in model.named_parameters():  # W is never modified in place
        assert torch.equal(param, before[name]), name
    analytic = torch.cat([g.reshape(-1) for g in result.meta_grads])

    rho = torch.cat([mmn.linear.weight.detach().reshape(-1), mmn.linear.bias.detach()])
    if directions is None:
        basis = torch.eye(rho.numel(), dtype=rho.dtype)
    else:
        basis = torch.randn(directions, rho.numel(), dtype=rho.dtype)
        basis /= basis.norm(dim=1, keepdim=True)
    with torch.no_grad():
        teacher_probs = torch.softmax(model(x[:slice_size], teacher.path), dim=-1)
    eps = 1e-6
    numeric = torch.tensor([
        (reference_val_loss(model, path, teacher, teacher_probs, rho + eps * v, x, y, lr, slice_size)
         - reference_val_loss(model, path, teacher, teacher_probs, rho - eps * v, x, y, lr, slice_size))
        / (2 * eps) for v in basis], dtype=rho.dtype)
    projected = basis @ analytic
    assert numeric.norm() > 1e-6  # the check is not vacuous
    relative_error = (projected - numeric).norm() / numeric.norm()
    assert relative_error < 1e-4, (relative_error, projected, numeric)


def test_meta_gradient_matches_central_finite_differences():
    model, mmn, board, x, y = setup()
    check_meta_gradient_by_finite_differences(model, mmn, board, STUDENT_PATH, x, y, lr=0.5, slice_size=SLICE)


def test_meta_gradient_matches_finite_differences_on_the_real_supernet():
    from lib.models.supernet import SuperNet
    torch.manual_seed(0)
    slice_size, num_classes, image = 2, 4, 16
    model = SuperNet((1, 1, 1, 1, 1), num_classes=num_classes).double().train()
    mmn = MetaMatchingNetwork(slice_size, num_classes).double()
    board = PrioritizedBoard(pool_size=2, acc_gap=5.0)
    for rank, path in enumerate((((0,), (1,), (2,), (3,), (4,)), ((5,), (4,), (3,), (2,), (1,)))):
        images = torch.randn(slice_size, 3, image, image, dtype=torch.float64)
        probs = torch.softmax(torch.randn(slice_size, num_classes, dtype=torch.float64), dim=-1)
        board.offer(BoardEntry(path=path, prec1=50.0 - rank, flops=1.0, probe_images=images, probe_probs=probs))
    x = torch.randn(2 * slice_size, 3, image, image, dtype=torch.float64)
    y = torch.randint(0, num_classes, (2 * slice_size,))
    check_meta_gradient_by_finite_differences(model, mmn, board, ((2,), (0,), (5,), (1,), (3,)), x, y,
                                              lr=0.5, slice_size=slice_size, directions=1)


def test_meta_gradient_equals_backprop_through_the_create_graph_inner_step():
    """The literal recipe: g = autograd.grad(kd, W, create_graph=True), W' = W - lr g, backprop L_val."""
    model, mmn, board, x, y = setup()
    lr = 0.5
    teacher = select_teacher(model, STUDENT_PATH, board, 'meta', mmn)
    result = meta_gradient(model, STUDENT_PATH, teacher, mmn, x[:SLICE], x[SLICE:2 * SLICE],
                           y[SLICE:2 * SLICE], inner_lr=lr)
    params = model.path_parameters(STUDENT_PATH)
    with torch.no_grad():
        teacher_probs = torch.softmax(model(x[:SLICE], teacher.path), dim=-1)
    m = torch.sigmoid(-mmn(teacher.delta))
    kd = m * soft_cross_entropy(functional_call(model, params, (x[:SLICE], STUDENT_PATH)), teacher_probs)
    grads = torch.autograd.grad(kd, list(params.values()), create_graph=True)
    updated = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    val_loss = F.cross_entropy(functional_call(model, updated, (x[SLICE:2 * SLICE], STUDENT_PATH)),
                               y[SLICE:2 * SLICE])
    expected = torch.autograd.grad(val_loss, list(mmn.parameters()))
    for got, want in zip(result.meta_grads, expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-14)
    for got, want in zip(result.student_grads, grads):
        torch.testing.assert_close(got, want.detach(), rtol=1e-10, atol=1e-14)
    assert float(result.val_loss) == pytest.approx(float(val_loss.detach()), rel=1e-12)


def test_simulated_inner_step_is_a_descent_step():
    model, mmn, board, x, y = setup()
    teacher = select_teacher(model, STUDENT_PATH, board, 'meta', mmn)
    x_t = x[:SLICE]
    result = meta_gradient(model, STUDENT_PATH, teacher, mmn, x_t, x[SLICE:2 * SLICE],
                           y[SLICE:2 * SLICE], inner_lr=0.1)
    params = OrderedDict((n, p) for n, p in model.path_parameters(STUDENT_PATH).items())
    with torch.no_grad():
        teacher_probs = torch.softmax(model(x_t, teacher.path), dim=-1)
        m = teacher.weight
        def kd_at(weights):
            return m * soft_cross_entropy(functional_call(model, weights, (x_t, STUDENT_PATH)), teacher_probs)
        kd_before = kd_at(params)
        assert kd_before == pytest.approx(float(result.kd_loss), rel=1e-12)
        stepped = simulated_step(params, result.student_grads, lr=1e-2)
        kd_after = kd_at(stepped)
    assert kd_after < kd_before


def test_meta_selection_picks_argmax_and_weights_by_the_chosen_score():
    torch.manual_seed(0)
    model = TinySupernet().double().eval()  # eval: one batched forward equals per-entry forwards
    mmn = MetaMatchingNetwork(SLICE, NUM_CLASSES).double()
    with torch.no_grad():
        mmn.linear.weight.fill_(1.0)
        mmn.linear.bias.fill_(0.25)
    # Stored probabilities chosen so that delta_j = c_j everywhere: score_j = c_j * SLICE * NUM_CLASSES + 0.25.
    shifts = (0.01, 0.05, -0.02)
    board = PrioritizedBoard(pool_size=3, acc_gap=5.0)
    for rank, (path, shift) in enumerate(zip(TEACHER_PATHS, shifts)):
        images = torch.randn(SLICE, 3, IMAGE, IMAGE, dtype=torch.float64)
        with torch.no_grad():
            own = torch.softmax(model(images, STUDENT_PATH), dim=-1)
        board.offer(BoardEntry(path=path, prec1=90.0 - rank, flops=1.0, probe_images=images,
                               probe_probs=own - shift))
    expected_scores = torch.tensor([c * SLICE * NUM_CLASSES + 0.25 for c in shifts], dtype=torch.float64)

    model.forward_calls = 0
    choice = select_teacher(model, STUDENT_PATH, board, 'meta', mmn)
    assert model.forward_calls == 1
    torch.testing.assert_close(choice.scores, expected_scores)
    assert choice.index == 1 and choice.path == TEACHER_PATHS[1]
    assert float(choice.weight) == pytest.approx(1 / (1 + math.exp(float(expected_scores[1]))))
    assert float(choice.weight) != pytest.approx(1 / (1 + math.exp(float(expected_scores[-1]))))
    assert not choice.weight.requires_grad and not choice.scores.requires_grad
    torch.testing.assert_close(choice.delta, torch.full((SLICE, NUM_CLASSES), 0.05, dtype=torch.float64))


def test_top1_selection_and_errors():
    model, mmn, board, _, _ = setup()
    model.forward_calls = 0
    choice = select_teacher(model, STUDENT_PATH, board, 'top1')
    assert choice.index == 0 and choice.entry is board.best() and float(choice.weight) == 0.5
    assert model.forward_calls == 0
    with pytest.raises(ValueError, match='PICK_METHOD'):
        select_teacher(model, STUDENT_PATH, board, 'best')
    with pytest.raises(ValueError, match='mmn'):
        select_teacher(model, STUDENT_PATH, board, 'meta')
    with pytest.raises(ValueError, match='empty'):
        select_teacher(model, STUDENT_PATH, PrioritizedBoard(2, 1.0), 'top1')
    with pytest.raises(ValueError, match="'meta'"):
        meta_update(model, STUDENT_PATH, choice, mmn, torch.zeros(6, 3, IMAGE, IMAGE, dtype=torch.float64),
                    torch.zeros(6, dtype=torch.long), SLICE, 0.1, torch.optim.SGD(mmn.parameters(), lr=1.0))


def test_distillation_loss_on_known_numbers():
    student = torch.tensor([[0.0, math.log(3.0)]], requires_grad=True)  # probs 0.25, 0.75
    teacher = torch.tensor([[0.0, 0.0]], requires_grad=True)            # probs 0.5, 0.5
    target = torch.tensor([1])
    m = torch.tensor(0.3, requires_grad=True)
    result = distillation_loss(student, teacher, target, m, nn.CrossEntropyLoss())
    kd = 0.5 * math.log(4.0) + 0.5 * math.log(4.0 / 3.0)
    ce = math.log(4.0 / 3.0)
    assert float(result.kd.detach()) == pytest.approx(kd)
    assert float(result.ce.detach()) == pytest.approx(ce)
    assert float(result.loss.detach()) == pytest.approx((0.3 * kd + 1.7 * ce) / 2)
    result.loss.backward()
    assert student.grad is not None and teacher.grad is None and m.grad is None
    assert float(soft_cross_entropy(student.detach(), torch.tensor([[0.5, 0.5]]))) == pytest.approx(kd)


def test_mmn_shapes_and_batching():
    mmn = MetaMatchingNetwork(SLICE, NUM_CLASSES)
    assert mmn.linear.in_features == SLICE * NUM_CLASSES and mmn.linear.out_features == 1
    assert torch.all(mmn.linear.bias == 0) and mmn.linear.weight.abs().max() <= 1.0
    deltas = torch.randn(4, SLICE, NUM_CLASSES)
    batched = mmn(deltas)
    assert batched.shape == (4,)
    torch.testing.assert_close(batched[2], mmn(deltas[2]))
    with pytest.raises(ValueError, match='num_classes'):
        mmn(torch.zeros(SLICE, NUM_CLASSES + 1))


def test_meta_update_steps_rho_and_the_student_path_only():
    model, mmn, board, x, y = setup()
    lr, meta_lr, student_lr = 0.5, 0.3, 0.1
    teacher = select_teacher(model, STUDENT_PATH, board, 'meta', mmn)
    expected = meta_gradient(model, STUDENT_PATH, teacher, mmn, x[:SLICE], x[SLICE:2 * SLICE],
                             y[SLICE:2 * SLICE], inner_lr=lr)
    path_names = set(model.path_parameters(STUDENT_PATH))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    rho_before = [p.detach().clone() for p in mmn.parameters()]
    meta_optimizer = torch.optim.SGD(mmn.parameters(), lr=meta_lr)
    student_optimizer = torch.optim.SGD(model.parameters(), lr=student_lr)

    log = meta_update(model, STUDENT_PATH, teacher, mmn, x, y, SLICE, lr, meta_optimizer, student_optimizer)

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
    teacher = select_teacher(model, STUDENT_PATH, board, 'meta', mmn)
    meta_update(model, STUDENT_PATH, teacher, mmn, x, y, SLICE, 0.5,
                torch.optim.SGD(mmn.parameters(), lr=0.3), torch.optim.SGD(model.parameters(), lr=0.1))
    flat = torch.cat([p.detach().reshape(-1) for p in [*mmn.parameters(), *model.parameters()]])
    gathered = [torch.empty_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1])


def test_meta_update_keeps_mmn_and_student_identical_across_ranks(tmp_path):
    run_on_two_ranks(_distributed_worker, tmp_path)
