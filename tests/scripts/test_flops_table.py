"""tools/flops_table.py: the search space and FLOPs table of a config, as one JSON object."""
import json
import os
import subprocess
import sys

import pytest
from lib.errors import CreamError
from tests.support.scripts_as_modules import load_script


@pytest.mark.process
def test_prints_search_space_and_table(tmp_path, repo_root):
    cfg = tmp_path / 'tiny.yaml'
    cfg.write_text('SUPERNET:\n  FLOPS_MAXIMUM: 20\nDATASET:\n  NUM_CLASSES: 10\n')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(repo_root))  # this checkout, installed or not
    proc = subprocess.run([sys.executable, 'tools/flops_table.py', '--cfg', str(cfg)], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result['flops_budget_M'] == [0, 20] and result['flops_table'] == 'original'
    assert result['budget_flops_range_M'][1] <= 20
    assert result['layers_per_stage'] == [1, 1, 1, 1, 1]
    assert result['resolution'] == 96
    assert result['num_classes'] == 10
    assert len(result['op_names']) == 6
    assert [len(stage) for stage in result['op_flops_M']] == [1, 1, 1, 1, 1]
    assert all(len(layer) == 6 for stage in result['op_params_M'] for layer in stage)
    cheapest = result['fixed_flops_M'] + sum(min(stage[0]) for stage in result['op_flops_M'])
    assert result['path_flops_range_M'][0] == pytest.approx(cheapest)
    assert result['fixed_params_M'] > 0


def _import_tool(repo_root):
    return load_script('tools/flops_table.py')


def test_budgets_print_one_line_each_and_the_exit_status_flags_infeasible_ones(repo_root, capsys):
    flops_table = _import_tool(repo_root)
    assert flops_table.main(['--budgets', '0-600', '100-300', '0-14']) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line['budget'] for line in lines] == [[0, 600], [100, 300], [0, 14]]
    assert [(line['layers_per_stage'], line['resolution']) for line in lines] == [
        ([4, 4, 4, 4, 4], 224), ([1, 2, 3, 3, 3], 224), ([1, 1, 1, 1, 1], 96)]
    full = lines[0]
    assert full['cheapest']['path'] == [[0] * 4] * 5 and full['dearest']['path'] == [[5] * 4] * 5
    # The budget's measure keeps the dearest path within 600; its real MACs at 224 px are higher.
    assert full['cheapest']['budget_flops_M'] < full['dearest']['budget_flops_M'] <= 600
    assert full['dearest']['budget_flops_M'] < full['dearest']['macs_M'] == full['macs_range_M'][1]
    assert lines[2]['budget_scale'] == pytest.approx(7 / 6 * 7 / 5 * 7 / 4 * 7 / 3)
    assert lines[2]['cheapest']['budget_flops_M'] <= 14
    assert flops_table.main(['--budgets', '0-600', '0-1', '700-800']) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert 'error' not in lines[0] and 'infeasible' in lines[1]['error'] and 'infeasible' in lines[2]['error']
    # 20-20 gets a space (one layer per stage at 96 px) that none of its paths fits: the search refuses it.
    assert flops_table.main(['--budgets', '20-20']) == 1
    line = json.loads(capsys.readouterr().out)
    assert line['layers_per_stage'] == [1, 1, 1, 1, 1] and 'holds no path of its search space' in line['error']


def test_infeasible_budget_and_unsupported_options_fail_clearly(tmp_path, repo_root, capsys):
    flops_table = _import_tool(repo_root)
    with pytest.raises(CreamError, match=r'600\.\.800 MFLOPs is infeasible'):
        flops_table.main(['SUPERNET.FLOPS_MINIMUM', '600', 'SUPERNET.FLOPS_MAXIMUM', '800'])
    with pytest.raises(CreamError, match=r'SUPERNET.RESUNIT is not supported.*False'):
        flops_table.main(['SUPERNET.RESUNIT', 'True'])
