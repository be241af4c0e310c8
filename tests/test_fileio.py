import errno
import json
import os
import signal
from pathlib import Path

import pytest

from lib import fileio
from lib.errors import CreamError, OutputError
from lib.fileio import (DiskFullError, atomic_path, atomic_write, remove_stale_temporary_files, write_json_atomic,
                        write_text_atomic)


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


@pytest.mark.parametrize('umask', [0o022, 0o007])
def test_files_are_created_as_the_process_umask_says(tmp_path, umask):
    """Not mkstemp's 0600: a group sharing a run folder reads its checkpoints when the umask lets it."""
    old = os.umask(umask)
    try:
        write_text_atomic('text', str(tmp_path / 'a.txt'))
        with atomic_path(tmp_path / 'b.png') as tmp:
            with open(tmp, 'w') as f:
                f.write('picture')
    finally:
        os.umask(old)
    assert {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {'a.txt': 0o666 & ~umask,
                                                                          'b.png': 0o666 & ~umask}


def test_no_room_deep_in_a_writer_is_one_disk_full_error_and_the_old_file_stays(tmp_path):
    """As torch's zip writer reports ENOSPC: a RuntimeError raised while handling the OSError."""
    path = tmp_path / 'last.pth.tar'
    write_text_atomic('old', str(path))
    with pytest.raises(DiskFullError) as full:
        with atomic_write(path, 'w') as f:
            f.write('new')
            try:
                raise OSError(errno.ENOSPC, 'No space left on device')
            except OSError:
                raise RuntimeError('[enforce fail at inline_container.cc] . unexpected pos 64 vs 0')
    assert str(full.value).startswith(f'cannot write {path}: the disk is full (No space left on device) in {tmp_path}')
    assert full.value.errno == errno.ENOSPC and full.value.__suppress_context__
    assert path.read_text() == 'old' and os.listdir(tmp_path) == ['last.pth.tar']


def test_ctrl_c_during_a_write_waits_for_its_end_and_a_second_one_abandons_it(tmp_path):
    path = tmp_path / 'f.txt'
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path, 'w') as f:
            os.kill(os.getpid(), signal.SIGINT)  # handled before the next line: deferred
            f.write('whole')
    assert path.read_text() == 'whole'
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path, 'w') as f:
            os.kill(os.getpid(), signal.SIGINT)
            f.write('half')
            os.kill(os.getpid(), signal.SIGINT)  # the second: abandons the write here
            f.write(' never')
    assert path.read_text() == 'whole' and os.listdir(tmp_path) == ['f.txt']
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


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


def test_write_failed_is_the_one_cannot_write_error(tmp_path):
    """Every failed write (checked_io's output checks, the run folder, the tools' writers) says it one way: no room
    is DiskFullError; anything else 'cannot write WHAT (reason); FIX' of the caller's error type."""
    path = str(tmp_path / 'out.json')
    full = fileio.write_failed(path, OSError(errno.ENOSPC, 'No space left on device'), 'unused')
    assert isinstance(full, fileio.DiskFullError) and str(full).startswith(f'cannot write {path}: the disk is full')
    denied = fileio.write_failed(path, PermissionError(errno.EACCES, 'Permission denied'), 'choose another folder')
    assert isinstance(denied, OutputError)
    assert str(denied) == f'cannot write {path} (PermissionError: Permission denied); choose another folder'

    class FolderError(CreamError):
        pass
    other = fileio.write_failed(path, PermissionError(errno.EACCES, 'Permission denied'), 'fix', what='the folder',
                                error_type=FolderError)
    assert isinstance(other, FolderError) and str(other).startswith('cannot write the folder (PermissionError')
