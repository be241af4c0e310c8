"""The fast tier's promise, kept in every run: a test that starts a process of its own (a Python interpreter through
``subprocess.Popen``: an entry script, a tool, torchrun; a multiprocessing child other than a DataLoader worker)
carries the ``process`` or ``slow`` marker, so that ``-m "not slow and not process"`` starts none. Probes that
libraries run (``platform.processor()`` runs ``uname -p``) do not count. conftest.py installs the watch and fails
an unmarked test."""
import contextlib
import multiprocessing.process
import os
import subprocess
import sys
from typing import List, Optional

MARKERS = ('process', 'slow')
_started: Optional[List[str]] = None  # what the test now running started; None between tests


def _record(what: str) -> None:
    if _started is not None:
        _started.append(what)


def _is_python(args) -> bool:
    program = (args.split() or [''])[0] if isinstance(args, (str, bytes)) else str(next(iter(args), ''))
    return (os.path.basename(program).startswith('python')
            or os.path.realpath(program) == os.path.realpath(sys.executable))


def install() -> None:
    """Wrap the two ways a test starts a process, once per session."""
    popen_init = subprocess.Popen.__init__
    process_start = multiprocessing.process.BaseProcess.start
    if getattr(popen_init, 'watched', False):
        return

    def watched_popen_init(self, args, *rest, **kwargs):
        if _is_python(args):
            _record(f'subprocess {args if isinstance(args, str) else " ".join(map(str, args))[:200]}')
        popen_init(self, args, *rest, **kwargs)

    def watched_start(self):
        target = getattr(self, '_target', None)
        if not str(getattr(target, '__module__', None)).startswith('torch.utils.data'):  # DataLoader workers
            _record(f'multiprocessing {getattr(target, "__qualname__", target)}')
        process_start(self)

    watched_popen_init.watched = True
    subprocess.Popen.__init__ = watched_popen_init
    multiprocessing.process.BaseProcess.start = watched_start


@contextlib.contextmanager
def watching():
    """Collect what is started inside (a test's setup, call and teardown) into the list it yields."""
    global _started
    outer, _started = _started, []
    try:
        yield _started
    finally:
        _started = outer


def unmarked_start(item, started: List[str]) -> Optional[str]:
    """The failure text when ``item`` started a process without the marker, else None."""
    if not started or any(item.get_closest_marker(name) for name in MARKERS):
        return None
    return (f'{item.nodeid} started a process without the process marker (add pytestmark = pytest.mark.process, '
            f'or @pytest.mark.process on the test): {started[0]}')
