"""ImageNet-style folders: locating DATA_DIR/{train,val} and reading them while skipping bad files."""
import logging
import os
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from lib.errors import CreamError

logger = logging.getLogger('cream.data')

# What PIL raises for a file that is not a decodable image (truncated, garbage, unsupported, bomb).
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class DataError(CreamError, FileNotFoundError):
    """The dataset folder is missing or unusable; the message names the path and the fix."""


def _fix_hint(split: str) -> str:
    return (f'put ImageNet {split} images there as class sub-folders (DATA_DIR/{split}/<class>/<image>), '
            f'or set DATA_DIR to a folder holding train/ and val/, or use configs/demo/*.yaml '
            f'(DATASET.GENERATE_DEMO: True creates a small demo dataset)')


def split_dir(data_dir: str, split: str) -> str:
    """Path of DATA_DIR/<split>; raises DataError when it does not exist."""
    path = os.path.join(os.fspath(data_dir), split)
    if not os.path.isdir(path):
        raise DataError(f'DATA_DIR/{split} not found: {path!r} is not a directory; {_fix_hint(split)}')
    return path


class SkippingImageFolder(ImageFolder):
    """ImageFolder whose unreadable images yield None (logged by path) instead of raising.

    Workers live in other processes, so the skip count is taken in the main process from the
    None markers (see SkipFailedCollate), not from a counter here.
    """

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except UNREADABLE_IMAGE_ERRORS as err:
            logger.warning('skipping unreadable image %s (%s: %s)', path, type(err).__name__, err)
            return None
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


def open_image_folder(data_dir: str, split: str, transform: Optional[Callable] = None,
                      num_classes: Optional[int] = None) -> SkippingImageFolder:
    """DATA_DIR/<split> as a SkippingImageFolder; every problem is one DataError with the fix."""
    path = split_dir(data_dir, split)
    try:
        dataset = SkippingImageFolder(path, transform=transform)
    except FileNotFoundError as err:  # torchvision: no class folders, or a class folder without images
        raise DataError(f'DATA_DIR/{split} at {path!r} holds no usable class folders ({err}); '
                        f'{_fix_hint(split)}') from err
    found = len(dataset.classes)
    if num_classes is not None and found > num_classes:
        raise DataError(f'DATA_DIR/{split} at {path!r} has {found} class folders but '
                        f'DATASET.NUM_CLASSES is {num_classes}; set DATASET.NUM_CLASSES to '
                        f'{found} or point DATA_DIR at the matching dataset')
    if num_classes is not None and found < num_classes:
        # A subset of the classes (e.g. a few ImageNet classes) is legitimate; say so once.
        logger.warning('DATA_DIR/%s at %s has %d class folders for a %d-class network; the labels are '
                       'the folders\' sorted order', split, path, found, num_classes)
    return dataset


class SkipFailedCollate:
    """Drops the None markers of unreadable images; returns (images, targets, num_skipped).

    images/targets are None when the whole batch was unreadable. A class (not a closure) so that
    it pickles into spawned workers.
    """

    def __init__(self, collate_fn: Callable[[List[Tuple]], Tuple[torch.Tensor, torch.Tensor]]):
        self.collate_fn = collate_fn

    def __call__(self, batch: Sequence[Optional[Tuple]]):
        good = [sample for sample in batch if sample is not None]
        skipped = len(batch) - len(good)
        if not good:
            return None, None, skipped
        images, targets = self.collate_fn(good)
        return images, targets, skipped
