"""Atomic writes: a crash leaves the previous file whole, never half a new one.

``atomic_write`` is the one mechanism: it opens a temporary ``.<name>.<random>.tmp`` beside its target,
fsyncs it and renames it over the target (then fsyncs the folder, so that the rename is durable too).
Text, JSON, checkpoints (``lib.checkpoint.files``) and checkpoint copies (``lib.checkpoint.saver``) all
go through it; ``remove_stale_temporary_files`` clears what a killed run left. JSON is strict: NaN and
infinities are written as null (``json.loads`` of any file here never fails).
"""
import contextlib
import json
import math
import os
import shutil
import tempfile
from typing import Any, Iterator, List

TMP_SUFFIX = '.tmp'


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
def atomic_write(path: 'os.PathLike | str', mode: str = 'w') -> Iterator[Any]:
    """``with atomic_write(path, 'wb') as f: ...``: ``f`` is a temporary file beside ``path`` that replaces
    ``path`` when the block ends without an exception (and is deleted when it raises)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix=TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


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
    tmp = tempfile.mkdtemp(prefix=f'.{os.path.basename(root)}.tmp-', dir=parent)
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700
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
    """Delete the ``*.tmp`` files directly in ``folder`` (left by a write killed midway); return their names."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for entry in os.scandir(folder):
        if entry.name.endswith(TMP_SUFFIX) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.name)
    return sorted(removed)
