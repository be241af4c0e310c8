"""The entry scripts' exit paths: user errors as one line (status 2), crashes keep their traceback."""
import logging

import pytest

from lib.config import ConfigError
from lib.engine.guard import exit_on_error, logged_run
from lib.engine.runtime import Run
from lib.errors import CreamError


def fake_run(tmp_path):
    return Run(cfg=None, dist=None, run_dir=str(tmp_path), logger=logging.getLogger('cream.test_guard'))


def raising(error):
    def main(argv):
        raise error
    return main


def test_a_user_error_is_one_line_and_status_2(capsys):
    with pytest.raises(SystemExit) as stop:
        exit_on_error(raising(ConfigError('LR must be positive; set LR 0.1')), [])
    assert stop.value.code == 2
    assert capsys.readouterr().err == 'error: LR must be positive; set LR 0.1\n'


def test_ctrl_c_exits_130_and_success_returns(capsys):
    with pytest.raises(SystemExit) as stop:
        exit_on_error(raising(KeyboardInterrupt()), [])
    assert stop.value.code == 130
    seen = []
    exit_on_error(seen.append, ['--cfg', 'x.yaml'])
    assert seen == [['--cfg', 'x.yaml']] and capsys.readouterr().err == ''


def test_any_other_error_keeps_its_type_and_traceback():
    with pytest.raises(ZeroDivisionError) as info:
        exit_on_error(lambda argv: 1 / 0, [])
    assert info.traceback[-1].name == '<lambda>'


def test_logged_run_logs_and_passes_the_real_error_on(tmp_path, caplog):
    run = fake_run(tmp_path)
    with caplog.at_level(logging.INFO, logger='cream.test_guard'):
        with pytest.raises(ConfigError, match='bad key'):
            with logged_run(run, 'the job', 'job.log'):
                raise ConfigError('bad key')
        with pytest.raises(RuntimeError) as info:
            with logged_run(run, 'the job', 'job.log'):
                raise RuntimeError('boom')
        with pytest.raises(KeyboardInterrupt):
            with logged_run(run, 'the job', 'job.log'):
                raise KeyboardInterrupt
    user, crash, interrupt = caplog.records
    assert (user.levelname, user.getMessage(), user.exc_info) == ('ERROR', 'bad key', None)
    assert crash.getMessage() == 'the job failed' and crash.exc_info[0] is RuntimeError  # traceback in the log
    assert info.value.__notes__ == [f'the job failed; this traceback is also in {tmp_path}/job.log']
    assert 'AUTO_RESUME' in interrupt.getMessage()


def test_every_error_class_of_the_package_derives_from_cream_error():
    import importlib
    import inspect
    import pkgutil

    import lib
    found = {}
    for module in pkgutil.walk_packages(lib.__path__, 'lib.'):
        for value in vars(importlib.import_module(module.name)).values():
            if (inspect.isclass(value) and issubclass(value, Exception) and not issubclass(value, Warning)
                    and value.__module__.startswith('lib.')):
                found[f'{value.__module__}.{value.__name__}'] = value
    assert len(found) >= 14 and 'lib.checkpoint.resume.ResumeError' in found
    assert [name for name, error in sorted(found.items())
            if not issubclass(error, CreamError)] == []


def test_a_stop_on_sigterm_is_logged_on_every_rank_exits_143_and_the_lock_is_let_go(tmp_path, caplog):
    from lib.engine.run_lock import RunLock
    from lib.engine.stop import RunStopped
    run = fake_run(tmp_path)
    run.lock = RunLock.acquire(str(tmp_path), 'retrain')
    with caplog.at_level(logging.INFO, logger='cream.test_guard'):
        with pytest.raises(SystemExit) as stop:
            def main(argv):
                with logged_run(run, 'the job', 'job.log'):
                    raise RunStopped('stopped on SIGTERM at epoch 0, step 3 of 9; AUTO_RESUME True continues')
            exit_on_error(main, [])
    assert stop.value.code == 143
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ('WARNING', 'stopped on SIGTERM at epoch 0, step 3 of 9; AUTO_RESUME True continues')]
    RunLock.acquire(str(tmp_path), 'retrain').release()  # let go by logged_run


GLOO_PEER_CLOSED = ('[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer '
                    '[127.0.0.1]:16008. This is typically caused by a remote worker crashing. Check the logs of the '
                    'remote worker before reporting an error.')  # what gloo raised when a rank was killed


def test_a_collective_failing_on_a_lost_rank_is_one_line_and_status_1(tmp_path, caplog, capsys):
    run = fake_run(tmp_path)
    with caplog.at_level(logging.INFO, logger='cream.test_guard'):
        with pytest.raises(SystemExit) as stop:
            def main(argv):
                with logged_run(run, 'the search', 'train.log'):
                    raise RuntimeError(GLOO_PEER_CLOSED)
            exit_on_error(main, [])
    assert stop.value.code == 1  # not a user error (2): torchrun restarts the job on it
    line = ('the search lost another process of the job (Connection closed by peer [127.0.0.1]:16008): that process '
            'ended or its node went away. torchrun restarts every process when --max-restarts allows, and they '
            'continue from the newest checkpoint; otherwise run the same command again with AUTO_RESUME True')
    assert capsys.readouterr().err == f'error: {line}\n'
    [record] = caplog.records
    assert (record.levelname, record.getMessage(), record.exc_info) == ('ERROR', line, None)  # no traceback
    with pytest.raises(RuntimeError):  # any other RuntimeError is a crash, with its traceback
        with logged_run(run, 'the search', 'train.log'):
            raise RuntimeError('shape mismatch in the gloo-free part')
