"""Issue 23's search switches, each on both sides: SUPERNET.HOW_TO_PROB 'fair' (and its exact resume),
SUPERNET.SAMPLE_WITHIN_BUDGET, SUPERNET.BOARD_ADMISSION."""
from collections import Counter

import pytest
import torch

from lib.config import load_config
from lib.data.loaders import build_val_loader, fixed_batch
from lib.errors import ConfigError
from lib.search.admission import admission_batch, held_out_prec1
from lib.search.builder import checked_budget
from lib.search.flops import build_search_space
from lib.search.measures import search_budget
from lib.search.parts import SearchConfigError
from lib.search.sampler import PathSampler, SamplerError, sampler_from_config
from lib.search.sampling_budget import SamplingBudgetError, check_sampling_budget
from lib.search.step import search_step
from lib.search.validate import validation_path
from tests.support.tiny_search import STUDENT, batch, make_search_parts

LAYERS = (2, 1, 3, 1, 2)
NUM_LAYERS = sum(LAYERS)


def flat(path):
    return [op for stage in path for op in stage]


# ---- HOW_TO_PROB 'fair' ------------------------------------------------------------------------------
def test_fair_trains_every_op_of_every_layer_once_per_round():
    sampler = PathSampler(LAYERS, 6, 'fair', seed=5)
    for _ in range(4):  # four rounds of six paths
        round_paths = [flat(sampler.sample()) for _ in range(6)]
        for layer in range(NUM_LAYERS):
            assert sorted(path[layer] for path in round_paths) == list(range(6))
    # The rounds differ (random permutations), and 'even' (uniform) is not fair: some op repeats within six draws.
    even = PathSampler(LAYERS, 6, 'even', seed=5)
    even_round = [flat(even.sample()) for _ in range(6)]
    assert any(len(set(path[layer] for path in even_round)) < 6 for layer in range(NUM_LAYERS))


def test_fair_resumes_mid_round_exactly():
    sampler = PathSampler(LAYERS, 6, 'fair', seed=9)
    for _ in range(8):  # one round and two paths into the next
        sampler.sample()
    state = sampler.state_dict()
    expected = [sampler.sample() for _ in range(10)]
    resumed = PathSampler(LAYERS, 6, 'fair', seed=9)
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(10)] == expected
    fresh = PathSampler(LAYERS, 6, 'fair', seed=9)  # without the state: another continuation
    assert [fresh.sample() for _ in range(10)] != expected


def test_fair_refuses_the_state_of_another_mode():
    state = PathSampler(LAYERS, 6, 'even', seed=1).state_dict()
    with pytest.raises(SamplerError, match='HOW_TO_PROB it was saved with'):
        PathSampler(LAYERS, 6, 'fair', seed=1).load_state_dict(state)


def test_fair_under_a_budget_draws_only_paths_within_it():
    within = lambda path: flat(path)[0] != 5  # noqa: E731
    sampler = PathSampler(LAYERS, 6, 'fair', seed=2, accept=within)
    assert all(within(sampler.sample()) for _ in range(30))


def test_config_accepts_fair_and_refuses_unknown_modes():
    cfg = load_config(None, ['SUPERNET.HOW_TO_PROB', 'fair'])
    assert sampler_from_config(cfg, LAYERS, 6, seed=0).how_to_prob == 'fair'
    with pytest.raises(ConfigError, match="HOW_TO_PROB is 'strict'"):
        load_config(None, ['SUPERNET.HOW_TO_PROB', 'strict'])


# ---- SAMPLE_WITHIN_BUDGET ------------------------------------------------------------------------------
def budget_cfg(within: bool, maximum: str = '43', how_to_prob: str = 'even'):
    return load_config(['configs/train.yaml'], ['SUPERNET.FLOPS_MAXIMUM', maximum, 'SUPERNET.HOW_TO_PROB', how_to_prob,
                                                'SUPERNET.SAMPLE_WITHIN_BUDGET', str(within)])


def test_default_samples_paths_outside_the_flops_budget():
    cfg = budget_cfg(False)
    space, latency, sampling = checked_budget(cfg)
    assert cfg.SUPERNET.SAMPLE_WITHIN_BUDGET is False and latency is None and sampling is None
    sampler = sampler_from_config(cfg, space.layers_per_stage, 6, seed=0)
    costs = [space.budget_flops(sampler.sample()) for _ in range(50)]
    assert sum(cost > 43 for cost in costs) > 40  # the 0-43 space: most paths lie above the budget


def test_sample_within_budget_redraws_paths_outside_it():
    cfg = budget_cfg(True)
    space, _, sampling = checked_budget(cfg)
    sampler = sampler_from_config(cfg, space.layers_per_stage, 6, seed=0, accept=sampling.within,
                                  budget_text=sampling.text)
    paths = [sampler.sample() for _ in range(50)]
    assert all(0 <= space.budget_flops(path) <= 43 for path in paths) and len(set(paths)) > 10
    # The epoch's random validation path keeps to it too.
    assert all(space.budget_flops(validation_path(cfg, space.layers_per_stage, 6, epoch, sampling.within)) <= 43
               for epoch in range(5))


def test_sample_within_budget_refuses_a_budget_the_space_cannot_meet():
    cfg = budget_cfg(True)
    space = build_search_space(cfg)  # paths cost 39.9..74.1 in the budget's measure
    tight = budget_cfg(True, maximum='39')
    with pytest.raises(SamplingBudgetError, match='SAMPLE_WITHIN_BUDGET True, but fewer than 0.001 of the paths'):
        check_sampling_budget(tight, search_budget(tight, space), 6)
    # The original's PRE_PROB favours k5e6, and almost never draws a path within 0-43: refused before any work.
    with pytest.raises(SamplingBudgetError, match="HOW_TO_PROB 'pre_prob' draws"):
        checked_budget(budget_cfg(True, how_to_prob='pre_prob'))
    with pytest.raises(SamplerError, match='FLOPs budget 0..1 MFLOPs'):  # the sampler's own message names it
        sampler_from_config(tight, space.layers_per_stage, 6, seed=0, accept=lambda path: False,
                            budget_text="the FLOPs budget 0..1 MFLOPs (the budget's measure)").sample()


# ---- BOARD_ADMISSION -----------------------------------------------------------------------------------
HELD_OUT = (torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(4)), torch.arange(12) % 5)


def test_train_batch_admission_scores_the_batch_the_student_stepped_on():
    session = make_search_parts('SUPERNET.POOL_SIZE', '2', 'SUPERNET.META_STA_EPOCH', '0')
    session.admission_batch = HELD_OUT  # there, but not read under the original's admission
    assert session.cfg.SUPERNET.BOARD_ADMISSION == 'train_batch'
    images, target = batch(6)
    sums = search_step(session, STUDENT, images, target, epoch=1)
    assert len(session.board) == 1
    assert session.board[0].prec1 == pytest.approx(sums[3].item() * 100 / 6)  # the step's own top-1 hits


def test_val_batch_admission_scores_the_held_out_batch_with_its_own_bn_statistics():
    session = make_search_parts('SUPERNET.POOL_SIZE', '2', 'SUPERNET.META_STA_EPOCH', '0',
                                'SUPERNET.BOARD_ADMISSION', 'val_batch')
    session.admission_batch = HELD_OUT
    images, target = batch(6)
    for _ in range(3):  # before the board phase: no offer; the running statistics move away from their init
        search_step(session, STUDENT, images, target, epoch=0)
    assert len(session.board) == 0
    buffers = {k: v.clone() for k, v in session.supernet.named_buffers()}
    score = held_out_prec1(session.supernet, STUDENT, HELD_OUT).item()
    assert session.supernet.training
    for name, value in session.supernet.named_buffers():  # the shared statistics are untouched
        assert torch.equal(value, buffers[name]), name
    # The same as evaluating after re-estimating the path's BN on exactly that batch (``recalibrated_bn``'s way).
    supernet = session.supernet
    bn = [m for m in supernet.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in bn:
            m.reset_running_stats()
            m.momentum = None
        supernet(HELD_OUT[0], STUDENT)
        supernet.eval()
        logits = supernet(HELD_OUT[0], STUDENT)
    expected = logits.argmax(1).eq(HELD_OUT[1]).double().mean().item() * 100
    assert score == pytest.approx(expected)
    for name, value in supernet.named_buffers():
        value.copy_(buffers[name])
    for m in bn:
        m.momentum = session.cfg.BATCHNORM.BN_MOMENTUM
    supernet.train()

    # A step of the board phase offers the student with its held-out score after the step.
    sums = search_step(session, STUDENT, images, target, epoch=1)
    assert len(session.board) == 1
    assert session.board[0].prec1 == pytest.approx(held_out_prec1(supernet, STUDENT, HELD_OUT).item())
    assert session.board[0].prec1 * 12 / 100 == pytest.approx(round(session.board[0].prec1 * 12 / 100))
    assert sums.shape == (7,)


def test_val_batch_admission_without_a_held_out_batch_is_one_clear_error():
    session = make_search_parts('SUPERNET.META_STA_EPOCH', '0', 'SUPERNET.BOARD_ADMISSION', 'val_batch')
    images, target = batch(6)
    with pytest.raises(SearchConfigError, match="BOARD_ADMISSION 'val_batch' needs the held-out batch"):
        search_step(session, STUDENT, images, target, epoch=1)


def test_admission_batch_is_a_fixed_seeded_draw_of_val_images(tiny_imagefolder):
    loader = build_val_loader(data_dir=str(tiny_imagefolder), image_size=32, batch_size=4, workers=0,
                              use_prefetcher=False)
    first, again = fixed_batch(loader, 5, seed=3), fixed_batch(loader, 5, seed=3)
    assert first[0].shape == (5, 3, 32, 32) and torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    other = fixed_batch(loader, 5, seed=4)
    assert not (torch.equal(other[0], first[0]) and torch.equal(other[1], first[1]))
    assert len(fixed_batch(loader, 100, seed=3)[1]) == 9  # capped at the val set's 9 images
    assert Counter(fixed_batch(loader, 9, seed=3)[1].tolist()) == {0: 3, 1: 3, 2: 3}
    cfg = load_config(None, ['DATASET.BATCH_SIZE', '4', 'SEED', '3', 'SUPERNET.SLICE', '2',
                             'SUPERNET.BOARD_ADMISSION', 'val_batch'])
    images, targets = admission_batch(cfg, loader)
    assert torch.equal(images, fixed_batch(loader, 4, seed=3)[0])
    assert admission_batch(load_config(None, ['SUPERNET.SLICE', '2', 'DATASET.BATCH_SIZE', '4']), loader) is None


# ---- the configs -----------------------------------------------------------------------------------------------
SWITCHES = {'HOW_TO_PROB': 'fair', 'SAMPLE_WITHIN_BUDGET': True, 'BOARD_ADMISSION': 'val_batch'}


def test_defaults_and_the_original_configs_keep_the_original_behaviour():
    for files in ([], ['configs/train.yaml'], ['configs/train_corrected.yaml'],
                  ['configs/experiments/fashion_search.yaml']):
        sn = load_config(files).SUPERNET
        assert (sn.HOW_TO_PROB, sn.SAMPLE_WITHIN_BUDGET, sn.BOARD_ADMISSION) == ('pre_prob', False, 'train_batch')


def test_recommended_configs_turn_the_switches_on_over_the_corrected_ones():
    corrected = load_config(['configs/train_corrected.yaml'])
    for files in (['configs/train_recommended.yaml'], ['configs/demo/train_recommended.yaml'],
                  ['configs/train_recommended.yaml', 'configs/experiments/fashion_search.yaml']):
        cfg = load_config(files)
        assert all(cfg.SUPERNET[key] == value for key, value in SWITCHES.items()), files
        assert cfg.SUPERNET.STEP_ONLY_PATH and cfg.SUPERNET.FLOPS_TABLE == corrected.SUPERNET.FLOPS_TABLE == 'counted'
    # Layered before a data config, the recommended switches stay on and the data's recipe and space win.
    layered = load_config(['configs/train_recommended.yaml', 'configs/experiments/fashion_search.yaml'])
    fashion = load_config(['configs/experiments/fashion_search.yaml'])
    assert (layered.DATA_DIR, layered.EPOCHS, layered.LR, layered.SUPERNET.RESOLUTION) == \
        (fashion.DATA_DIR, fashion.EPOCHS, fashion.LR, fashion.SUPERNET.RESOLUTION)
    assert checked_budget(layered)[0].layers_per_stage == checked_budget(fashion)[0].layers_per_stage == (1, 1, 3, 3, 2)
