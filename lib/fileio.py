"""Atomic writes of result files: a crash leaves the previous file whole, never half a new one.

Every writer here and in ``lib.checkpoint_io`` writes a temporary ``.<name>.<random>.tmp`` beside its
target and renames it over the target; ``remove_stale_temporary_files`` clears those a killed run left.
JSON is strict: NaN and infinities are written as null (``json.loads`` of any file here never fails).
"""
import json
import math
import os
import tempfile
from typing import Any, List

TMP_SUFFIX = '.tmp'


def write_text_atomic(text: str, path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix=TMP_SUFFIX, dir=folder)
    try:
        with os.fdopen(fd, 'w') as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
