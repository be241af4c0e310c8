"""Random batches on the device and a loader cycling over them: input for timing steps without a data set
(tools/benchmark.py, tools/profile_step.py)."""
from typing import List, Tuple

import torch


class SyntheticLoader:
    """``steps`` batches cycling over a few pre-made device batches (what the training loops iterate over)."""

    def __init__(self, batches, steps: int):
        self.batches, self.steps = batches, steps
        self.batch_size = batches[0][0].shape[0]

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for step in range(self.steps):
            yield self.batches[step % len(self.batches)]


def random_batches(batch_size: int, image_size: int, num_classes: int, device: torch.device, *, seed: int,
                   channels_last: bool = False, count: int = 2) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """``count`` (images, labels) batches of normal noise and uniform labels, drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        images = torch.randn(batch_size, 3, image_size, image_size, generator=generator)
        target = torch.randint(0, num_classes, (batch_size,), generator=generator)
        images = images.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        batches.append((images, target.to(device)))
    return batches
