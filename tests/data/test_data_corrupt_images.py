import logging
import os

import pytest
import torch

from lib.data import SkipFailedCollate, build_train_loader, build_val_loader
from tests.support.demo_data import write_demo_imagefolder

TRAIN_IMAGES = 3 * 5


@pytest.fixture
def data_dir(tmp_path):
    """Tiny demo tree plus one garbage .JPEG and one truncated JPEG in train/."""
    root = write_demo_imagefolder(tmp_path / 'demo', classes=3, train=5, val=2, size=40)
    train = os.path.join(root, 'train')
    classes = sorted(os.listdir(train))
    garbage = os.path.join(train, classes[0], 'broken.JPEG')
    with open(garbage, 'wb') as f:
        f.write(b'this is not a jpeg' * 10)
    good = os.path.join(train, classes[1], sorted(os.listdir(os.path.join(train, classes[1])))[0])
    truncated = os.path.join(train, classes[2], 'truncated.JPEG')
    with open(good, 'rb') as f:
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    return root, garbage, truncated


@pytest.mark.parametrize('use_prefetcher', [True, False])
def test_unreadable_images_are_named_skipped_and_counted(data_dir, caplog, use_prefetcher):
    root, garbage, truncated = data_dir
    loader = build_train_loader(data_dir=root, image_size=32, batch_size=4, workers=0,
                                drop_last=False, device='cpu', use_prefetcher=use_prefetcher)
    loader.set_epoch(0)
    with caplog.at_level(logging.WARNING, logger='cream.data'):
        batches = list(loader)
    messages = [r.getMessage() for r in caplog.records if r.name == 'cream.data']
    assert any(garbage in m for m in messages) and any(truncated in m for m in messages)
    assert any('skipped 2 unreadable images' in m for m in messages)
    assert loader.skipped_this_epoch == 2
    assert sum(len(t) for _, t in batches) == TRAIN_IMAGES  # 17 files, 2 unreadable
    assert all(images.shape[1:] == (3, 32, 32) for images, _ in batches)

    loader.set_epoch(1)
    list(loader)
    assert loader.skipped_this_epoch == 2 and loader.skipped_total == 4


def test_skip_count_comes_back_from_worker_processes(data_dir):
    root, _, _ = data_dir
    loader = build_train_loader(data_dir=root, image_size=32, batch_size=1, workers=2,
                                drop_last=False, device='cpu', use_prefetcher=False)
    loader.set_epoch(0)
    targets = [t for _, t in loader]  # batches of one unreadable image vanish entirely
    assert len(targets) == TRAIN_IMAGES and len(loader) == TRAIN_IMAGES + 2
    assert loader.skipped_this_epoch == 2


def test_collate_of_an_all_unreadable_batch():
    collate = SkipFailedCollate(torch.utils.data.default_collate)
    assert collate([None, None]) == (None, None, 2)
    images, targets, skipped = collate([(torch.zeros(3, 2, 2), 1), None])
    assert images.shape == (1, 3, 2, 2) and targets.tolist() == [1] and skipped == 1


def test_readable_val_set_skips_nothing(data_dir, caplog):
    root, _, _ = data_dir
    loader = build_val_loader(data_dir=root, image_size=32, batch_size=4, workers=0, device='cpu')
    with caplog.at_level(logging.WARNING, logger='cream.data'):
        assert sum(len(t) for _, t in loader) == 6
    assert loader.skipped_this_epoch == 0 and not caplog.records
