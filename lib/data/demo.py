"""A small procedurally drawn ImageFolder dataset (train/val) for demos and tests; no downloads.

Each class is a shape (circle, square, ...; beyond ten classes the shapes repeat with new hues)
drawn at a random position, size, rotation and aspect on a noisy gradient background. The
foreground hue leans towards a per-class hue, but a quarter of the images use a random hue, so a
model must learn shapes to do well. Every image comes from its own seeded generator, so the
dataset depends only on the arguments.
"""
import colorsys
import json
import logging
import os
from functools import lru_cache
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from lib.fileio import atomic_directory

from .dataset import DataError

logger = logging.getLogger('cream.data')

SHAPES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring', 'rhombus', 'hexagon',
          'stripes', 'checker')
INFO_FILE = 'demo_dataset.json'
_SPLITS = ('train', 'val')
_GOLDEN = 0.6180339887
_RANDOM_HUE_PROB = 0.25
_SUPERSAMPLE = 2  # draw at 2x and average down: anti-aliased edges


def class_names(num_classes: int) -> List[str]:
    """Folder names in label order, e.g. n00000000_circle."""
    return [f'n{i:08d}_{SHAPES[i % len(SHAPES)]}' for i in range(num_classes)]


def _polygon(u, v, sides: int):
    support = u  # the side facing +u
    for k in range(1, sides):
        angle = 2 * np.pi * k / sides
        support = np.maximum(support, u * np.cos(angle) + v * np.sin(angle))
    return support < np.cos(np.pi / sides)


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of a unit-size shape in its own (rotated, scaled) coordinates u, v."""
    r = np.hypot(u, v)
    if shape == 'circle':
        return r < 1
    if shape == 'square':
        return np.maximum(abs(u), abs(v)) < 0.8
    if shape == 'triangle':
        return _polygon(u, v, 3)
    if shape == 'star':
        return r < 0.55 + 0.45 * np.cos(5 * np.arctan2(v, u))
    if shape == 'cross':
        return ((abs(u) < 0.3) & (abs(v) < 1)) | ((abs(v) < 0.3) & (abs(u) < 1))
    if shape == 'ring':
        return (r < 1) & (r > 0.55)
    if shape == 'rhombus':
        return abs(u) / 0.55 + abs(v) < 1
    if shape == 'hexagon':
        return _polygon(u, v, 6)
    if shape == 'stripes':
        return (r < 1) & (np.sin(u * 3 * np.pi) > 0)
    if shape == 'checker':
        cells = np.floor(u / 0.4) + np.floor(v / 0.4)
        return (np.maximum(abs(u), abs(v)) < 0.8) & (cells % 2 == 0)
    raise ValueError(f'unknown demo shape {shape!r}')


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), dtype=np.float32) * 255


@lru_cache(maxsize=8)
def _grids(size: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel coordinates: centred unit grid (for gradients) and supersampled pixel-centre grid."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    fine = size * _SUPERSAMPLE
    fy, fx = (np.mgrid[0:fine, 0:fine].astype(np.float32) + 0.5) / _SUPERSAMPLE
    return ys, xs, fy, fx


def _noise(rng: np.random.Generator, std: float, shape) -> np.ndarray:
    return rng.standard_normal(size=shape, dtype=np.float32) * np.float32(std)


def draw_image(class_index: int, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """One HxWx3 uint8 image of class class_index."""
    size = image_size
    ys, xs, fy, fx = _grids(size)
    # background: low-saturation colour, a random gradient, pixel noise
    background = _rgb(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.2, 0.8))
    gradient = rng.uniform(-40, 40, size=2).astype(np.float32)
    image = background + (xs * gradient[0] + ys * gradient[1])[..., None]
    image += _noise(rng, rng.uniform(5, 20), image.shape)

    # foreground: random radius, centre, rotation, aspect; anti-aliased coverage
    radius = rng.uniform(0.18, 0.36) * size
    centre_x, centre_y = (float(c) for c in rng.uniform(radius * 0.8, size - radius * 0.8, size=2))
    angle = rng.uniform(0, 2 * np.pi)
    cos, sin = float(np.cos(angle)), float(np.sin(angle))  # python floats keep the grids float32
    aspect = rng.uniform(0.85, 1.15)
    dx, dy = (fx - centre_x) / radius, (fy - centre_y) / radius
    u = (dx * cos + dy * sin) * aspect
    v = (-dx * sin + dy * cos) / aspect
    mask = _shape_mask(SHAPES[class_index % len(SHAPES)], u, v).astype(np.float32)
    alpha = mask.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3))[..., None]

    class_hue = class_index * _GOLDEN
    hue = rng.random() if rng.random() < _RANDOM_HUE_PROB else class_hue + rng.normal(0, 0.04)
    foreground = _rgb(hue, rng.uniform(0.5, 1.0), rng.uniform(0.55, 1.0))
    foreground = foreground + _noise(rng, 8, image.shape)
    image = image * (1 - alpha) + foreground * alpha
    return np.clip(image, 0, 255).astype(np.uint8)


def _write_tree(out_dir: str, num_classes: int, per_split: Dict[str, int], image_size: int,
                seed: int) -> None:
    names = class_names(num_classes)
    for split_index, split in enumerate(_SPLITS):
        for class_index, name in enumerate(names):
            class_dir = os.path.join(out_dir, split, name)
            os.makedirs(class_dir)
            for i in range(per_split[split]):
                rng = np.random.default_rng((seed, split_index, class_index, i))
                pixels = draw_image(class_index, image_size, rng)
                Image.fromarray(pixels).save(os.path.join(class_dir, f'{split}_{i:05d}.JPEG'),
                                             quality=90)


def make_demo_dataset(root: str, num_classes: int = 10, train_per_class: int = 60,
                      val_per_class: int = 20, image_size: int = 72, seed: int = 0) -> str:
    """Write root/{train,val}/<class>/*.JPEG atomically (``lib.fileio.atomic_directory``).

    root must not exist or be an empty directory. Returns root.
    """
    if num_classes < 1 or train_per_class < 1 or val_per_class < 1 or image_size < 8:
        raise ValueError('need num_classes, train_per_class, val_per_class >= 1 and image_size >= 8; '
                         f'got {num_classes}, {train_per_class}, {val_per_class}, {image_size}')
    root = os.path.abspath(os.fspath(root))
    with atomic_directory(root) as tmp:
        _write_tree(tmp, num_classes, {'train': train_per_class, 'val': val_per_class}, image_size, seed)
        info = dict(num_classes=num_classes, train_per_class=train_per_class, val_per_class=val_per_class,
                    image_size=image_size, seed=seed, classes=class_names(num_classes))
        with open(os.path.join(tmp, INFO_FILE), 'w') as f:
            json.dump(info, f, indent=1)
    return root


def _has_splits(root: str) -> bool:
    return all(os.path.isdir(os.path.join(root, split)) for split in _SPLITS)


def _warn_if_different(root: str, requested: dict) -> None:
    info_path = os.path.join(root, INFO_FILE)
    if not requested or not os.path.isfile(info_path):
        return
    with open(info_path) as f:
        info = json.load(f)
    different = {k: (info.get(k), v) for k, v in requested.items() if info.get(k) != v}
    if different:
        logger.warning('existing demo dataset at %s differs from the request (existing, requested): '
                       '%s; delete it to regenerate', root, different)


def ensure_demo_dataset(root: str, **kwargs) -> bool:
    """Create the demo dataset at root unless root already holds train/ and val/.

    Returns True when it was created. Safe when several processes call it at once: one rename
    wins and the others find the finished tree.
    """
    root = os.path.abspath(os.fspath(root))
    if _has_splits(root):
        _warn_if_different(root, kwargs)
        return False
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise DataError(f'{root} is not empty but lacks train/ and val/, so the demo dataset cannot '
                        f'be created there: empty it, or set DATA_DIR to another folder')
    logger.info('creating the demo dataset at %s (%s)', root, kwargs or 'defaults')
    try:
        make_demo_dataset(root, **kwargs)
    except OSError:
        if _has_splits(root):  # another process finished first
            return False
        raise
    logger.info('created the demo dataset at %s', root)
    return True
