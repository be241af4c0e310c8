"""Loading a config: the defaults tree (from ``lib.config.table``) <- each yaml file (``_BASE_`` layering, the
original's aliases) <- ``KEY VALUE`` pairs, with friendly types, then the value checks (``lib.config.checks``) and
the warning about keys nothing reads; saving it beside a run's results."""
import ast
import os
from typing import List, Optional, Sequence

import yaml
from yacs.config import CfgNode as CN

from lib.config.checks import check_values
from lib.config.compat import apply_aliases, warn_unread_keys
from lib.config.table import defaults_tree
from lib.errors import ConfigError
from lib.fileio import write_text_atomic

_C = defaults_tree()


def get_defaults() -> CN:
    return _C.clone()


def _coerce(defaults: CN, tree: dict, prefix: str = '') -> dict:
    """Friendly types before yacs' strict check: ``LR: 1`` is a float, ``LR_NOISE: [30]`` may fill a None."""
    for key, value in tree.items():
        if key not in defaults:
            raise ConfigError(f'unknown config key {prefix}{key}; see docs/config.md for the keys')
        default = defaults[key]
        if isinstance(value, str) and not isinstance(default, str):
            value = _parse_value(value)  # '(0.05, 0.2)' or 'None' as yaml strings
        if isinstance(default, CN):
            if not isinstance(value, dict):
                raise ConfigError(f'{prefix}{key} is a section; give it as a mapping, not {value!r}')
            value = _coerce(default, value, f'{prefix}{key}.')
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif default is None or value is None:
            pass  # optional keys: None and a value replace each other freely
        elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
            value = type(default)(value)
        elif type(value) is not type(default):
            raise ConfigError(f'{prefix}{key} must be {type(default).__name__} (default {default!r}); got {value!r}')
        tree[key] = value
    return tree


def _merge_dict(cfg: CN, tree: dict, source: str) -> None:
    try:
        tree = _coerce(cfg, apply_aliases(tree))
        for key, value in tree.items():
            if isinstance(value, dict):
                cfg[key].merge_from_other_cfg(CN(value))
            else:
                cfg[key] = value
    except ConfigError as err:
        raise ConfigError(f'{source}: {err}') from None


def _load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f'config file {path!r} not found; pass an existing yaml file with --cfg')
    try:
        with open(path, encoding='utf-8') as f:
            tree = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f'{path}: not valid yaml: {" ".join(str(err).split())}') from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f'config file {path!r} cannot be read ({type(err).__name__}: '
                          f'{getattr(err, "strerror", None) or err}); pass a yaml file with --cfg') from None
    if not isinstance(tree, dict):
        raise ConfigError(f'{path}: a config file must be a mapping of KEY: value')
    # ``_BASE_`` names a yaml file (relative to this one) whose values this one overrides.
    base = tree.pop('_BASE_', None)
    try:
        tree = apply_aliases(tree)  # before layering, so that a file's OUTPUT overrides its base's SAVE_PATH
    except ConfigError as err:
        raise ConfigError(f'{path}: {err}') from None
    if base is not None:
        base_tree = _load_yaml(os.path.join(os.path.dirname(path), base))
        tree = _deep_update(base_tree, tree)
    return tree


def _deep_update(base: dict, over: dict) -> dict:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def load_config(cfg_files: Optional[Sequence[str]] = None, opts: Optional[List[str]] = None) -> CN:
    """Defaults <- each yaml file in turn <- ``KEY VALUE`` pairs; returns the frozen config."""
    cfg = get_defaults()
    if isinstance(cfg_files, str):
        cfg_files = [cfg_files]
    for path in cfg_files or []:
        _merge_dict(cfg, _load_yaml(path), path)
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigError(f'overrides come in KEY VALUE pairs; got an odd list: {opts}')
    # The command line is one source: MODEL_SELECTION and NET.SELECTION (or OUTPUT and SAVE_PATH) set to
    # different values there is an error, as in one yaml file.
    tree: dict = {}
    for key, text in zip(opts[0::2], opts[1::2]):
        node = tree
        parts = key.split('.')  # aliases are top-level keys: _merge_dict maps them
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f'command-line override {key}: {part} is not a section')
        node[parts[-1]] = _parse_value(text)
    if tree:
        _merge_dict(cfg, tree, 'command-line overrides')
    check_values(cfg)
    warn_unread_keys(cfg, _C)
    cfg.freeze()
    return cfg


def save_config(cfg: CN, path: str) -> None:
    """Write the full config as yaml, atomically."""
    write_text_atomic(cfg.dump(), path)
