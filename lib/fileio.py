"""Atomic writes of result files: a crash leaves the previous file whole, never half a new one."""
import json
import os


def write_text_atomic(text: str, path: str) -> None:
    tmp = f'{path}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(obj, path: str) -> None:
    write_text_atomic(json.dumps(obj, indent=1) + '\n', path)
