import math

import pytest

from lib.data import ResumableDistributedSampler, ShardSampler

DATA = list(range(23))


def _train_sampler(rank=0, world_size=1, seed=0, batch_size=4, dataset=DATA):
    return ResumableDistributedSampler(dataset, rank=rank, world_size=world_size, seed=seed,
                                       batch_size=batch_size)


def _epoch(sampler, epoch, start_batch=0):
    sampler.set_epoch(epoch, start_batch=start_batch)
    order = list(sampler)
    assert len(order) == len(sampler)
    return order


def test_train_sampler_world_size_one_is_a_permutation():
    assert sorted(_epoch(_train_sampler(), 0)) == DATA


@pytest.mark.parametrize('world_size', [2, 3, 4])
def test_train_sampler_ranks_cover_everything_with_equal_lengths(world_size):
    shards = [_epoch(_train_sampler(rank=r, world_size=world_size), 5) for r in range(world_size)]
    assert {len(s) for s in shards} == {math.ceil(len(DATA) / world_size)}
    flat = [i for s in shards for i in s]
    assert set(flat) == set(DATA)
    assert len(flat) - len(set(flat)) == world_size * math.ceil(len(DATA) / world_size) - len(DATA)


def test_train_order_depends_only_on_seed_and_epoch():
    a, b = _train_sampler(seed=7), _train_sampler(seed=7)
    assert _epoch(a, 0) == _epoch(b, 0)
    assert _epoch(a, 3) == _epoch(b, 3)
    assert _epoch(a, 0) == _epoch(_train_sampler(seed=7), 0)  # after other epochs, too
    assert _epoch(a, 0) != _epoch(a, 1)
    assert _epoch(a, 0) != _epoch(_train_sampler(seed=8), 0)


def test_start_batch_skips_batches_for_that_epoch_only():
    sampler = _train_sampler(rank=1, world_size=2, seed=1, batch_size=4)
    full = _epoch(sampler, 2)
    assert _epoch(sampler, 2, start_batch=2) == full[8:]
    assert len(sampler) == len(full) - 8
    assert _epoch(sampler, 2, start_batch=3) == []  # 12 samples on this rank: all skipped
    assert len(_epoch(sampler, 3)) == len(full)  # the next epoch starts at its beginning


def test_start_batch_outside_epoch_is_an_error():
    sampler = _train_sampler(batch_size=4)
    with pytest.raises(ValueError, match='start_batch 6'):
        sampler.set_epoch(0, start_batch=6)
    with pytest.raises(ValueError):
        sampler.set_epoch(0, start_batch=-1)


@pytest.mark.parametrize('world_size', [1, 2, 3, 5])
def test_shard_sampler_counts_every_sample_exactly_once(world_size):
    shards = [list(ShardSampler(DATA, rank=r, world_size=world_size)) for r in range(world_size)]
    assert sorted(i for s in shards for i in s) == DATA
    lengths = [len(ShardSampler(DATA, rank=r, world_size=world_size)) for r in range(world_size)]
    assert lengths == [len(s) for s in shards] and max(lengths) - min(lengths) <= 1
    assert all(s == sorted(s) for s in shards)


def test_shard_sampler_more_ranks_than_samples():
    shards = [list(ShardSampler(DATA[:2], rank=r, world_size=3)) for r in range(3)]
    assert shards == [[0], [1], []]


def test_shard_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match='rank 2'):
        ShardSampler(DATA, rank=2, world_size=2)


def test_augment_seeds_follow_the_position_in_the_epoch():
    def epoch(start_batch=0, epoch=2, augment_seed=9):
        sampler = ResumableDistributedSampler(DATA, rank=0, world_size=1, seed=0, batch_size=4,
                                              augment_seed=augment_seed)
        return _epoch(sampler, epoch, start_batch)
    whole = epoch()
    assert [index for index, _ in whole] == _epoch(_train_sampler(), 2)  # the same order as without seeds
    assert epoch(start_batch=3) == whole[12:]
    seeds = [seed for _, seed in whole]
    assert len(set(seeds)) == len(seeds) and all(0 <= s < 2 ** 64 for s in seeds)
    assert not set(seeds) & {seed for _, seed in epoch(epoch=3)}
    assert not set(seeds) & {seed for _, seed in epoch(augment_seed=10)}
