"""Checkpoints for the training scripts: the released format family, RNG state, safe loading, atomic saving.

The file-level functions live in ``lib.checkpoint_io`` (torch only, shared with ``lib.models``) and
are re-exported here. A checkpoint we write has the released checkpoints' keys (``epoch``, ``arch``,
``state_dict``, ``state_dict_ema``, ``optimizer``, ``args``, ``version``, ``metric``) but keeps the
config as a plain nested dict, so it loads with ``torch.load(weights_only=True)``.
"""
import random
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch

from lib.checkpoint_io import (  # noqa: F401  (re-exported API)
    CheckpointError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    StateDictMismatchError,
    UnsafeCheckpointError,
    check_state_dict,
    extract_state_dict,
    load_checkpoint_file,
    load_model_weights,
    restricted_load,
    save_checkpoint_atomic,
)

# The released files say 2; ours are a superset of that format.
CHECKPOINT_VERSION = 2
FORMAT_TAG = 'cream-reimpl-1'


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside DDP / timm ModelEma (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, 'module', None)
        if not isinstance(inner, torch.nn.Module):
            inner = getattr(model, '_orig_mod', None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def config_to_dict(cfg: Any) -> Any:
    """A yacs CfgNode (or any nested mapping) as plain dicts/lists, safe for weights-only loading."""
    if isinstance(cfg, Mapping):
        return {str(key): config_to_dict(value) for key, value in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(value) for value in cfg]
    return cfg


def make_checkpoint(model: torch.nn.Module, model_ema: Optional[torch.nn.Module] = None,
                    optimizer: Optional[torch.optim.Optimizer] = None, *, epoch: int, arch: Any,
                    cfg: Any = None, metric: Optional[float] = None,
                    extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A checkpoint dict in the released format family (plus whatever ``extra`` adds).

    ``arch`` is the model name or the path (list of lists); ``cfg`` a yacs config or dict, stored as a
    plain dict under ``args``; ``state_dict_ema`` is left out when there is no EMA model.
    """
    checkpoint = {
        'epoch': int(epoch),
        'arch': arch,
        'state_dict': unwrap_model(model).state_dict(),
        'optimizer': optimizer.state_dict() if optimizer is not None else None,
        'args': config_to_dict(cfg) if cfg is not None else None,
        'version': CHECKPOINT_VERSION,
        'format': FORMAT_TAG,
        'metric': float(metric) if metric is not None else None,
    }
    if model_ema is not None:
        checkpoint['state_dict_ema'] = unwrap_model(model_ema).state_dict()
    for key, value in (extra or {}).items():
        if key in checkpoint:
            raise ValueError(f"make_checkpoint: extra key '{key}' would overwrite a standard checkpoint key")
        checkpoint[key] = value
    return checkpoint


def capture_rng_state() -> Dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states as tensors/lists, so no numpy pickle is needed."""
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    state = {
        'python': random.getstate(),
        'numpy': [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_cached)],
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state`` (CUDA states only when CUDA is in use)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = state['numpy']
    np.random.set_state((np_kind, np.asarray(np_keys, dtype=np.int64).astype(np.uint32), np_pos,
                         np_has_gauss, np_cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
