"""The value checks of a merged config (``lib.config.load_config`` runs them before any work): finite numbers,
allowed choices, number ranges, the pairs of keys that contradict each other, and the names that timm resolves
(OPT, NET.GP, AUGMENTATION.AA), each asked of timm itself."""
import math

import torch
from yacs.config import CfgNode as CN

from lib.config_compat import value_at
from lib.errors import ConfigError

# key -> the values it may take, checked before any work.
CHOICES = {
    'AMP_DTYPE': ('bfloat16', 'float16'),
    'DEVICE': ('auto', 'cpu', 'cuda'),
    'DIST_BACKEND': ('auto', 'nccl', 'gloo'),
    'EVAL_METRICS': ('prec1', 'loss'),
    'SUPERNET.PICK_METHOD': ('meta', 'top1'),
    'SUPERNET.HOW_TO_PROB': ('even', 'pre_prob', 'teacher', 'fair'),
    'SUPERNET.BOARD_ADMISSION': ('train_batch', 'val_batch'),
    'SUPERNET.FLOPS_TABLE': ('original', 'counted'),
    'SUPERNET.META_INNER_GRAD': ('full', 'detached'),
    'SUPERNET.META_INNER_LR': ('meta', 'supernet'),
    'SUPERNET.PROBE_PROBS': ('teacher', 'student'),
    'SUPERNET.PROBE_FORWARD': ('per_entry', 'batched'),
    'SUPERNET.BOARD_FLOPS': ('flops_est', 'budget'),
    'SUPERNET.BUDGET_MEASURE': ('flops', 'latency'),
    'SUPERNET.PROBE_SOURCE': ('rank', 'rank0'),
    'SUPERNET.FINAL_PICK': ('board', 'evolution'),
    'DATASET.EVAL_INTERPOLATION': ('bicubic', 'bilinear'),
}

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
    ('SUPERNET.EVOLUTION.POPULATION', lambda v: v >= 1, 'at least 1 path'),
    ('SUPERNET.EVOLUTION.GENERATIONS', lambda v: v >= 0, '0 (generation 0 alone) or more'),
    ('SUPERNET.EVOLUTION.PARENTS', lambda v: v >= 1, 'at least 1 path'),
    ('SUPERNET.EVOLUTION.MUTATIONS', lambda v: v >= 0, '0 or more children'),
    ('SUPERNET.EVOLUTION.CROSSOVERS', lambda v: v >= 0, '0 or more children'),
    ('SUPERNET.EVOLUTION.MUTATION_PROB', lambda v: 0 < v <= 1, 'a probability in (0, 1]'),
)


# key -> what the value must be, for keys whose check is code of its own (here, lib.models.from_config,
# lib.retrain.optim, lib.search): the statement the configuration reference (docs/config.md) shows.
RULES = {
    'OPT': 'a name timm builds an optimizer for: sgd, momentum, rmsproptf, adamw, ... (timm.optim.list_optimizers())',
    'NET.GP': 'avg, max, avgmax or catavgmax (timm pooling)',
    'AUGMENTATION.AA': "a timm auto-augment spec (e.g. rand-m9-mstd0.5), or '' / None: off",
    'SCHED': 'a timm LR schedule (retrain): step, cosine, multistep, plateau, poly, tanh, constant or none',
    'NET.SELECTION': '14, 43, 114 (or 112), 287, 481, 604: a released network; -1: NET.INPUT_ARCH',
    'NET.INPUT_ARCH': 'a path: one list of op indices (0-5) per stage, as best_arch.yaml writes it',
    'DATASET.IMAGE_SIZE': '0 (native / the budget\'s) or a size in pixels',
    'SUPERNET.SEARCH_LAYERS': '[] or 5 positive layer counts; only with BUDGET_MEASURE latency',
    'SUPERNET.LATENCY_TABLE': 'a table file of tools/latency_table.py; needed with BUDGET_MEASURE latency',
    'SUPERNET.SLICE': 'at least 1; the search needs 2 x SLICE <= DATASET.BATCH_SIZE',
    'SUPERNET.RESUNIT': 'False (the op is refused: no child network could be built from it)',
    'SUPERNET.DIL_CONV': 'False (the ops are refused: no child network could be built from them)',
    'AUTO_RESUME': 'True or False; not True together with OVERWRITE',
    'OVERWRITE': 'True or False; not True together with AUTO_RESUME',
    'SUPERNET.FLOPS_MAXIMUM': 'positive MFLOPs, not below FLOPS_MINIMUM; some path of its space within the budget',
}


def allowed_values(key: str, default) -> str:
    """What ``key`` may be set to, in words: its rule, choices or range (first found), else its type."""
    ranges = {name: must for name, _, must in _RANGES}
    if key in RULES:
        return RULES[key]
    if key in CHOICES:
        return ', '.join(CHOICES[key])
    if key in ranges:
        return ranges[key]
    if isinstance(default, bool):
        return 'True or False'
    if default is None:
        return 'None or a value'
    return _TYPE_WORDS.get(type(default).__name__, type(default).__name__)


_TYPE_WORDS = {'int': 'an integer', 'float': 'a number', 'str': 'a string', 'list': 'a list', 'tuple': 'a tuple'}


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
    from lib.data.transforms import check_auto_augment
    from lib.models.ops import global_pool_problem
    from lib.retrain.optim import build_optimizer
    try:
        build_optimizer(cfg, torch.nn.Linear(1, 1), cfg.LR)  # the retraining's own factory call
    except (ValueError, AssertionError, ImportError, KeyError, TypeError) as err:
        raise ConfigError(f'OPT is {cfg.OPT!r}, which timm cannot build ({type(err).__name__}: {err}); use sgd, '
                          'momentum, rmsproptf, adamw, ... (timm.optim.list_optimizers())') from None
    pool_problem = global_pool_problem(cfg.NET.GP)
    if pool_problem is not None:
        raise ConfigError(f'NET.GP is {cfg.NET.GP!r}, which is no timm pooling ({pool_problem}); use avg, max, avgmax '
                          'or catavgmax')
    check_auto_augment(cfg.AUGMENTATION.AA)


def check_values(cfg: CN) -> None:
    """Every bad value is one ConfigError naming the key, its value and what it must be."""
    found = _non_finite(cfg)
    if found:
        raise ConfigError(f'{found[0]} is {found[1]!r}; it must be a finite number')
    for key, allowed in CHOICES.items():
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
    if cfg.SUPERNET.FINAL_PICK == 'evolution' and cfg.SUPERNET.FINAL_PICK_SAMPLES > 0:
        raise ConfigError(f'SUPERNET.FINAL_PICK is evolution and SUPERNET.FINAL_PICK_SAMPLES is '
                          f'{cfg.SUPERNET.FINAL_PICK_SAMPLES}: the evolution draws its own random paths '
                          '(SUPERNET.EVOLUTION.POPULATION); set FINAL_PICK_SAMPLES 0, or FINAL_PICK board')
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
