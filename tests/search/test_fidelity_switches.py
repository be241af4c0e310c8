"""Each fidelity switch (docs/differences.md): the default does what the original code
does, the alternative what our correction does. Small real supernet on the CPU."""
import copy

import pytest
import torch
import torch.nn as nn

from lib.config import load_config
from lib.data.loaders import build_val_loader_from_cfg
from lib.search import meta_update as meta_update_module
from lib.search import step as search_steps
from lib.search.flops import build_search_space
from lib.search.probes import probe_deltas
from lib.search.sampler import PathSampler
from tests.support.tiny_search import STUDENT, TEACHERS, batch, make_search_parts, make_session

OTHER = ((4,), (3,), (1,), (0,), (2,))  # shares no searchable op with STUDENT


def _switch(*pairs):
    return tuple(str(v) for pair in pairs for v in pair)


def snapshot(module: nn.Module) -> dict:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


@pytest.mark.parametrize('step_only_path', [False, True])
def test_step_only_path(step_only_path):
    """SUPERNET.STEP_ONLY_PATH False (the original on PyTorch 1.2, whose zero_grad zeroed gradients): an op
    sampled once and then never again keeps shrinking under weight decay and moving with momentum; True:
    it stays put."""
    name = 'blocks.1.0.1.conv_pw.weight'  # STUDENT's first searchable op, not on OTHER
    never_sampled = 'blocks.1.0.2.conv_pw.weight'
    images, target = batch(8)
    # Weight decay alone (no momentum): w <- w * (1 - lr * wd) at each later step.
    session = make_session('SUPERNET.STEP_ONLY_PATH', str(step_only_path), 'WEIGHT_DECAY', '0.01',
                           'OPT', 'momentum', 'MOMENTUM', '0.0')
    search_steps._forward_backward(session, STUDENT, images, target, distill=False)
    before = snapshot(session.supernet)
    lr = session.optimizer.param_groups[1]['lr']
    search_steps._forward_backward(session, OTHER, images, target, distill=False)
    params = dict(session.supernet.named_parameters())
    expected = before[name] if step_only_path else before[name] * (1 - lr * 0.01)
    torch.testing.assert_close(params[name].detach(), expected, rtol=1e-6, atol=0)
    assert torch.equal(params[never_sampled], before[never_sampled])
    # Momentum alone (no weight decay): the earlier step's velocity keeps moving the op.
    session = make_session('SUPERNET.STEP_ONLY_PATH', str(step_only_path), 'WEIGHT_DECAY', '0.0')
    search_steps._forward_backward(session, STUDENT, images, target, distill=False)
    before = snapshot(session.supernet)
    search_steps._forward_backward(session, OTHER, images, target, distill=False)
    moved = not torch.equal(dict(session.supernet.named_parameters())[name], before[name])
    assert moved != step_only_path


@pytest.mark.parametrize('detach', [False, True])
def test_detach_kd_weight(detach):
    """SUPERNET.DETACH_KD_WEIGHT False (the original): m = sigmoid(-score) keeps its graph, so the MMN's weights
    change after one distillation step; True: they do not (the MMN learns only in meta updates)."""
    session = make_session('SUPERNET.DETACH_KD_WEIGHT', str(detach))
    images, target = batch(8)
    before = snapshot(session.mmn)
    out = search_steps._forward_backward(session, STUDENT, images, target, distill=True)
    changed = any(not torch.equal(p, before[n]) for n, p in session.mmn.named_parameters())
    assert changed != detach
    assert out.kd is not None
    # The original's gradient also reaches the student through its probe forward: same loss, other gradient.
    assert (session.mmn.linear.weight.grad is None) == detach


def test_detach_kd_weight_changes_the_student_gradient_by_its_probe_forward():
    grads = {}
    for detach in (False, True):
        session = make_session('SUPERNET.DETACH_KD_WEIGHT', str(detach), 'SUPERNET.STEP_ONLY_PATH', 'True')
        images, target = batch(8)
        search_steps._forward_backward(session, STUDENT, images, target, distill=True)
        grads[detach] = session.supernet.blocks[1][0][1].conv_pw.weight.grad.clone()
    assert not torch.allclose(grads[False], grads[True])


@pytest.mark.parametrize('inner, expected_group', [('meta', -1), ('supernet', 0)])
def test_meta_inner_lr(monkeypatch, inner, expected_group):
    """SUPERNET.META_INNER_LR 'meta' (the original: param_groups[-1], META_LR times the schedule) or 'supernet'."""
    session = make_session('SUPERNET.META_INNER_LR', inner, 'META_LR', '0.001')
    session.optimizer.step()  # (no gradients: moves nothing)
    session.scheduler.step()  # the schedule applies to both: 0.9 x
    captured = {}
    monkeypatch.setattr(search_steps, 'meta_update', lambda *args, **kwargs: captured.update(kwargs) or {
        'teacher_index': 0, 'kd_weight': 0.5, 'val_loss': 1.0, 'meta_grad_norm': 0.0})
    images, target = batch(8)
    search_steps.run_meta_update(session, STUDENT, images, target, epoch=1, step=5)
    lr = session.optimizer.param_groups[expected_group]['lr']
    assert captured['inner_lr'] == lr == pytest.approx((0.001 if inner == 'meta' else 0.1) * 0.9)
    assert captured['keep_zero_grads'] is True  # STEP_ONLY_PATH False: the original's meta steps too


@pytest.mark.parametrize('inner_grad', ['full', 'detached'])
def test_meta_inner_grad(monkeypatch, inner_grad):
    """SUPERNET.META_INNER_GRAD 'full' (the original: the teacher's probe forward keeps its graph, so the meta update's
    inner gradient, which the student also steps with, is d(m * KD)/dW including KD * dm/dW) or 'detached' (m a
    constant: m * dKD/dW)."""
    session = make_search_parts('SUPERNET.META_INNER_GRAD', inner_grad, 'SUPERNET.POOL_SIZE', '3', board_paths=TEACHERS,
                                  dtype=torch.float64)  # float64: BN over a 2-image slice is ill-conditioned
    reference, reference_mmn = copy.deepcopy(session.supernet), copy.deepcopy(session.mmn)  # the update steps both
    recorded = {}
    real = meta_update_module.meta_gradient

    def recording(*args, **kwargs):
        result = real(*args, **kwargs)
        recorded['student_grads'] = [g.clone() for g in result.student_grads]  # the step clips them in place
        return result
    monkeypatch.setattr(meta_update_module, 'meta_gradient', recording)
    images, target = batch(8)
    images = images.double()
    torch.manual_seed(3)
    search_steps.run_meta_update(session, STUDENT, images, target, epoch=1, step=5)
    # Independently, on the copy: the probe forwards with gradient, the chosen entry's m, KD on the train slice.
    torch.manual_seed(3)
    params = list(reference.path_parameters(STUDENT).values())
    deltas = [torch.softmax(reference(e.probe_images, STUDENT), -1) - e.probe_probs for e in session.board]
    scores = reference_mmn(torch.stack(deltas))
    index = int(scores.argmax())
    m = torch.sigmoid(-scores[index])
    x_t = images[:2]
    logits = reference(x_t, STUDENT)
    with torch.no_grad():
        teacher_probs = torch.softmax(reference(x_t, session.board[index].path), -1)
    kd = torch.sum(-teacher_probs * torch.log_softmax(logits, -1), -1).mean()
    full = torch.autograd.grad(m * kd, params, retain_graph=True)
    detached = torch.autograd.grad(m.detach() * kd, params)
    expected = full if inner_grad == 'full' else detached
    for got, want in zip(recorded['student_grads'], expected):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    assert max(float((a - b).abs().max()) for a, b in zip(full, detached)) > 1e-3  # the two sides differ


@pytest.mark.parametrize('probe_probs', ['teacher', 'student'])
def test_probe_probs(probe_probs):
    """SUPERNET.PROBE_PROBS 'teacher' (the original): once the board has entries, a new entry stores the current
    teacher's softmax on its probe images; the first entry (no teacher yet) the student's. 'student': always
    the student's."""
    session = make_session('SUPERNET.PROBE_PROBS', probe_probs, 'SUPERNET.POOL_SIZE', '5')
    images, target = batch(8)
    out = search_steps._forward_backward(session, STUDENT, images, target, distill=True)
    assert out.teacher_logits is not None
    hits = torch.tensor(float(len(target)), dtype=torch.float64)  # prec1 100: admitted
    assert search_steps.offer_to_board(session, STUDENT, images, out, hits, len(target))
    entry = next(e for e in session.board if e.path == STUDENT)
    source = out.teacher_logits if probe_probs == 'teacher' else out.logits
    torch.testing.assert_close(entry.probe_probs, torch.softmax(source[:2].float(), dim=-1))
    first = search_steps.StepOutput(out.logits, out.loss, None, None)  # a plain step: no teacher
    session.board._entries.clear()
    assert search_steps.offer_to_board(session, OTHER, images, first, hits, len(target))
    torch.testing.assert_close(session.board[0].probe_probs, torch.softmax(out.logits[:2].float(), dim=-1))


def test_probe_forward_per_entry_normalizes_each_probe_on_its_own():
    """SUPERNET.PROBE_FORWARD 'per_entry' (the original): each board entry's probe is a train-mode batch of its
    own, so BN uses each probe's own batch statistics and updates its running statistics once per entry (here
    in one grouped forward; tests/models/test_grouped_bn.py and tests/search/test_probe_equivalence.py hold it
    to one forward per entry); 'batched': one forward over all probes (one BN batch, one update)."""
    session = make_session()
    net = session.supernet.double()  # float64: these small BN batches are ill-conditioned in float32
    for entry in session.board:
        entry.probe_images, entry.probe_probs = entry.probe_images.double(), entry.probe_probs.double()
    bn = net.blocks[1][0][1].bn1
    reference = copy.deepcopy(net)
    with torch.no_grad():
        expected = [torch.softmax(reference(e.probe_images, STUDENT), -1) - e.probe_probs for e in session.board]
    tracked = int(bn.num_batches_tracked)
    per_entry = probe_deltas(net, STUDENT, session.board, per_entry=True).deltas
    assert int(bn.num_batches_tracked) == tracked + len(session.board)
    torch.testing.assert_close(per_entry, torch.stack(expected))
    torch.testing.assert_close(bn.running_mean, reference.blocks[1][0][1].bn1.running_mean)
    torch.testing.assert_close(bn.running_var, reference.blocks[1][0][1].bn1.running_var)
    batched = probe_deltas(net, STUDENT, session.board, per_entry=False).deltas
    assert int(bn.num_batches_tracked) == tracked + len(session.board) + 1
    assert not torch.allclose(batched, per_entry, atol=1e-4)


def test_probe_forward_switch_reaches_teacher_selection(monkeypatch):
    calls = []
    for mode in ('per_entry', 'batched'):
        session = make_session('SUPERNET.PROBE_FORWARD', mode)
        monkeypatch.setattr(session.supernet, 'forward', lambda x, path, f=session.supernet.forward:
                            calls.append((mode, x.shape[0])) or f(x, path))
        images, target = batch(8)
        search_steps._forward_backward(session, STUDENT, images, target, distill=True)
    # 'per_entry' with the original's KD weight (it keeps its graph): one grouped forward over every probe
    # without a graph, then the chosen entry's probe with its graph; 'batched': one forward with its graph.
    assert [c for c in calls if c[0] == 'per_entry'] == [('per_entry', 2 * len(TEACHERS)), ('per_entry', 2)]
    assert [c for c in calls if c[0] == 'batched'] == [('batched', 2 * len(TEACHERS))]


@pytest.mark.parametrize('count_fixed', [True, False])
def test_teacher_prob_counts_fixed_stages(count_fixed):
    """SUPERNET.TEACHER_PROB_COUNTS_FIXED True (the original's board paths held the fixed first and last stages
    as op 0): two extra op-0 counts per board path; False: searchable layers only."""
    board_paths = [((0,), (1, 2)), ((3,), (1, 1))]
    sampler = PathSampler((1, 2), 4, how_to_prob='teacher', board_paths=lambda: board_paths,
                          count_fixed_stages=count_fixed)
    probs = sampler.op_probabilities().tolist()
    # ops 0,1,2,3,1,1 -> counts 1,3,1,1 (+2 op 0 per path when counting the fixed stages)
    expected = [5 / 10, 3 / 10, 1 / 10, 1 / 10] if count_fixed else [1 / 6, 3 / 6, 1 / 6, 1 / 6]
    assert probs == pytest.approx(expected)
    empty = PathSampler((1, 2), 4, how_to_prob='teacher', board_paths=lambda: [], count_fixed_stages=count_fixed)
    assert empty.op_probabilities() is None  # uniform while the board is empty, as the original


@pytest.mark.parametrize('table, layers', [('original', (1, 2, 3, 3, 3)), ('counted', (1, 1, 3, 3, 3))])
def test_flops_table(table, layers):
    """SUPERNET.FLOPS_TABLE 'original' (the original's per-op table) or 'counted' (thop counts of our blocks)."""
    cfg = load_config(None, ['SUPERNET.FLOPS_MAXIMUM', '300', 'SUPERNET.FLOPS_TABLE', table])
    space = build_search_space(cfg)
    assert space.layers_per_stage == layers
    assert space.op_costs.source.startswith('the original' if table == 'original' else 'thop')


@pytest.mark.parametrize('interpolation', ['bicubic', 'bilinear'])
def test_eval_interpolation(tiny_imagefolder, interpolation):
    """DATASET.EVAL_INTERPOLATION: 'bicubic' (the default: the original's retrain and test) or 'bilinear'."""
    opts = ['DATA_DIR', str(tiny_imagefolder), 'DATASET.NUM_CLASSES', '3', 'WORKERS', '0']
    if interpolation == 'bilinear':
        opts += ['DATASET.EVAL_INTERPOLATION', 'bilinear']
    cfg = load_config(None, opts)
    loader = build_val_loader_from_cfg(cfg, 64)
    transform = loader.loader.dataset.transform
    resize = next(t for t in transform.transforms if type(t).__name__ == 'Resize')
    assert resize.interpolation.value == interpolation


def test_retrain_configs_carry_each_models_original_recipe(repo_root):
    """configs/retrain/<N>.yaml: the original's schedule per model (cosine for 114/287/481/604, step for 14/43)
    and its LR as is (no batch scaling)."""
    for selection, sched in ((14, 'step'), (43, 'step'), (114, 'cosine'), (287, 'cosine'), (481, 'cosine'),
                             (604, 'cosine')):
        cfg = load_config([str(repo_root / 'configs' / 'retrain' / f'{selection}.yaml')])
        assert (cfg.NET.SELECTION, cfg.SCHED, cfg.LR, cfg.LR_REFERENCE_BATCH) == (selection, sched, 0.064, 0)
    corrected = load_config([str(repo_root / 'configs' / 'train_corrected.yaml')])
    defaults = load_config([str(repo_root / 'configs' / 'train.yaml')])
    switched = [key for key in ('FLOPS_TABLE', 'STEP_ONLY_PATH', 'DETACH_KD_WEIGHT', 'META_INNER_GRAD', 'META_INNER_LR',
                                'PROBE_PROBS', 'PROBE_FORWARD', 'TEACHER_PROB_COUNTS_FIXED', 'BOARD_FLOPS', 'PROBE_SOURCE')
                if corrected.SUPERNET[key] != defaults.SUPERNET[key]]
    assert len(switched) == 10
    assert load_config([str(repo_root / 'configs' / 'demo' / 'train_corrected.yaml')]).SUPERNET.META_INNER_GRAD == 'detached'
    assert defaults.SUPERNET.FLOPS_TABLE == 'original' and not defaults.SUPERNET.STEP_ONLY_PATH
