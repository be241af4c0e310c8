"""Fashion-MNIST (Xiao et al. 2017: 28x28 grey images of 10 kinds of clothing, 60,000 for training and 10,000 for
testing) written as an ImageFolder: ``train/`` and ``val/`` a fixed, seeded, per-class split of the training set,
``test/`` from the test set, kept apart for the final report.

The images come from the Debian package ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``: gzipped
idx files in /usr/share/datasets/fashion-mnist), read by the small idx reader below; nothing is downloaded.
"""
import gzip
import json
import os
import struct
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image

from lib.errors import DataError
from lib.fileio import atomic_directory

DEFAULT_SOURCE = '/usr/share/datasets/fashion-mnist'
INFO_FILE = 'fashion_dataset.json'
CLASSES = ('t-shirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot')
FILES = {'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
         'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')}
_UBYTE = 0x08  # the idx type code of unsigned bytes, the only one Fashion-MNIST uses


class IdxFormatError(DataError):
    """A file that is not the gzipped idx file of unsigned bytes it should be."""


class DatasetExistsError(DataError):
    """The output folder holds something other than the dataset asked for."""


def read_idx(path: str) -> np.ndarray:
    """The uint8 array of a gzipped idx file (magic: two zero bytes, type 0x08, number of dimensions; then each
    dimension as a big-endian int32; then the data)."""
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise IdxFormatError(f'{path} is not a readable gzip file ({err}); reinstall it with '
                             'apt-get install --reinstall dataset-fashion-mnist') from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UBYTE or data[3] < 1:
        raise IdxFormatError(f'{path} is not an idx file of unsigned bytes (header {data[:4].hex()}); reinstall it '
                             'with apt-get install --reinstall dataset-fashion-mnist')
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f'{path}: idx header cut short; reinstall it with apt-get install --reinstall '
                             'dataset-fashion-mnist')
    shape = struct.unpack(f'>{ndim}i', data[4:header])
    if len(data) - header != int(np.prod(shape)):
        raise IdxFormatError(f'{path}: the header gives shape {shape} ({int(np.prod(shape))} bytes) but '
                             f'{len(data) - header} bytes follow; reinstall it with apt-get install --reinstall '
                             'dataset-fashion-mnist')
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def load_split(source: str, split: str) -> Tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of ``split`` ('train' or 'test') from the folder ``source``."""
    image_file, label_file = (os.path.join(source, name) for name in FILES[split])
    missing = [p for p in (image_file, label_file) if not os.path.isfile(p)]
    if missing:
        raise DataError(f'Fashion-MNIST file {missing[0]} not found: install the package with '
                        'apt-get install dataset-fashion-mnist (it puts the idx files in '
                        f'{DEFAULT_SOURCE}), or pass --source with the folder holding them')
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IdxFormatError(f'{source}: {split} images {images.shape} and labels {labels.shape} do not match; '
                             'reinstall with apt-get install --reinstall dataset-fashion-mnist')
    if labels.size and labels.max() >= len(CLASSES):
        raise IdxFormatError(f'{label_file}: label {int(labels.max())} outside 0..{len(CLASSES) - 1}')
    return images, labels.astype(np.int64)


def per_class_split(labels: np.ndarray, val_per_class: int, train_per_class: int, seed: int) -> Dict[str, np.ndarray]:
    """Per class, a seeded shuffle: its first ``val_per_class`` images go to val, the next ``train_per_class``
    (0: all the rest) to train. The same seed gives the same split; val never depends on ``train_per_class``."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in range(len(CLASSES)):
        members = rng.permutation(np.flatnonzero(labels == label))
        if len(members) <= val_per_class:
            raise DataError(f'class {CLASSES[label]} has {len(members)} training images, not more than '
                            f'--val-per-class {val_per_class}; lower --val-per-class')
        val.append(members[:val_per_class])
        rest = members[val_per_class:]
        train.append(rest[:train_per_class] if train_per_class > 0 else rest)
    return {'train': np.sort(np.concatenate(train)), 'val': np.sort(np.concatenate(val))}


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` indices of each class, in file order (0: all): the test set is not shuffled."""
    if per_class <= 0:
        return np.arange(len(labels))
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(len(CLASSES))]))


def _write_images(folder: str, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, image_size: int) -> None:
    for name in CLASSES:
        os.makedirs(os.path.join(folder, name))
    for index in indices:
        image = Image.fromarray(images[index])
        if image_size != image.width:
            image = image.resize((image_size, image_size), Image.BICUBIC)
        image.convert('RGB').save(os.path.join(folder, CLASSES[labels[index]], f'{index:05d}.png'))


def write_fashion_imagefolder(root: str, *, source: str = DEFAULT_SOURCE, image_size: int = 28,
                              train_per_class: int = 0, val_per_class: int = 500, test_per_class: int = 0,
                              seed: int = 0) -> dict:
    """Write root/{train,val,test}/<class>/<index>.png (RGB; resized bicubically to ``image_size``) atomically and
    return the dataset's info (also root/fashion_dataset.json). A root holding this very dataset is left as it is;
    one holding anything else is refused (DatasetExistsError)."""
    if image_size < 8:
        raise DataError(f'--image-size must be at least 8 px; got {image_size}')
    if val_per_class < 1 or train_per_class < 0 or test_per_class < 0:
        raise DataError(f'--val-per-class must be at least 1 and --train-per-class, --test-per-class 0 (all) or '
                        f'more; got {val_per_class}, {train_per_class}, {test_per_class}')
    root = os.path.abspath(os.fspath(root))
    wanted = {'source': 'Fashion-MNIST (Xiao et al. 2017), Debian package dataset-fashion-mnist',
              'image_size': image_size, 'seed': seed, 'train_per_class': train_per_class,
              'val_per_class': val_per_class, 'test_per_class': test_per_class, 'classes': list(CLASSES)}
    existing = _existing_info(root)
    if existing is not None:
        if {k: existing.get(k) for k in wanted if k != 'source'} == {k: v for k, v in wanted.items() if k != 'source'}:
            return existing
        differ = ', '.join(f'{k} {existing.get(k)!r} (asked: {v!r})' for k, v in wanted.items()
                           if k != 'source' and existing.get(k) != v)
        raise DatasetExistsError(f'{root} holds another Fashion-MNIST data set ({differ}); choose another --out')
    train_images, train_labels = load_split(source, 'train')
    test_images, test_labels = load_split(source, 'test')
    splits = per_class_split(train_labels, val_per_class, train_per_class, seed)
    test = first_per_class(test_labels, test_per_class)
    with atomic_directory(root) as tmp:
        for split, indices in splits.items():
            _write_images(os.path.join(tmp, split), train_images, train_labels, indices, image_size)
        _write_images(os.path.join(tmp, 'test'), test_images, test_labels, test, image_size)
        info = dict(wanted, train_images=int(len(splits['train'])), val_images=int(len(splits['val'])),
                    test_images=int(len(test)))
        with open(os.path.join(tmp, INFO_FILE), 'w') as f:
            json.dump(info, f, indent=1)
    return info


def _existing_info(root: str) -> Optional[dict]:
    """The info of the Fashion-MNIST set in ``root``; None when root is missing or empty; refused otherwise."""
    if not os.path.exists(root) or (os.path.isdir(root) and not os.listdir(root)):
        return None
    info_path = os.path.join(root, INFO_FILE)
    if not os.path.isfile(info_path):
        raise DatasetExistsError(f'{root} exists and holds no Fashion-MNIST data set written by this tool '
                                 f'({INFO_FILE} missing); choose another --out or delete it')
    with open(info_path) as f:
        return json.load(f)
