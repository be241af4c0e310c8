"""A finished search's supernet as a scorer of paths: each path's val prec@1 and loss with the supernet's shared
BN statistics and with its own re-estimated on N training batches (``lib.search.validate.recalibrated_bn``, the
search's own mechanism), and the path the search picked (best_arch.yaml)."""
import json
import os
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from lib.checkpoint.files import load_checkpoint_file
from lib.config import load_config
from lib.engine.distributed import DistContext
from lib.engine.evaluate import evaluate
from lib.errors import ConfigError
from lib.models import ops
from lib.models.supernet import SuperNet
from lib.search.flops import build_search_space
from lib.search.latency_budget import latency_budget
from lib.search.macs_table import build_flops_table
from lib.search.outputs import BEST_ARCH_FILE
from lib.search.validate import recalibrated_bn
from lib.train.session import build_loaders

CHECKPOINT_FILE = 'last.pth.tar'


def load_search_run(run_dir: str, device: str = 'cpu') -> SimpleNamespace:
    """The run's config (its config.yaml), search space, latency budget (None under a FLOPs budget), cost table,
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
    supernet.load_state_dict(load_checkpoint_file(checkpoint_file)['state_dict'])
    supernet.to(dist.device).eval()
    if cfg.CHANNELS_LAST:
        supernet.to(memory_format=torch.channels_last)
    train_loader, val_loader, _ = build_loaders(cfg, space.resolution, dist)
    return SimpleNamespace(cfg=cfg, space=space, latency=latency_budget(cfg, space),
                           table=build_flops_table(cfg, space), supernet=supernet,
                           train_loader=train_loader, val_loader=val_loader, dist=dist, run_dir=run_dir)


def score_paths(run: SimpleNamespace, paths: Sequence, bn_batches: int) -> List[Dict]:
    """Per path: val prec1/loss with the shared BN statistics ('shared') and, when ``bn_batches`` > 0, with
    the path's own re-estimated on that many training batches ('recalibrated'; the same batches for every path)."""
    cfg, supernet = run.cfg, run.supernet
    kwargs = dict(amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE, channels_last=cfg.CHANNELS_LAST)
    scores = []
    for path in paths:
        path = supernet.check_path(path)
        forward = lambda x, p=path: supernet(x, p)  # noqa: E731
        shared = evaluate(supernet, run.val_loader, run.dist.device, forward=forward, **kwargs)
        row = {'path': [list(s) for s in path], 'shared': {'prec1': shared['prec1'], 'loss': shared['loss']}}
        if bn_batches > 0:
            with recalibrated_bn(run, path, epoch=0, batches=bn_batches):
                recal = evaluate(supernet, run.val_loader, run.dist.device, forward=forward, **kwargs)
            row['recalibrated'] = {'prec1': recal['prec1'], 'loss': recal['loss']}
        scores.append(row)
    return scores


def chosen_path(run_dir: str) -> Optional[tuple]:
    """The path of the run's best_arch.yaml (INPUT_ARCH without the fixed stages), or None without one."""
    name = os.path.join(run_dir, BEST_ARCH_FILE)
    if not os.path.isfile(name):
        return None
    with open(name) as f:
        arch = yaml.safe_load(f)['INPUT_ARCH']
    return tuple(tuple(int(op) for op in stage) for stage in arch[1:-1])


def board_paths(run_dir: str) -> list:
    """The paths of the run's final board (board.json; none without one)."""
    name = os.path.join(run_dir, 'board.json')
    if not os.path.isfile(name):
        return []
    with open(name) as f:
        board = json.load(f)
    return [tuple(tuple(int(op) for op in stage) for stage in e['path']) for e in board['entries']]
