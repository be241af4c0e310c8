"""Entry scripts as real processes for the tests about signals, locks and full disks: ``Running`` collects a
process's output lines as they come, so that a test can wait for a point of the run (a progress line) before
it signals the process."""
import os
import subprocess
import sys
import threading
import time
from typing import List

from tests.support.paths import REPO

_STARTED: List['Running'] = []


def kill_leftovers() -> None:
    """SIGKILL every process a test started that still runs (a failed test must not leave one behind)."""
    while _STARTED:
        running = _STARTED.pop()
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(timeout=60)


def retrain_args(out, data, **extra) -> List[str]:
    """``retrain.py`` on a tiny network (one layer per stage, 32 px, 2 classes, batches of 2, CPU) writing to
    ``out/run``, with ``extra`` KEY VALUE overrides."""
    opts = {'OUTPUT': out, 'MODEL': 'run', 'DATA_DIR': data, 'DEVICE': 'cpu', 'WORKERS': 0, 'EPOCHS': 50,
            'DATASET.BATCH_SIZE': 2, 'DATASET.NUM_CLASSES': 2, 'DATASET.IMAGE_SIZE': 32, 'DATASET.VAL_BATCH_MUL': 1,
            'MODEL_SELECTION': -1, 'INPUT_ARCH': '[[0], [0], [0], [0], [0], [0], [0]]', 'LOG_INTERVAL': 1,
            'DATASET.GENERATE_DEMO': False, 'LR': 0.001}
    opts.update(extra)
    return ['retrain.py', '--cfg', 'configs/retrain.yaml', *[str(x) for kv in opts.items() for x in kv]]


def script_env(**extra) -> dict:
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(REPO), **extra}


class Running:
    """``Running([...args])`` starts ``python ...args`` in the repository; stdout and stderr lines collect in
    ``out`` and ``err``."""

    def __init__(self, args: List[str], env=None, **popen):
        self.proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=REPO, env=env or script_env(),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
        self.out: List[str] = []
        self.err: List[str] = []
        self._readers = [threading.Thread(target=self._collect, args=(pipe, lines), daemon=True)
                         for pipe, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()
        _STARTED.append(self)

    @staticmethod
    def _collect(pipe, lines: List[str]) -> None:
        for line in pipe:
            lines.append(line.rstrip('\n'))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return '\n'.join(self.out[-60:] + ['--- stderr ---'] + self.err[-60:])

    def wait_for(self, text: str, timeout: float = 240) -> str:
        """The first stdout line holding ``text``; fails when the process ends (or ``timeout`` passes) first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in list(self.out) if text in line), None)
            if found is not None:
                return found
            if self.proc.poll() is not None and not any(reader.is_alive() for reader in self._readers):
                break
            time.sleep(0.05)
        raise AssertionError(f'no line with {text!r} (exit status {self.proc.poll()}):\n{self.output()}')

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self, timeout: float = 240) -> int:
        """The exit status, once the process and its output have ended."""
        status = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=30)
        return status
