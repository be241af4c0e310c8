"""The value checks of a merged config (``lib.config.load_config`` runs them before any work): finite numbers,
each key's choices and range (its ``Key`` in the table), then the named rules that span keys or ask timm
(``CROSS_KEY_RULES``)."""
import math

from yacs.config import CfgNode as CN

from lib.config.compat import value_at
from lib.config.table import KEYS
from lib.config.timm_names import check_timm_names
from lib.errors import ConfigError


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


def check_values(cfg: CN) -> None:
    """Every bad value is one ConfigError naming the key, its value and what it must be."""
    found = _non_finite(cfg)
    if found:
        raise ConfigError(f'{found[0]} is {found[1]!r}; it must be a finite number')
    for key in KEYS:
        value = value_at(cfg, key.name)
        if key.choices and value not in key.choices:
            raise ConfigError(f'{key.name} is {value!r}; allowed: {", ".join(key.choices)}')
    for key in KEYS:
        value = value_at(cfg, key.name)
        if key.check is not None and not key.check[0](value):
            raise ConfigError(f'{key.name} is {value!r}; it must be {key.check[1]}')
    for rule in CROSS_KEY_RULES:
        rule(cfg)


def check_flops_budget_order(cfg: CN) -> None:
    """SUPERNET.FLOPS_MINIMUM not above SUPERNET.FLOPS_MAXIMUM."""
    if cfg.SUPERNET.FLOPS_MINIMUM > cfg.SUPERNET.FLOPS_MAXIMUM:
        raise ConfigError(f'SUPERNET.FLOPS_MINIMUM {cfg.SUPERNET.FLOPS_MINIMUM} is above SUPERNET.FLOPS_MAXIMUM '
                          f'{cfg.SUPERNET.FLOPS_MAXIMUM}; the budget is MINIMUM..MAXIMUM MFLOPs')


def check_final_pick_samples(cfg: CN) -> None:
    """SUPERNET.FINAL_PICK evolution draws its own random paths: FINAL_PICK_SAMPLES stays 0."""
    if cfg.SUPERNET.FINAL_PICK == 'evolution' and cfg.SUPERNET.FINAL_PICK_SAMPLES > 0:
        raise ConfigError(f'SUPERNET.FINAL_PICK is evolution and SUPERNET.FINAL_PICK_SAMPLES is '
                          f'{cfg.SUPERNET.FINAL_PICK_SAMPLES}: the evolution draws its own random paths '
                          '(SUPERNET.EVOLUTION.POPULATION); set FINAL_PICK_SAMPLES 0, or FINAL_PICK board')


def check_latency_budget(cfg: CN) -> None:
    """The keys of a latency budget and of the layers it may give the space (SUPERNET.BUDGET_MEASURE latency)."""
    sn = cfg.SUPERNET
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


def check_resume_or_overwrite(cfg: CN) -> None:
    """AUTO_RESUME and OVERWRITE are not both True."""
    if cfg.AUTO_RESUME and cfg.OVERWRITE:
        raise ConfigError('AUTO_RESUME and OVERWRITE are both True: AUTO_RESUME continues the run in OUTPUT/MODEL, '
                          'OVERWRITE deletes it and starts afresh; set one of them to False')


# The rules that are no single key's, in the order they run (after every key's own check). Checks that need the
# network or the search space stay where those are built (lib.models.from_config: NET.SELECTION, NET.INPUT_ARCH;
# lib.search: a FLOPs budget some path meets, 2 x SLICE <= DATASET.BATCH_SIZE).
CROSS_KEY_RULES = (check_flops_budget_order, check_final_pick_samples, check_latency_budget, check_timm_names,
                   check_resume_or_overwrite)
