"""Run a list of independent commands (``run_commands``) or calls (``in_processes``), a few at a time, one
intra-op thread each (on a small CPU machine several single-threaded processes beat one multi-threaded one on
tiny images).

When a command fails, the user sees why without opening its log: ``JobFailedError`` carries, for each failed
command, the first error line it wrote in this attempt (the ``error:`` line of a ``train.py``/``retrain.py``
refusal, else the last line of a traceback) and the path of its log."""
import os
import re
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence

from lib.errors import ConfigError, CreamError


class JobFailedError(CreamError, RuntimeError):
    """A command of the experiment failed; the message gives its first error line and its log."""


SHOWN_FAILURES = 3  # failed commands whose error line the message quotes; the rest are counted
_EXCEPTION_LINE = re.compile(r'^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b')


def first_error_line(log: str, offset: int = 0) -> str:
    """What the command wrote to ``log`` after byte ``offset`` (logs are appended to across attempts) that says
    why it failed: its first 'error: ...' line, else the exception line ending its last traceback, else its last
    line."""
    try:
        with open(log, 'rb') as f:
            f.seek(offset)
            lines = [line.strip() for line in f.read().decode('utf-8', 'replace').splitlines()]
    except OSError as err:
        return f'(its log cannot be read: {err.strerror or err})'
    lines = [line for line in lines if line]
    for line in lines:
        if line.startswith('error:'):
            return line[len('error:'):].strip()
    if any(line.startswith('Traceback') for line in lines):
        raised = [line for line in lines if _EXCEPTION_LINE.match(line)]
        if raised:
            return raised[-1]
    return lines[-1] if lines else '(it wrote nothing)'


def run_commands(commands: Sequence[Sequence[str]], jobs: int = 1, logs: Sequence[str] = (), cwd: str = None,
                 on_done: Optional[Callable[[int], None]] = None) -> None:
    """Run every command (argument lists), at most ``jobs`` at once, each writing stdout and stderr to its
    entry of ``logs`` (appended; none: inherited); ``on_done(index)`` runs as each one succeeds (a CreamError
    it raises counts as that command's failure). Raises JobFailedError naming the failed ones, with their first
    error lines, after the others have finished."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    pending = list(enumerate(commands))
    running: List[tuple] = []
    failed = []  # (index, why)
    while pending or running:
        while pending and len(running) < max(1, jobs):
            index, command = pending.pop(0)
            log = open(logs[index], 'a') if logs else None
            start = log.tell() if log else 0
            proc = subprocess.Popen([str(c) for c in command], cwd=cwd, env=env, stdout=log,
                                    stderr=subprocess.STDOUT if log else None)
            running.append((index, proc, log, start))
        time.sleep(0.2)
        for item in list(running):
            index, proc, log, start = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if log:
                log.close()
            if proc.returncode != 0:
                why = first_error_line(logs[index], start) if logs else 'see its output above'
                failed.append((index, f'exit {proc.returncode}: {why}'))
            elif on_done is not None:
                try:
                    on_done(index)
                except CreamError as err:
                    failed.append((index, str(err)))
    if failed:
        raise JobFailedError(failure_message(commands, failed, logs))


def failure_message(commands: Sequence[Sequence[str]], failed: Sequence[tuple], logs: Sequence[str]) -> str:
    """One line: how many failed, and for the first few the command, why and its log."""
    shown = []
    for index, why in failed[:SHOWN_FAILURES]:
        command = ' '.join(os.path.basename(str(c)) if i < 2 else str(c) for i, c in enumerate(commands[index][:2]))
        shown.append(f'{command} ({why}' + (f'; log {logs[index]})' if logs else ')'))
    more = f'; and {len(failed) - SHOWN_FAILURES} more' if len(failed) > SHOWN_FAILURES else ''
    return f'{len(failed)} of {len(commands)} commands failed: ' + '; '.join(shown) + more


def refuse_set_keys(opts: Sequence[str], set_here: Sequence[str], option: str) -> None:
    """ConfigError when the KEY VALUE pairs ``opts`` (for a child's config) set a key the tool sets itself for each
    child (``set_here``, full names; the original's aliases count as their keys): the child would not write where
    the tool reads its result."""
    from lib.config.table import ALIASES
    keys = [ALIASES.get(str(key), str(key)) for key in opts[0::2]]
    taken = [key for key in keys if key in set_here]
    if taken:
        raise ConfigError(f'{option}: {taken[0]} is set by this tool for every run it starts ({", ".join(set_here)}); '
                          'leave it out (use the tool\'s own options)')


def python_command(script: str, *args) -> List[str]:
    """``python script args...`` with this interpreter."""
    return [sys.executable, script, *[str(a) for a in args]]


def _call(job):
    import torch
    torch.set_num_threads(1)  # a worker per core: one intra-op thread each, as the commands run
    function, args = job
    return function(*args)


def in_processes(function, arg_tuples: Sequence[tuple], jobs: int) -> list:
    """``[function(*args) for args in arg_tuples]``, in up to ``jobs`` worker processes (spawned: ``function`` and
    its arguments must pickle)."""
    if jobs <= 1 or len(arg_tuples) <= 1:
        return [function(*args) for args in arg_tuples]
    import multiprocessing
    with multiprocessing.get_context('spawn').Pool(min(jobs, len(arg_tuples))) as pool:
        return pool.map(_call, [(function, args) for args in arg_tuples])
