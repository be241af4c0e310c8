"""The LR-schedule protocol (lib.train.schedule): the adapters give the LRs of the schedules they wrap, and their
state is the wrapped scheduler's own (checkpoints keep their format; old ones load)."""
import pytest
import torch

pytestmark = pytest.mark.filterwarnings('ignore:Detected call of `lr_scheduler.step')
from timm.scheduler import create_scheduler_v2

from lib.checkpoint.format import Position
from lib.train.schedule import FixedLR, LinearToZero, TimmSchedule


def optimizer(lr=0.1):
    """Two param groups (as the search's supernet and MMN)."""
    return torch.optim.SGD([{'params': [torch.nn.Parameter(torch.zeros(1))]},
                            {'params': [torch.nn.Parameter(torch.zeros(1))]}], lr=lr)


def timm_step(opt):
    return create_scheduler_v2(opt, sched='step', num_epochs=6, decay_epochs=2, decay_rate=0.5, warmup_epochs=1,
                               warmup_lr=0.01, step_on_epochs=True, updates_per_epoch=4)[0]


def test_the_search_schedule_is_the_originals_lambda_lr_and_reads_its_old_state():
    new_opt, old_opt = optimizer(), optimizer()
    schedule = LinearToZero(new_opt, total_steps=10)
    original = torch.optim.lr_scheduler.LambdaLR(old_opt, lambda step: max(0.0, 1.0 - step / 10))
    lrs = []
    for _ in range(4):
        schedule.step()
        original.step()
        lrs.append((new_opt.param_groups[0]['lr'], old_opt.param_groups[0]['lr']))
    assert all(a == b for a, b in lrs) and lrs[-1][0] == pytest.approx(0.06)
    assert schedule.state_dict().keys() == original.state_dict().keys()
    resumed = LinearToZero(optimizer(), total_steps=10)
    resumed.load_state_dict(original.state_dict())  # a checkpoint written before the protocol
    assert resumed.last_epoch == 4
    schedule.step_epoch(0, 55.0)  # a function of the update count only
    assert new_opt.param_groups[0]['lr'] == lrs[-1][0]


def test_timm_schedule_steps_after_each_epoch_as_timm_train_does_and_keeps_timms_state():
    wrapped_opt, plain_opt = optimizer(), optimizer()
    schedule, plain = TimmSchedule(timm_step(wrapped_opt)), timm_step(plain_opt)
    for epoch in range(5):
        schedule.step_epoch(epoch, 1.0)
        plain.step(epoch + 1, 1.0)
        assert wrapped_opt.param_groups[1]['lr'] == plain_opt.param_groups[1]['lr']
    assert schedule.state_dict() == plain.state_dict()
    fresh_opt = optimizer()
    fresh = TimmSchedule(timm_step(fresh_opt))
    fresh.jump_to(Position(epoch=5, global_step=20))
    assert fresh_opt.param_groups[0]['lr'] == wrapped_opt.param_groups[0]['lr'] == pytest.approx(0.1 * 0.5 ** 2)


def test_rescale_scales_the_rest_of_the_schedule_of_the_given_groups_only():
    opt = optimizer()
    schedule = TimmSchedule(timm_step(opt))
    schedule.rescale(0.5, [1])
    schedule.step_epoch(0, None)  # epoch 1: after the warm-up, before the first decay
    assert opt.param_groups[0]['lr'] == pytest.approx(0.1) and opt.param_groups[1]['lr'] == pytest.approx(0.05)


def test_sched_none_keeps_the_lr_and_saves_no_state():
    opt, schedule = optimizer(), FixedLR()
    schedule.step_update(3)
    schedule.step_epoch(0, 1.0)
    schedule.jump_to(Position(epoch=2, global_step=8))
    assert opt.param_groups[0]['lr'] == 0.1 and schedule.state_dict() is None
