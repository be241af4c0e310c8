"""Path sampling: the same paths on every rank, the three probability modes, checkpointable state."""
import io
from collections import Counter

import pytest
import torch

from lib.search.sampler import PathSampler, SamplerError

LAYERS = (2, 1, 3, 1, 2)
PRE_PROB = (0.05, 0.2, 0.05, 0.5, 0.05, 0.15)


def op_counts(sampler, draws, **kwargs):
    counts = Counter()
    for _ in range(draws):
        counts.update(op for stage in sampler.sample(**kwargs) for op in stage)
    return counts


def test_paths_have_one_op_per_layer_and_every_rank_draws_the_same():
    ranks = [PathSampler(LAYERS, 6, 'even', seed=7) for _ in range(2)]
    global_state = torch.get_rng_state()
    for _ in range(20):
        path = ranks[0].sample()
        assert path == ranks[1].sample()
        assert tuple(len(stage) for stage in path) == LAYERS
        assert all(isinstance(op, int) and 0 <= op < 6 for stage in path for op in stage)
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is never used
    assert PathSampler(LAYERS, 6, 'even', seed=8).sample() != PathSampler(LAYERS, 6, 'even', seed=7).sample()


def test_even_is_uniform():
    counts = op_counts(PathSampler(LAYERS, 6, 'even', seed=0), 600)  # 5400 layers
    assert set(counts) == set(range(6))
    assert all(abs(counts[op] / 5400 - 1 / 6) < 0.03 for op in range(6))


def test_pre_prob_follows_the_probabilities():
    counts = op_counts(PathSampler(LAYERS, 6, 'pre_prob', pre_prob=PRE_PROB, seed=0), 600)
    for op, p in enumerate(PRE_PROB):
        assert abs(counts[op] / 5400 - p) < 0.03
    never = op_counts(PathSampler(LAYERS, 6, 'pre_prob', pre_prob=(0.5, 0, 0, 0, 0, 0.5), seed=0), 50)
    assert set(never) == {0, 5}


@pytest.mark.parametrize('pre_prob, message', [
    ((0.5, 0.5), 'has 2 entries but the supernet has 6 ops'),
    ((0.5, 0.5, 0.5, 0.0, 0.0, 0.0), 'sum to 1'),
    ((1.5, -0.5, 0.0, 0.0, 0.0, 0.0), 'non-negative'),
    (None, 'needs SUPERNET.PRE_PROB'),
])
def test_bad_pre_prob_is_refused(pre_prob, message):
    with pytest.raises(SamplerError, match=message):
        PathSampler(LAYERS, 6, 'pre_prob', pre_prob=pre_prob)


def test_bad_mode_is_refused():
    with pytest.raises(SamplerError, match='HOW_TO_PROB'):
        PathSampler(LAYERS, 6, 'uniform')


def test_teacher_uses_board_op_frequencies():
    board = []
    sampler = PathSampler(LAYERS, 6, 'teacher', seed=3, board_paths=lambda: board)
    even = PathSampler(LAYERS, 6, 'even', seed=3)
    # Empty board: uniform, drawn exactly as 'even' draws.
    assert [sampler.sample() for _ in range(5)] == [even.sample() for _ in range(5)]
    board.extend([((1, 1), (1,), (1, 1, 1), (1,), (1, 1)), ((3, 3), (3,), (3, 3, 3), (3,), (1, 1))])
    counts = op_counts(sampler, 300)  # board ops: 1 x 11, 3 x 7
    assert set(counts) == {1, 3}
    assert abs(counts[1] / (counts[1] + counts[3]) - 11 / 18) < 0.04
    # The board can also be passed per call.
    assert set(op_counts(sampler, 10, board_paths=[((5, 5), (5,), (5, 5, 5), (5,), (5, 5))])) == {5}


def test_teacher_needs_the_board():
    with pytest.raises(SamplerError, match='board_paths'):
        PathSampler(LAYERS, 6, 'teacher').sample()


def test_state_dict_resumes_the_sequence():
    sampler = PathSampler(LAYERS, 6, 'pre_prob', pre_prob=PRE_PROB, seed=11)
    for _ in range(7):
        sampler.sample()
    buffer = io.BytesIO()
    torch.save(sampler.state_dict(), buffer)
    expected = [sampler.sample() for _ in range(5)]
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert isinstance(state['generator'], torch.Tensor)
    resumed = PathSampler(LAYERS, 6, 'pre_prob', pre_prob=PRE_PROB, seed=11)
    resumed.load_state_dict(state)
    assert [resumed.sample() for _ in range(5)] == expected
