"""A finished search's supernet as a scorer of paths: each path's val prec@1 and loss with the supernet's shared
BN statistics and with its own re-estimated on N training batches (``lib.search.validate.recalibrated_bn``, the
search's own mechanism), and the path the search picked (best_arch.yaml). ``check_search_run`` checks a run
folder's files and that given paths are of its space, cheaply, before any scoring."""
import os
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from lib.checked_io import file_error, read_json
from lib.checkpoint.files import load_checkpoint_file
from lib.config import load_config
from lib.data.loaders import check_data_folders
from lib.engine.distributed import DistContext
from lib.errors import ConfigError
from lib.experiments.truth_files import checked_path
from lib.models import ops
from lib.models.childnet import ArchError, validate_arch
from lib.models.paths import path_key
from lib.models.supernet import SuperNet
from lib.search.flops import build_search_space
from lib.search.latency_budget import latency_budget
from lib.search.macs_table import build_macs_table
from lib.search.measures import search_budget
from lib.search.outputs import BEST_ARCH_FILE
from lib.search.validate import evaluate_path
from lib.train.session import build_loaders

CHECKPOINT_FILE = 'last.pth.tar'


def load_search_run(run_dir: str, device: str = 'cpu') -> SimpleNamespace:
    """The run's config (its config.yaml), search space, latency budget (None under a FLOPs budget), the
    search budget (``lib.search.measures``), MACs table,
    loaders and supernet with the weights of its last checkpoint: what ``score_paths``, ``recalibrated_bn`` and
    ``evaluate_path`` need of a search session."""
    config_file, checkpoint_file = os.path.join(run_dir, 'config.yaml'), os.path.join(run_dir, CHECKPOINT_FILE)
    for name in (config_file, checkpoint_file):
        if not os.path.isfile(name):
            raise ConfigError(f'{name} not found: {run_dir} is not a finished search run folder')
    cfg = load_config([config_file])
    space = build_search_space(cfg)
    dist = DistContext(device=torch.device(device))
    supernet = SuperNet(space.layers_per_stage, num_classes=cfg.DATASET.NUM_CLASSES, drop_rate=cfg.NET.DROPOUT_RATE,
                        norm_layer=ops.make_norm_layer(cfg.BATCHNORM.BN_MOMENTUM, cfg.BATCHNORM.BN_EPS),
                        global_pool=cfg.NET.GP)
    checkpoint = load_checkpoint_file(checkpoint_file)
    try:
        supernet.load_state_dict(checkpoint['state_dict'])
    except (KeyError, TypeError, RuntimeError) as err:
        raise file_error(checkpoint_file, f'holds no supernet of the space of {config_file} '
                                          f'({type(err).__name__}: {str(err).splitlines()[0][:200]})',
                         'give the folder of a finished search run, as train.py left it') from None
    supernet.to(dist.device).eval()
    if cfg.CHANNELS_LAST:
        supernet.to(memory_format=torch.channels_last)
    train_loader, val_loader, _ = build_loaders(cfg, space.resolution, dist)
    latency = latency_budget(cfg, space)
    return SimpleNamespace(cfg=cfg, space=space, latency=latency, budget=search_budget(cfg, space, latency),
                           table=build_macs_table(cfg, space), supernet=supernet,
                           train_loader=train_loader, val_loader=val_loader, dist=dist, run_dir=run_dir)


def score_paths(run: SimpleNamespace, paths: Sequence, bn_batches: int) -> List[Dict]:
    """Per path: val prec1/loss with the shared BN statistics ('shared') and, when ``bn_batches`` > 0, with
    the path's own re-estimated on that many training batches ('recalibrated'; the same batches for every path).
    Each is ``lib.search.validate.evaluate_path``, the search's own evaluation of a path (its TTA too)."""
    scores = []
    for path in paths:
        path = run.supernet.check_path(path)
        row = {'path': [list(s) for s in path]}
        budgets = {'shared': 0, **({'recalibrated': bn_batches} if bn_batches > 0 else {})}
        for name, batches in budgets.items():
            result = evaluate_path(run, path, epoch=0, bn_batches=batches, prefix=f'Score: {name}')
            row[name] = {'prec1': result['prec1'], 'loss': result['loss']}
        scores.append(row)
    return scores


def check_search_run(run_dir: str, paths: Sequence = ()) -> None:
    """Before any scoring: ``run_dir`` holds a search's config.yaml and checkpoint, its board.json and
    best_arch.yaml (where present) are whole, and ``paths`` are paths of its space."""
    config_file, checkpoint_file = os.path.join(run_dir, 'config.yaml'), os.path.join(run_dir, CHECKPOINT_FILE)
    for name in (config_file, checkpoint_file):
        if not os.path.isfile(name):
            raise ConfigError(f'{name} not found: {run_dir} is not a finished search run folder')
    cfg = load_config([config_file])
    layers = build_search_space(cfg).layers_per_stage
    check_data_folders(cfg)  # the scoring reads its data: a moved data set stops here, not after earlier runs
    chosen = chosen_path(run_dir)
    for path in [*paths, *board_paths(run_dir), *([chosen] if chosen else [])]:
        if tuple(len(stage) for stage in path) != tuple(layers):
            raise ConfigError(f'path {path_key(path)} does not fit search run {run_dir}, which searched '
                              f'{list(layers)} layers per stage: rank a ground truth of that run\'s space')


def chosen_path(run_dir: str) -> Optional[tuple]:
    """The path of the run's best_arch.yaml (INPUT_ARCH without the fixed stages), or None without one."""
    name = os.path.join(run_dir, BEST_ARCH_FILE)
    if not os.path.isfile(name):
        return None
    fix = 'let the search write it anew (train.py with AUTO_RESUME True), or remove it'
    try:
        with open(name) as f:
            config = yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise file_error(name, f'cannot be read ({type(err).__name__})', fix) from None
    try:
        arch = validate_arch(config['INPUT_ARCH'])
    except (TypeError, KeyError, ArchError) as err:
        raise file_error(name, f'holds no usable INPUT_ARCH ({type(err).__name__}: {err})', fix) from None
    return tuple(tuple(stage) for stage in arch[1:-1])


def board_paths(run_dir: str) -> list:
    """The paths of the run's final board (board.json; none without one)."""
    name = os.path.join(run_dir, 'board.json')
    if not os.path.isfile(name):
        return []
    fix = 'let the search write it anew (train.py with AUTO_RESUME True), or remove it'
    board = read_json(name, dict, 'board', fix)
    entries = board.get('entries')
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise file_error(name, 'has no list of entries', fix, 'board')
    try:
        return [checked_path(e.get('path'), f'entry {i}\'s path') for i, e in enumerate(entries)]
    except ArchError as err:
        raise file_error(name, f'is damaged: {err}', fix, 'board') from None
