"""Train/val loaders: ImageFolder -> timm transforms -> DataLoader -> (images, targets) on the device.

The training's loaders (``sigterm_grace`` set) keep their worker processes through a SIGTERM sent to the whole
job (SLURM signals every process of a job step, the loader's workers too): a worker goes on serving batches until
the training stops at its next step boundary (``lib.engine.stop``) and shuts it down, and ends by itself
``sigterm_grace`` seconds after the signal or at a second SIGTERM. Torch's default would end it at once, and the
training would crash on the missing batch instead of saving its state.
"""
import functools
import logging
import os
import signal
import threading
from typing import Optional, Tuple, Union

import numpy as np
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.data.loader import PrefetchLoader, fast_collate
from torch.utils.data import DataLoader, Subset, default_collate

from lib.errors import ConfigError

from .dataset import SkipFailedCollate, open_image_folder, split_dir
from .demo import ensure_demo_dataset
from .samplers import ResumableDistributedSampler, ShardSampler
from .transforms import build_eval_transform, build_train_transform

logger = logging.getLogger('cream.data')

Device = Union[str, torch.device]


def _worker_sigterm(grace_s: float):
    """A worker's SIGTERM handler: the first signal ends the worker ``grace_s`` later, a second one at once."""
    def on_sigterm(signum, frame):
        if on_sigterm.timer is not None:
            os._exit(0)
        on_sigterm.timer = threading.Timer(grace_s, os._exit, (0,))
        on_sigterm.timer.daemon = True
        on_sigterm.timer.start()
    on_sigterm.timer = None
    return on_sigterm


def _init_worker(worker_id: int, sigterm_grace: Optional[float] = None) -> None:
    # torch seeds python's and its own RNG per worker, not numpy's (used by RandAugment).
    np.random.seed(torch.initial_seed() % 2 ** 32)
    if sigterm_grace is not None:
        signal.signal(signal.SIGTERM, _worker_sigterm(sigterm_grace))


class _SkipTally:
    def __init__(self):
        self.this_epoch = 0
        self.total = 0


class _SkipCounter:
    """Strips the skip count from (images, targets, skipped) batches and adds it to a tally.

    The tally is a separate object, not the DeviceLoader: a reference cycle would keep a dropped
    loader's persistent workers alive until a gc pass, and forked workers of later loaders would
    inherit (and try to shut down) them.
    """

    def __init__(self, loader: DataLoader, tally: _SkipTally):
        self.loader = loader
        self.tally = tally

    def __iter__(self):
        for images, targets, skipped in self.loader:
            if skipped:
                self.tally.this_epoch += skipped
                self.tally.total += skipped
            if images is not None:
                yield images, targets

    def __len__(self) -> int:
        return len(self.loader)


class DeviceLoader:
    """Iterates (images, targets): float32 ImageNet-normalized NCHW images and int64 targets on device.

    With use_prefetcher, uint8 batches are copied with non_blocking on a side stream and normalized
    (and randomly erased, for training) on the device by timm's PrefetchLoader; otherwise the
    workers already normalized (and erased) and batches are just moved. Unreadable images are
    dropped from their batch: skipped_this_epoch / skipped_total count them, and a warning reports
    the count at the end of each full pass. len() is the number of batches.
    """

    def __init__(self, loader: DataLoader, *, device: Device, use_prefetcher: bool,
                 re_prob: float = 0.0, re_mode: str = 'const', re_count: int = 1,
                 channels_last: bool = False, name: str = 'train'):
        self.loader = loader
        self.device = torch.device(device)
        self.use_prefetcher = use_prefetcher
        self.channels_last = channels_last
        self.name = name
        self._skips = _SkipTally()
        source = _SkipCounter(loader, self._skips)
        if use_prefetcher:
            source = PrefetchLoader(source, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
                                    device=self.device, re_prob=re_prob, re_mode=re_mode,
                                    re_count=re_count)
        self._source = source

    @property
    def skipped_this_epoch(self) -> int:
        """Unreadable images dropped so far in the current (or last) pass."""
        return self._skips.this_epoch

    @property
    def skipped_total(self) -> int:
        return self._skips.total

    def __iter__(self):
        self._skips.this_epoch = 0
        for images, targets in self._source:
            if not self.use_prefetcher:
                images = images.to(self.device, non_blocking=True)
                targets = targets.to(self.device, non_blocking=True)
            if self.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, targets
        if self.skipped_this_epoch:
            logger.warning('%s loader skipped %d unreadable images in this pass (%d in all)',
                           self.name, self.skipped_this_epoch, self.skipped_total)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def sampler(self):
        return self.loader.sampler

    @property
    def dataset(self):
        return self.loader.dataset

    @property
    def batch_size(self) -> int:
        return self.loader.batch_size

    def close(self) -> None:
        """Shut the worker processes down now: persistent workers otherwise live until the loader is collected,
        which an exception's traceback can put off until the interpreter exits (where torch leaves them to
        multiprocessing's SIGTERM, which the training's workers defer)."""
        iterator = getattr(self.loader, '_iterator', None)
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            iterator._shutdown_workers()
        self.loader._iterator = None

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Epoch order of the train sampler; start_batch skips that many batches (resume)."""
        if not isinstance(self.sampler, ResumableDistributedSampler):
            raise TypeError(f'the {self.name} loader has no per-epoch order to set')
        self.sampler.set_epoch(epoch, start_batch=start_batch)


def _check_common(image_size: int, batch_size: int, workers: int) -> None:
    if image_size < 1 or batch_size < 1 or workers < 0:
        raise ValueError(f'need image_size >= 1, batch_size >= 1, workers >= 0; got {image_size}, '
                         f'{batch_size}, {workers}')


def _data_loader(dataset, *, sampler, batch_size: int, workers: int, pin_memory: bool,
                 device: torch.device, use_prefetcher: bool, drop_last: bool,
                 iteration_seed: Optional[int] = None, sigterm_grace: Optional[float] = None) -> DataLoader:
    collate = SkipFailedCollate(fast_collate if use_prefetcher else default_collate)
    # Each new iterator draws the workers' base seed from this generator; from the global torch RNG
    # without one, which would shift the training's own draws (dropout, ...) differently with and
    # without (persistent) workers, and in a resumed run. Augmentation is seeded per image instead.
    generator = torch.Generator().manual_seed(0 if iteration_seed is None else iteration_seed)
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate,
        pin_memory=pin_memory and device.type == 'cuda', drop_last=drop_last,
        worker_init_fn=functools.partial(_init_worker, sigterm_grace=sigterm_grace), persistent_workers=workers > 0,
        generator=generator)


def build_train_loader(*, data_dir: str, image_size: int, batch_size: int, workers: int = 4,
                       pin_memory: bool = True, interpolation: str = 'random',
                       auto_augment: Optional[str] = None, color_jitter: float = 0.4,
                       re_prob: float = 0.0, re_mode: str = 'const', re_count: int = 1,
                       scale=(0.08, 1.0), rank: int = 0, world_size: int = 1, seed: int = 0, device: Device = 'cpu',
                       use_prefetcher: bool = True, channels_last: bool = False,
                       drop_last: bool = True, num_classes: Optional[int] = None,
                       iteration_seed: Optional[int] = None, sigterm_grace: Optional[float] = None) -> DeviceLoader:
    """Loader over DATA_DIR/train with training augmentation; call loader.set_epoch(e[, start_batch])
    before each epoch. batch_size is per process. seed orders the epochs (the same on every rank);
    iteration_seed (e.g. SEED + rank) seeds each image's augmentation from (iteration_seed, epoch,
    position) (``lib.data.seeding``): the same with any number of workers and after a resume. Without
    it, the per-image seeds derive from one draw of the global torch RNG at construction. ``sigterm_grace``: see the
    module's docstring."""
    _check_common(image_size, batch_size, workers)
    device = torch.device(device)
    transform = build_train_transform(
        image_size=image_size, interpolation=interpolation, auto_augment=auto_augment,
        color_jitter=color_jitter, re_prob=re_prob, re_mode=re_mode, re_count=re_count, scale=scale,
        use_prefetcher=use_prefetcher)
    dataset = open_image_folder(data_dir, 'train', transform=transform, num_classes=num_classes)
    if iteration_seed is None:
        iteration_seed = int(torch.randint(0, 2 ** 62, ()).item())
    sampler = ResumableDistributedSampler(dataset, rank=rank, world_size=world_size, seed=seed,
                                          batch_size=batch_size, augment_seed=iteration_seed)
    if drop_last and len(sampler) < batch_size:
        raise ConfigError(f'DATA_DIR/train gives each of {world_size} processes {len(sampler)} images, '
                         f'fewer than one batch of {batch_size}: lower DATASET.BATCH_SIZE')
    loader = _data_loader(dataset, sampler=sampler, batch_size=batch_size, workers=workers,
                          pin_memory=pin_memory, device=device, use_prefetcher=use_prefetcher,
                          drop_last=drop_last, iteration_seed=iteration_seed, sigterm_grace=sigterm_grace)
    return DeviceLoader(loader, device=device, use_prefetcher=use_prefetcher, re_prob=re_prob,
                        re_mode=re_mode, re_count=re_count, channels_last=channels_last,
                        name='train')


def build_val_loader(*, data_dir: str, image_size: int, batch_size: int, workers: int = 4,
                     pin_memory: bool = True, interpolation: str = 'bilinear',
                     crop_pct: float = 0.875, rank: int = 0, world_size: int = 1,
                     device: Device = 'cpu', use_prefetcher: bool = True,
                     channels_last: bool = False, num_classes: Optional[int] = None,
                     split: str = 'val', sigterm_grace: Optional[float] = None) -> DeviceLoader:
    """Loader over DATA_DIR/<split>, in file order, each image on exactly one rank (no padding):
    reduce sums of correct predictions and of counts across ranks."""
    _check_common(image_size, batch_size, workers)
    device = torch.device(device)
    transform = build_eval_transform(image_size=image_size, interpolation=interpolation,
                                     crop_pct=crop_pct, use_prefetcher=use_prefetcher)
    dataset = open_image_folder(data_dir, split, transform=transform, num_classes=num_classes)
    sampler = ShardSampler(dataset, rank=rank, world_size=world_size)
    loader = _data_loader(dataset, sampler=sampler, batch_size=batch_size, workers=workers,
                          pin_memory=pin_memory, device=device, use_prefetcher=use_prefetcher,
                          drop_last=False, sigterm_grace=sigterm_grace)
    return DeviceLoader(loader, device=device, use_prefetcher=use_prefetcher,
                        channels_last=channels_last, name=split)


def fixed_batch(loader: DeviceLoader, count: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``count`` images of ``loader``'s dataset (all of them when it holds fewer), drawn without replacement by a
    generator seeded with ``seed``, as one batch exactly as ``loader`` gives its batches (its transform,
    normalization, device and memory format): the same images on every rank and in a resumed run."""
    dataset = loader.dataset
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    subset = _data_loader(Subset(dataset, indices), sampler=None, batch_size=len(indices), workers=0,
                          pin_memory=False, device=loader.device, use_prefetcher=loader.use_prefetcher,
                          drop_last=False)
    device_loader = DeviceLoader(subset, device=loader.device, use_prefetcher=loader.use_prefetcher,
                                 channels_last=loader.channels_last, name=loader.name)
    return next(iter(device_loader))


def _prefetcher_wanted(cfg, device: Device) -> bool:
    # On CPU there is no copy to overlap; normalizing in the workers is the cheaper path there.
    return not cfg.DATASET.NO_PREFECHTER and torch.device(device).type == 'cuda'


def _generate_demo_if_asked(cfg) -> None:
    if cfg.DATASET.GENERATE_DEMO:
        ensure_demo_dataset(cfg.DATA_DIR, num_classes=cfg.DATASET.NUM_CLASSES)


def check_data_folders(cfg, splits=('train', 'val')) -> None:
    """DataError naming DATA_DIR/<split> when one is missing (unless DATASET.GENERATE_DEMO will create it): the
    entry scripts' preflight, before the run folder exists."""
    if not cfg.DATASET.GENERATE_DEMO:
        for split in splits:
            split_dir(cfg.DATA_DIR, split)


def build_train_loader_from_cfg(cfg, image_size: int, rank: int = 0, world_size: int = 1,
                                device: Device = 'cpu', sigterm_grace: Optional[float] = None) -> DeviceLoader:
    """build_train_loader from the config; image_size is explicit (the search picks it).

    Epoch order from SEED (identical on all ranks), augmentation seeds from SEED + rank."""
    _generate_demo_if_asked(cfg)
    aug = cfg.AUGMENTATION
    return build_train_loader(
        data_dir=cfg.DATA_DIR, image_size=image_size, batch_size=cfg.DATASET.BATCH_SIZE,
        workers=cfg.WORKERS, pin_memory=cfg.DATASET.PIN_MEM,
        interpolation=cfg.DATASET.INTERPOLATION, auto_augment=aug.AA,
        color_jitter=aug.COLOR_JITTER, re_prob=aug.RE_PROB, re_mode=aug.RE_MODE,
        re_count=aug.RE_COUNT, scale=aug.SCALE, rank=rank, world_size=world_size, seed=cfg.SEED, device=device,
        use_prefetcher=_prefetcher_wanted(cfg, device), channels_last=cfg.CHANNELS_LAST,
        num_classes=cfg.DATASET.NUM_CLASSES, iteration_seed=cfg.SEED + rank, sigterm_grace=sigterm_grace)


def build_val_loader_from_cfg(cfg, image_size: int, rank: int = 0, world_size: int = 1,
                              device: Device = 'cpu', sigterm_grace: Optional[float] = None) -> DeviceLoader:
    """build_val_loader from the config; batch = DATASET.BATCH_SIZE * DATASET.VAL_BATCH_MUL."""
    _generate_demo_if_asked(cfg)
    return build_val_loader(
        data_dir=cfg.DATA_DIR, image_size=image_size,
        batch_size=cfg.DATASET.BATCH_SIZE * cfg.DATASET.VAL_BATCH_MUL, workers=cfg.WORKERS,
        pin_memory=cfg.DATASET.PIN_MEM, interpolation=cfg.DATASET.EVAL_INTERPOLATION,
        crop_pct=cfg.DATASET.CROP_PCT, rank=rank, world_size=world_size, device=device,
        use_prefetcher=_prefetcher_wanted(cfg, device), channels_last=cfg.CHANNELS_LAST,
        num_classes=cfg.DATASET.NUM_CLASSES, sigterm_grace=sigterm_grace)
