"""tools/config_reference.py: the page is the config tree itself (every key, default, allowed values, resume, help),
and a key without its line of help is an error (tests/test_docs.py compares docs/config.md with it)."""
from pathlib import Path

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
    assert rows['SUPERNET.BOARD_FLOPS'][1] == 'flops_est, budget'  # from config_checks.CHOICES
    assert rows['OPTIMIZER.NAME'][2] and rows['LR'][2] and not rows['SEED'][2]  # a listed section covers its keys
    assert rows['AMP'][1] == 'True or False'


def test_a_key_without_help_is_one_error_naming_it(tmp_path, monkeypatch):
    source = Path(reference.CONFIG_SOURCE).read_text()
    line = "_C.DATASET.BATCH_SIZE = 32  # per process"
    assert line in source
    copy = tmp_path / 'config.py'
    copy.write_text(source.replace(line, "_C.DATASET.BATCH_SIZE = 32"))
    monkeypatch.setattr(reference, 'CONFIG_SOURCE', str(copy))
    with pytest.raises(reference.MissingHelpError, match=r'without help: DATASET\.BATCH_SIZE;'):
        reference.render()


def test_help_is_read_from_the_tokens_not_from_text_that_looks_like_a_comment():
    helps = reference.help_comments("_C.A = 'x # not a comment'  # the help\n"
                                    "_C.B = (1,\n        2)  # after a statement of two lines\n"
                                    "_C.C = 3\n# a comment line of its own\nOTHER = 4  # not a key\n")
    assert helps == {'A': 'the help', 'B': 'after a statement of two lines'}


def test_check_says_whether_the_page_is_stale(tmp_path, capsys):
    page = tmp_path / 'config.md'
    assert reference.main(['--write', str(page)]) == 0
    assert reference.main(['--check', str(page)]) == 0
    page.write_text(page.read_text().replace('per process', 'per GPU'))
    assert reference.main(['--check', str(page)]) == reference.STALE_STATUS
    assert 'is stale: regenerate it with python tools/config_reference.py --write docs/config.md' in \
        capsys.readouterr().err
