"""SUPERNET.PROBE_SOURCE with two processes: 'rank' (the original) keeps each rank's own probe images and P_j,
so each rank picks its teacher from its own probes; 'rank0' broadcasts rank 0's. Either way the ranks keep the
same paths on the board and the same weights, and a checkpoint gives every rank its own probes back."""
import functools

import pytest
import torch
import torch.distributed as dist

from lib.checkpoint.format import SEARCH_FORMAT, gather_rank_states
from lib.checkpoint.restore import load_search_state
from lib.comm import broadcast_object
from lib.search.board import PrioritizedBoard
from lib.search.sampler import PathSampler
from lib.search.step import StepOutput, offer_to_board, search_step
from tests.support.tiny_search import NUM_CLASSES, SLICE, STUDENT, batch, make_search_parts
from tests.support.two_ranks import run_on_two_ranks

pytestmark = pytest.mark.process  # two gloo ranks, one a spawned process

OTHER_PATHS = (((0,), (1,), (2,), (3,), (4,)), ((5,), (4,), (3,), (2,), (1,)))
BATCH = 2 * SLICE


def rank_batch(rank: int):
    """Each rank's own images (a different batch on every rank, as a sharded loader gives)."""
    images, target = batch(BATCH)
    return images + 3.0 * rank, target


def all_equal(tensors) -> bool:
    flat = torch.cat([t.detach().reshape(-1).double() for t in tensors])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], other) for other in gathered[1:])


def _worker(rank, world_size, source):
    session = make_search_parts('SUPERNET.PROBE_SOURCE', source, 'SUPERNET.POOL_SIZE', '3',
                                  'SUPERNET.META_STA_EPOCH', '0')
    images, target = rank_batch(rank)
    # Three students enter the board, each with this rank's batch (same prec1 on both ranks: hits are averaged).
    for path in (STUDENT, *OTHER_PATHS):
        logits = torch.randn(BATCH, NUM_CLASSES, generator=torch.Generator().manual_seed(rank))
        out = StepOutput(logits=logits, loss=torch.tensor(1.0), kd=None, teacher_logits=None)
        assert offer_to_board(session, path, images, out, torch.tensor(float(rank + 1)), BATCH)
    own = images[:SLICE]
    rank0_images = rank_batch(0)[0][:SLICE]
    for entry in session.board:
        torch.testing.assert_close(entry.probe_images, own if source == 'rank' else rank0_images, rtol=0, atol=0)
    assert all_equal([torch.tensor([float(e.prec1) for e in session.board])])
    assert all_equal([e.probe_images for e in session.board]) == (source == 'rank0')

    # A distillation step: each rank picks its teacher from its own probes; the gradients are averaged.
    sums = search_step(session, STUDENT, images, target, epoch=1)
    assert sums[2] == BATCH  # it distilled
    assert all_equal([*session.supernet.parameters(), *session.mmn.parameters()])

    # What a checkpoint holds (rank 0 writes the board; every rank's probes come with the rank states) gives each
    # rank its own probes back.
    rank_states = gather_rank_states(extra={'board_probes': session.board.probe_state()} if source == 'rank' else None)
    sampler = PathSampler((1,) * 5, 6)
    saved = broadcast_object({'search_format': SEARCH_FORMAT, 'board': session.board.state_dict(),
                              'search_space': {'layers_per_stage': [1] * 5, 'resolution': 32},
                              'mmn': session.mmn.state_dict(), 'path_sampler': sampler.state_dict(),
                              'rank_states': rank_states})
    restored = PrioritizedBoard(session.board.pool_size, session.board.acc_gap)
    load_search_state(saved, 'the checkpoint', search_space=saved['search_space'], supernet=session.supernet,
                      mmn=session.mmn, board=restored, path_sampler=sampler, device=None, rank=rank)
    for before, after in zip(session.board, restored):
        assert before.path == after.path
        torch.testing.assert_close(after.probe_images, before.probe_images, rtol=0, atol=0)
        torch.testing.assert_close(after.probe_probs, before.probe_probs, rtol=0, atol=0)


@pytest.mark.parametrize('source', ['rank', 'rank0'])
def test_probe_source_on_two_ranks(tmp_path, source):
    run_on_two_ranks(functools.partial(_worker, source=source), tmp_path)
