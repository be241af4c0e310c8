"""The meta-matching network, teacher selection and the distillation loss, with a small stand-in supernet
(``TinySupernet``, tests/support/toy_supernet.py)."""
import math

import pytest
import torch
import torch.nn as nn

from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.meta_matching import MetaMatchingNetwork, distillation_loss, select_teacher, soft_cross_entropy
from lib.search.meta_update import meta_update
from tests.support.toy_supernet import IMAGE, NUM_CLASSES, SLICE, STUDENT_PATH, TEACHER_PATHS, TinySupernet, setup


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
        board.offer(BoardEntry(path=path, prec1=90.0 - rank, board_cost=1.0, probe_images=images,
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
