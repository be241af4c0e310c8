"""Samplers: seeded resumable shuffling for training, padding-free sharding for validation."""
import itertools
from typing import Iterator, Optional, Sized, Tuple, Union

from torch.utils.data import Sampler
from torch.utils.data.distributed import DistributedSampler

from .seeding import sample_seeds


class ResumableDistributedSampler(DistributedSampler):
    """torch's DistributedSampler (shuffle seeded by seed + epoch, padded so ranks are equal)
    that can start an epoch at a given batch, for resuming from a mid-epoch recovery checkpoint.

    With ``augment_seed`` it yields ``(index, sample_seed)`` pairs: the seed of each sample's augmentation
    (``lib.data.seeding``), a function of (augment_seed, epoch, position in the epoch), which
    ``SkippingImageFolder`` applies. Works without torch.distributed: rank and world_size are explicit.
    """

    def __init__(self, dataset: Sized, *, rank: int, world_size: int, seed: int, batch_size: int,
                 augment_seed: Optional[int] = None):
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.batch_size = batch_size
        self.start_batch = 0
        self.augment_seed = augment_seed

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's order; skip its first start_batch batches (until the next set_epoch)."""
        if start_batch < 0 or start_batch * self.batch_size > self.num_samples:
            raise ValueError(f'start_batch {start_batch} is outside this epoch: a rank holds '
                             f'{self.num_samples} samples = {self.num_samples // self.batch_size} '
                             f'full batches of {self.batch_size}')
        super().set_epoch(epoch)
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[Union[int, Tuple[int, int]]]:
        start = self.start_batch * self.batch_size
        indices = itertools.islice(super().__iter__(), start, None)
        if self.augment_seed is None:
            return indices
        seeds = sample_seeds(self.augment_seed, self.epoch, self.num_samples)[start:].tolist()
        return zip(indices, seeds)

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
