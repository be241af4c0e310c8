"""Per-sample augmentation seeds: each training image's random crop, flip, RandAugment and erasing are a
function of (SEED + rank, epoch, its position in the rank's epoch) only.

So the augmentation does not depend on how many worker processes load the data, on which worker gets
which batch, or on where a run was interrupted: a resumed run draws exactly what an uninterrupted run
draws, with or without workers, and no worker RNG state needs to be checkpointed.
"""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def sample_seeds(base_seed: int, epoch: int, count: int) -> np.ndarray:
    """``count`` 64-bit seeds for the positions 0..count-1 of ``epoch``: the SplitMix64 sequence started
    from a key that numpy's SeedSequence derives from (base_seed, epoch)."""
    key = np.random.SeedSequence([int(base_seed), int(epoch)]).generate_state(1, np.uint64)[0]
    with np.errstate(over='ignore'):
        z = key + (np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@contextlib.contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """Inside the block python's, numpy's and torch's CPU RNGs start from ``seed``; afterwards they are back
    where they were (in the main process, with WORKERS 0, the training's own draws must not shift)."""
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed((seed ^ (seed >> 32)) & 0xFFFFFFFF)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
