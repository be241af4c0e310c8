"""tools/config_reference.py: the page is the key table itself (every key, default, allowed values, resume, help),
and a key without its line of help is an error (tests/test_docs.py compares docs/config.md with it)."""
import dataclasses

import pytest

from lib.config import get_defaults
from tests.support.scripts_as_modules import load_script

reference = load_script('tools/config_reference.py')


def test_every_key_has_a_row_with_its_default_and_help():
    rows = {key: (default, allowed, resumable, text) for key, default, allowed, resumable, text
            in reference.reference_rows()}
    keys = [key for key, _ in reference.leaf_keys(get_defaults())]
    assert list(rows) == keys and len(keys) > 100
    assert rows['DATASET.BATCH_SIZE'] == (32, 'at least 1', False, 'per process')
    assert rows['SUPERNET.BOARD_FLOPS'][1] == 'flops_est, budget'  # the key's choices
    assert rows['OPTIMIZER.NAME'][2] and rows['LR'][2] and not rows['SEED'][2]  # a listed section covers its keys
    assert rows['AMP'][1] == 'True or False'


def test_a_key_without_help_is_one_error_naming_it(monkeypatch):
    keys = tuple(dataclasses.replace(key, help=' ') if key.name == 'DATASET.BATCH_SIZE' else key
                 for key in reference.KEYS)
    monkeypatch.setattr(reference, 'KEYS', keys)
    with pytest.raises(reference.MissingHelpError, match=r'without help: DATASET\.BATCH_SIZE;'):
        reference.render()


def test_check_says_whether_the_page_is_stale(tmp_path, capsys):
    page = tmp_path / 'config.md'
    assert reference.main(['--write', str(page)]) == 0
    assert reference.main(['--check', str(page)]) == 0
    page.write_text(page.read_text().replace('per process', 'per GPU'))
    assert reference.main(['--check', str(page)]) == reference.STALE_STATUS
    assert 'is stale: regenerate it with python tools/config_reference.py --write docs/config.md' in \
        capsys.readouterr().err
