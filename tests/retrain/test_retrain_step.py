import copy

import pytest
import torch
import torch.nn as nn
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.utils import ModelEmaV3

from lib.engine.precision import grad_scaler
from lib.retrain.step import RetrainStep, retrain_one_epoch
from lib.train.steps import EpochStart

DEVICE = torch.device('cpu')


class Batches(list):
    batch_size = 4


def make_batches(steps=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batches((torch.randn(4, 3, 8, 8, generator=g), torch.randint(0, classes, (4,), generator=g))
                   for _ in range(steps))


def tiny_model(classes=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, classes))


def run_epoch(model, batches, *, start_step=0, global_step=0, initial_totals=None, loss_fn=None, **kwargs):
    """One epoch of ``retrain_one_epoch``; ``kwargs``: the step's parts (``RetrainStep``) and the epoch's options."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step_keys = {'scheduler', 'scaler', 'model_ema', 'mixup_fn', 'amp', 'amp_dtype', 'clip_grad'}
    step = RetrainStep(model, optimizer, loss_fn or nn.CrossEntropyLoss(), DEVICE,
                       **{k: v for k, v in kwargs.items() if k in step_keys})
    options = dict(steps_per_epoch=len(batches), log_interval=1)
    options.update({k: v for k, v in kwargs.items() if k not in step_keys})
    start = EpochStart(0, start_step, global_step, initial_totals)
    return retrain_one_epoch(step, batches, start, **options), optimizer


def test_metrics_count_every_image_and_the_weights_and_ema_move():
    model, batches = tiny_model(), make_batches()
    before = [p.detach().clone() for p in model.parameters()]
    ema = ModelEmaV3(model, decay=0.5)
    metrics, _ = run_epoch(model, batches, model_ema=ema, scaler=grad_scaler(DEVICE, False, 'float16'),
                           clip_grad=1.0)
    assert metrics.global_step == 4 and metrics.img_per_sec > 0
    assert 0 <= metrics.prec1 <= metrics.prec5 <= 100
    assert metrics.loss > 0
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    ema_weight = ema.module[0].weight
    assert not torch.equal(ema_weight, before[0]) and not torch.equal(ema_weight, model[0].weight)


def test_recovery_is_offered_every_interval_but_not_at_the_epoch_end():
    calls = []
    run_epoch(tiny_model(), make_batches(steps=5), recovery_interval=2,
              save_recovery=lambda pos, totals: calls.append((pos.epoch, pos.step_in_epoch, pos.global_step,
                                                              totals[3].item())))
    assert calls == [(0, 2, 2, 8.0), (0, 4, 4, 16.0)]


def test_an_epoch_continued_from_a_recovery_point_equals_the_uninterrupted_one():
    batches = make_batches(steps=4)
    full_model = tiny_model()
    full, _ = run_epoch(full_model, batches)

    saved = {}
    model = tiny_model()

    def save(pos, totals):
        saved.update(step=pos.step_in_epoch, totals=totals.clone(), model=copy.deepcopy(model.state_dict()))

    run_epoch(model, batches, recovery_interval=2, save_recovery=lambda pos, totals: save(pos, totals)
              if pos.step_in_epoch == 2 else None)
    resumed = tiny_model()
    resumed.load_state_dict(saved['model'])  # plain SGD: no optimizer state to carry
    continued, _ = run_epoch(resumed, Batches(batches[2:]), steps_per_epoch=4, start_step=2, global_step=2,
                             initial_totals=saved['totals'])
    assert continued.global_step == 4
    assert continued.loss == pytest.approx(full.loss, rel=1e-12)
    assert continued.prec1 == full.prec1 and continued.prec5 == full.prec5
    for a, b in zip(resumed.state_dict().values(), full_model.state_dict().values()):
        assert torch.equal(a, b)


def test_an_epoch_short_of_batches_is_reported(caplog, monkeypatch):
    import logging

    import lib.retrain.step as retrain_loop
    monkeypatch.setattr(retrain_loop, 'logger', logging.getLogger('test.retrain_loop'))  # 'cream' may not propagate
    with caplog.at_level('WARNING', logger='test.retrain_loop'):
        metrics, _ = run_epoch(tiny_model(), make_batches(steps=2), steps_per_epoch=4)
    assert metrics.global_step == 2 and 'after 2 of 4 steps' in caplog.text


def test_mixup_with_soft_targets_and_bfloat16_autocast():
    mixup = Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1, num_classes=3)
    metrics, _ = run_epoch(tiny_model(), make_batches(), mixup_fn=mixup, loss_fn=SoftTargetCrossEntropy(),
                           amp=True, amp_dtype='bfloat16', scaler=grad_scaler(DEVICE, True, 'bfloat16'))
    assert torch.isfinite(torch.tensor(metrics.loss))


def test_a_diverged_loss_stops_with_a_clear_error():
    model = tiny_model()
    with torch.no_grad():
        model[5].weight.fill_(float('nan'))
    with pytest.raises(FloatingPointError, match='lower LR'):
        run_epoch(model, make_batches())
