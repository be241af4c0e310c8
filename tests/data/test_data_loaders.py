import functools
import gc
import os
import shutil
import weakref

import pytest
import torch
from timm.data.random_erasing import RandomErasing

from lib.config import get_defaults
from lib.data import (DataError, build_train_loader, build_train_loader_from_cfg, build_val_loader,
                      build_val_loader_from_cfg, ensure_demo_dataset, loaders)
from tests.support.demo_data import write_demo_imagefolder

# 3 classes x (6 train + 3 val) images of 40 px
TRAIN_IMAGES, VAL_IMAGES = 18, 9


@pytest.fixture(scope='module')
def data_dir(demo_data):
    return demo_data(classes=3, train=6, val=3, size=40)


def _train(data_dir, **kw):
    args = dict(data_dir=data_dir, image_size=32, batch_size=4, workers=0, seed=0,
                auto_augment='rand-m9-mstd0.5', re_prob=0.25, re_mode='pixel', device='cpu')
    args.update(kw)
    return build_train_loader(**args)


def _val(data_dir, **kw):
    args = dict(data_dir=data_dir, image_size=32, batch_size=4, workers=0, device='cpu')
    args.update(kw)
    return build_val_loader(**args)


@pytest.mark.parametrize('use_prefetcher', [True, False])
def test_train_batches_are_normalized_float_on_device(data_dir, use_prefetcher):
    loader = _train(data_dir, use_prefetcher=use_prefetcher, channels_last=True)
    loader.set_epoch(0)
    batches = list(loader)
    assert len(loader) == len(batches) == TRAIN_IMAGES // 4  # drop_last
    for images, targets in batches:
        assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
        assert images.is_contiguous(memory_format=torch.channels_last)
        assert targets.dtype == torch.int64 and targets.device.type == 'cpu'
    pixels = torch.cat([images for images, _ in batches])
    assert -1.0 < pixels.mean() < 1.0 and 0.3 < pixels.std() < 2.0  # normalized, not 0..255


@pytest.mark.parametrize('use_prefetcher', [True, False])
def test_random_erasing_happens_exactly_once(data_dir, use_prefetcher):
    loader = _train(data_dir, use_prefetcher=use_prefetcher)
    in_workers = [t for t in loader.dataset.transform.transforms if isinstance(t, RandomErasing)]
    on_device = getattr(loader._source, 'random_erasing', None)
    assert len(in_workers) + (on_device is not None) == 1


def test_val_with_and_without_prefetcher_agree(data_dir):
    with_prefetcher = list(_val(data_dir, use_prefetcher=True))
    without = list(_val(data_dir, use_prefetcher=False))
    assert len(with_prefetcher) == len(without) == 3  # 9 images in batches of 4, last one partial
    for (a, ta), (b, tb) in zip(with_prefetcher, without):
        assert torch.equal(ta, tb)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_val_shards_count_each_image_once(data_dir):
    every = torch.cat([t for _, t in _val(data_dir)])
    assert len(every) == VAL_IMAGES
    seen = []
    for rank in range(2):
        loader = _val(data_dir, rank=rank, world_size=2, batch_size=2)
        targets = [t for _, t in loader]
        assert len(loader) == len(targets)
        seen.extend(torch.cat(targets).tolist())
    assert len(seen) == VAL_IMAGES and sorted(seen) == sorted(every.tolist())


def test_train_order_is_reproducible_and_resumable(data_dir):
    loader = _train(data_dir, batch_size=3, auto_augment=None, re_prob=0.0)
    loader.set_epoch(1)
    epoch1 = [t.tolist() for _, t in loader]
    loader.set_epoch(2)
    assert [t.tolist() for _, t in loader] != epoch1
    other = _train(data_dir, batch_size=3, auto_augment=None, re_prob=0.0)
    other.set_epoch(1, start_batch=2)
    assert len(other) == len(epoch1) - 2
    assert [t.tolist() for _, t in other] == epoch1[2:]


def test_world_size_two_train_shards_cover_the_set(data_dir):
    seen = []
    for rank in range(2):
        loader = _train(data_dir, rank=rank, world_size=2, batch_size=3, drop_last=False,
                        auto_augment=None, re_prob=0.0)
        loader.set_epoch(0)
        seen.extend(torch.cat([t for _, t in loader]).tolist())
    assert sorted(seen) == sorted([c for c in range(3) for _ in range(6)])


def test_missing_split_names_path_and_fix(tmp_path, data_dir):
    with pytest.raises(DataError, match='DATA_DIR/val not found') as err:
        _val(str(tmp_path))
    assert str(tmp_path) in str(err.value) and 'configs/demo' in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    (tmp_path / 'train').mkdir()
    with pytest.raises(DataError, match='DATA_DIR/train .* no usable class folders'):
        _train(str(tmp_path))
    (tmp_path / 'train' / 'n0').mkdir()
    (tmp_path / 'train' / 'n0' / 'readme.txt').write_text('not an image')
    with pytest.raises(DataError, match='no usable class folders'):
        _train(str(tmp_path))


def test_more_class_folders_than_classes_is_an_error(data_dir):
    with pytest.raises(DataError, match='3 class folders but DATASET.NUM_CLASSES is 2'):
        _val(data_dir, num_classes=2)


def test_fewer_class_folders_than_classes_is_a_warning(data_dir, caplog):
    # e.g. a 1000-class network evaluated on a few ImageNet classes
    with caplog.at_level('WARNING', logger='cream.data'):
        loader = _val(data_dir, num_classes=1000)
    assert len(loader.dataset.classes) == 3
    assert '3 class folders for a 1000-class network' in caplog.text


def test_too_few_images_for_one_batch_is_an_error(data_dir):
    with pytest.raises(ValueError, match='fewer than one batch of 64'):
        _train(data_dir, batch_size=64)


def _cfg(data_dir, **dataset):
    cfg = get_defaults()
    cfg.defrost()
    cfg.DATA_DIR = str(data_dir)
    cfg.WORKERS = 0
    cfg.SEED = 3
    cfg.DATASET.NUM_CLASSES = 3
    cfg.DATASET.BATCH_SIZE = 2
    cfg.DATASET.VAL_BATCH_MUL = 2
    for key, value in dataset.items():
        cfg.DATASET[key] = value
    cfg.freeze()
    return cfg


def test_loaders_from_cfg(data_dir):
    cfg = _cfg(data_dir, INTERPOLATION='random')
    train = build_train_loader_from_cfg(cfg, image_size=32, rank=0, world_size=1, device='cpu')
    val = build_val_loader_from_cfg(cfg, image_size=32, rank=0, world_size=1, device='cpu')
    assert train.batch_size == 2 and val.batch_size == 4
    assert not train.use_prefetcher  # on CPU the workers normalize
    assert train.sampler.seed == 3 and train.loader.generator.initial_seed() == 3  # SEED + rank 0
    train.set_epoch(0)
    images, targets = next(iter(train))
    assert images.shape == (2, 3, 32, 32) and targets.shape == (2,)
    assert sum(len(t) for _, t in val) == VAL_IMAGES


def test_cfg_generate_demo_creates_missing_dataset(tmp_path, monkeypatch):
    small = functools.partial(ensure_demo_dataset, train_per_class=2, val_per_class=2, image_size=40)
    monkeypatch.setattr(loaders, 'ensure_demo_dataset', small)
    cfg = _cfg(tmp_path / 'demo', GENERATE_DEMO=True)
    cfg.defrost()
    cfg.DATASET.NUM_CLASSES = 10
    cfg.freeze()
    val = build_val_loader_from_cfg(cfg, image_size=32, rank=0, world_size=1, device='cpu')
    assert sorted(os.listdir(tmp_path / 'demo' / 'val'))[0] == 'n00000000_circle'
    assert len(val.dataset.classes) == 10


def test_dropped_loader_is_freed_without_a_gc_pass(data_dir):
    # A reference cycle would keep its persistent workers alive; forked workers of later
    # loaders would then inherit them and fail trying to shut them down.
    gc.disable()
    try:
        loader = _train(data_dir, workers=1)
        loader.set_epoch(0)
        list(loader)
        ref = weakref.ref(loader)
        del loader
        assert ref() is None
    finally:
        gc.enable()


def _first_batch(data_dir, iteration_seed, global_seed):
    torch.manual_seed(global_seed)
    # no prefetcher: its random erasing runs in this process, on the global RNG
    loader = _train(data_dir, workers=1, iteration_seed=iteration_seed, use_prefetcher=False)
    loader.set_epoch(0)
    return next(iter(loader))[0]


def test_iteration_seed_makes_augmentation_independent_of_the_global_rng(data_dir):
    a = _first_batch(data_dir, iteration_seed=5, global_seed=0)
    assert torch.equal(a, _first_batch(data_dir, iteration_seed=5, global_seed=1))
    assert not torch.equal(a, _first_batch(data_dir, iteration_seed=6, global_seed=0))


@pytest.mark.parametrize('change, words', [
    ('rename', 'only in train: n00000001_square; only in val: n00000001_squares'),  # same count: shifted labels
    ('remove_train', 'only in train: none; only in val: n00000001_square'),
    ('add_val', 'only in train: none; only in val: zz_extra'),
])
def test_train_and_val_class_folders_must_match(tmp_path, change, words):
    root = write_demo_imagefolder(tmp_path / 'demo', classes=3, train=2, val=1, size=40)
    square = sorted(os.listdir(os.path.join(root, 'val')))[1]
    assert square == 'n00000001_square'
    if change == 'rename':
        os.rename(os.path.join(root, 'val', square), os.path.join(root, 'val', square + 's'))
    elif change == 'remove_train':
        shutil.rmtree(os.path.join(root, 'train', square))
    else:
        shutil.copytree(os.path.join(root, 'val', square), os.path.join(root, 'val', 'zz_extra'))
    with pytest.raises(DataError, match=r'DATA_DIR/train and DATA_DIR/val .* hold different class folders') as err:
        _val(root)
    assert words in str(err.value) and 'Give both the same class folders' in str(err.value)


def test_a_val_folder_alone_is_evaluated_without_a_train_folder(tmp_path):
    root = write_demo_imagefolder(tmp_path / 'demo', classes=3, train=2, val=1, size=40)
    shutil.rmtree(os.path.join(root, 'train'))
    assert len(_val(root).dataset.classes) == 3


def test_augmentation_is_the_same_with_workers_and_from_any_start_batch(data_dir):
    def batches(workers, start_batch=0):
        loader = _train(data_dir, workers=workers, iteration_seed=5, use_prefetcher=False)
        loader.set_epoch(1, start_batch=start_batch)
        return [images for images, _ in loader]
    in_main, with_workers, resumed = batches(0), batches(2), batches(2, start_batch=2)
    assert len(in_main) == 4 and len(resumed) == 2
    assert all(torch.equal(a, b) for a, b in zip(in_main, with_workers))
    assert all(torch.equal(a, b) for a, b in zip(in_main[2:], resumed))


def test_loading_in_the_main_process_leaves_its_rngs_alone(data_dir):
    import random
    import numpy as np
    loader = _train(data_dir, iteration_seed=5, use_prefetcher=False)
    loader.set_epoch(0)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    list(loader)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
