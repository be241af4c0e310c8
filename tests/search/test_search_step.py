"""The one search step train.py and tools/benchmark.py share (``loop.search_step``), the meta-matching
network's float32 scores under autocast, and the coalesced gradient all-reduce's copy back."""
import pytest
import torch

from lib.comm import all_reduce_mean_
from lib.search.meta_matching import MetaMatchingNetwork
from lib.search.step import search_step
from tests.support.tiny_search import IMAGE, NUM_CLASSES, SLICE, STUDENT, batch, make_search_parts
from tests.support.two_ranks import run_on_two_ranks

BATCH = 6


def make_session(*overrides):
    return make_search_parts('SUPERNET.POOL_SIZE', '2', 'SUPERNET.META_STA_EPOCH', '0', *overrides)


def test_search_step_sums_and_board_offers_follow_the_epoch():
    session = make_session('SUPERNET.STEP_ONLY_PATH', 'True')
    images, target = batch(BATCH)
    path_ids = {id(p) for p in session.supernet.path_parameters(STUDENT).values()}
    before = {name: p.detach().clone() for name, p in session.supernet.named_parameters()}

    sums = search_step(session, STUDENT, images, target, epoch=0)  # epoch <= META_STA_EPOCH: CE, no board
    assert sums.shape == (7,) and sums.dtype == torch.float64
    loss_sum, kd_sum, kd_images, _, _, images_seen, meta = sums.tolist()
    assert (kd_sum, kd_images, images_seen, meta) == (0.0, 0.0, BATCH, 0.0) and loss_sum > 0
    assert len(session.board) == 0
    for name, param in session.supernet.named_parameters():  # only the path moved
        assert torch.equal(param, before[name]) != (id(param) in path_ids), name
    assert all(p.grad is None for p in session.supernet.parameters() if id(p) not in path_ids)

    search_step(session, STUDENT, images, target, epoch=1)  # empty board: CE, then the student enters
    assert [e.path for e in session.board] == [STUDENT]
    entry = session.board[0]
    assert entry.probe_images.shape == (SLICE, 3, IMAGE, IMAGE)
    torch.testing.assert_close(entry.probe_images, images[:SLICE])

    sums = search_step(session, STUDENT, images, target, epoch=1, meta_updates=1)  # board filled: distillation
    assert sums[1] > 0 and sums[2] == BATCH and sums[6] == 1


def test_distillation_step_runs_under_bf16_autocast_with_channels_last():
    session = make_session('AMP', 'True', 'AMP_DTYPE', 'bfloat16', 'CHANNELS_LAST', 'True')
    session.supernet.to(memory_format=torch.channels_last)
    images, target = batch(BATCH)
    images = images.contiguous(memory_format=torch.channels_last)
    for path in (STUDENT, ((0,), (1,), (2,), (3,), (4,))):  # two board entries, then distillation
        search_step(session, path, images, target, epoch=1)
    sums = search_step(session, ((5,), (5,), (5,), (5,), (5,)), images, target, epoch=1)
    assert torch.isfinite(sums).all() and sums[2] == BATCH
    assert all(e.probe_images.is_contiguous(memory_format=torch.channels_last) for e in session.board)


def test_mmn_scores_in_float32_under_autocast():
    mmn = MetaMatchingNetwork(SLICE, NUM_CLASSES)
    delta = torch.randn(3, SLICE, NUM_CLASSES)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        scores = mmn(delta)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, mmn(delta), rtol=0, atol=0)


def _all_reduce_worker(rank, world_size):
    conv = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) * (rank + 1)
    conv = conv.contiguous(memory_format=torch.channels_last)
    bias = torch.full((3,), 10.0 * rank)
    counts = torch.tensor([rank, 4 * rank], dtype=torch.float64)  # a second dtype: its own collective
    expected_conv = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2) * 1.5
    all_reduce_mean_([conv, bias, counts])
    assert torch.equal(conv, expected_conv) and conv.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(bias, torch.full((3,), 5.0))
    assert torch.equal(counts, torch.tensor([0.5, 2.0], dtype=torch.float64))


@pytest.mark.process
def test_all_reduce_mean_copies_every_tensor_back_in_its_own_layout(tmp_path):
    run_on_two_ranks(_all_reduce_worker, tmp_path)
