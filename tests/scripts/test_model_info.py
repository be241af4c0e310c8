"""tools/model_info.py: one JSON line per network, runnable from the repository root."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.scripts_as_modules import load_script

REPO = Path(__file__).resolve().parents[2]
model_info_tool = load_script('tools/model_info.py')


@pytest.mark.process
def test_runs_as_a_script_from_the_repo_root():
    env = dict(os.environ, PYTHONPATH=str(REPO))  # this checkout, installed or not
    result = subprocess.run([sys.executable, 'tools/model_info.py', '--selection', 'cream_014'], cwd=REPO,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    info = json.loads(lines[0])
    assert info['name'] == 'cream_014' and info['flops_name'] == '14M'
    assert (info['resolution'], info['params']) == (64, 2673096)
    assert info['macs_M'] == pytest.approx(14.418, abs=0.0006)


def test_arch_and_resolution(capsys):
    arch = '[[0], [3], [3, 3], [3, 3], [3], [3], [0]]'  # the 14M path, without the single-layer rule
    model_info_tool.main(['--arch', arch, '--resolution', '96', '--keep-single-layer-default'])
    info = json.loads(capsys.readouterr().out)
    assert (info['name'], info['selection'], info['resolution']) == ('cream_custom', -1, 96)
    assert info['params'] == 2673096  # with the rule it is the 14M network's shape
    as_searched = model_info_tool.model_info(arch=json.loads(arch), resolution=96)
    assert as_searched['params'] != info['params']  # stages 4 and 5 get op 3 (k5e6), not their defaults


@pytest.mark.parametrize('argv, message', [
    (['--selection', '15'], 'unsupported MODEL_SELECTION'),
    (['--arch', '[[0], [9]]'], '7 stages'),
    (['--arch', '[[0], ['], 'not a list of lists'),
    (['--selection', '14', '--resolution', '8'], 'at least 32'),
])
def test_bad_arguments_exit_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        model_info_tool.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
