"""tools/flops_table.py: the search space and FLOPs table of a config, as one JSON object."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest


def test_prints_search_space_and_table(tmp_path, repo_root):
    cfg = tmp_path / 'tiny.yaml'
    cfg.write_text('SUPERNET:\n  FLOPS_MAXIMUM: 20\nDATASET:\n  NUM_CLASSES: 10\n')
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(repo_root))  # this checkout, installed or not
    proc = subprocess.run([sys.executable, 'tools/flops_table.py', '--cfg', str(cfg)], cwd=repo_root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result['flops_budget_M'] == [0, 20]
    assert result['layers_per_stage'] == [1, 1, 1, 1, 1]
    assert result['resolution'] == 96
    assert result['num_classes'] == 10
    assert len(result['op_names']) == 6
    assert [len(stage) for stage in result['op_flops_M']] == [1, 1, 1, 1, 1]
    assert all(len(layer) == 6 for stage in result['op_params_M'] for layer in stage)
    cheapest = result['fixed_flops_M'] + sum(min(stage[0]) for stage in result['op_flops_M'])
    assert result['path_flops_range_M'][0] == pytest.approx(cheapest)
    assert result['fixed_params_M'] > 0


def test_infeasible_budget_and_unsupported_options_fail_clearly(tmp_path, repo_root, capsys):
    spec = importlib.util.spec_from_file_location('flops_table_tool', repo_root / 'tools' / 'flops_table.py')
    flops_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flops_table)
    with pytest.raises(SystemExit, match=r'600\.\.800 MFLOPs is infeasible'):
        flops_table.main(['SUPERNET.FLOPS_MINIMUM', '600', 'SUPERNET.FLOPS_MAXIMUM', '800'])
    with pytest.raises(SystemExit, match=r'SUPERNET.RESUNIT is not supported.*False'):
        flops_table.main(['SUPERNET.RESUNIT', 'True'])
