"""For the tools' broken-input tables (tests/scripts/test_*_broken_inputs.py): call a tool's ``main(argv)``
in-process as its ``__main__`` does (``lib.engine.guard.exit_on_error``) and assert the promise: exit status 2,
one ``error:`` line on stderr saying what is wrong, no traceback, and nothing in the watched folders changed."""
import hashlib
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Tuple

import pytest

from lib.engine.guard import USER_ERROR_STATUS, exit_on_error


def snapshot(*folders) -> Dict[str, Tuple[int, str]]:
    """Every file under ``folders`` (absent ones included, as absent) -> (size, sha1): what must not change."""
    files = {}
    for folder in map(Path, folders):
        files[f'{folder}?exists'] = (int(folder.exists()), '')
        if folder.is_file():
            files[str(folder)] = (folder.stat().st_size, hashlib.sha1(folder.read_bytes()).hexdigest())
            continue
        for root, dirs, names in os.walk(folder):
            for name in dirs:
                files[os.path.join(root, name) + '/'] = (0, '')
            for name in names:
                path = os.path.join(root, name)
                with open(path, 'rb') as f:
                    files[path] = (os.path.getsize(path), hashlib.sha1(f.read()).hexdigest())
    return files


def assert_refused(main: Callable, argv: List[str], capsys, expected: str, watched: Iterable = ()) -> str:
    """``main(argv)`` ends with status 2 and one error line holding ``expected`` (case-insensitive), no traceback,
    ``watched`` unchanged; returns the line."""
    watched = list(watched)
    before = snapshot(*watched)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        exit_on_error(main, [str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == USER_ERROR_STATUS, err
    assert 'Traceback' not in err, err
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1, err
    assert expected.lower() in lines[0].lower(), lines[0]
    assert snapshot(*watched) == before, 'a refused run changed the output folder'
    return lines[0]
