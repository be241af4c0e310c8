import colorsys
import logging
import os
import time

import numpy as np
import pytest
from PIL import Image

import lib.data.demo as demo
from lib.data import DataError, class_names, ensure_demo_dataset, make_demo_dataset

TINY = dict(num_classes=3, train_per_class=4, val_per_class=3, image_size=40)


def _files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_tiny_dataset_layout_and_speed(tmp_path):
    start = time.perf_counter()
    root = make_demo_dataset(tmp_path / 'demo', **TINY)
    assert time.perf_counter() - start < 1.0
    assert sorted(os.listdir(os.path.join(root, 'train'))) == class_names(3)
    assert class_names(3) == ['n00000000_circle', 'n00000001_square', 'n00000002_triangle']
    for split, per_class in (('train', 4), ('val', 3)):
        for name in class_names(3):
            files = os.listdir(os.path.join(root, split, name))
            assert len(files) == per_class and all(f.endswith('.JPEG') for f in files)
            with Image.open(os.path.join(root, split, name, files[0])) as image:
                assert image.format == 'JPEG' and image.size == (40, 40) and image.mode == 'RGB'


def test_class_names_beyond_ten_shapes_stay_unique():
    names = class_names(23)
    assert len(set(names)) == 23 and names[10] == 'n00000010_circle'


def test_deterministic_given_seed(tmp_path):
    a = make_demo_dataset(tmp_path / 'a', **TINY, seed=3)
    b = make_demo_dataset(tmp_path / 'b', **TINY, seed=3)
    c = make_demo_dataset(tmp_path / 'c', **TINY, seed=4)
    files = _files(a)
    assert files == _files(b) == _files(c)
    image_files = [f for f in files if f.endswith('.JPEG')]
    read = lambda root, f: open(os.path.join(root, f), 'rb').read()  # noqa: E731
    assert all(read(a, f) == read(b, f) for f in image_files)
    assert sum(read(a, f) != read(c, f) for f in image_files) == len(image_files)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def draw_then_fail(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return np.zeros((40, 40, 3), np.uint8)

    monkeypatch.setattr(demo, 'draw_image', draw_then_fail)
    with pytest.raises(KeyboardInterrupt):
        make_demo_dataset(tmp_path / 'demo', **TINY)
    assert os.listdir(tmp_path) == []  # neither the tree nor the temp dir


def test_make_refuses_non_empty_folder_but_fills_empty_one(tmp_path):
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'x.txt').write_text('x')
    with pytest.raises(FileExistsError, match='full'):
        make_demo_dataset(tmp_path / 'full', **TINY)
    (tmp_path / 'empty').mkdir()
    make_demo_dataset(tmp_path / 'empty', **TINY)
    assert os.path.isdir(tmp_path / 'empty' / 'val' / 'n00000002_triangle')


def test_ensure_creates_once_and_logs(tmp_path, caplog):
    root = tmp_path / 'demo'
    with caplog.at_level(logging.INFO, logger='cream.data'):
        assert ensure_demo_dataset(root, **TINY) is True
    assert any('creating the demo dataset' in r.getMessage() and str(root) in r.getMessage()
               for r in caplog.records)
    before = _files(root)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger='cream.data'):
        assert ensure_demo_dataset(root, **TINY) is False
    assert _files(root) == before and not caplog.records
    with caplog.at_level(logging.WARNING, logger='cream.data'):
        assert ensure_demo_dataset(root, num_classes=5) is False
    assert any('differs' in r.getMessage() for r in caplog.records)


def test_ensure_refuses_foreign_non_empty_folder(tmp_path):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'notes.txt').write_text('mine')
    with pytest.raises(DataError, match='lacks train/ and val/'):
        ensure_demo_dataset(tmp_path / 'data', **TINY)


def _foreground(image):
    """Saturated, bright pixels: the drawn shape (backgrounds are greyish, see demo.draw_image)."""
    x = image.astype(np.float32) / 255
    top = x.max(-1)
    saturation = (top - x.min(-1)) / np.maximum(top, 1e-3)
    return (saturation > 0.42) & (top > 0.45)


def _centred_mask(image, half=12):
    mask = _foreground(image).astype(np.float32)
    ys, xs = np.nonzero(mask)
    cy, cx = int(round(ys.mean())), int(round(xs.mean()))
    return np.pad(mask, half)[cy:cy + 2 * half, cx:cx + 2 * half].ravel()


def _hue(image):
    """The shape's mean colour as a point on the hue circle."""
    red, green, blue = image[_foreground(image)].astype(np.float32).mean(0) / 255
    hue = colorsys.rgb_to_hsv(red, green, blue)[0]
    return np.array([np.cos(2 * np.pi * hue), np.sin(2 * np.pi * hue)])


def _between_over_within(features):
    """Variance of the class means over the variance expected from sampling alone (~1 if the
    classes were the same distribution)."""
    per_class = features.shape[1]
    between = features.mean(1).var(0, ddof=1).mean()
    within = features.var(1, ddof=1).mean() / per_class
    return between / within


def _features(feature, classes, per_class, size=48, seed=0, shape_of=lambda c: c):
    return np.stack([np.stack([
        feature(demo.draw_image(shape_of(c), size, np.random.default_rng((seed, 0, c, i))))
        for i in range(per_class)]) for c in range(classes)])


def test_classes_differ_in_shape_alone(monkeypatch):
    monkeypatch.setattr(demo, '_RANDOM_HUE_PROB', 1.0)  # colour carries no class information
    shapes = _features(_centred_mask, classes=10, per_class=12)
    same = _features(_centred_mask, classes=10, per_class=12, shape_of=lambda c: 3)
    assert _between_over_within(same) < 1.5  # the statistic is near 1 without class differences
    assert _between_over_within(shapes) > 2.5


def test_classes_lean_to_their_own_hue():
    hues = _features(_hue, classes=10, per_class=12)
    same = _features(_hue, classes=10, per_class=12, shape_of=lambda c: 3)
    assert _between_over_within(same) < 2
    assert _between_over_within(hues) > 5
