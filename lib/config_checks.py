"""The value checks of a merged config (``lib.config.load_config`` runs them before any work): finite numbers,
allowed choices, number ranges, the pairs of keys that contradict each other, and the names that timm resolves
(OPT, NET.GP, AUGMENTATION.AA), each asked of timm itself."""
import math

import torch
from yacs.config import CfgNode as CN

from lib.config_compat import value_at
from lib.errors import ConfigError

# (key, test, what the value must be): the numbers a script reads, checked before any work
# (DATASET.IMAGE_SIZE and the network keys: lib.models.from_config, also before any work).
_RANGES = (
    ('SEED', lambda v: 0 <= v < 2 ** 63, '0 or more and below 2**63 (a 64-bit seed, with room for the rank added '
                                          'to it)'),
    ('EPOCHS', lambda v: v >= 1, 'at least 1'),
    ('WORKERS', lambda v: v >= 0, '0 (load in the main process) or more'),
    ('LOG_INTERVAL', lambda v: v >= 1, 'at least 1'),
    ('RECOVERY_INTERVAL', lambda v: v >= 0, '0 (recovery only at epoch ends) or more steps'),
    ('SIGTERM_GRACE', lambda v: v > 0, 'a positive number of seconds'),
    ('DIST_INIT_TIMEOUT', lambda v: v > 0, 'a positive number of seconds'),
    ('CHECKPOINT_HIST', lambda v: v >= 0, '0 or more'),
    ('TTA', lambda v: v in (0, 1), '0 or 1'),
    ('ACC_GAP', lambda v: v >= 0, '0 or more points'),
    ('CLIP_GRAD', lambda v: v >= 0, '0 (off) or a positive norm'),
    ('LR', lambda v: v > 0, 'positive'),
    ('LR_REFERENCE_BATCH', lambda v: v >= 0, '0 (LR as is) or a batch size'),
    ('META_LR', lambda v: v > 0, 'positive'),
    ('WARMUP_LR', lambda v: v >= 0, '0 or positive'),
    ('MIN_LR', lambda v: v >= 0, '0 or positive'),
    ('OPT_EPS', lambda v: v > 0, 'positive'),
    ('MOMENTUM', lambda v: 0 <= v < 1, 'in [0, 1)'),
    ('WEIGHT_DECAY', lambda v: v >= 0, '0 or positive'),
    ('DECAY_EPOCHS', lambda v: v > 0, 'positive'),
    ('DECAY_RATE', lambda v: v > 0, 'positive'),
    ('WARMUP_EPOCHS', lambda v: v >= 0, '0 or more'),
    ('COOLDOWN_EPOCHS', lambda v: v >= 0, '0 or more'),
    ('PATIENCE_EPOCHS', lambda v: v >= 0, '0 or more'),
    ('DATASET.NUM_CLASSES', lambda v: v >= 1, 'at least 1'),
    ('DATASET.BATCH_SIZE', lambda v: v >= 1, 'at least 1'),
    ('DATASET.VAL_BATCH_MUL', lambda v: v >= 1, 'at least 1'),
    ('DATASET.CROP_PCT', lambda v: 0 < v <= 1, 'in (0, 1]'),
    ('NET.DROPOUT_RATE', lambda v: 0 <= v < 1, 'in [0, 1)'),
    ('NET.DROP_PATH_RATE', lambda v: 0 <= v < 1, 'in [0, 1)'),
    ('NET.EMA.DECAY', lambda v: 0 <= v <= 1, 'in [0, 1]'),
    ('AUGMENTATION.RE_PROB', lambda v: 0 <= v <= 1, 'a probability in [0, 1]'),
    ('AUGMENTATION.RE_COUNT', lambda v: v >= 1, 'at least 1'),
    ('AUGMENTATION.MIXUP', lambda v: v >= 0, '0 (off) or a positive alpha'),
    ('AUGMENTATION.CUTMIX', lambda v: v >= 0, '0 (off) or a positive alpha'),
    ('AUGMENTATION.MIXUP_OFF_EPOCH', lambda v: v >= 0, '0 (never) or an epoch'),
    ('AUGMENTATION.SMOOTHING', lambda v: 0 <= v < 1, 'in [0, 1)'),
    ('AUGMENTATION.SCALE', lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1, 'two area shares (low, high) with 0 < low <= high <= 1'),
    ('BATCHNORM.BN_MOMENTUM', lambda v: 0 <= v <= 1, 'in [0, 1]'),
    ('BATCHNORM.BN_EPS', lambda v: v > 0, 'positive'),
    ('SUPERNET.UPDATE_ITER', lambda v: v >= 1, 'at least 1 (steps between meta-matching updates)'),
    ('SUPERNET.SLICE', lambda v: v >= 1, 'at least 1'),
    ('SUPERNET.POOL_SIZE', lambda v: v >= 1, 'at least 1 (paths on the board)'),
    ('SUPERNET.FLOPS_MINIMUM', lambda v: v >= 0, '0 or more MFLOPs'),
    ('SUPERNET.FLOPS_MAXIMUM', lambda v: v > 0, 'positive MFLOPs'),
    ('SUPERNET.LATENCY_MINIMUM', lambda v: v >= 0, '0 or more ms'),
    ('SUPERNET.LATENCY_MAXIMUM', lambda v: v >= 0, '0 or more ms'),
    ('SUPERNET.RESOLUTION', lambda v: v == 0 or v >= 32, "0 (the budget rule's) or at least 32 px"),
    ('SUPERNET.META_STA_EPOCH', lambda v: v >= 0, '0 or more'),
    ('SUPERNET.BN_RECALIBRATION_BATCHES', lambda v: v >= 0, '0 (off) or more batches'),
    ('SUPERNET.FINAL_PICK_SAMPLES', lambda v: v >= 0, '0 (the board alone) or more sampled paths'),
    ('SUPERNET.FINAL_PICK_BN_BATCHES', lambda v: v >= 1, 'at least 1 batch'),
)


def _non_finite(node: CN, prefix: str = ''):
    """(key, value) of the first NaN or infinite number in the config (e.g. LR 1e999, which parses as inf)."""
    for key, value in node.items():
        if isinstance(value, CN):
            found = _non_finite(value, f'{prefix}{key}.')
            if found:
                return found
        elif any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, (list, tuple))
                                                                         else [value])):
            return f'{prefix}{key}', value
    return None


def _check_timm_names(cfg: CN) -> None:
    """OPT, NET.GP and AUGMENTATION.AA as timm reads them: each is built once, on a dummy where needed."""
    from timm.layers import SelectAdaptivePool2d

    from lib.data.transforms import check_auto_augment
    from lib.retrain.optim import build_optimizer
    try:
        build_optimizer(cfg, torch.nn.Linear(1, 1), cfg.LR)  # the retraining's own factory call
    except (ValueError, AssertionError, ImportError, KeyError, TypeError) as err:
        raise ConfigError(f'OPT is {cfg.OPT!r}, which timm cannot build ({type(err).__name__}: {err}); use sgd, '
                          'momentum, rmsproptf, adamw, ... (timm.optim.list_optimizers())') from None
    try:
        SelectAdaptivePool2d(pool_type=cfg.NET.GP)
    except (AssertionError, ValueError) as err:
        raise ConfigError(f'NET.GP is {cfg.NET.GP!r}, which is no timm pooling ({err}); use avg, max, avgmax or '
                          'catavgmax') from None
    check_auto_augment(cfg.AUGMENTATION.AA)


def check_values(cfg: CN) -> None:
    """Every bad value is one ConfigError naming the key, its value and what it must be."""
    found = _non_finite(cfg)
    if found:
        raise ConfigError(f'{found[0]} is {found[1]!r}; it must be a finite number')
    choices = {
        'AMP_DTYPE': ('bfloat16', 'float16'),
        'DEVICE': ('auto', 'cpu', 'cuda'),
        'DIST_BACKEND': ('auto', 'nccl', 'gloo'),
        'EVAL_METRICS': ('prec1', 'loss'),
        'SUPERNET.PICK_METHOD': ('meta', 'top1'),
        'SUPERNET.HOW_TO_PROB': ('even', 'pre_prob', 'teacher'),
        'SUPERNET.FLOPS_TABLE': ('original', 'counted'),
        'SUPERNET.META_INNER_GRAD': ('full', 'detached'),
        'SUPERNET.META_INNER_LR': ('meta', 'supernet'),
        'SUPERNET.PROBE_PROBS': ('teacher', 'student'),
        'SUPERNET.PROBE_FORWARD': ('per_entry', 'batched'),
        'SUPERNET.BOARD_FLOPS': ('flops_est', 'budget'),
        'SUPERNET.BUDGET_MEASURE': ('flops', 'latency'),
        'SUPERNET.PROBE_SOURCE': ('rank', 'rank0'),
        'DATASET.EVAL_INTERPOLATION': ('bicubic', 'bilinear'),
    }
    for key, allowed in choices.items():
        value = value_at(cfg, key)
        if value not in allowed:
            raise ConfigError(f'{key} is {value!r}; allowed: {", ".join(allowed)}')
    for key, test, must in _RANGES:
        value = value_at(cfg, key)
        if not test(value):
            raise ConfigError(f'{key} is {value!r}; it must be {must}')
    if cfg.SUPERNET.FLOPS_MINIMUM > cfg.SUPERNET.FLOPS_MAXIMUM:
        raise ConfigError(f'SUPERNET.FLOPS_MINIMUM {cfg.SUPERNET.FLOPS_MINIMUM} is above SUPERNET.FLOPS_MAXIMUM '
                          f'{cfg.SUPERNET.FLOPS_MAXIMUM}; the budget is MINIMUM..MAXIMUM MFLOPs')
    check_latency_budget(cfg.SUPERNET)
    _check_timm_names(cfg)
    if cfg.AUTO_RESUME and cfg.OVERWRITE:
        raise ConfigError('AUTO_RESUME and OVERWRITE are both True: AUTO_RESUME continues the run in OUTPUT/MODEL, '
                          'OVERWRITE deletes it and starts afresh; set one of them to False')


def check_latency_budget(sn: CN) -> None:
    """The keys of a latency budget and of the layers it may give the space (SUPERNET.BUDGET_MEASURE latency)."""
    layers = list(sn.SEARCH_LAYERS)
    if sn.BUDGET_MEASURE != 'latency':
        if layers:
            raise ConfigError('SUPERNET.SEARCH_LAYERS gives the layers of a latency budget\'s space; with '
                              'SUPERNET.BUDGET_MEASURE flops the FLOPs budget sizes the space: leave it out')
        return
    if not sn.LATENCY_TABLE:
        raise ConfigError('SUPERNET.BUDGET_MEASURE latency needs SUPERNET.LATENCY_TABLE: a table measured with '
                          'python tools/latency_table.py measure --cfg <this config> --out <table.json>')
    if sn.LATENCY_MAXIMUM <= 0 or sn.LATENCY_MINIMUM > sn.LATENCY_MAXIMUM:
        raise ConfigError(f'the latency budget SUPERNET.LATENCY_MINIMUM..LATENCY_MAXIMUM is {sn.LATENCY_MINIMUM:g}..'
                          f'{sn.LATENCY_MAXIMUM:g} ms; give a positive LATENCY_MAXIMUM not below LATENCY_MINIMUM')
    if layers and (len(layers) != 5 or not all(isinstance(n, int) and n >= 1 for n in layers)):
        raise ConfigError(f'SUPERNET.SEARCH_LAYERS is {layers}; it must give 5 positive layer counts, one per '
                          'searchable stage, e.g. [1, 2, 2, 2, 1]')
