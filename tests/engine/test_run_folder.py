import logging

import pytest

from lib.config import load_config
from lib.engine.run_folder import RunFolderError, prepare_run_dir


def cfg(**opts):
    return load_config(None, [str(x) for kv in opts.items() for x in kv])


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
    assert {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob('*') if p.is_file()} == before
    notes = prepare_run_dir(cfg(AUTO_RESUME=True), str(run_dir), script)  # continuing it is fine
    assert notes == [(logging.WARNING, 'removed 1 temporary file(s) of a write killed midway: .last.pth.tar.abc.tmp')]


def test_overwrite_deletes_the_previous_runs_outputs_only(tmp_path):
    run_dir = tmp_path / 'run'
    a_finished_run(run_dir)
    (level, note), = prepare_run_dir(cfg(OVERWRITE=True), str(run_dir), 'train')
    assert level == logging.WARNING and 'OVERWRITE True: deleted' in note and 'best_arch.yaml' in note
    assert sorted(p.name for p in run_dir.iterdir()) == ['my_notes.txt']


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
