"""The config values timm resolves by name, each asked of timm itself before any work: OPT (the optimizer the
retraining builds, on a dummy model), NET.GP (the head's global pooling) and AUGMENTATION.AA (the auto-augment spec,
parsed by building a training transform). They live here, below the packages that use them (lib.retrain.optim,
lib.models.ops, lib.data.transforms), so that the config's checks import nothing above the config."""
import re
from typing import Optional

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, create_transform
from timm.layers import SelectAdaptivePool2d
from timm.optim import create_optimizer_v2

from lib.errors import ConfigError


def optimizer_options(cfg) -> dict:
    """timm's ``create_optimizer_v2`` arguments from the config, but for the model and the LR."""
    return dict(opt=cfg.OPT, weight_decay=cfg.WEIGHT_DECAY, momentum=cfg.MOMENTUM, eps=cfg.OPT_EPS)


def check_optimizer(cfg) -> None:
    """ConfigError unless timm builds OPT with the config's options (the retraining's own factory call)."""
    try:
        create_optimizer_v2(torch.nn.Linear(1, 1), lr=cfg.LR, **optimizer_options(cfg))
    except (ValueError, AssertionError, ImportError, KeyError, TypeError) as err:
        raise ConfigError(f'OPT is {cfg.OPT!r}, which timm cannot build ({type(err).__name__}: {err}); use sgd, '
                          'momentum, rmsproptf, adamw, ... (timm.optim.list_optimizers())') from None


def global_pool_problem(pool_type) -> Optional[str]:
    """Why timm cannot build the head's global pooling ``pool_type`` (NET.GP, a latency table's), or None."""
    if not isinstance(pool_type, str):
        return f'{pool_type!r} is not a string'
    try:
        SelectAdaptivePool2d(pool_type=pool_type)
    except (AssertionError, ValueError) as err:
        return str(err) or 'unknown pooling'
    return None


def auto_augment_or_none(auto_augment: Optional[str]) -> Optional[str]:
    """Config spelling of 'no AutoAugment' ('', 'none', None) -> None; else timm's policy string."""
    if auto_augment is None or str(auto_augment).strip().lower() in ('', 'none'):
        return None
    return auto_augment


def check_auto_augment(auto_augment: Optional[str]) -> None:
    """ConfigError unless timm's own parser takes AUGMENTATION.AA (by building a training transform with it), with
    a value in every ``-`` section: timm skips a section without one ('rand-m9-mstd' reads as 'rand-m9'), and a typo
    must not silently change the augmentation."""
    spec = auto_augment_or_none(auto_augment)
    if spec is None:
        return
    problem = next((f'its section {part!r} has no value' for part in spec.split('-')[1:]
                    if not re.search(r'\d', part)), None)
    if problem is None:
        try:
            create_transform(224, is_training=True, interpolation='random', auto_augment=spec,
                             mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD)
        except (AssertionError, ValueError, KeyError, TypeError) as err:
            problem = f'timm cannot parse it ({type(err).__name__}: {err or "unknown policy or section"})'
    if problem is not None:
        raise ConfigError(f'AUGMENTATION.AA is {spec!r}: {problem}. Give a timm augmentation spec, e.g. '
                          "'rand-m9-mstd0.5' (RandAugment), 'augmix-m5-w3', 'original' or 'v0' (AutoAugment), or '' "
                          'for none')


def check_timm_names(cfg) -> None:
    """OPT, NET.GP and AUGMENTATION.AA as timm reads them: each is built once, on a dummy where needed."""
    check_optimizer(cfg)
    pool_problem = global_pool_problem(cfg.NET.GP)
    if pool_problem is not None:
        raise ConfigError(f'NET.GP is {cfg.NET.GP!r}, which is no timm pooling ({pool_problem}); use avg, max, avgmax '
                          'or catavgmax')
    check_auto_augment(cfg.AUGMENTATION.AA)
