import logging
import os

import pytest

from lib.config import load_config
from lib.engine.run_folder import RunFolderError
from lib.engine.run_folder import prepare_run_dir as prepare_and_lock
from lib.engine.run_lock import LOCK_FILE, RunFolderBusy, RunLock


def cfg(**opts):
    return load_config(None, [str(x) for kv in opts.items() for x in kv])


def prepare_run_dir(config, run_dir, script):
    """The notes of ``lib.engine.run_folder.prepare_run_dir``, its lock let go again."""
    lock, notes = prepare_and_lock(config, run_dir, script)
    lock.release()
    return notes


def files(folder):
    """Every file's bytes but the lock file's (an empty file once the lock is let go)."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob('*') if p.is_file() and p.name != LOCK_FILE}


def a_finished_run(folder):
    folder.mkdir()
    for name in ('last.pth.tar', 'checkpoint-3.pth.tar', 'summary.csv', 'board.json', 'best_arch.yaml',
                 'config.yaml', 'train.log', 'state_digest.rank0.txt'):
        (folder / name).write_text(name)
    (folder / 'tensorboard').mkdir()
    (folder / 'tensorboard' / 'events.out').write_text('curves')
    (folder / 'my_notes.txt').write_text('not ours')
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob('*') if p.is_file()}


@pytest.mark.parametrize('script', ['train', 'retrain'])
def test_a_folder_holding_a_run_is_refused_and_left_untouched(tmp_path, script):
    run_dir = tmp_path / 'run'
    before = a_finished_run(run_dir)
    (run_dir / '.last.pth.tar.abc.tmp').write_bytes(b'')
    before[(run_dir / '.last.pth.tar.abc.tmp').relative_to(run_dir)] = b''
    with pytest.raises(RunFolderError, match=r'already holds a run \(best_arch.yaml, board.json, '
                                             r'checkpoint-3.pth.tar, .*nothing was changed.*AUTO_RESUME True.*'
                                             r'OVERWRITE True'):
        prepare_run_dir(cfg(), str(run_dir), script)
    assert files(run_dir) == before and (run_dir / LOCK_FILE).read_bytes() == b''
    notes = prepare_run_dir(cfg(AUTO_RESUME=True), str(run_dir), script)  # continuing it is fine
    assert notes == [(logging.WARNING, 'removed 1 temporary file(s) of a write killed midway: .last.pth.tar.abc.tmp')]


def test_overwrite_deletes_the_previous_runs_outputs_only(tmp_path):
    run_dir = tmp_path / 'run'
    a_finished_run(run_dir)
    (level, note), = prepare_run_dir(cfg(OVERWRITE=True), str(run_dir), 'train')
    assert level == logging.WARNING and 'OVERWRITE True: deleted' in note and 'best_arch.yaml' in note
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_FILE, 'my_notes.txt']


def test_test_py_replaces_its_results_but_never_writes_into_a_training_run(tmp_path):
    run_dir = tmp_path / 'evaluation'
    run_dir.mkdir()
    (run_dir / 'test_results.json').write_text('{}')
    assert prepare_run_dir(cfg(), str(run_dir), 'test') == [
        (logging.INFO, f"replacing the earlier evaluation's test_results.json in {run_dir}")]
    a_finished_run(tmp_path / 'search')
    with pytest.raises(RunFolderError, match='holds a training run .*another MODEL'):
        prepare_run_dir(cfg(), str(tmp_path / 'search'), 'test')


def test_a_new_folder_is_created_and_an_unusable_one_is_one_error(tmp_path):
    assert prepare_run_dir(cfg(), str(tmp_path / 'out' / 'run'), 'retrain') == []
    assert (tmp_path / 'out' / 'run').is_dir()
    (tmp_path / 'file').write_text('')
    with pytest.raises(RunFolderError, match="run folder .*file' is a file"):
        prepare_run_dir(cfg(), str(tmp_path / 'file'), 'retrain')
    with pytest.raises(RunFolderError, match=r'cannot write to the run folder .*NotADirectoryError.*writable'):
        prepare_run_dir(cfg(), str(tmp_path / 'file' / 'run'), 'retrain')


def test_a_held_folder_is_refused_naming_the_run_that_holds_it_and_nothing_is_touched(tmp_path):
    run_dir = tmp_path / 'run'
    before = a_finished_run(run_dir)
    (run_dir / '.last.pth.tar.abc.tmp').write_bytes(b'half')  # the running run's write in progress
    holder, _ = prepare_and_lock(cfg(AUTO_RESUME=True), str(run_dir), 'retrain')
    (run_dir / '.last.pth.tar.abc.tmp').write_bytes(b'half')
    try:
        for opts in ({'AUTO_RESUME': True}, {'OVERWRITE': True}, {}):
            with pytest.raises(RunFolderBusy, match=rf'{run_dir} is in use by another run: retrain \(pid {os.getpid()} '
                                                   r'on host .*, started .*nothing was changed'):
                prepare_and_lock(cfg(**opts), str(run_dir), 'retrain')
            assert files(run_dir) == {**before, (run_dir / '.last.pth.tar.abc.tmp').relative_to(run_dir): b'half'}
    finally:
        holder.release()
    assert (run_dir / LOCK_FILE).read_bytes() == b''  # no stale details
    RunLock.acquire(str(run_dir), 'retrain').release()  # free again
