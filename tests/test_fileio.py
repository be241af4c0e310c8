import json
import os
from pathlib import Path

import pytest

from lib import fileio
from lib.fileio import remove_stale_temporary_files, write_json_atomic, write_text_atomic


def test_json_is_strict_with_nan_and_infinity_as_null(tmp_path):
    path = tmp_path / 'results.json'
    write_json_atomic({'val': {'loss': float('nan'), 'prec1': 12.5}, 'curve': [1.0, float('inf'), -float('inf')],
                       'pair': (float('nan'), 2)}, str(path))
    text = path.read_text()
    assert 'NaN' not in text and 'Infinity' not in text
    assert json.loads(text) == {'val': {'loss': None, 'prec1': 12.5}, 'curve': [1.0, None, None], 'pair': [None, 2]}


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / 'board.json'
    write_text_atomic('old', str(path))

    def killed(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(fileio.os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic('new', str(path))
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['board.json']


def test_stale_temporary_files_are_removed_and_named(tmp_path):
    for name in ('.last.pth.tar.x9.tmp', 'summary.csv.tmp', 'last.pth.tar'):
        (tmp_path / name).write_bytes(b'')
    (tmp_path / 'dir.tmp').mkdir()
    assert remove_stale_temporary_files(str(tmp_path)) == ['.last.pth.tar.x9.tmp', 'summary.csv.tmp']
    assert sorted(os.listdir(tmp_path)) == ['dir.tmp', 'last.pth.tar']
    assert remove_stale_temporary_files(str(tmp_path / 'missing')) == []


def test_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    from lib.fileio import atomic_directory
    root = tmp_path / 'data'
    with atomic_directory(root) as tmp:
        (Path(tmp) / 'a.txt').write_text('x')
        assert not root.exists()  # filled beside the target, renamed at the end
    assert (root / 'a.txt').read_text() == 'x'
    with pytest.raises(FileExistsError, match='not an empty directory'):
        with atomic_directory(root):
            pass
    failed = tmp_path / 'failed'
    with pytest.raises(RuntimeError):
        with atomic_directory(failed) as tmp:
            (Path(tmp) / 'half.txt').write_text('x')
            raise RuntimeError('killed midway')
    assert not failed.exists() and sorted(p.name for p in tmp_path.iterdir()) == ['data']
