"""Data layer: ImageNet-style folders, timm transforms, samplers, device loaders, demo dataset."""
from .dataset import DataError, SkipFailedCollate, SkippingImageFolder, open_image_folder, split_dir
from .demo import class_names, ensure_demo_dataset, make_demo_dataset
from .loaders import (DeviceLoader, build_train_loader, build_train_loader_from_cfg, build_val_loader,
                      build_val_loader_from_cfg)
from .samplers import ResumableDistributedSampler, ShardSampler
from .transforms import build_eval_transform, build_train_transform
