"""tools/export_onnx.py: a searched path with its checkpoint to ONNX (dynamic batch) and torch.export; both
reproduce PyTorch on the same input."""
import json
import subprocess
import sys
from pathlib import Path

import onnx
import onnxruntime
import pytest
import torch

from lib.checkpoint.files import save_checkpoint_atomic
from lib.engine.guard import exit_on_error
from lib.models import create_model
from lib.models.childnet import build_childnet
from tests.support.processes import script_env
from tests.support.scripts_as_modules import load_script

REPO = Path(__file__).resolve().parents[2]
export_tool = load_script('tools/export_onnx.py')

ARCH = [[0], [1], [2], [3], [1], [3], [0]]  # a searched path: one layer per stage


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """Weights and BN statistics far from their initial values, so that the logits are of order one."""
    torch.manual_seed(0)
    model = build_childnet(ARCH, num_classes=3)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith('running_var'):
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.normal_(0, 0.3 if name.startswith('classifier') else 0.1)
    path = tmp_path_factory.mktemp('ckpt') / 'searched.pth.tar'
    state = model.state_dict()
    save_checkpoint_atomic({'state_dict': state, 'state_dict_ema': state, 'arch': ARCH}, path)
    return path


def test_a_searched_path_with_its_checkpoint_exports_and_matches(checkpoint, tmp_path, capsys):
    out = tmp_path / 'net' / 'searched.onnx'
    result = export_tool.main(['--out', str(out), '--torch-export', str(tmp_path / 'searched.pt2'),
                               'MODEL_SELECTION', '-1', 'INPUT_ARCH', json.dumps(ARCH), 'DATASET.NUM_CLASSES', '3',
                               'DATASET.IMAGE_SIZE', '32', 'RESUME_PATH', str(checkpoint)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(result))
    assert result['weights'] == 'state_dict_ema' and result['batches_checked'] == [2, 3]
    assert result['max_abs_output'] > 0.5  # the difference is measured against real signal
    assert result['max_abs_diff'] < 1e-4 and result['torch_export_max_abs_diff'] < 1e-4
    assert sorted(p.name for p in out.parent.iterdir()) == ['searched.onnx']  # one file, no leftovers

    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # symbolic batch
    # Independently of the tool: the file gives the checkpoint's network's outputs for a batch of 5.
    reference = create_model(-1, arch=ARCH, num_classes=3, checkpoint=checkpoint)
    x = torch.randn(5, 3, 32, 32)
    got = onnxruntime.InferenceSession(str(out), providers=['CPUExecutionProvider']).run(None, {'image': x.numpy()})[0]
    with torch.no_grad():
        assert abs(torch.from_numpy(got) - reference(x)).max() < 1e-4


@pytest.mark.parametrize('opts, message', [
    (['MODEL_SELECTION', '470'], 'unsupported MODEL_SELECTION 470'),
    (['MODEL_SELECTION', '14', 'RESUME_PATH', '/no/such.pth.tar'], 'not found'),
    (['NOT_A_KEY', '1'], 'unknown config key NOT_A_KEY'),
    (['--batch', '0'], '--batch must be at least 1'),
])
def test_bad_requests_are_one_error_line(opts, message, tmp_path, capsys):
    with pytest.raises(SystemExit, match=message) as stop:
        exit_on_error(export_tool.main, ['--out', str(tmp_path / 'x.onnx'), *opts])
    assert stop.value.code == 2 and capsys.readouterr().err.count('\n') == 1
    assert not (tmp_path / 'x.onnx').exists()


@pytest.mark.process
def test_an_unwritable_out_is_one_error_line_before_any_export_work(repo_root):
    """sysfs takes no new files from anyone (EACCES, root included; EROFS where it is mounted read-only)."""
    completed = subprocess.run([sys.executable, 'tools/export_onnx.py', '--out', '/sys/cream_export.onnx',
                                'MODEL_SELECTION', '14'], cwd=repo_root, env=script_env(), capture_output=True,
                               text=True, timeout=300)
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1, completed.stderr
    assert lines[0].startswith('error: cannot write /sys/cream_export.onnx (') and 'writable folder' in lines[0]
    assert completed.stdout == ''  # nothing exported, nothing printed
