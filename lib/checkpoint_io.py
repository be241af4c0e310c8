"""Checkpoint files: safe loading of released and own checkpoints, weight extraction, atomic saving.

Depends on torch only, so that both ``lib.models`` (``create_model``) and ``lib.engine`` can use it
without ``lib.models`` importing the engine.

Loading never runs code from the file. Our own checkpoints load with ``torch.load(weights_only=True)``.
The released Cream checkpoints carry a pickled ``yacs.config.CfgNode`` in ``args``, which torch's
weights-only unpickler refuses (it only fills plain dicts); for those we unpickle with a standard
unpickler whose ``find_class`` resolves an explicit allowlist of globals and refuses everything else
(``CfgNode``, and the ``argparse.Namespace`` of timm's train.py checkpoints, resolve to plain dict
stand-ins). ``allow_released_checkpoints_in_weights_only_loads``
instead teaches torch's own weights-only loader to read them (used for timm's ``checkpoint_path``).
"""
import codecs
import logging
import os
import pickle
import tempfile
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import torch
import torch._utils

from lib.errors import CreamError

_LOGGER = logging.getLogger('cream.checkpoint')

PathLike = Union[str, os.PathLike]

EMA_KEYS = ('state_dict_ema', 'model_ema')
RAW_KEYS = ('state_dict', 'model')
_WRAPPER_PREFIXES = ('module.', '_orig_mod.')  # DDP, torch.compile


class CheckpointError(CreamError, ValueError):
    """A checkpoint that cannot be used: unreadable, unsafe, or not matching the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint path does not exist."""


class CorruptCheckpointError(CheckpointError):
    """The file is truncated or not a torch checkpoint."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle asks for a global outside the allowlist (nothing from it was executed)."""


class StateDictMismatchError(CheckpointError):
    """The checkpoint's weights do not fit the model (missing/unexpected keys, other shapes)."""


class ReleasedCfgNode(dict):
    """Takes the place of ``yacs.config.CfgNode`` while unpickling a released checkpoint.

    Keeps the config's keys and values; drops CfgNode's internal flags (``__immutable__``, ...),
    which the pickle restores through BUILD.
    """

    def __setstate__(self, state):
        pass


class TrainingArgs(dict):
    """Takes the place of ``argparse.Namespace`` (the ``args`` of checkpoints written by timm's train.py).

    The pickle restores the namespace's attributes through BUILD; they become the dict's items.
    """

    def __setstate__(self, state):
        self.update(state if isinstance(state, Mapping) else {})


def _torch_dtypes() -> Dict[Tuple[str, str], Any]:
    return {('torch', name): value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}


# Every global a released or own checkpoint needs, (module, name) -> object. Torch resolves storage
# classes (``torch FloatStorage`` ...) itself before asking the unpickler. ``__builtin__`` is how
# protocol-2 pickles written by Python 2 / torch.save name ``builtins``.
_ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ('collections', 'OrderedDict'): OrderedDict,
    ('torch._utils', '_rebuild_tensor'): torch._utils._rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v2'): torch._utils._rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): torch._utils._rebuild_parameter,
    ('torch', 'Size'): torch.Size,
    ('torch', 'device'): torch.device,
    ('_codecs', 'encode'): codecs.encode,  # bytes in protocol-2 pickles
    ('yacs.config', 'CfgNode'): ReleasedCfgNode,
    ('argparse', 'Namespace'): TrainingArgs,
    **_torch_dtypes(),
    **{(module, name): value
       for module in ('builtins', '__builtin__')
       for name, value in (('set', set), ('frozenset', frozenset), ('complex', complex), ('slice', slice))},
}


class _RestrictedUnpickler(pickle.Unpickler):
    source = '<checkpoint>'  # set per load, for the error message

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load {self.source}: its pickle needs the global '{module}.{name}', which is not "
                'on the checkpoint allowlist (tensors, containers, configs); nothing from the file was '
                'executed. Convert the file with the code that wrote it if you trust it.') from None


def _restricted_pickle_module(source: str) -> types.SimpleNamespace:
    """A ``pickle_module`` for ``torch.load`` whose unpickler only resolves allowlisted globals."""

    class Unpickler(_RestrictedUnpickler):
        pass

    Unpickler.source = source

    def load(file, **kwargs):
        return Unpickler(file, **kwargs).load()

    return types.SimpleNamespace(__name__='cream_restricted_pickle', Unpickler=Unpickler, load=load)


def restricted_load(path: PathLike, map_location='cpu') -> Any:
    """``torch.load`` with the allowlist unpickler (legacy or zip serialization). Raises on anything else."""
    return torch.load(path, map_location=map_location, weights_only=False,
                      pickle_module=_restricted_pickle_module(repr(str(path))))


def allow_released_checkpoints_in_weights_only_loads() -> None:
    """Let any ``torch.load(weights_only=True)`` (e.g. timm's ``load_checkpoint``) read released checkpoints.

    Registers torch's sanctioned alias ``(OrderedDict, 'yacs.config.CfgNode')``: the pickled config
    comes back as a plain ``OrderedDict`` (torch's weights-only unpickler fills it; no code runs).
    Process-wide; idempotent.
    """
    alias = (OrderedDict, 'yacs.config.CfgNode')
    if alias not in torch.serialization.get_safe_globals():
        torch.serialization.add_safe_globals([alias])


def _plain_config(value: Any) -> Any:
    """CfgNode stand-ins (and any mapping) inside ``args`` -> plain dicts, so re-saving stays weights-only."""
    if isinstance(value, Mapping):
        return {key: _plain_config(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_config(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain_config(item) for item in value)
    return value


def load_checkpoint_file(path: PathLike, map_location='cpu') -> Any:
    """Load a checkpoint file safely: weights-only first, then the allowlist unpickler (released files).

    Raises ``CheckpointNotFoundError``, ``CorruptCheckpointError`` (truncated or not a checkpoint) or
    ``UnsafeCheckpointError`` (a global outside the allowlist; nothing executed).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f'checkpoint file not found: {str(path)!r}')
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
        loader = 'weights_only'
    except Exception as fast_error:  # refused or unreadable: the restricted loader decides which
        _LOGGER.debug('weights-only load of %s failed (%s); trying the allowlist unpickler',
                      path, type(fast_error).__name__)
        try:
            checkpoint = restricted_load(path, map_location=map_location)
        except UnsafeCheckpointError:
            raise
        except Exception as error:
            raise CorruptCheckpointError(
                f'cannot read checkpoint {str(path)!r}: truncated or not a checkpoint '
                f'({type(error).__name__}: {error})') from error
        loader = 'allowlist'
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('args'), Mapping):
        checkpoint['args'] = _plain_config(checkpoint['args'])
    _LOGGER.debug('loaded %s (%s unpickler)', path, loader)
    return checkpoint


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


def save_checkpoint_atomic(obj: Any, path: PathLike) -> Path:
    """``torch.save`` to a temporary file in the target folder, fsync, then rename over ``path``.

    A crash mid-write leaves the previous file at ``path`` untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not supported on every platform/filesystem.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
