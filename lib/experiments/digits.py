"""The UCI handwritten digits that scikit-learn ships (1797 images of 8x8 px, 16 grey levels, 10 classes;
``sklearn.datasets.load_digits`` reads them from the package, nothing is downloaded), written as an
ImageFolder tree with a fixed, stratified train/val split.

scikit-learn is an optional extra (``pip install -e '.[experiments]'``), imported only when this runs.
"""
import json
import os
from typing import Dict

import numpy as np
from PIL import Image

from lib.errors import CreamError
from lib.fileio import atomic_directory

INFO_FILE = 'digits_dataset.json'
NUM_CLASSES = 10
_MAX_VALUE = 16  # load_digits' grey levels are 0..16


class MissingExtraError(CreamError, ImportError):
    """An optional dependency of the experiment tools is not installed."""


def load_digits_arrays():
    """(images uint8 [N, 8, 8] in 0..255, labels int [N]) from scikit-learn's bundled copy."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise MissingExtraError("the digits data set comes with scikit-learn: pip install -e '.[experiments]' "
                                '(or pip install scikit-learn)') from None
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / _MAX_VALUE)).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def split_indices(labels: np.ndarray, val_fraction: float, seed: int) -> Dict[str, np.ndarray]:
    """A stratified split: per class, a seeded shuffle puts round(val_fraction * count) images in val."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f'val_fraction must be in (0, 1); got {val_fraction}')
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(val_fraction * len(members)))
        val.append(members[:n_val])
        train.append(members[n_val:])
    return {'train': np.sort(np.concatenate(train)), 'val': np.sort(np.concatenate(val))}


def write_digits_imagefolder(root: str, image_size: int = 32, val_fraction: float = 0.2, seed: int = 0,
                             images: np.ndarray = None, labels: np.ndarray = None) -> dict:
    """Write root/{train,val}/<digit>/<index>.png (RGB, the 8x8 digit upscaled bicubically to ``image_size``)
    atomically; root must not exist or be empty. ``images``/``labels`` default to scikit-learn's digits.
    Returns the dataset's info (also written to root/digits_dataset.json)."""
    if image_size < 8:
        raise ValueError(f'image_size must be >= 8 (the digits are 8x8); got {image_size}')
    if images is None:
        images, labels = load_digits_arrays()
    splits = split_indices(labels, val_fraction, seed)
    root = os.path.abspath(os.fspath(root))
    with atomic_directory(root) as tmp:
        for split, indices in splits.items():
            for label in range(NUM_CLASSES):
                os.makedirs(os.path.join(tmp, split, f'digit_{label}'))
            for index in indices:
                image = Image.fromarray(images[index]).resize((image_size, image_size), Image.BICUBIC)
                image.convert('RGB').save(os.path.join(tmp, split, f'digit_{labels[index]}', f'{index:05d}.png'))
        info = {'source': 'sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)',
                'image_size': image_size, 'val_fraction': val_fraction, 'seed': seed,
                'train_images': int(len(splits['train'])), 'val_images': int(len(splits['val'])),
                'num_classes': NUM_CLASSES}
        with open(os.path.join(tmp, INFO_FILE), 'w') as f:
            json.dump(info, f, indent=1)
    return info
