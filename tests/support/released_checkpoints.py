"""Checkpoints in the released Cream format, written by the tests themselves (no weight file is shipped).

The weights follow the recipe stored in ``tests/reference/released_logits.pt`` (its ``'recipe'``
entry), a file that also holds the original implementation's eval-mode logits for those weights; so a
network built and loaded by us can be checked against the original to 1e-5 for all six releases.

The file format is the one of the downloadable checkpoints (see tests/reference/README.md): legacy,
non-zip torch serialization of a dict with keys epoch, arch, state_dict, optimizer, args (a pickled
``yacs.config.CfgNode``), version, metric, state_dict_ema; in the wild some files prefix every key
with ``module.`` (DDP) and some have no ``state_dict_ema``.
"""
import json
import math
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional

import torch
from yacs.config import CfgNode

from tests.support.paths import REFERENCE

RELEASED_KEYS = ['epoch', 'arch', 'state_dict', 'optimizer', 'args', 'version', 'metric', 'state_dict_ema']


@lru_cache(maxsize=None)
def manifest() -> Dict[str, dict]:
    """cream_models.json's models by selection name ('14', ...): arch, resolution, params, MACs, state_dict shapes."""
    return json.loads((REFERENCE / 'cream_models.json').read_text())['models']


@lru_cache(maxsize=None)
def released_logits() -> dict:
    """{selection: {'logits', 'keys', 'resolution'}, 'recipe': str}: the original's outputs for recipe weights."""
    return torch.load(REFERENCE / 'released_logits.pt', weights_only=True)


def recipe_weights(selection: int) -> 'OrderedDict[str, torch.Tensor]':
    """The state_dict of ``selection`` filled by the recipe of released_logits.pt, in the released key order."""
    generator = torch.Generator().manual_seed(1000 + selection)
    weights = OrderedDict()
    for key, shape in manifest()[str(selection)]['state_dict']:
        numel = math.prod(shape)
        if key.endswith('num_batches_tracked'):
            value = torch.tensor(0)  # as a freshly built network holds it
        elif key.endswith('running_var'):
            value = 0.5 + torch.rand(shape, generator=generator)
        elif key.endswith('running_mean'):
            value = 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith('weight') and len(shape) == 1:
            value = 1 + 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith('bias'):
            value = 0.1 * torch.randn(shape, generator=generator)
        else:
            value = torch.randn(shape, generator=generator) / math.sqrt(numel / shape[0])
        weights[key] = value
    return weights


def recipe_input(selection: int) -> torch.Tensor:
    """The two images the original's logits in released_logits.pt were computed for."""
    resolution = released_logits()[selection]['resolution']
    return torch.randn(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(selection))


def with_reversed_classes(weights: Dict[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """The same network with its 1000 outputs in reverse order: its logits are the original's, flipped."""
    reversed_weights = OrderedDict(weights)
    for key in ('classifier.weight', 'classifier.bias'):
        reversed_weights[key] = weights[key].flip(0).contiguous()
    return reversed_weights


def original_args(selection: int) -> CfgNode:
    """A retraining config shaped like the one pickled into the released files, with the values of the
    original's Cream/experiments/configs/retrain/<selection>.yaml: nested nodes, a tuple, a None, and
    the lower-case copy of every top-level key that the original's scripts kept beside it."""
    args = CfgNode({
        'AUTO_RESUME': False, 'DATA_DIR': './data/imagenet', 'MODEL': f'{selection}m_retrain',
        'RESUME_PATH': './experiments/workspace/retrain/resume.pth.tar',
        'SAVE_PATH': './experiments/workspace/retrain', 'SEED': 42, 'LOG_INTERVAL': 50, 'RECOVERY_INTERVAL': 0,
        'WORKERS': 8, 'NUM_GPU': 8, 'SAVE_IMAGES': False, 'AMP': False, 'OUTPUT': 'None',
        'EVAL_METRICS': 'prec1', 'TTA': 0, 'LOCAL_RANK': 0,
        'DATASET': {'NUM_CLASSES': 1000, 'IMAGE_SIZE': 224, 'INTERPOLATION': 'random', 'BATCH_SIZE': 128,
                    'NO_PREFECHTER': False},
        'NET': {'GP': 'avg', 'DROPOUT_RATE': 0.2, 'SELECTION': selection,
                'EMA': {'USE': True, 'FORCE_CPU': False, 'DECAY': 0.9999}},
        'LR': 0.064, 'EPOCHS': 500, 'OPT_EPS': 1e-3, 'SCHED': 'step', 'OPT': 'rmsproptf', 'WARMUP_LR': 1e-6,
        'DECAY_EPOCHS': 2.4, 'DECAY_RATE': 0.973, 'WARMUP_EPOCHS': 3, 'WEIGHT_DECAY': 1e-5,
        'START_EPOCH': None,  # config defaults the files also carry
        'SUPERNET': {'PICK_METHOD': 'meta', 'PRE_PROB': (0.05, 0.2, 0.05, 0.5, 0.05, 0.15)},
        'AUGMENTATION': {'AA': 'rand-m9-mstd0.5', 'RE_PROB': 0.2, 'RE_MODE': 'pixel'},
    })
    for key in list(args):
        args[key.lower()] = args[key]  # the same objects: the pickle refers back to them
    return args


def write_released_checkpoint(path: Path, selection: int, state_dict: Dict[str, torch.Tensor],
                              state_dict_ema: Optional[Dict[str, torch.Tensor]] = None,
                              prefix: str = '', epoch: int = 449, metric: float = 77.6) -> Path:
    """Write ``path`` exactly as the released checkpoints are written; no ``state_dict_ema`` key when it is None."""
    def prefixed(weights):
        return OrderedDict((prefix + key, value) for key, value in weights.items())

    params = [key for key, _ in manifest()[str(selection)]['state_dict']
              if not key.endswith(('running_mean', 'running_var', 'num_batches_tracked'))]
    optimizer = {'state': {}, 'param_groups': [{
        'lr': 0.064, 'momentum': 0.9, 'alpha': 0.9, 'eps': 0.001, 'centered': False, 'weight_decay': 1e-5,
        'params': list(range(len(params)))}]}
    checkpoint = {
        'epoch': epoch,
        'arch': f'{selection}m_retrain',
        'state_dict': prefixed(state_dict),
        'optimizer': optimizer,
        'args': original_args(selection),
        'version': 2,
        'metric': metric,
    }
    if state_dict_ema is not None:
        checkpoint['state_dict_ema'] = prefixed(state_dict_ema)
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)
    return path
