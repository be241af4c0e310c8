import json
import os

import numpy as np
import pytest
from PIL import Image

from lib.experiments.digits import INFO_FILE, load_digits_arrays, split_indices, write_digits_imagefolder
from tests.support.scripts_as_modules import load_script

make_digits_data = load_script('tools/make_digits_data.py')


def test_split_is_stratified_fixed_and_disjoint():
    labels = np.repeat(np.arange(10), 20)
    a, b = split_indices(labels, 0.25, seed=3), split_indices(labels, 0.25, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not set(a['train']) & set(a['val']) and len(a['train']) + len(a['val']) == 200
    assert np.bincount(labels[a['val']]).tolist() == [5] * 10
    assert not np.array_equal(a['val'], split_indices(labels, 0.25, seed=4)['val'])


def test_the_tool_writes_the_real_digits_as_an_image_folder(tmp_path):
    images, labels = load_digits_arrays()  # scikit-learn's bundled copy: 1797 real digits
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 255
    out = tmp_path / 'digits'
    info = make_digits_data.main(['--out', str(out), '--image-size', '16', '--val-fraction', '0.2'])
    assert info['train_images'] + info['val_images'] == 1797 and 350 <= info['val_images'] <= 370
    assert json.loads((out / INFO_FILE).read_text()) == info
    assert sorted(os.listdir(out / 'val')) == [f'digit_{d}' for d in range(10)]
    first = sorted((out / 'train' / 'digit_3').iterdir())[0]
    index = int(first.stem)
    assert labels[index] == 3
    pixels = np.asarray(Image.open(first))
    assert pixels.shape == (16, 16, 3) and np.array_equal(pixels[..., 0], pixels[..., 2])
    small = np.asarray(Image.fromarray(pixels[..., 0]).resize((8, 8), Image.BOX), dtype=float)
    assert np.corrcoef(small.ravel(), images[index].ravel())[0, 1] > 0.9  # the digit itself, upscaled
    with pytest.raises(FileExistsError):
        write_digits_imagefolder(str(out), image_size=16)
