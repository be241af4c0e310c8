"""The test suite's own shape: helpers live in tests/support and test modules import them, never each other; a
module that starts processes carries the process (or slow) marker, and the watch that fails an unmarked test
which starts one does see a start."""
import ast
import subprocess
import sys

import pytest

from tests.support import process_guard
from tests.support.paths import REPO

TESTS = REPO / 'tests'
HELPER_FOLDERS = ('support', 'timm_train')  # shared helpers; timm's vendored train.py
# Names by which a test module starts a process of its own.
PROCESS_STARTERS = ('subprocess', 'multiprocessing', 'Running', 'run_on_two_ranks', 'run_commands',
                    'in_processes')


def suite_modules():
    return sorted(path for path in TESTS.rglob('*.py') if path.relative_to(TESTS).parts[0] not in HELPER_FOLDERS)


def imported_modules(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def marker_names(tree: ast.AST):
    """The X of every ``pytest.mark.X`` the module names (pytestmark, decorators)."""
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == 'mark'}


def test_every_module_outside_the_helper_folders_is_a_test_module_or_conftest():
    strays = [str(path.relative_to(REPO)) for path in suite_modules()
              if not (path.name.startswith('test_') or path.name == 'conftest.py')]
    assert not strays, f'helpers belong in tests/support/: {strays}'


def test_no_test_module_imports_another_or_conftest():
    offenders = {}
    for path in suite_modules():
        names = [name for name in imported_modules(ast.parse(path.read_text()))
                 if name.split('.')[-1].startswith('test_') or name.split('.')[-1] == 'conftest']
        if names:
            offenders[str(path.relative_to(REPO))] = names
    assert not offenders, f'what test modules share goes into tests/support/: {offenders}'


def test_a_module_that_starts_processes_carries_the_process_or_slow_marker():
    unmarked = []
    for path in suite_modules():
        text = path.read_text()
        if path.name == 'conftest.py':  # fixtures and hooks; their tests carry the marker
            continue
        starts = [name for name in PROCESS_STARTERS if name in text]
        if starts and not marker_names(ast.parse(text)) & set(process_guard.MARKERS):
            unmarked.append((str(path.relative_to(REPO)), starts))
    assert not unmarked, f'mark these with pytest.mark.process (pytestmark or per test): {unmarked}'


def test_the_checks_see_what_they_look_for():
    """The three checks above on a made-up module: a test import, a conftest import, a marker, a start."""
    tree = ast.parse('import test_other\nfrom conftest import REPO\nfrom tests.support.x import y\n'
                     'pytestmark = pytest.mark.process\n')
    assert [n for n in imported_modules(tree) if n.split('.')[-1].startswith(('test_', 'conftest'))] == \
        ['test_other', 'conftest']
    assert marker_names(tree) == {'process'}
    assert marker_names(ast.parse('@pytest.mark.parametrize("a", [1])\ndef test_a(a): pass')) == {'parametrize'}


class _Item:
    """What process_guard reads of a pytest item."""

    def __init__(self, *markers):
        self.nodeid, self._markers = 'tests/x.py::test_x', markers

    def get_closest_marker(self, name):
        return pytest.mark.__getattr__(name).mark if name in self._markers else None


@pytest.mark.process
def test_the_watch_records_a_started_process_and_names_an_unmarked_test():
    process_guard.install()
    with process_guard.watching() as started:
        subprocess.run([sys.executable, '-c', 'pass'], check=True, timeout=120)
    assert len(started) == 1 and started[0].startswith('subprocess ') and sys.executable in started[0]
    assert 'started a process without the process marker' in process_guard.unmarked_start(_Item(), started)
    assert process_guard.unmarked_start(_Item('process'), started) is None
    assert process_guard.unmarked_start(_Item('slow'), started) is None
    assert process_guard.unmarked_start(_Item(), []) is None
    with process_guard.watching() as started:
        subprocess.run(['uname', '-p'], capture_output=True, check=True, timeout=120)  # a library's probe
    assert started == []
