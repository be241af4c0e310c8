"""tools/benchmark_stop_check.py: two gloo ranks run the three kinds of step and report each one's step and check
times (its numbers are docs/benchmarks.md's; here only that it runs them all)."""
import json
import subprocess
import sys

import pytest

from tests.support.processes import script_env

pytestmark = pytest.mark.process


def test_two_ranks_time_the_plain_the_lagged_and_the_blocking_check(repo_root):
    done = subprocess.run([sys.executable, 'tools/benchmark_stop_check.py', '--ranks', '2', '--rounds', '1',
                           '--warmup', '0', '--steps', '2', '--batch-size', '2', '--image-size', '32'],
                          cwd=repo_root, env=script_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report['ranks'] == 2 and report['steps_per_kind'] == 2
    for kind in ('plain', 'lagged', 'blocking'):
        assert report[f'{kind}_step_ms'] > 0 and report[f'{kind}_check_us'] >= 0
    assert report['plain_check_us'] < report['blocking_check_us']  # no check vs an all-reduce's round trip
