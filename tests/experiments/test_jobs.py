"""lib/experiments/jobs: a failed child's first error line and its log reach the user; calls in worker processes."""
import operator
import sys

import pytest

from lib.errors import CreamError
from lib.experiments.jobs import JobFailedError, first_error_line, in_processes, run_commands

REFUSED = ("import sys; print('starting'); print('error: EPOCHS is 0; it must be at least 1', file=sys.stderr); "
           "sys.exit(2)")
CRASHED = "print('step 1'); raise RuntimeError('the loss is NaN')"


@pytest.mark.process
def test_the_failed_commands_error_lines_and_logs_are_in_the_message(tmp_path):
    logs = [str(tmp_path / f'{name}.log') for name in ('ok', 'refused', 'crashed')]
    (tmp_path / 'refused.log').write_text('error: an earlier attempt failed otherwise\n')  # logs are appended to
    commands = [[sys.executable, '-c', 'pass'], [sys.executable, '-c', REFUSED], [sys.executable, '-c', CRASHED]]
    done = []
    with pytest.raises(JobFailedError) as info:
        run_commands(commands, jobs=2, logs=logs, on_done=done.append)
    message = str(info.value)
    assert message.startswith('2 of 3 commands failed: ') and done == [0]
    assert f'exit 2: EPOCHS is 0; it must be at least 1; log {logs[1]}' in message
    assert f'exit 1: RuntimeError: the loss is NaN; log {logs[2]}' in message
    assert 'earlier attempt' not in message and '\n' not in message


@pytest.mark.process
def test_a_refused_result_counts_as_that_commands_failure(tmp_path):
    def refuse(index):
        raise CreamError(f'run {index} ended without a finite accuracy')
    with pytest.raises(JobFailedError, match='1 of 1 commands failed: .*run 0 ended without a finite accuracy'):
        run_commands([[sys.executable, '-c', 'pass']], logs=[str(tmp_path / 'a.log')], on_done=refuse)


def test_first_error_line(tmp_path):
    log = tmp_path / 'x.log'
    log.write_text('old line\nTraceback (most recent call last):\n  File "x", line 1\nKeyError: \'a\'\n')
    assert first_error_line(str(log)) == "KeyError: 'a'"
    assert first_error_line(str(log), offset=len('old line\n')) == "KeyError: 'a'"
    log.write_text('just output\nthe end\n')
    assert first_error_line(str(log)) == 'the end'
    log.write_text('')
    assert first_error_line(str(log)) == '(it wrote nothing)'


@pytest.mark.process
def test_in_processes_returns_every_calls_result_in_order():
    calls = [(2, 3), (4, 5), (6, 7)]
    assert in_processes(operator.mul, calls, jobs=2) == [6, 20, 42]  # two spawned workers
    assert in_processes(operator.mul, calls, jobs=1) == [6, 20, 42]  # in this process
