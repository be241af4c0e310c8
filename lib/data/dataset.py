"""ImageNet-style folders: locating DATA_DIR/{train,val} and reading them while skipping bad files."""
import logging
import os
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import find_classes

from .seeding import seeded_rngs

from lib.errors import DataError

logger = logging.getLogger('cream.data')

# What PIL raises for a file that is not a decodable image (truncated, garbage, unsupported, bomb).
UNREADABLE_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


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

    def __getitem__(self, index: Union[int, Tuple[int, int]]):
        """``index`` or ``(index, seed)``: with a seed (from the training sampler) the image's augmentation
        draws from RNGs seeded with it, so it is the same in any worker, or in the main process."""
        if isinstance(index, tuple):
            index, seed = index
            with seeded_rngs(seed):
                return self._load(index)
        return self._load(index)

    def _load(self, index: int):
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


def _check_same_classes(data_dir: str, split: str, classes: List[str]) -> None:
    """DataError when DATA_DIR/train exists with other class folders than DATA_DIR/<split>.

    Labels are the positions of the folder names in sorted order, so one class missing, extra or renamed
    on one side shifts the labels of all classes after it."""
    train_path = os.path.join(os.fspath(data_dir), 'train')
    if not os.path.isdir(train_path):
        return  # evaluating a val folder alone (test.py) is fine
    try:
        train_classes, _ = find_classes(train_path)
    except FileNotFoundError:
        return  # no class folders at all: the train loader reports that
    if train_classes == list(classes):
        return
    only_train = sorted(set(train_classes) - set(classes))
    only_split = sorted(set(classes) - set(train_classes))

    def names(items: List[str]) -> str:
        return ', '.join(items[:5]) + (f', ... ({len(items)})' if len(items) > 5 else '') if items else 'none'

    raise DataError(f'DATA_DIR/train and DATA_DIR/{split} in {os.fspath(data_dir)!r} hold different class folders '
                    f'(only in train: {names(only_train)}; only in {split}: {names(only_split)}): labels are the '
                    'sorted folder names, so every label after a difference would be shifted. Give both the '
                    'same class folders')


def open_image_folder(data_dir: str, split: str, transform: Optional[Callable] = None,
                      num_classes: Optional[int] = None) -> SkippingImageFolder:
    """DATA_DIR/<split> as a SkippingImageFolder; every problem is one DataError with the fix."""
    path = split_dir(data_dir, split)
    try:
        dataset = SkippingImageFolder(path, transform=transform)
    except FileNotFoundError as err:  # torchvision: no class folders, or a class folder without images
        raise DataError(f'DATA_DIR/{split} at {path!r} holds no usable class folders ({err}); '
                        f'{_fix_hint(split)}') from err
    if split != 'train':
        _check_same_classes(data_dir, split, dataset.classes)
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
