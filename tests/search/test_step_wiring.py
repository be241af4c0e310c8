"""The search loop's wiring on a small real supernet (CPU, 32 px): teacher choice and KD weight, board
offers, optimizer groups, LR schedule, BN recalibration, and the best_arch.yaml it writes."""
import copy

import pytest
import torch
import torch.nn.functional as F

from lib.config import load_config
from lib.models.from_config import build_child_from_cfg
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.flops import SearchSpace, original_op_costs
from lib.search.flops_budget import FlopsBudget
from lib.search.outputs import choose_final_entry, write_best_arch
from lib.search.parts import build_search_optimizer
from lib.search.step import _forward_backward, offer_to_board, meta_update_due
from lib.search.validate import recalibrated_bn
from tests.support.tiny_search import NUM_CLASSES, SLICE, STUDENT, TEACHERS, batch, make_search_parts, make_session

# Every fidelity switch on our corrected side (configs/train_corrected.yaml).
CORRECTED = ('SUPERNET.PROBE_FORWARD', 'batched', 'SUPERNET.DETACH_KD_WEIGHT', 'True', 'SUPERNET.PROBE_PROBS',
             'student', 'SUPERNET.STEP_ONLY_PATH', 'True', 'SUPERNET.META_INNER_LR', 'supernet')


def expected_distillation(session, images, target, per_entry=False):
    """The step's loss computed independently, on a copy, with the teacher the MMN scores pick."""
    net = copy.deepcopy(session.supernet)
    entries = list(session.board)
    with torch.no_grad():
        if per_entry:  # the original: one train-mode forward (own BN batch statistics) per entry
            probs = torch.stack([torch.softmax(net(e.probe_images, STUDENT), dim=-1) for e in entries])
        else:
            probes = torch.cat([e.probe_images for e in entries])
            probs = torch.softmax(net(probes, STUDENT), dim=-1).reshape(len(entries), SLICE, NUM_CLASSES)
        scores = session.mmn(probs - torch.stack([e.probe_probs for e in entries]))
    chosen = int(scores.argmax())
    m = torch.sigmoid(-scores[chosen])
    logits = net(images, STUDENT)
    with torch.no_grad():
        teacher_logits = net(images, entries[chosen].path)
    kd = torch.sum(-torch.softmax(teacher_logits, -1) * F.log_softmax(logits, -1), -1).mean()
    ce = session.loss_fn(logits, target)
    return chosen, scores, (m * kd + (2 - m) * ce) / 2, kd


@pytest.mark.parametrize('switches', [(), CORRECTED], ids=['original', 'corrected'])
def test_distillation_step_uses_the_chosen_teachers_path_and_score(switches):
    session = make_session(*switches)
    per_entry = session.cfg.SUPERNET.PROBE_FORWARD == 'per_entry'
    images, target = batch(8)
    chosen, scores, _, _ = expected_distillation(session, images, target, per_entry)
    if chosen == len(session.board) - 1:  # make the pick differ from the last entry (the original's bug)
        with torch.no_grad():
            session.mmn.linear.weight.neg_()
    chosen, scores, expected_loss, expected_kd = expected_distillation(session, images, target, per_entry)
    assert chosen != len(session.board) - 1
    assert abs(float(scores[0] - scores[1])) > 1e-3  # the two entries' KD weights differ
    before = copy.deepcopy(session.supernet.state_dict())
    out = _forward_backward(session, STUDENT, images, target, distill=True)
    logits, loss, kd = out.logits, out.loss, out.kd
    torch.testing.assert_close(loss, expected_loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(kd, expected_kd.detach(), rtol=1e-5, atol=1e-6)
    # the step moved the student path's weights (not an op it never sampled), the LR schedule advanced
    after = session.supernet.state_dict()
    assert not torch.equal(before['blocks.1.0.1.conv_pw.weight'], after['blocks.1.0.1.conv_pw.weight'])
    assert torch.equal(before['blocks.1.0.0.conv_pw.weight'], after['blocks.1.0.0.conv_pw.weight'])
    assert session.optimizer.param_groups[0]['lr'] == pytest.approx(0.1 * 0.9)

    admitted = offer_to_board(session, STUDENT, images, out, logits.argmax(1).eq(target).sum().double(),
                               images.shape[0])
    assert admitted and len(session.board) == 3
    entry = next(e for e in session.board if e.path == STUDENT)  # the student's path, not the teacher's
    assert entry.prec1 == pytest.approx(100.0 * float(logits.argmax(1).eq(target).float().mean()))
    assert entry.board_cost == session.space.board_flops(STUDENT) and entry.board_cost > 0
    assert (entry.macs, entry.params) == (session.macs_table.path_macs(STUDENT), session.macs_table.path_params(STUDENT))
    torch.testing.assert_close(entry.probe_images, images[:SLICE])
    stored_from = out.teacher_logits if not switches else logits  # the original stores the teacher's
    torch.testing.assert_close(entry.probe_probs, torch.softmax(stored_from[:SLICE], dim=-1))


@pytest.mark.parametrize('teacher_path', [TEACHERS[0], ((1,), (0,), (2,), (5,), (4,))], ids=['parts-early', 'parts-late'])
def test_distillation_step_leaves_bn_statistics_where_student_then_teacher_forwards_do(teacher_path):
    """The step's BN running statistics (and counts) equal those of the original's sequence on a copy: one probe
    forward per board entry, the student's forward, then the teacher's without gradient; to 1e-6."""
    session = make_search_parts('SUPERNET.POOL_SIZE', '1', board_paths=[teacher_path], dtype=torch.float64)
    images, target = batch(8)
    images = images.double()
    reference = copy.deepcopy(session.supernet)
    with torch.no_grad():
        reference(session.board[0].probe_images, STUDENT)
    reference(images, STUDENT)
    with torch.no_grad():
        reference(images, teacher_path)
    _forward_backward(session, STUDENT, images, target, distill=True)
    for (name, got), want in zip(session.supernet.named_buffers(), reference.buffers()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6, msg=name)  # num_batches_tracked: exactly


def test_plain_step_is_cross_entropy_and_top1_uses_half_weight():
    session = make_session()
    images, target = batch(8)
    reference = copy.deepcopy(session.supernet)
    out = _forward_backward(session, STUDENT, images, target, distill=False)
    loss, kd = out.loss, out.kd
    assert kd is None
    torch.testing.assert_close(loss, session.loss_fn(reference(images, STUDENT), target).detach())

    session = make_session('SUPERNET.PICK_METHOD', 'top1')
    reference = copy.deepcopy(session.supernet)
    loss = _forward_backward(session, STUDENT, images, target, distill=True).loss
    logits = reference(images, STUDENT)
    with torch.no_grad():  # top1: the best entry is the teacher, m = 0.5
        teacher = torch.softmax(reference(images, TEACHERS[0]), -1)
    expected_kd = torch.sum(-teacher * F.log_softmax(logits, -1), -1).mean()
    torch.testing.assert_close(loss, ((0.5 * expected_kd + 1.5 * session.loss_fn(logits, target)) / 2).detach(),
                               rtol=1e-5, atol=1e-6)


def test_meta_update_schedule():
    cfg = load_config(None, ['SUPERNET.META_STA_EPOCH', '2', 'SUPERNET.UPDATE_ITER', '5'])
    assert meta_update_due(cfg, epoch=3, batch_index=5, board_size=1)
    assert meta_update_due(cfg, epoch=3, batch_index=10, board_size=4)
    assert not meta_update_due(cfg, epoch=3, batch_index=0, board_size=1)  # not the epoch's first batch
    assert not meta_update_due(cfg, epoch=3, batch_index=6, board_size=1)
    assert not meta_update_due(cfg, epoch=2, batch_index=5, board_size=1)  # not up to META_STA_EPOCH
    assert not meta_update_due(cfg, epoch=3, batch_index=5, board_size=0)
    off = load_config(None, ['SUPERNET.META_STA_EPOCH', '2', 'SUPERNET.UPDATE_ITER', '5', 'SUPERNET.UPDATE_2ND', 'False'])
    assert not meta_update_due(off, epoch=3, batch_index=5, board_size=1)
    top1 = load_config(None, ['SUPERNET.META_STA_EPOCH', '2', 'SUPERNET.UPDATE_ITER', '5',
                              'SUPERNET.PICK_METHOD', 'top1'])
    assert not meta_update_due(top1, epoch=3, batch_index=5, board_size=1)


def test_optimizer_groups_and_linear_schedule():
    session = make_session('WEIGHT_DECAY', '0.001', 'META_LR', '0.01', 'OPT', 'sgd')
    groups = session.optimizer.param_groups
    assert [g['lr'] for g in groups] == [0.1, 0.1, 0.01]
    assert [g['weight_decay'] for g in groups] == [0.0, 0.001, 0.0]
    assert all(g['nesterov'] and g['momentum'] == 0.9 for g in groups)
    ids = [{id(p) for p in g['params']} for g in groups]
    assert ids[2] == {id(p) for p in session.mmn.parameters()}
    assert id(session.supernet.classifier.bias) in ids[0] and id(session.supernet.classifier.weight) in ids[1]
    assert sum(map(len, ids)) == len(list(session.supernet.parameters())) + 2
    lrs = []
    for _ in range(10):
        lrs.append(groups[0]['lr'])
        session.optimizer.step()
        session.scheduler.step()
    assert lrs == pytest.approx([0.1 * (1 - s / 10) for s in range(10)])
    assert groups[0]['lr'] == 0.0 and groups[2]['lr'] == 0.0
    momentum = build_search_optimizer(load_config(None, ['OPT', 'momentum']), session.supernet, session.mmn)
    assert not momentum.param_groups[0]['nesterov']


def test_bn_recalibration_is_undone_afterwards():
    session = make_session('SUPERNET.BN_RECALIBRATION_BATCHES', '2')
    images, _ = batch(8)
    session.train_loader = type('Loader', (), {'set_epoch': lambda self, epoch: None,
                                               '__iter__': lambda self: iter([(images, None)] * 3)})()
    bn = session.supernet.blocks[1][0][1].bn1
    before = {k: v.clone() for k, v in session.supernet.state_dict().items()}
    with recalibrated_bn(session, STUDENT, epoch=0, batches=2):
        assert not torch.equal(bn.running_mean, before['blocks.1.0.1.bn1.running_mean'])
        assert bn.momentum is None and int(bn.num_batches_tracked) == 2
    for key, value in session.supernet.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert bn.momentum == 0.1


def test_final_arch_within_budget_and_its_yaml_builds_the_child(tmp_path, repo_root):
    board = PrioritizedBoard(3, 5.0)
    probe = dict(probe_images=torch.zeros(1, 3, 4, 4), probe_probs=torch.zeros(1, NUM_CLASSES))
    board.offer(BoardEntry(path=TEACHERS[0], prec1=70.0, board_cost=30.0, val_prec1=60.0, **probe))  # over budget
    board.offer(BoardEntry(path=TEACHERS[1], prec1=65.0, board_cost=18.0, val_prec1=50.0, params=1.1, **probe))
    board.offer(BoardEntry(path=STUDENT, prec1=60.0, board_cost=19.0, val_prec1=55.0, params=1.2, **probe))
    # The budget's measure decides what is within the budget; the board's (entry.board_cost) only breaks ties.
    budget_flops = {TEACHERS[0]: 30.0, TEACHERS[1]: 18.0, STUDENT: 21.0}.__getitem__
    chosen = choose_final_entry(board, budget_flops, 0, 22)
    assert chosen.path == STUDENT  # best val prec1 among the paths within 0..22 MFLOPs
    assert choose_final_entry(board, budget_flops, 0, 20).path == TEACHERS[1]  # STUDENT is over in the budget's measure
    assert choose_final_entry(board, budget_flops, 0, 10) is None
    space = SearchSpace((1, 1, 1, 1, 1), 96, 1.0, original_op_costs())
    out = tmp_path / 'best_arch.yaml'
    write_best_arch(chosen, str(out), FlopsBudget(space, 0.0, 22.0), epoch=4, run_dir=str(tmp_path))
    text = out.read_text()
    assert 'val prec1 55.000' in text and f'budget FLOPs {space.budget_flops(STUDENT):.2f}M' in text
    assert f'board FLOPs 19.00M ({space.board_measure_text})' in text
    cfg = load_config([str(repo_root / 'configs/demo/retrain.yaml'), str(out)])
    assert cfg.NET.SELECTION == -1 and cfg.DATASET.IMAGE_SIZE == 96 and not cfg.NET.SINGLE_LAYER_DEFAULT_OP
    assert cfg.NET.INPUT_ARCH == [[0], [1], [0], [2], [5], [3], [0]]
    model, info = build_child_from_cfg(cfg)
    assert info.arch == [[0], [1], [0], [2], [5], [3], [0]] and info.resolution == 96
    assert model.blocks[1][0].conv_dw.kernel_size == (3, 3) and model.blocks[1][0].conv_pw.out_channels == 16 * 6
