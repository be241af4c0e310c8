"""tools/latency_table.py: measuring a (tiny) space's table on PyTorch eager, checking it against whole networks,
storing the calibration; onnxruntime runs the part it is given. Times are produced but never asserted."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lib.latency.runtimes import LatencySettingsError, RuntimeSettings, prepare
from lib.latency.table import load_table
from lib.models import ops
from tests.support.handmade_latency import handmade_table
from tests.support.scripts_as_modules import load_script

REPO = Path(__file__).resolve().parents[2]
tool = load_script('tools/latency_table.py')


def test_measure_then_check_then_calibrate(tmp_path, capsys):
    out = str(tmp_path / 'table.json')
    summary = tool.main(['measure', '--out', out, '--layers', '1,2,1,1,1', '--resolution', '32', '--num-classes', '3',
                         '--runtime', 'torch', '--warmup', '0', '--repeats', '3'])
    table = load_table(out)
    assert (table.layers_per_stage, table.resolution, table.num_classes) == ((1, 2, 1, 1, 1), 32, 3)
    assert [len(stage) for stage in table.op_times] == [1, 2, 1, 1, 1]
    assert all(entry.samples == 3 for stage in table.op_times for layer in stage for entry in layer)
    assert table.meta['runtime'] == {'runtime': 'torch', 'device': 'cpu', 'batch_size': 1, 'threads': 1,
                                     'channels_last': False}
    assert table.meta['timing']['repeats'] == 3 and table.meta['versions']['torch'] == torch.__version__
    assert table.meta['device']['name'] and table.calibration is None
    assert summary['parts'] == 4 + 6 * 6
    capsys.readouterr()

    report = tool.main(['check', '--table', out, '--networks', '3', '--same-window', '--repeats', '2',
                        '--report', str(tmp_path / 'report.json')])
    printed = json.loads(capsys.readouterr().out)
    assert printed['networks'] == 3 and {'mape_percent', 'spearman_rho'} <= set(printed['sum'])
    assert printed['calibration'] is None and 'split_half_rho' in printed and 'sum' in printed['same_window']
    rows = json.loads((tmp_path / 'report.json').read_text())['rows']
    assert rows == report['rows'] and len(rows) == 3
    assert all(row['sum_ms'] == pytest.approx(table.sum_ms(row['path'])) for row in rows)


def test_check_write_stores_the_calibration_in_the_table(tmp_path, monkeypatch, capsys):
    """--write puts the fitted calibration into the table file (the fit itself: tests/latency/test_accuracy.py)."""
    out = str(tmp_path / 'table.json')
    handmade_table(resolution=32, num_classes=3).save(out)
    fitted = {'scale': 0.75, 'offset_ms': 0.5, 'networks': 4}
    monkeypatch.setattr(tool, 'check_table', lambda table, **kwargs: {'calibration': fitted, 'rows': []})
    tool.main(['check', '--table', out, '--calibrate', '4', '--write'])
    table = load_table(out)
    assert (table.calibration.scale, table.calibration.offset_ms) == (0.75, 0.5)
    path = ((1,), (2,), (3,), (4,), (5,))
    assert table.predict_ms(path) == pytest.approx(0.75 * table.sum_ms(path) + 0.5)
    assert json.loads(open(out).read())['range_ms'] == pytest.approx(list(table.range_ms()))  # the calibrated range


def test_the_space_comes_from_a_search_config(tmp_path):
    cfg = tmp_path / 'search.yaml'
    cfg.write_text('SUPERNET:\n  FLOPS_MAXIMUM: 20\nDATASET:\n  NUM_CLASSES: 10\n')
    args = tool.parse_args(['measure', '--out', 'x.json', '--cfg', str(cfg)])
    assert tool.space_of(args) == ((1, 1, 1, 1, 1), 96, 10, 'avg')


def test_onnxruntime_runs_the_part_it_is_given():
    torch.manual_seed(0)
    block = ops.inverted_residual(8, 16, 3, 2).eval()
    run = prepare(block, (8, 12, 12), RuntimeSettings('onnxruntime', batch_size=2))
    got = run()[0]
    x = torch.randn(2, 8, 12, 12, generator=torch.Generator().manual_seed(0))  # prepare's input
    with torch.no_grad():
        want = block(x).numpy()
    assert got.shape == (2, 16, 6, 6) and abs(got - want).max() < 1e-4


@pytest.mark.parametrize('settings, message', [
    (RuntimeSettings('onnxruntime', channels_last=True), 'PyTorch eager only'),
    (RuntimeSettings('onnxruntime', device='cuda'), 'onnxruntime is measured on the CPU'),
    (RuntimeSettings('torch', threads=0), 'at least 1'),
])
def test_settings_that_cannot_be_measured(settings, message):
    with pytest.raises(LatencySettingsError, match=message):
        settings.check()


@pytest.mark.process
def test_command_line_error_is_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"format": "cream-latency-table-0"}')
    proc = subprocess.run([sys.executable, 'tools/latency_table.py', 'check', '--table', str(bad)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad} is not a usable latency table: format is 'cream-latency-table-0', not 'cream-latency-table-1'; "
        'measure one with python tools/latency_table.py measure']
