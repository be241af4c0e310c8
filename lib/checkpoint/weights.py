"""The model weights inside a loaded checkpoint: which ones (EMA or raw), whether they fit, loading them.

Torch only, like ``lib.checkpoint.files``. ``unwrap_model`` is the one way to reach the bare network inside
DDP, timm's ModelEma and torch.compile wrappers.
"""
import logging
from collections import OrderedDict
from typing import Any, Mapping, Tuple, Union

import torch

from lib.checkpoint.files import CheckpointError, PathLike, StateDictMismatchError, load_checkpoint_file

_LOGGER = logging.getLogger('cream.checkpoint')

EMA_KEYS = ('state_dict_ema', 'model_ema')
RAW_KEYS = ('state_dict', 'model')
_WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # DDP, torch.compile


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The bare network inside DDP / timm ModelEma (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(model, 'module', None)
        if not isinstance(inner, torch.nn.Module):
            inner = getattr(model, '_orig_mod', None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _is_state_dict(value: Any) -> bool:
    return (isinstance(value, Mapping) and len(value) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()))


def _strip_wrapper_prefixes(state_dict: Mapping[str, torch.Tensor]) -> 'OrderedDict[str, torch.Tensor]':
    """Drop the DDP ('module.') and torch.compile ('_orig_mod.') prefixes when every key has them."""
    state_dict = OrderedDict(state_dict)
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if state_dict and all(key.startswith(prefix) for key in state_dict):
                _LOGGER.info("stripping the prefix '%s' from every key", prefix)
                state_dict = OrderedDict((key[len(prefix):], value) for key, value in state_dict.items())
                stripped = True
    return state_dict


def extract_state_dict(checkpoint: Any, use_ema: bool = True) -> Tuple['OrderedDict[str, torch.Tensor]', str]:
    """The model weights of a loaded checkpoint and where they came from.

    Takes ``state_dict``/``state_dict_ema`` (also ``model``/``model_ema``) or a bare state dict;
    prefers EMA weights unless ``use_ema=False``; strips DDP ``module.`` / compile ``_orig_mod.``
    prefixes. ``which`` is the key used, or ``'bare'``.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'a checkpoint must be a dict of weights, got {type(checkpoint).__name__}')
    ema_key = next((k for k in EMA_KEYS if checkpoint.get(k) is not None), None)
    raw_key = next((k for k in RAW_KEYS if checkpoint.get(k) is not None), None)
    if use_ema and ema_key:
        which = ema_key
        _LOGGER.info("using the EMA weights ('%s')", which)
    elif raw_key:
        which = raw_key
        if use_ema:
            _LOGGER.warning("the checkpoint has no EMA weights; using the raw weights ('%s')", which)
        else:
            _LOGGER.info("using the raw weights ('%s')", which)
    elif _is_state_dict(checkpoint):
        which = 'bare'
        _LOGGER.info('the checkpoint is a bare state dict (no EMA weights); using it')
    elif ema_key:
        raise CheckpointError(
            f"raw weights were asked for (use_ema=False) but the checkpoint only has '{ema_key}'; "
            'load it with use_ema=True')
    else:
        raise CheckpointError(
            f'no weights in the checkpoint: expected one of {EMA_KEYS + RAW_KEYS} or a bare state dict; '
            f'its keys are {sorted(map(str, checkpoint))[:20]}')
    weights = checkpoint if which == 'bare' else checkpoint[which]
    if not _is_state_dict(weights):
        raise CheckpointError(f"checkpoint entry '{which}' is not a state dict of tensors")
    return _strip_wrapper_prefixes(weights), which


def _listing(keys, limit: int = 20) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:limit])
    return f'{shown}, ... ({len(keys)} in all)' if len(keys) > limit else shown


def check_state_dict(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True,
                     source: str = 'checkpoint') -> None:
    """Raise ``StateDictMismatchError`` on shape mismatches, and (``strict``) on missing/unexpected keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [f'{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(v.shape)})'
                  for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = []
    if strict and missing:
        problems.append(f'missing keys: {_listing(missing)}')
    if strict and unexpected:
        problems.append(f'unexpected keys: {_listing(unexpected)}')
    if mismatched:
        problems.append(f'shape mismatches: {_listing(mismatched)}')
    if problems:
        raise StateDictMismatchError(
            f'{source} does not fit the model ({type(model).__name__}): ' + '; '.join(problems)
            + '. Check the model selection / arch and num_classes.')
    if missing or unexpected:
        _LOGGER.warning('non-strict load from %s: %d missing keys (%s), %d unexpected keys (%s)',
                        source, len(missing), _listing(missing, 5), len(unexpected), _listing(unexpected, 5))


def load_model_weights(model: torch.nn.Module, path: Union[PathLike, Mapping], use_ema: bool = True,
                       strict: bool = True) -> str:
    """Load a checkpoint file (or an already loaded checkpoint dict) into ``model``; return which weights.

    Mismatched shapes always raise; missing or unexpected keys raise when ``strict`` (else warn).
    """
    is_loaded = isinstance(path, Mapping)
    checkpoint = path if is_loaded else load_checkpoint_file(path)
    source = 'checkpoint' if is_loaded else repr(str(path))
    state_dict, which = extract_state_dict(checkpoint, use_ema=use_ema)
    check_state_dict(model, state_dict, strict=strict, source=f'{source} [{which}]')
    model.load_state_dict(state_dict, strict=strict)
    return which
