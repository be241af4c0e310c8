"""The run folder OUTPUT/MODEL, made ready before a run writes anything into it.

Every script first takes the folder's lock (``lib.engine.run_lock``): a second run into a folder that a
running one holds stops with one error naming that run, before it looks at or touches anything there. A
folder holding another run's outputs is never overwritten silently: train.py and retrain.py stop with one
error unless AUTO_RESUME continues that run or OVERWRITE deletes its outputs first (the deletion is logged,
file by file). test.py replaces an earlier evaluation's test_results.json but never writes into a training
run's folder. Leftover temporary files of a write killed midway are removed, and an unwritable folder is one
error naming it.
"""
import fnmatch
import logging
import os
import shutil
from typing import List, Tuple

from lib.engine.run_lock import RunLock
from lib.errors import CreamError
from lib.fileio import probe_writable, remove_stale_temporary_files, write_failed

# What marks a folder as holding a run (checkpoints and results), and everything the scripts write there.
RUN_MARKERS = ('*.pth.tar', 'summary.csv', 'board.json', 'best_arch.yaml', 'results.json', 'test_results.json')
RUN_OUTPUTS = RUN_MARKERS + ('config.yaml', 'train.log', 'retrain.log', 'test.log', 'state_digest.rank*.txt',
                             'tensorboard')
TEST_RESULTS = 'test_results.json'


class RunFolderError(CreamError, RuntimeError):
    """The run folder cannot be used as it is; the message names it and the way out."""


def _matching(run_dir: str, patterns) -> List[str]:
    if not os.path.isdir(run_dir):
        return []
    return sorted(name for name in os.listdir(run_dir) if any(fnmatch.fnmatch(name, p) for p in patterns))


def previous_run_files(run_dir: str) -> List[str]:
    """The files of ``run_dir`` that show another run wrote there (checkpoints, summary, board, results)."""
    return _matching(run_dir, RUN_MARKERS)


def _listing(names: List[str], limit: int = 6) -> str:
    return ', '.join(names[:limit]) + (f', ... ({len(names)} files)' if len(names) > limit else '')


def _unwritable(run_dir: str, err: OSError) -> CreamError:
    return write_failed(run_dir, err, 'set OUTPUT to a writable folder (the run folder is OUTPUT/MODEL)',
                        what=f'to the run folder {run_dir!r}', error_type=RunFolderError)


def _lock(run_dir: str, script: str) -> RunLock:
    """The folder's lock (creating the folder), then a probe write: both fail alike on an unwritable folder."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        lock = RunLock.acquire(run_dir, script)
    except OSError as err:
        raise _unwritable(run_dir, err) from None
    try:
        probe_writable(run_dir)
    except OSError as err:
        lock.release()
        raise _unwritable(run_dir, err) from None
    return lock


def _delete_outputs(run_dir: str) -> List[str]:
    removed = _matching(run_dir, RUN_OUTPUTS)
    for name in removed:
        path = os.path.join(run_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return removed


def prepare_run_dir(cfg, run_dir: str, script: str) -> Tuple[RunLock, List[Tuple[int, str]]]:
    """Lock, check and ready ``run_dir`` for ``script`` ('train', 'retrain' or 'test'); main rank only.

    Raises RunFolderError (RunFolderBusy when another run holds the folder) before touching anything when the
    folder holds another run that this one may not continue or replace. Returns the lock, held (the caller lets
    it go when the run ends), and lines to log once logging is set up (what was removed).
    """
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise RunFolderError(f'the run folder {run_dir!r} is a file; set OUTPUT or MODEL to name a folder')
    lock = _lock(run_dir, script)
    try:
        return lock, _ready(cfg, run_dir, script)
    except BaseException:
        lock.release()
        raise


def _ready(cfg, run_dir: str, script: str) -> List[Tuple[int, str]]:
    previous = previous_run_files(run_dir)
    notes = []
    if script == 'test':
        training = [name for name in previous if name != TEST_RESULTS]
        if training and not cfg.OVERWRITE:
            raise RunFolderError(
                f'{run_dir} holds a training run ({_listing(training)}); test.py would write its config.yaml and '
                'log over that run\'s: give the evaluation its own run folder (another MODEL), or set OVERWRITE '
                'True to delete that run first')
    elif previous and not cfg.AUTO_RESUME and not cfg.OVERWRITE:
        raise RunFolderError(
            f'{run_dir} already holds a run ({_listing(previous)}); nothing was changed. Set AUTO_RESUME True to '
            'continue it, OVERWRITE True to delete its outputs and start afresh, or choose another MODEL '
            '(or OUTPUT) for this run')
    stale = remove_stale_temporary_files(run_dir)
    if stale:
        notes.append((logging.WARNING,
                      f'removed {len(stale)} temporary file(s) of a write killed midway: {_listing(stale)}'))
    if cfg.OVERWRITE and previous:
        notes.append((logging.WARNING, f'OVERWRITE True: deleted the previous run\'s outputs in {run_dir}: '
                                       f'{_listing(_delete_outputs(run_dir), limit=20)}'))
    elif script == 'test' and previous:
        notes.append((logging.INFO, f'replacing the earlier evaluation\'s {TEST_RESULTS} in {run_dir}'))
    return notes


def drop_stale_output(path: str, logger, why: str) -> None:
    """Delete a final output of an earlier (shorter) run that this run will replace, so that it never sits
    beside newer outputs it does not describe."""
    if os.path.exists(path):
        os.unlink(path)
        logger.info('removed %s: %s', path, why)
