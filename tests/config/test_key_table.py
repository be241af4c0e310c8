"""lib/config/table.py: every list about config keys follows from the one table of keys (lib/config/keys_*.py), and
the modules that read a key take its choices from there."""
import dataclasses

import pytest

from lib.checkpoint.resume import config_differences
from lib.config import RESUME_MAY_CHANGE, get_defaults, load_config
from lib.config import checks
from lib.config.table import (ALIASES, BY_NAME, KEYS, NOT_READ, choices, defaults_tree, index_by_name,
                              may_change_on_resume)
from lib.data import transforms
from lib.search import flops, meta_matching, meta_update, sampler


def test_the_defaults_tree_holds_every_key_of_the_table_in_its_order():
    leaves = []

    def walk(node, prefix=''):
        for key, value in node.items():
            if hasattr(value, 'items'):
                walk(value, f'{prefix}{key}.')
            else:
                leaves.append((f'{prefix}{key}', value))

    walk(get_defaults())
    assert leaves == [(key.name, key.default) for key in KEYS]
    tree = defaults_tree()
    tree.NET.INPUT_ARCH[0].append(5)  # a tree of its own: the table's list default stays as declared
    assert BY_NAME['NET.INPUT_ARCH'].default[0] == [0]


def test_a_key_declared_twice_is_refused():
    seed = BY_NAME['SEED']
    with pytest.raises(ValueError, match=r"declared twice: \['SEED'\]"):
        index_by_name((seed, BY_NAME['EPOCHS'], dataclasses.replace(seed, default=1)))


def test_every_default_meets_its_own_choices_and_range():
    for key in KEYS:
        assert not key.choices or key.default in key.choices, key.name
        assert key.check is None or key.check[0](key.default), key.name


def test_the_lists_follow_from_the_flags():
    assert NOT_READ['NUM_GPU'] == 'the launcher decides the number of processes' and 'SEED' not in NOT_READ
    assert set(NOT_READ) == {key.name for key in KEYS if key.unread}
    assert ALIASES == {'OUTPUT': 'SAVE_PATH', 'MODEL_SELECTION': 'NET.SELECTION', 'INPUT_ARCH': 'NET.INPUT_ARCH',
                       'FLOPS_MAXIMUM': 'SUPERNET.FLOPS_MAXIMUM', 'FLOPS_MINIMUM': 'SUPERNET.FLOPS_MINIMUM'}
    assert RESUME_MAY_CHANGE.index('OUTPUT') == RESUME_MAY_CHANGE.index('SAVE_PATH') + 1  # an alias after its key
    assert may_change_on_resume('OPTIMIZER.NAME') and may_change_on_resume('SUPERNET.EVOLUTION.PARENTS')
    assert not may_change_on_resume('SEED') and not may_change_on_resume('NO_SUCH_KEY')


def test_resuming_accepts_exactly_the_keys_the_table_lets_change():
    cfg = get_defaults()
    saved = {'SEED': 7, 'EPOCHS': 9, 'OPTIMIZER': {'NAME': 'adamw'}, 'SUPERNET': {'POOL_SIZE': 3, 'FINAL_PICK': 'x'}}
    differences = config_differences(saved, cfg)
    assert [line.split()[0] for line in differences] == ['SEED', 'SUPERNET.POOL_SIZE']


def test_a_check_comes_from_the_key_that_declares_it(monkeypatch):
    with pytest.raises(checks.ConfigError, match=r"DATASET\.INTERPOLATION is 'nearest'; allowed: bilinear, bicubic, "
                                                 r'random$'):
        load_config(None, ['DATASET.INTERPOLATION', 'nearest'])
    # A range declared on a key is checked, with its words, by nothing but the table.
    narrowed = tuple(dataclasses.replace(key, check=(lambda v: v <= 16, 'at most 16 here'))
                     if key.name == 'DATASET.BATCH_SIZE' else key for key in KEYS)
    monkeypatch.setattr(checks, 'KEYS', narrowed)
    with pytest.raises(checks.ConfigError, match=r'^DATASET\.BATCH_SIZE is 32; it must be at most 16 here$'):
        checks.check_values(get_defaults())


def test_cross_key_rules_run_after_every_key_check():
    budget = ['SUPERNET.FLOPS_MINIMUM', '100', 'SUPERNET.FLOPS_MAXIMUM', '50']
    with pytest.raises(checks.ConfigError, match=r'^EPOCHS is 0; it must be at least 1$'):
        load_config(None, budget + ['EPOCHS', '0'])
    with pytest.raises(checks.ConfigError, match=r'^SUPERNET\.FLOPS_MINIMUM 100 is above SUPERNET\.FLOPS_MAXIMUM 50'):
        load_config(None, budget)
    assert checks.check_flops_budget_order in checks.CROSS_KEY_RULES


@pytest.mark.parametrize('constant, key', [
    (transforms.INTERPOLATIONS, 'DATASET.INTERPOLATION'),
    (flops.FLOPS_TABLES, 'SUPERNET.FLOPS_TABLE'),
    (flops.BOARD_FLOPS, 'SUPERNET.BOARD_FLOPS'),
    (meta_matching.PICK_METHODS, 'SUPERNET.PICK_METHOD'),
    (sampler.HOW_TO_PROB_CHOICES, 'SUPERNET.HOW_TO_PROB'),
    (meta_update.INNER_GRADS, 'SUPERNET.META_INNER_GRAD'),
])
def test_reading_modules_take_their_choices_from_the_table(constant, key):
    assert constant is choices(key)


def test_a_key_without_choices_has_none_to_give():
    with pytest.raises(KeyError, match='SEED has no choices'):
        choices('SEED')
