"""tools/make_fashion_data.py on tiny gzipped idx files of its own (no package needed): the seeded per-class split,
the separate test set, the resize, the refusals."""
import gzip
import json
import os
import struct

import numpy as np
import pytest
from PIL import Image

from lib.engine.guard import exit_on_error
from lib.experiments.fashion import (CLASSES, INFO_FILE, DatasetExistsError, IdxFormatError, load_split,
                                     per_class_split, read_idx)
from tests.support.scripts_as_modules import load_script

make_fashion_data = load_script('tools/make_fashion_data.py')
TRAIN_PER_CLASS, TEST_PER_CLASS = 6, 3


def write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f'>{array.ndim}i', *array.shape)
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def image_of(index: int, label: int) -> np.ndarray:
    """A 28x28 image telling its index (left half) and its label (right half) by grey level."""
    image = np.zeros((28, 28), np.uint8)
    image[:, :14] = 4 * index
    image[:, 14:] = 20 * label + 5
    return image


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / 'fashion-mnist'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, per_class in (('train', TRAIN_PER_CLASS), ('t10k', TEST_PER_CLASS)):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        images = np.stack([image_of(i, label) for i, label in enumerate(labels)])
        write_idx(folder / f'{prefix}-images-idx3-ubyte.gz', images)
        write_idx(folder / f'{prefix}-labels-idx1-ubyte.gz', labels)
    return folder


def test_reader_reads_what_was_written(source):
    images, labels = load_split(str(source), 'train')
    assert images.shape == (60, 28, 28) and images.dtype == np.uint8 and labels.shape == (60,)
    assert all(images[i, 0, 20] == 20 * labels[i] + 5 and images[i, 0, 0] == 4 * i for i in range(60))
    assert np.bincount(labels).tolist() == [TRAIN_PER_CLASS] * 10


def test_tool_writes_train_val_from_training_and_test_from_test(source, tmp_path):
    out = tmp_path / 'data'
    info = make_fashion_data.main(['--out', str(out), '--source', str(source), '--image-size', '32',
                                   '--val-per-class', '2', '--train-per-class', '3', '--seed', '5'])
    assert (info['train_images'], info['val_images'], info['test_images']) == (30, 20, 30)
    assert json.loads((out / INFO_FILE).read_text()) == info
    train_images, train_labels = load_split(str(source), 'train')
    seen = {}
    for split in ('train', 'val', 'test'):
        assert sorted(os.listdir(out / split)) == sorted(CLASSES)
        for name in CLASSES:
            files = sorted((out / split / name).iterdir())
            assert len(files) == {'train': 3, 'val': 2, 'test': 3}[split]
            for file in files:
                pixels = np.asarray(Image.open(file))
                assert pixels.shape == (32, 32, 3)
                assert abs(int(pixels[16, 28, 0]) - (20 * CLASSES.index(name) + 5)) <= 1  # the label's grey
                seen.setdefault(split, set()).add(int(file.stem))
    assert not seen['train'] & seen['val']  # disjoint, both from the training file
    for split in ('train', 'val'):  # each file is the training image its name gives, resized
        for index in seen[split]:
            pixels = np.asarray(Image.open(out / split / CLASSES[train_labels[index]] / f'{index:05d}.png'))
            assert abs(int(pixels[16, 4, 0]) - int(train_images[index, 0, 0])) <= 1
    # The split is fixed by the seed; val does not depend on how many training images are kept.
    a = per_class_split(train_labels, 2, 3, seed=5)
    assert np.array_equal(a['val'], per_class_split(train_labels, 2, 0, seed=5)['val'])
    assert np.array_equal(sorted(seen['val']), a['val'])
    assert not np.array_equal(a['val'], per_class_split(train_labels, 2, 3, seed=6)['val'])


def test_same_set_again_is_kept_another_is_refused(source, tmp_path):
    out = tmp_path / 'data'
    args = ['--out', str(out), '--source', str(source), '--val-per-class', '1']
    info = make_fashion_data.main(args)
    stamp = os.stat(out / INFO_FILE).st_mtime_ns
    assert make_fashion_data.main(args) == info and os.stat(out / INFO_FILE).st_mtime_ns == stamp
    with pytest.raises(DatasetExistsError, match=r'val_per_class 1 \(asked: 2\)'):
        make_fashion_data.main(args[:-1] + ['2'])
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'keep.txt').write_text('mine')
    with pytest.raises(DatasetExistsError, match='holds no Fashion-MNIST data set'):
        make_fashion_data.main(['--out', str(other), '--source', str(source)])
    assert (other / 'keep.txt').read_text() == 'mine'


def test_missing_package_is_one_line_naming_the_install(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        exit_on_error(make_fashion_data.main, ['--out', str(tmp_path / 'd'), '--source', str(tmp_path / 'none')])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'apt-get install dataset-fashion-mnist' in err
    assert not (tmp_path / 'd').exists()


def test_malformed_idx_files_are_refused(tmp_path):
    bad = tmp_path / 'bad.gz'
    with gzip.open(bad, 'wb') as f:
        f.write(bytes([0, 0, 0x0D, 1]) + struct.pack('>i', 2) + b'\0' * 8)  # float type
    with pytest.raises(IdxFormatError, match='not an idx file of unsigned bytes'):
        read_idx(str(bad))
    with gzip.open(bad, 'wb') as f:
        f.write(bytes([0, 0, 0x08, 1]) + struct.pack('>i', 5) + b'\0' * 3)  # cut short
    with pytest.raises(IdxFormatError, match='5 bytes'):
        read_idx(str(bad))
    bad.write_bytes(b'not gzip')
    with pytest.raises(IdxFormatError, match='not a readable gzip file'):
        read_idx(str(bad))
