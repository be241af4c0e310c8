"""The original's config usage: its top-level aliases (``apply_aliases``), and its keys that nothing here
reads: accepted, so that its configs load, with one warning naming those a config sets to something other
than the default. Both lists come from the key table (``lib.config.table``: each key's ``aliases`` and
``unread``)."""
import os
import warnings
from typing import Any

from lib.config.table import ALIASES, NOT_READ
from lib.errors import ConfigError

# Folder keys whose empty or 'None' value means "not set" (the original's ``OUTPUT: 'None'``).
FOLDER_KEYS = ('SAVE_PATH', 'OUTPUT')
UNSET_FOLDERS = ('', 'None', None)


class UnreadConfigWarning(UserWarning):
    """A config sets keys that are accepted for compatibility but change nothing."""


def value_at(cfg, dotted_key: str) -> Any:
    for part in dotted_key.split('.'):
        cfg = cfg[part]
    return cfg


def warn_unread_keys(cfg, defaults) -> None:
    """One ``UnreadConfigWarning`` naming every ``NOT_READ`` key whose value in ``cfg`` is not the default."""
    changed = [f'{key} {value_at(cfg, key)!r} ({why})' for key, why in NOT_READ.items()
               if value_at(cfg, key) != value_at(defaults, key)]
    if changed:
        warnings.warn('the config sets keys that nothing reads (accepted so that the original\'s configs load; '
                      f'remove them): {"; ".join(changed)}', UnreadConfigWarning, stacklevel=3)


def _same(a, b) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return os.path.normpath(a) == os.path.normpath(b)
    return a == b


def apply_aliases(tree: dict) -> dict:
    """``tree`` (one source: a yaml file or the command line) with the aliases replaced by their full keys."""
    for key in FOLDER_KEYS:
        if key in tree and tree[key] in UNSET_FOLDERS:
            del tree[key]
    for alias, full in ALIASES.items():
        if alias in tree:
            *section, key = full.split('.')
            node = tree.setdefault(section[0], {}) if section else tree
            value = tree.pop(alias)
            if key in node and not _same(node[key], value):
                raise ConfigError(f'{alias} ({value!r}) and {full} ({node[key]!r}) are both set and differ; '
                                  f'keep one of them')
            node[key] = value
    return tree
