"""Samplers: seeded resumable shuffling for training, padding-free sharding for validation."""
import itertools
from typing import Iterator, Sized

from torch.utils.data import Sampler
from torch.utils.data.distributed import DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """torch's DistributedSampler (shuffle seeded by seed + epoch, padded so ranks are equal)
    that can start an epoch at a given batch, for resuming from a mid-epoch recovery checkpoint.

    Works without torch.distributed: rank and world_size are explicit.
    """

    def __init__(self, dataset: Sized, *, rank: int, world_size: int, seed: int, batch_size: int):
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.batch_size = batch_size
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order; skip its first start_batch batches (until the next set_epoch)."""
        if start_batch < 0 or start_batch * self.batch_size > self.num_samples:
            raise ValueError(f'start_batch {start_batch} is outside this epoch: a rank holds '
                             f'{self.num_samples} samples = {self.num_samples // self.batch_size} '
                             f'full batches of {self.batch_size}')
        super().set_epoch(epoch)
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(super().__iter__(), self.start_batch * self.batch_size, None)

    def __len__(self) -> int:
        return self.num_samples - self.start_batch * self.batch_size


class ShardSampler(Sampler[int]):
    """Rank r takes samples r, r + world_size, ... in order: every sample exactly once across ranks,
    no padding, so shard lengths differ by at most one (sum correct counts, not averages)."""

    def __init__(self, dataset: Sized, *, rank: int, world_size: int):
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f'need 0 <= rank < world_size, got rank {rank}, world_size {world_size}')
        self.indices = range(rank, len(dataset), world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
