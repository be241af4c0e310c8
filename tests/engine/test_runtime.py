"""What every entry script does first: the run folder, its config.yaml and the log; what a restart by torchrun
changes; a resume on another world size."""
import pytest

from lib.checkpoint.resume import ResumeError, check_world_size
from lib.config import load_config
from lib.engine.runtime import setup_run


def test_a_key_nothing_reads_is_named_in_the_run_log(tmp_path):
    run = setup_run('test', 'a run', ['OUTPUT', str(tmp_path), 'MODEL', 'm', 'DEVICE', 'cpu', 'NUM_GPU', '8'])
    log = (tmp_path / 'm' / 'test.log').read_text()
    warning = [line for line in log.splitlines() if 'nothing reads' in line]
    assert len(warning) == 1 and 'NUM_GPU 8' in warning[0]
    assert run.cfg.NUM_GPU == 8 and not (tmp_path / 'm' / 'config.yaml').exists()  # written once set-up passed
    run.save_config()
    assert (tmp_path / 'm' / 'config.yaml').is_file()


def test_a_restart_by_torchrun_resumes_and_never_overwrites(tmp_path, monkeypatch):
    """A restarted worker (TORCHELASTIC_RESTART_COUNT > 0) continues the run even when the command has AUTO_RESUME
    False or OVERWRITE True (which would refuse or delete the first start's outputs); a first start is left alone."""
    args = ['OUTPUT', str(tmp_path), 'MODEL', 'm', 'DEVICE', 'cpu', 'OVERWRITE', 'True']
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '0')
    first = setup_run('train', 'a run', args)
    first.lock.release()
    assert (first.cfg.AUTO_RESUME, first.cfg.OVERWRITE) == (False, True)
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '2')
    monkeypatch.setenv('TORCHELASTIC_MAX_RESTARTS', '3')
    restarted = setup_run('train', 'a run', args)
    restarted.lock.release()
    assert (restarted.cfg.AUTO_RESUME, restarted.cfg.OVERWRITE) == (True, False)
    assert ('torchrun restarted this job (restart 2 of 3): AUTO_RESUME True and OVERWRITE False'
            in (tmp_path / 'm' / 'train.log').read_text())


def test_a_checkpoint_of_another_world_size_is_one_error_naming_both():
    cfg = load_config(None, ['DATASET.BATCH_SIZE', '16'])
    saved = {'global_step': 40, 'step_in_epoch': 10, 'world_size': 8}
    check_world_size(saved, 'last.pth.tar', cfg, 8)  # the same: nothing to say
    check_world_size({'epoch': 3}, 'released.pth.tar', cfg, 2)  # a released-format file has no world size
    with pytest.raises(ResumeError, match=r'cannot resume from last.pth.tar on 4 process\(es\): it was trained by 8 '
                                          r'process\(es\) \(a global batch of 128 images per step\)'):
        check_world_size(saved, 'last.pth.tar', cfg, 4)
