"""The other tools under broken inputs (plot_run, the data writers, flops_table, miniature, export_onnx and the
benchmarks): each case ends in one error line and exit status 2, before any work, with nothing written. One tool
also runs as a real process here (and ground_truth.py in its own module; each process costs seconds of imports),
so that its ``__main__`` is seen to keep the promise; the others' ``__main__`` is the same ``exit_on_error(main)``."""
import subprocess
import sys

import pytest

from tests.support.broken_inputs import assert_refused, snapshot
from tests.support.paths import REPO
from tests.support.processes import script_env
from tests.support.scripts_as_modules import load_script


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / 'a_file'
    path.write_text('x')
    return path


@pytest.fixture
def tools_module():
    return lambda name: load_script(f'tools/{name}.py')


def _run_cases(main, cases, capsys, watched):
    for argv, expected in cases:
        assert_refused(main, argv, capsys, expected, watched)


def test_plot_run(tmp_path, a_file, capsys, tools_module):
    main = tools_module('plot_run').main
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'summary.csv').write_text('epoch,train_loss\n0,1.5\n')
    _run_cases(main, [
        ([tmp_path / 'none'], 'has no summary.csv'),
        ([run, '--out', a_file / 'p.png'], 'a_file is a file, not a folder'),
        ([run, '--out', tmp_path], 'is a folder'),
        ([run, '--out', tmp_path / 'p.xyz'], 'cannot write .xyz files'),
    ], capsys, [tmp_path])
    (run / 'summary.csv').write_text('train_loss\n1.5\n')
    _run_cases(main, [([run], 'has no epoch column')], capsys, [tmp_path])
    (run / 'summary.csv').write_text('epoch,train_loss\n0,1.5,7\n')
    _run_cases(main, [([run], 'line 2 has more cells than the header')], capsys, [tmp_path])
    (run / 'summary.csv').write_text('epoch,train_loss\n0,1.5\n')
    (run / 'board.json').write_text('{"entries": [], "epoch": NaN}')
    _run_cases(main, [([run], 'board.json is not strict JSON: it holds NaN')], capsys, [tmp_path])
    (run / 'board.json').write_text('{"entries": 3, "epoch": 1}')
    _run_cases(main, [([run], 'is not a board.json of train.py')], capsys, [tmp_path])
    (run / 'board.json').write_text('{"entries": [], "epoch": 0, "resolution": 32}')
    (run / 'config.yaml').write_text('- 1\n')
    _run_cases(main, [([run], 'config.yaml is not a config.yaml of train.py')], capsys, [tmp_path])


def test_the_data_writers(tmp_path, a_file, capsys, tools_module):
    (tmp_path / 'used').mkdir()
    (tmp_path / 'used' / 'keep.txt').write_text('mine')
    cases = [
        (['--out', tmp_path / 'used'], 'exists and is not empty'),
        (['--out', a_file], 'is a file, not a folder'),
        (['--out', a_file / 'data'], 'a_file is a file, not a folder'),
        (['--out', tmp_path / 'new', '--image-size', '4'], '--image-size: must be at least 8'),
        (['--out', tmp_path / 'new', '--seed', '-1'], '--seed: must be at least 0'),
    ]
    _run_cases(tools_module('make_demo_data').main, cases + [
        (['--out', tmp_path / 'new', '--classes', '0'], '--classes: must be at least 1'),
        (['--out', tmp_path / 'new', '--val-per-class', '-1'], '--val-per-class: must be at least 1'),
    ], capsys, [tmp_path])
    _run_cases(tools_module('make_digits_data').main, cases + [
        (['--out', tmp_path / 'new', '--val-fraction', '0'], '--val-fraction: must lie strictly between 0 and 1'),
        (['--out', tmp_path / 'new', '--val-fraction', 'nan'], '--val-fraction: must lie strictly between 0 and 1'),
    ], capsys, [tmp_path])


def test_flops_table(tmp_path, capsys, tools_module):
    _run_cases(tools_module('flops_table').main, [
        (['--cfg', tmp_path / 'none.yaml'], 'none.yaml'),
        (['SUPERNET.FLOPS_MAXIMUM'], 'KEY VALUE pairs'),
        (['--budgets', '600-0'], '0 <= MIN <= MAX'),
        (['--budgets', 'nan-5'], '0 <= MIN <= MAX'),
        (['SUPERNET.FLOPS_MINIMUM', '600', 'SUPERNET.FLOPS_MAXIMUM', '800'], 'infeasible'),
    ], capsys, [tmp_path])


def test_miniature(tmp_path, a_file, capsys, tiny_imagefolder, tools_module):
    main = tools_module('miniature').main
    data = ['--data', tiny_imagefolder]
    out = ['--out', tmp_path / 'mini']
    _run_cases(main, [
        ([*out, *data, '--jobs', '0'], '--jobs: must be at least 1'),
        ([*out, *data, '--paths', '2'], '--paths: must be at least 3'),
        ([*out, *data, '--search-opts', 'EPOCHS'], '--search-opts takes KEY VALUE pairs'),
        ([*out, *data, '--recipe-opts', 'EPOCHS', '1', 'LR'], '--recipe-opts takes KEY VALUE pairs'),
        ([*out, *data, '--search-opts', 'NO.SUCH', '1'], 'unknown config key'),
        ([*out, *data, '--recipe-opts', 'EPOCHS', '0'], 'EPOCHS is 0'),
        ([*out, *data, '--search-opts', 'SUPERNET.FLOPS_MINIMUM', '900'], 'is above SUPERNET.FLOPS_MAXIMUM'),
        (['--out', a_file, *data], 'is a file, not a folder'),
        ([*out, '--data', a_file], 'is a file, not a folder'),
        ([*out, '--data', tmp_path], 'exists and is not empty'),
        ([*out, *data, '--recipe-opts', 'DATA_DIR', tmp_path], 'DATA_DIR is set by this tool'),
        ([*out, *data, '--search-opts', 'SEED', '3'], 'SEED is set by this tool'),
    ], capsys, [tmp_path])
    searches = tmp_path / 'mini' / 'searches'
    searches.mkdir(parents=True)
    (searches / 'defaults_seed0.done').write_text('done\n')  # its run folder was deleted afterwards
    _run_cases(main, [([*out, *data, '--configs', 'defaults', '--seeds', '0'], 'marks a finished search, but')],
               capsys, [tmp_path])
    (searches / 'defaults_seed0.done').unlink()
    (tmp_path / 'mini' / 'ground_truth').mkdir()
    (tmp_path / 'mini' / 'ground_truth' / 'paths.json').write_text('{"paths": [')
    _run_cases(main, [([*out, *data], 'paths.json is not valid JSON')], capsys, [tmp_path])


def test_export_onnx(tmp_path, a_file, capsys, tools_module):
    (tmp_path / 'bad.yaml').write_text('MODEL_SELECTION: [14\n')
    (tmp_path / 'binary.yaml').write_bytes(b'\xff\xfe\x00\x01')
    _run_cases(tools_module('export_onnx').main, [
        (['--out', tmp_path, 'MODEL_SELECTION', '14'], 'is a folder'),
        (['--out', a_file / 'm.onnx', 'MODEL_SELECTION', '14'], 'a_file is a file, not a folder'),
        (['--out', tmp_path / 'm.onnx', '--torch-export', tmp_path, 'MODEL_SELECTION', '14'], '--torch-export'),
        (['--out', tmp_path / 'm.onnx', '--cfg', tmp_path / 'bad.yaml'], 'not valid yaml'),
        (['--out', tmp_path / 'm.onnx', '--cfg', tmp_path / 'binary.yaml'], 'cannot be read (UnicodeDecodeError'),
        (['--out', tmp_path / 'm.onnx', 'MODEL_SELECTION', '14', 'RESUME_PATH', a_file], 'cannot read checkpoint'),
    ], capsys, [tmp_path])


def test_the_benchmarks(tmp_path, a_file, capsys, tools_module):
    (tmp_path / 'cut.jsonl').write_text('{"phase": "search-kd", "img_per')
    (tmp_path / 'other.jsonl').write_text('{"phase": "search-kd"}\n')
    tiny = ['--steps', '1', '--warmup', '0', '--batch-size', '2', '--image-size', '32', '--num-classes', '2']
    _run_cases(tools_module('benchmark').main, [
        (['--table-from', tmp_path / 'none.jsonl'], 'none.jsonl cannot be read'),
        (['--table-from', tmp_path / 'cut.jsonl'], 'line 1 is not JSON'),
        (['--table-from', tmp_path / 'other.jsonl'], 'line 1 is not a benchmark result'),
        (['--path', '[[1],[1]]', '--phases', 'static'], '--path needs 5 non-empty stages'),
        (['--phases', 'static', '--jsonl', a_file / 'x.jsonl', *tiny], 'a_file is a file, not a folder'),
        (['--phases', 'search-plain', '--clock', 'cpu', *tiny], '--clock cpu needs --interleave'),
        (['--phases', 'search-plain', '--cfg', tmp_path / 'none.yaml', *tiny], 'none.yaml'),
        (['--phases', 'search-plain', '--pool-size', '0'], '--pool-size: must be at least 1'),
    ], capsys, [tmp_path])
    _run_cases(tools_module('profile_step').main, [
        (['--path', '[[1],[1]]'], '--path needs 5 non-empty stages'),
        (['--trace', a_file / 't.json', '--phase', 'search-plain', *tiny], 'a_file is a file, not a folder'),
        (['--ops', '0'], '--ops: must be at least 1'),
    ], capsys, [tmp_path])
    _run_cases(tools_module('benchmark_loader').main, [
        (['--data', tmp_path / 'none', '--workers', '0', '--batches', '1'], 'DATA_DIR/train not found'),
        (['--data', tmp_path, '--aa', 'nonsense'], "AUGMENTATION.AA is 'nonsense'"),
        (['--data', tmp_path, '--re-prob', '2'], '--re-prob must be a probability'),
        (['--data', tmp_path, '--workers', '-1'], '--workers: must be at least 0'),
    ], capsys, [tmp_path])
    _run_cases(tools_module('benchmark_stop_check').main, [
        (['--ranks', '0'], '--ranks: must be at least 1'),
        (['--rounds', '1', '--steps', '1'], '--rounds x --steps must be at least 2'),
    ], capsys, [tmp_path])


@pytest.mark.process
@pytest.mark.parametrize('argv, expected', [
    (['tools/latency_table.py', 'check', '--table', '{a_file}'], 'is not valid JSON'),
], ids=['latency_table'])
def test_as_processes(tmp_path, a_file, argv, expected):
    before = snapshot(tmp_path)
    done = subprocess.run([sys.executable, *[a.format(a_file=a_file) for a in argv]], cwd=REPO, env=script_env(),
                          capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and 'Traceback' not in done.stderr, done.stderr
    assert lines[-1].startswith('error: ') and expected in lines[-1], done.stderr
    assert snapshot(tmp_path) == before
