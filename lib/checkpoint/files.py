"""Checkpoint files: safe loading of released and own checkpoints, atomic saving.

Depends on torch only, so that both ``lib.models`` (``create_model``) and the training code can use it
without ``lib.models`` importing the training code.

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
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

import torch
import torch._utils

from lib.errors import CreamError
from lib.fileio import atomic_write

_LOGGER = logging.getLogger('cream.checkpoint')

PathLike = Union[str, os.PathLike]


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


def config_to_dict(cfg: Any, keep_tuples: bool = False) -> Any:
    """A yacs CfgNode (or a CfgNode stand-in, or any nested mapping) as plain dicts and lists (tuples too with
    ``keep_tuples``, as a loaded checkpoint's ``args`` keep them), so that the checkpoint holding it loads and
    re-saves with ``torch.load(weights_only=True)``."""
    if isinstance(cfg, Mapping):
        return {str(key): config_to_dict(value, keep_tuples) for key, value in cfg.items()}
    if isinstance(cfg, tuple) and keep_tuples:
        return tuple(config_to_dict(value, keep_tuples) for value in cfg)
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(value, keep_tuples) for value in cfg]
    return cfg


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
        checkpoint['args'] = config_to_dict(checkpoint['args'], keep_tuples=True)
    _LOGGER.debug('loaded %s (%s unpickler)', path, loader)
    return checkpoint


def save_checkpoint_atomic(obj: Any, path: PathLike) -> Path:
    """``torch.save`` through ``lib.fileio.atomic_write`` (creating the folder): a crash mid-write leaves the
    previous file at ``path`` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)
    return path
