"""Every config key in one ordered table (``KEYS``: ``keys_run``, ``keys_training``, ``keys_search``, in the order of
the defaults tree and of docs/config.md), and what follows from it: the defaults tree, each key's choices, the keys a
resumed run may change, the keys nothing reads and the original's aliases."""
import copy
from typing import Dict, Tuple

from yacs.config import CfgNode as CN

from lib.config.keys_run import RUN_KEYS
from lib.config.keys_search import SEARCH_KEYS
from lib.config.keys_training import TRAINING_KEYS
from lib.config.spec import Key


def index_by_name(keys: Tuple[Key, ...]) -> Dict[str, Key]:
    """Name -> Key; ValueError naming the keys declared twice (the later would silently replace the earlier)."""
    by_name = {key.name: key for key in keys}
    if len(by_name) != len(keys):
        raise ValueError(f'config keys declared twice: {sorted({k.name for k in keys if k is not by_name[k.name]})}')
    return by_name


KEYS: Tuple[Key, ...] = RUN_KEYS + TRAINING_KEYS + SEARCH_KEYS
BY_NAME: Dict[str, Key] = index_by_name(KEYS)

# The original's top-level names -> the keys they stand for (lib.config.compat maps them before anything else).
ALIASES: Dict[str, str] = {alias: key.name for key in KEYS for alias in key.aliases}

# Key -> why it changes nothing: the original's keys that nothing here reads (lib.config.compat warns about them).
NOT_READ: Dict[str, str] = {key.name: key.unread for key in KEYS if key.unread}

# Keys a resumed run may set differently from the checkpoint's config (AUTO_RESUME): the length of the run, where
# files are, logging, worker processes, keys no script reads, and LR and CLIP_GRAD (to continue a diverged run more
# gently; a new LR scales the whole rest of the schedule). Any other difference is an error naming the keys: the
# resumed run would silently train another recipe than the one it continues. Aliases follow their key.
RESUME_MAY_CHANGE: Tuple[str, ...] = tuple(name for key in KEYS if key.resume for name in (key.name, *key.aliases))


def defaults_tree() -> CN:
    """A new yacs tree of every key at its default; sections are made where the dotted names need them."""
    root = CN()
    for key in KEYS:
        *sections, leaf = key.name.split('.')
        node = root
        for section in sections:
            if section not in node:
                node[section] = CN()
            node = node[section]
        node[leaf] = copy.deepcopy(key.default)  # a list default stays the table's
    return root


def choices(name: str) -> tuple:
    """The values key ``name`` may take (the table's ``choices``): for the modules that read it."""
    allowed = BY_NAME[name].choices
    if not allowed:
        raise KeyError(f'config key {name} has no choices')
    return allowed


def may_change_on_resume(name: str) -> bool:
    """Whether AUTO_RESUME accepts a value of key ``name`` other than the checkpoint's (False for unknown keys)."""
    key = BY_NAME.get(name)
    return key is not None and key.resume
