"""Atomic writes: a crash leaves the previous file whole, never half a new one.

``atomic_write`` is the one mechanism: it opens a temporary ``.<name>.<random>.tmp`` beside its target,
fsyncs it and renames it over the target (then fsyncs the folder, so that the rename is durable too).
Text, JSON, checkpoints (``lib.checkpoint.files``) and checkpoint copies (``lib.checkpoint.saver``) all
go through it; ``remove_stale_temporary_files`` clears what a killed run left. JSON is strict: NaN and
infinities are written as null (``json.loads`` of any file here never fails).

What can go wrong during a write ends it cleanly: a full disk (also a used-up quota or the file-size
limit) is one ``DiskFullError`` naming the file, however deep the writer (torch's zip writer) wrapped the
``OSError``; a first Ctrl-C waits until the write is done, a second abandons it (``KeyboardInterrupt``, the
temporary file removed). Files are created with mode 0666 less the process's umask, as ``open`` does.
"""
import contextlib
import errno
import json
import math
import os
import secrets
import shutil
import signal
import threading
from typing import Any, Iterator, List, Optional

from lib.errors import CreamError, OutputError

TMP_SUFFIX = '.tmp'
# errno -> what it means for a write; all three leave the file unwritten for want of room.
_NO_ROOM = {errno.ENOSPC: 'the disk is full', errno.EDQUOT: 'the disk quota is used up',
            errno.EFBIG: 'the file-size limit (ulimit -f) is reached'}


class DiskFullError(CreamError, OSError):
    """No room to write a file (ENOSPC, EDQUOT, EFBIG); the message names the file and what was kept."""


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and the exceptions it was raised from or during, outermost first."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def disk_full_error(error: BaseException, path: str) -> Optional[DiskFullError]:
    """A ``DiskFullError`` for ``path`` when ``error`` (or what it wraps) is a write that found no room."""
    for cause in _chain(error):
        if isinstance(cause, OSError) and cause.errno in _NO_ROOM:
            folder = os.path.dirname(os.path.abspath(path))
            full = DiskFullError(
                f'cannot write {path}: {_NO_ROOM[cause.errno]} ({os.strerror(cause.errno)}) in {folder}. '
                'Files written before, the previous version of this one included, are intact; free space there '
                '(or write to another disk) and run again: a training run continues from its last checkpoint with '
                'AUTO_RESUME True')
            full.errno = cause.errno
            return full
    return None


def write_failed(path: str, error: OSError, fix: str, *, what: Optional[str] = None,
                 error_type: type = OutputError) -> CreamError:
    """The one error for a write at ``path`` that failed with ``error``: ``DiskFullError`` when no room was left,
    else ``error_type`` 'cannot write WHAT (the OS's reason); FIX' (``what``: default the path)."""
    full = disk_full_error(error, path)
    if full is not None:
        return full
    return error_type(f'cannot write {what or path} ({type(error).__name__}: {error.strerror or error}); {fix}')


def _plain_error(error: BaseException, path: str) -> Optional[BaseException]:
    """What a failed write should raise instead of ``error``: Ctrl-C as itself, no room as DiskFullError."""
    for cause in _chain(error):
        if isinstance(cause, KeyboardInterrupt):
            return cause
    return disk_full_error(error, path)


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable; not supported on every platform/filesystem.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _ctrl_c_after_the_write() -> Iterator[None]:
    """A first SIGINT inside the block is raised when the block has ended; a second one at once (it abandons
    the write). Only where Python's own SIGINT handler is in place (main thread, nobody else's handler)."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    pending = []

    def defer(signum, frame):
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    signal.signal(signal.SIGINT, defer)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


def _create_temporary(folder: str, name: str, suffix: str = TMP_SUFFIX):
    """(fd, path) of a new temporary file beside ``name``; mode 0666 less the umask (mkstemp's 0600 would keep a
    group sharing the run folder from reading checkpoints)."""
    while True:
        tmp = os.path.join(folder, f'.{name}.{secrets.token_hex(4)}{suffix}')
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def _replacing(tmp: str, path: str) -> Iterator[None]:
    """Rename ``tmp`` over ``path`` when the block ends; when it raises, remove ``tmp`` and raise plainly."""
    try:
        yield
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        plain = _plain_error(err, path)
        if plain is None or plain is err:
            raise
        raise plain.with_traceback(None) from None
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _temporary_beside(path: str, suffix: str = TMP_SUFFIX):
    folder, name = os.path.split(os.path.abspath(path))
    try:
        return _create_temporary(folder, name, suffix)
    except OSError as err:
        full = disk_full_error(err, path)
        if full is None:
            raise
        raise full from None


@contextlib.contextmanager
def atomic_write(path: 'os.PathLike | str', mode: str = 'w') -> Iterator[Any]:
    """``with atomic_write(path, 'wb') as f: ...``: ``f`` is a temporary file beside ``path`` that replaces
    ``path`` when the block ends without an exception (and is deleted when it raises)."""
    path = os.fspath(path)
    with _ctrl_c_after_the_write():
        fd, tmp = _temporary_beside(path)
        with _replacing(tmp, path):
            with os.fdopen(fd, mode) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_path(path: 'os.PathLike | str') -> Iterator[str]:
    """``atomic_write`` for writers that take a path (ONNX, torch.export, matplotlib): the block writes the
    temporary path it gets (beside ``path``, with its extension: some writers check it)."""
    path = os.fspath(path)
    with _ctrl_c_after_the_write():
        fd, tmp = _temporary_beside(path, TMP_SUFFIX + os.path.splitext(path)[1])
        os.close(fd)
        with _replacing(tmp, path):
            yield tmp
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def probe_writable(folder: str) -> None:
    """Create ``folder`` if needed and a file in it (then remove it); raises the OSError when that fails."""
    os.makedirs(folder, exist_ok=True)
    fd, probe = _create_temporary(folder, 'write_check')
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def atomic_directory(root: 'os.PathLike | str') -> Iterator[str]:
    """``with atomic_directory(root) as tmp: ...``: fill the temporary folder ``tmp`` beside ``root``; it becomes
    ``root`` when the block ends without an exception (deleted when it raises). ``root`` must not exist or
    be an empty folder (FileExistsError otherwise)."""
    root = os.path.abspath(os.fspath(root))
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise FileExistsError(f'{root} exists and is not an empty directory: delete it or choose another folder')
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f'.{os.path.basename(root)}.{secrets.token_hex(4)}.tmp-dir')
    os.mkdir(tmp)  # mode 0777 less the umask, as for the files
    try:
        yield tmp
        os.replace(tmp, root)  # atomic; also replaces an empty directory, fails on a non-empty one
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(parent)


def write_text_atomic(text: str, path: str) -> None:
    with atomic_write(path, 'w') as f:
        f.write(text)


def copy_file_atomic(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` through ``atomic_write``."""
    with open(src, 'rb') as source, atomic_write(dst, 'wb') as target:
        shutil.copyfileobj(source, target)


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every NaN/inf float (in nested dicts, lists, tuples) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_or_none(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(value) for value in obj]
    return obj


def write_json_atomic(obj, path: str) -> None:
    """Strict JSON (non-finite floats as null), written atomically."""
    write_text_atomic(json.dumps(finite_or_none(obj), indent=1, allow_nan=False) + '\n', path)


def remove_stale_temporary_files(folder: str) -> List[str]:
    """Delete the ``*.tmp`` files directly in ``folder`` (and ``atomic_path``'s ``.*.tmp.<ext>``), left by a write
    killed midway; return their names."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for entry in os.scandir(folder):
        ours = entry.name.endswith(TMP_SUFFIX) or (entry.name.startswith('.') and TMP_SUFFIX + '.' in entry.name)
        if ours and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.name)
    return sorted(removed)
