import pytest
import torch
from timm.optim import RMSpropTF

from lib.config import load_config
from lib.retrain.optim import build_optimizer, build_scheduler, current_lr, scaled_lr


def test_lr_scales_linearly_with_the_global_batch():
    assert scaled_lr(0.064, 1024, 1024) == pytest.approx(0.064)
    assert scaled_lr(0.064, 256, 1024) == pytest.approx(0.016)
    assert scaled_lr(0.01, 32, 0) == 0.01  # 0: as given
    with pytest.raises(ValueError, match='LR_REFERENCE_BATCH'):
        scaled_lr(0.01, 32, -1)


def test_retrain_recipe_optimizer_and_step_schedule(repo_root):
    cfg = load_config([str(repo_root / 'configs/retrain/14.yaml')])
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = build_optimizer(cfg, model, lr=0.016)
    assert isinstance(optimizer, RMSpropTF)
    assert optimizer.defaults['eps'] == pytest.approx(1e-3) and optimizer.defaults['momentum'] == 0.9
    decayed = [g for g in optimizer.param_groups if g['weight_decay'] > 0]
    assert decayed and all(g['weight_decay'] == pytest.approx(1e-5) for g in decayed)
    assert any(g['weight_decay'] == 0 for g in optimizer.param_groups)  # biases and BN: no decay

    scheduler, epochs = build_scheduler(cfg, optimizer, steps_per_epoch=10)
    assert epochs == 500
    assert current_lr(optimizer) == pytest.approx(1e-6)  # warmup starts at WARMUP_LR
    lrs = {}
    for epoch in range(1, 8):
        scheduler.step(epoch)
        scheduler.step_update(epoch * 10)  # per-update stepping leaves an epoch schedule alone
        lrs[epoch] = current_lr(optimizer)
    assert lrs[3] == pytest.approx(0.016 * 0.973 ** int(3 / 2.4))
    assert lrs[5] == pytest.approx(0.016 * 0.973 ** int(5 / 2.4))
    assert lrs[1] < lrs[2] < 0.016  # warmup over 3 epochs


def test_unknown_scheduler_is_an_error():
    cfg = load_config(None, ['SCHED', 'bogus'])
    optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2), lr=0.1)
    with pytest.raises(ValueError, match='bogus'):
        build_scheduler(cfg, optimizer, steps_per_epoch=1)
