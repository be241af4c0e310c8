import logging
import random

import numpy as np
import pytest
import torch

from lib.checkpoint.format import make_checkpoint
from lib.checkpoint.format import Position, gather_rank_states, training_state
from lib.checkpoint.restore import apply_resume, restore_rank_rng
from lib.checkpoint.resume import ResumeError, find_resume_checkpoint
from lib.checkpoint.saver import BEST, LAST, RECOVERY, CheckpointSaver, epoch_file
from lib.config import load_config
from lib.engine.distributed import DistContext
from lib.models.from_config import build_child_from_cfg
from lib.retrain.optim import build_optimizer, build_schedule, current_lr
from lib.retrain.wrappers import build_ema

LOGGER = logging.getLogger('test.resume')
ONE = DistContext()


def parts(cfg):
    torch.manual_seed(0)
    model, _ = build_child_from_cfg(cfg)
    optimizer = build_optimizer(cfg, model, lr=0.01)
    scheduler, _ = build_schedule(cfg, optimizer, steps_per_epoch=4)
    return model, optimizer, scheduler, build_ema(cfg, model)


def small_cfg(**opts):
    base = {'MODEL_SELECTION': -1, 'INPUT_ARCH': [[0], [0], [0], [0], [0], [0], [0]], 'DATASET.NUM_CLASSES': 2}
    base.update(opts)
    return load_config(None, [str(x) for kv in base.items() for x in kv])


def write(path, cfg, *, epoch, step, global_step, saver=None):
    model, optimizer, scheduler, ema = parts(cfg)
    extra = training_state(position=Position(epoch, step, global_step), steps_per_epoch=4, scheduler=scheduler,
                          scaler=None, saver=saver or CheckpointSaver(str(path.parent), 2, True),
                          rank_states=gather_rank_states(torch.arange(4.0)), cfg=cfg)
    torch.save(make_checkpoint(model, ema, optimizer, epoch=epoch, arch='x', cfg=cfg, extra=extra), path)


@pytest.mark.parametrize('recovery_step, expected', [(6, RECOVERY), (2, LAST)])
def test_the_run_folder_resumes_from_the_further_of_recovery_and_last(tmp_path, recovery_step, expected):
    cfg = small_cfg(AUTO_RESUME=True)
    write(tmp_path / LAST, cfg, epoch=0, step=4, global_step=4)
    write(tmp_path / RECOVERY, cfg, epoch=recovery_step // 4, step=recovery_step % 4, global_step=recovery_step)
    path, checkpoint = find_resume_checkpoint(cfg, str(tmp_path), ONE, LOGGER)
    assert path.endswith(expected) and checkpoint['global_step'] == max(4, recovery_step)


def test_an_unreadable_file_of_the_run_folder_is_skipped_with_a_warning(tmp_path, caplog):
    cfg = small_cfg(AUTO_RESUME=True)
    write(tmp_path / LAST, cfg, epoch=0, step=4, global_step=4)
    (tmp_path / RECOVERY).write_bytes(b'half a file')
    with caplog.at_level(logging.WARNING, logger='test.resume'):
        path, _ = find_resume_checkpoint(cfg, str(tmp_path), ONE, LOGGER)
    assert path.endswith(LAST) and 'skipping' in caplog.text and 'truncated or not a checkpoint' in caplog.text
    assert f'resuming from {path}, the newest good checkpoint' in caplog.text
    assert find_resume_checkpoint(small_cfg(), str(tmp_path), ONE, LOGGER) == (None, None)  # AUTO_RESUME off


def poison(path):
    checkpoint = torch.load(path, weights_only=True)
    next(iter(checkpoint['state_dict'].values())).view(-1)[0] = float('nan')
    torch.save(checkpoint, path)


def test_bad_last_and_recovery_fall_back_to_the_newest_epoch_checkpoint_then_best(tmp_path, caplog):
    cfg = small_cfg(AUTO_RESUME=True)
    write(tmp_path / BEST, cfg, epoch=0, step=4, global_step=4)
    write(tmp_path / epoch_file(0), cfg, epoch=0, step=4, global_step=4)
    write(tmp_path / epoch_file(1), cfg, epoch=1, step=4, global_step=8)
    write(tmp_path / RECOVERY, cfg, epoch=2, step=2, global_step=10)
    poison(tmp_path / RECOVERY)  # a diverged run's recovery checkpoint (before saves were checked)
    (tmp_path / LAST).write_bytes(b'')  # a 0-byte file
    with caplog.at_level(logging.WARNING, logger='test.resume'):
        path, checkpoint = find_resume_checkpoint(cfg, str(tmp_path), ONE, LOGGER)
    assert path.endswith(epoch_file(1)) and checkpoint['global_step'] == 8
    assert 'NaN or infinite' in caplog.text and 'resuming from' in caplog.text and epoch_file(1) in caplog.text
    (tmp_path / epoch_file(1)).write_bytes(b'junk')
    poison(tmp_path / epoch_file(0))
    path, _ = find_resume_checkpoint(cfg, str(tmp_path), ONE, LOGGER)
    assert path.endswith(BEST)


def test_only_bad_checkpoints_is_an_error_not_a_fresh_start(tmp_path):
    (tmp_path / LAST).write_bytes(b'truncated')
    write(tmp_path / RECOVERY, small_cfg(), epoch=0, step=2, global_step=2)
    poison(tmp_path / RECOVERY)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ResumeError, match=r'no checkpoint of .* can be resumed: last\.pth\.tar \(.*truncated.*\); '
                                          r'recovery\.pth\.tar \(.*NaN.*OVERWRITE True'):
        find_resume_checkpoint(small_cfg(AUTO_RESUME=True), str(tmp_path), ONE, LOGGER)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_nonfinite_resume_path_is_an_error(tmp_path):
    write(tmp_path / 'given.pth.tar', small_cfg(), epoch=0, step=4, global_step=4)
    poison(tmp_path / 'given.pth.tar')
    with pytest.raises(ResumeError, match='NaN or infinite'):
        find_resume_checkpoint(small_cfg(AUTO_RESUME=True, RESUME_PATH=tmp_path / 'given.pth.tar'), str(tmp_path),
                               ONE, LOGGER)


def test_a_resume_with_another_recipe_is_an_error_naming_the_keys(tmp_path):
    write(tmp_path / LAST, small_cfg(), epoch=0, step=4, global_step=4)
    # The length of the run, logging, workers and paths may change; so may LR and CLIP_GRAD (after a divergence).
    path, _ = find_resume_checkpoint(small_cfg(AUTO_RESUME=True, EPOCHS=50, WORKERS=7, LOG_INTERVAL=3,
                                               OUTPUT='/elsewhere', RECOVERY_INTERVAL=9, LR=0.005, CLIP_GRAD=1.0),
                                     str(tmp_path), ONE, LOGGER)
    assert path.endswith(LAST)
    with pytest.raises(ResumeError, match=r'differs .* in SEED \(checkpoint 42, now 7\); WEIGHT_DECAY \(checkpoint '
                                          r'0\.0001, now 0\.5\)\. .*set those keys back'):
        find_resume_checkpoint(small_cfg(AUTO_RESUME=True, WEIGHT_DECAY=0.5, SEED=7), str(tmp_path), ONE, LOGGER)


@pytest.mark.filterwarnings('ignore:Detected call of `lr_scheduler.step')
@pytest.mark.parametrize('sched', ['cosine', 'step', 'linear_to_zero'])
def test_a_new_lr_gives_the_rest_of_the_schedule_that_lr_gives(sched):
    """rescale_lr in the middle of warm-up: from then on the LRs are those of the schedule built with the new LR
    (timm's schedules, their warm-up from WARMUP_LR included; the search's linear decay to 0)."""
    from lib.checkpoint.restore import rescale_lr
    from lib.search.parts import build_linear_schedule

    def schedule(lr):
        cfg = small_cfg(SCHED='step' if sched == 'linear_to_zero' else sched, WARMUP_EPOCHS=2, EPOCHS=6, LR=lr)
        optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2), lr=lr)
        if sched == 'linear_to_zero':
            return optimizer, build_linear_schedule(optimizer, total_steps=24)
        return optimizer, build_schedule(cfg, optimizer, steps_per_epoch=4)[0]

    def lrs(optimizer, scheduler, steps):
        seen = []
        for t in steps:  # timm's schedules per epoch (after epoch t - 1), the search's per update
            scheduler.step_epoch(t - 1, None) if sched != 'linear_to_zero' else scheduler.step()
            seen.append(optimizer.param_groups[0]['lr'])
        return seen

    old, new = schedule(0.01), schedule(0.005)
    lrs(*old, range(1, 2))
    lrs(*new, range(1, 2))
    rescale_lr(*old, 0.5)
    assert lrs(*old, range(2, 7)) == pytest.approx(lrs(*new, range(2, 7)))


def test_weights_of_another_network_are_a_resume_error_not_a_traceback(tmp_path):
    write(tmp_path / LAST, small_cfg(), epoch=0, step=4, global_step=4)
    checkpoint = torch.load(tmp_path / LAST, weights_only=True)
    model, optimizer, scheduler, ema = parts(small_cfg(INPUT_ARCH=[[0], [1], [1], [1], [1], [1], [0]]))
    with pytest.raises(ResumeError, match=r'another network .*shape mismatches: blocks\.1\.0.*MODEL_SELECTION'):
        apply_resume(checkpoint, 'last', model=model, optimizer=optimizer, scheduler=scheduler, scaler=None, ema=ema,
                     saver=CheckpointSaver(str(tmp_path), 2, True), steps_per_epoch=4, dist_ctx=ONE, logger=LOGGER)


def test_apply_resume_restores_state_position_history_and_rng(tmp_path):
    cfg = small_cfg()
    saver = CheckpointSaver(str(tmp_path), 2, True)
    saver.record(55.0, 0)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    write(tmp_path / RECOVERY, cfg, epoch=1, step=2, global_step=6, saver=saver)
    expected_draw = (random.random(), np.random.rand(), torch.rand(1).item())
    checkpoint = torch.load(tmp_path / RECOVERY, weights_only=True)

    model, optimizer, scheduler, ema = parts(small_cfg(SEED=7))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    fresh_saver = CheckpointSaver(str(tmp_path), 2, True)
    point = apply_resume(checkpoint, 'recovery', model=model, optimizer=optimizer, scheduler=scheduler, scaler=None,
                         ema=ema, saver=fresh_saver, steps_per_epoch=4, dist_ctx=ONE, logger=LOGGER)
    assert point.position == Position(epoch=1, step_in_epoch=2, global_step=6)
    assert torch.equal(point.epoch_totals, torch.arange(4.0))
    assert fresh_saver.history == [(55.0, 0)]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, checkpoint['state_dict'][name])
    restore_rank_rng(point)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected_draw

    with pytest.raises(ResumeError, match='mid-epoch'):
        apply_resume(checkpoint, 'recovery', model=model, optimizer=optimizer, scheduler=scheduler, scaler=None,
                     ema=ema, saver=fresh_saver, steps_per_epoch=5, dist_ctx=ONE, logger=LOGGER)


def test_a_released_checkpoint_gives_weights_and_epoch_and_a_fresh_optimizer(official, caplog):
    from lib.checkpoint.files import load_checkpoint_file
    cfg = load_config(None, ['MODEL_SELECTION', '14'])
    model, optimizer, scheduler, ema = parts(cfg)
    checkpoint = load_checkpoint_file(official)
    with caplog.at_level(logging.WARNING, logger='test.resume'):
        point = apply_resume(checkpoint, 'released', model=model, optimizer=optimizer, scheduler=scheduler,
                             scaler=None, ema=ema, saver=CheckpointSaver('.', 1, True), steps_per_epoch=4,
                             dist_ctx=ONE, logger=LOGGER)
    assert point.position.epoch == checkpoint['epoch'] + 1 and point.rng_state is None
    assert torch.equal(ema.module.conv_stem.weight, checkpoint['state_dict_ema']['conv_stem.weight'])
    assert 'not a retrain.py checkpoint' in caplog.text and 'optimizer starts fresh' in caplog.text
    assert current_lr(optimizer) > 0
