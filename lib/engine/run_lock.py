"""One run per run folder: an OS advisory lock (``fcntl.flock``) on ``.run.lock`` in the folder, held by the
main rank for the run's life.

The lock belongs to the open file, so it dies with the process: a run killed in any way (kill -9 included)
leaves no stale lock, and the next run takes it at once. While holding it, the run writes who it is (pid,
host, start time, command) into the file, so that a second run into the folder can say which run holds it.
The file itself is never replaced or removed (the lock is on that file: a new file would be a new, free
lock); its text is cleared when the lock is let go. On NFS, Linux maps flock to the server's byte-range
locks, which hold across hosts.
"""
import datetime
import fcntl
import json
import os
import socket
import sys

from lib.errors import CreamError

LOCK_FILE = '.run.lock'


class RunFolderBusy(CreamError, RuntimeError):
    """Another process holds the run folder's lock; the message names it (from the lock file)."""


def _describe(text: str) -> str:
    try:
        info = json.loads(text)
        return (f'{info["script"]} (pid {info["pid"]} on host {info["host"]}, started {info["started"]}: '
                f'{info["command"]})')
    except (ValueError, KeyError, TypeError):
        return 'a run that has not written its details into the lock file yet'


class RunLock:
    """``RunLock.acquire(run_dir)`` takes the folder's lock or raises ``RunFolderBusy``; ``release()`` lets
    it go (idempotent). The folder must exist."""

    def __init__(self, path: str, fd: int):
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, run_dir: str, script: str) -> 'RunLock':
        path = os.path.join(run_dir, LOCK_FILE)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0).decode(errors='replace'))
            os.close(fd)
            raise RunFolderBusy(
                f'{run_dir} is in use by another run: {holder}; nothing was changed. Wait for that run to end (or '
                f'stop it), or give this run another MODEL (or OUTPUT). (The lock on {path} ends with the process '
                'that holds it: there is no stale lock to remove.)') from None
        except BaseException:
            os.close(fd)
            raise
        lock = cls(path, fd)
        info = {'script': script, 'pid': os.getpid(), 'host': socket.gethostname(),
                'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                'command': ' '.join(sys.argv)[:300]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)  # in place: the lock is on this very file
        except BaseException:  # a full disk: no details, and no lock left held
            lock.release()
            raise
        return lock

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # no stale details for the next reader
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
