"""tools/model_info.py --latency: a network measured on the table's runtime beside the table's prediction (the
measured figure is produced, never asserted)."""
import json
from pathlib import Path

import pytest

from lib.errors import CreamError
from tests.support.handmade_latency import handmade_table
from tests.support.scripts_as_modules import load_script

REPO = Path(__file__).resolve().parents[2]
tool = load_script('tools/model_info.py')


def test_predicted_beside_measured_for_a_best_arch_file(tmp_path, capsys):
    table = str(tmp_path / 'table.json')
    handmade_table(resolution=32, num_classes=3, calibration=(0.5, 0.25)).save(table)
    best_arch = tmp_path / 'best_arch.yaml'
    best_arch.write_text('MODEL_SELECTION: -1\nINPUT_ARCH: [[0], [4], [1], [0], [0], [0], [0]]\n')
    info = tool.main(['--arch', str(best_arch), '--latency', table, '--repeats', '2'])
    assert json.loads(capsys.readouterr().out) == info
    assert info['resolution'] == 32 and info['arch'][1] == [4]
    latency = info['latency']
    assert latency['sum_ms'] == pytest.approx(1 + 4 + 1.5 + 1 + 1 + 1)
    assert latency['predicted_ms'] == pytest.approx(0.5 * latency['sum_ms'] + 0.25) and latency['calibrated']
    assert latency['measured_ms'] > 0 and latency['repeats'] == 2
    assert latency['error_percent'] == pytest.approx((latency['predicted_ms'] / latency['measured_ms'] - 1) * 100)
    assert latency['measured_with'] == 'torch on cpu (hand-made), batch 1, 1 thread(s)'


def test_a_network_of_another_space_is_refused(tmp_path):
    table = str(tmp_path / 'table.json')
    handmade_table(resolution=64, num_classes=3).save(table)
    with pytest.raises(CreamError, match=r'path \[\[0\], \[3, 3\], \[3, 3\], \[1\], \[3\]\] does not fit latency table'):
        tool.main(['--selection', '14', '--latency', table])  # the 14M network: two layers in stages 2 and 3
    with pytest.raises(CreamError, match='--resolution 96 differs'):
        tool.main(['--arch', '[[0], [0], [0], [0], [0], [0], [0]]', '--latency', table, '--resolution', '96'])
