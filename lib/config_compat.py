"""The original's config keys that nothing here reads: accepted, so that its configs load, with one
warning naming those a config sets to something other than the default."""
import warnings
from typing import Any

# Key -> why it changes nothing (shown in the warning).
NOT_READ = {
    'NUM_GPU': 'the launcher decides the number of processes',
    'LOCAL_RANK': 'the launcher sets it',
    'SAVE_IMAGES': 'the original did not read it either',
    'START_EPOCH': 'resuming decides the start epoch',
    'OPTIMIZER.NAME': 'OPT names the optimizer',
    'OPTIMIZER.MOMENTUM': 'MOMENTUM is the one read',
    'OPTIMIZER.WEIGHT_DECAY': 'WEIGHT_DECAY is the one read',
    'BATCHNORM.BN_TF': 'TF-style batch norm is not implemented',
}


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
