"""What every entry script does first: the run folder, its config.yaml and the log."""
from lib.engine.runtime import setup_run


def test_a_key_nothing_reads_is_named_in_the_run_log(tmp_path):
    run = setup_run('test', 'a run', ['OUTPUT', str(tmp_path), 'MODEL', 'm', 'DEVICE', 'cpu', 'NUM_GPU', '8'])
    log = (tmp_path / 'm' / 'test.log').read_text()
    warning = [line for line in log.splitlines() if 'nothing reads' in line]
    assert len(warning) == 1 and 'NUM_GPU 8' in warning[0]
    assert run.cfg.NUM_GPU == 8 and not (tmp_path / 'm' / 'config.yaml').exists()  # written once set-up passed
    run.save_config()
    assert (tmp_path / 'm' / 'config.yaml').is_file()
