"""Run a list of independent commands, a few at a time, one intra-op thread each (on a small CPU machine
several single-threaded processes beat one multi-threaded one on tiny images)."""
import os
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence

from lib.errors import CreamError


class JobFailedError(CreamError, RuntimeError):
    """A command of the experiment failed; its log names the cause."""


def run_commands(commands: Sequence[Sequence[str]], jobs: int = 1, logs: Sequence[str] = (), cwd: str = None,
                 on_done: Optional[Callable[[int], None]] = None) -> None:
    """Run every command (argument lists), at most ``jobs`` at once, each writing stdout and stderr to its
    entry of ``logs`` (appended; none: inherited); ``on_done(index)`` runs as each one succeeds. Raises
    JobFailedError naming the failed ones after the others have finished."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    pending = list(enumerate(commands))
    running: List[tuple] = []
    failed = []
    while pending or running:
        while pending and len(running) < max(1, jobs):
            index, command = pending.pop(0)
            log = open(logs[index], 'a') if logs else None
            proc = subprocess.Popen([str(c) for c in command], cwd=cwd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT if log else None)
            running.append((index, proc, log))
        time.sleep(0.2)
        for item in list(running):
            index, proc, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if log:
                log.close()
            if proc.returncode != 0:
                failed.append((index, proc.returncode))
            elif on_done is not None:
                on_done(index)
    if failed:
        names = '; '.join(f'{" ".join(map(str, commands[i][:4]))} ... (exit {rc}'
                          + (f', log {logs[i]})' if logs else ')') for i, rc in failed)
        raise JobFailedError(f'{len(failed)} of {len(commands)} commands failed: {names}')


def python_command(script: str, *args) -> List[str]:
    """``python script args...`` with this interpreter."""
    return [sys.executable, script, *[str(a) for a in args]]
