"""The latency tools and a latency-budget search under broken inputs: tools/latency_table.py (measure, check),
tools/model_info.py --latency and train.py with SUPERNET.BUDGET_MEASURE latency. Every case is refused before any
measuring or training: one error line naming the problem (and the file), exit status 2, nothing written."""
import copy
import json
from pathlib import Path

import pytest

import train
from tests.support.broken_inputs import assert_refused
from tests.support.handmade_latency import handmade_table

REPO = Path(__file__).resolve().parents[2]
ARCH = '[[0],[0],[0],[0],[0],[0],[0]]'
GOOD = handmade_table().to_dict()


def _with(change):
    data = copy.deepcopy(GOOD)
    change(data)
    return json.dumps(data)


# (id, the table file's text, expected in the error line): the loader's checks, shared by every reader of a table.
BROKEN_TABLES = [
    ('truncated', json.dumps(GOOD)[:300], 'is not valid JSON, truncated'),
    ('empty', '', 'is empty'),
    ('nan', json.dumps(GOOD).replace('"ms": 0.5', '"ms": NaN', 1), 'holds NaN'),
    ('a-list', '[1, 2]', 'holds a list where an object belongs'),
    ('other-format', _with(lambda d: d.update(format='cream-latency-table-0')), "format is 'cream-latency-table-0'"),
    ('runtime-a-list', _with(lambda d: d.update(runtime=[1, 2])), 'runtime must be an object'),
    ('runtime-batch-text', _with(lambda d: d['runtime'].update(batch_size='x')), 'batch size and threads must be'),
    ('runtime-unknown', _with(lambda d: d['runtime'].update(runtime='tensorrt')), "runtime 'tensorrt' is not one of"),
    ('runtime-extra-key', _with(lambda d: d['runtime'].update(fp16=True)), 'runtime must hold exactly'),
    ('runtime-missing', _with(lambda d: d.pop('runtime')), "missing key 'runtime'"),
    ('timing-text', _with(lambda d: d.update(timing='fast')), 'timing must be an object'),
    ('timing-repeats-zero', _with(lambda d: d['timing'].update(repeats=0)), 'timing.repeats must be an integer'),
    ('timing-clock', _with(lambda d: d['timing'].update(clock='sundial')), 'timing.clock must be one of'),
    ('device-a-list', _with(lambda d: d.update(device=[])), 'device must be an object'),
    ('resolution-text', _with(lambda d: d['space'].update(resolution='32')), 'space.resolution must be an integer'),
    ('classes-zero', _with(lambda d: d['space'].update(num_classes=0)), 'space.num_classes must be an integer'),
    ('pool-unknown', _with(lambda d: d['space'].update(global_pool='median')), "global_pool 'median' is no timm"),
    ('layers-text', _with(lambda d: d['space'].update(layers_per_stage='abc')), 'layers_per_stage must be 5'),
    ('ops-an-object', _with(lambda d: d.update(ops={'a': 1})), 'ops must be a list'),
    ('fixed-a-list', _with(lambda d: d.update(fixed=[1])), 'fixed must be an object'),
    ('calibration-a-list', _with(lambda d: d.update(calibration=[1, 2])), 'calibration must be null or an object'),
    ('samples-text', _with(lambda d: d['fixed']['stem'].update(samples='many')), "invalid literal for int()"),
]


@pytest.fixture(scope='module')
def model_info():
    from tests.support.scripts_as_modules import load_script
    return load_script('tools/model_info.py')


@pytest.fixture(scope='module')
def latency_table():
    from tests.support.scripts_as_modules import load_script
    return load_script('tools/latency_table.py')


@pytest.mark.parametrize('text, expected', [c[1:] for c in BROKEN_TABLES], ids=[c[0] for c in BROKEN_TABLES])
def test_a_broken_table_is_one_error_line_for_model_info_and_check(tmp_path, capsys, model_info, latency_table,
                                                                   text, expected):
    table = tmp_path / 'table.json'
    table.write_text(text)
    line = assert_refused(model_info.main, ['--arch', ARCH, '--latency', table], capsys, expected, [tmp_path])
    assert str(table) in line
    report = tmp_path / 'report.json'
    assert_refused(latency_table.main, ['check', '--table', table, '--report', report, '--networks', 2], capsys,
                   expected, [tmp_path])


@pytest.fixture
def good_table(tmp_path):
    path = tmp_path / 'table.json'
    path.write_text(json.dumps(GOOD))
    return path


MEASURE = ['measure', '--layers', '1,1,1,1,1', '--resolution', '32', '--runtime', 'torch', '--repeats', '1']
MEASURE_CASES = [  # (id, arguments after 'measure ... --out OUT', expected); none of them measures anything
    ('layers-not-numbers', ['--layers', '1,1,a,1,1'], '--layers must be 5 positive counts'),
    ('layers-too-few', ['--layers', '1,1,1,1'], '--layers must be 5 positive counts'),
    ('layers-zero', ['--layers', '1,0,1,1,1'], '--layers must be 5 positive counts'),
    ('resolution-too-small', ['--resolution', '8'], '--resolution: must be at least 32'),
    ('classes-zero', ['--num-classes', '0'], '--num-classes: must be at least 1'),
    ('pool-unknown', ['--global-pool', 'median'], "--global-pool 'median' is no timm pooling"),
    ('repeats-zero', ['--repeats', '0'], '--repeats: must be at least 1'),
    ('warmup-negative', ['--warmup', '-1'], '--warmup: must be at least 0'),
    ('threads-zero', ['--threads', '0'], '--threads: must be at least 1'),
    ('channels-last-onnx', ['--runtime', 'onnxruntime', '--channels-last'], 'applies to PyTorch eager only'),
    ('cfg-and-layers', ['--cfg', str(REPO / 'configs/demo/train.yaml')], 'either with --cfg'),
]


@pytest.mark.parametrize('extra, expected', [c[1:] for c in MEASURE_CASES], ids=[c[0] for c in MEASURE_CASES])
def test_measure_refuses_a_bad_argument_before_measuring(tmp_path, capsys, latency_table, extra, expected):
    out = tmp_path / 'out' / 'table.json'
    assert_refused(latency_table.main, [*MEASURE, '--out', out, *extra], capsys, expected, [tmp_path])


def test_measure_and_check_refuse_an_unwritable_output_before_measuring(tmp_path, capsys, latency_table, good_table):
    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    for out, expected in ((a_file / 'table.json', 'a_file is a file, not a folder'), (tmp_path, 'is a folder')):
        assert_refused(latency_table.main, [*MEASURE, '--out', out], capsys, expected, [tmp_path])
        assert_refused(latency_table.main, ['check', '--table', good_table, '--report', out], capsys, expected,
                       [tmp_path])
    assert_refused(latency_table.main, ['measure', '--cfg', tmp_path / 'none.yaml', '--out', tmp_path / 't.json'],
                   capsys, 'none.yaml', [tmp_path])
    assert_refused(latency_table.main, ['check', '--table', good_table, '--networks', '100000'], capsys,
                   'the space of', [tmp_path])
    assert_refused(latency_table.main, ['check', '--table', tmp_path / 'none.json'], capsys, 'not found', [tmp_path])
    assert_refused(latency_table.main, ['check', '--table', good_table, '--report', good_table], capsys,
                   'which this run reads', [tmp_path])


def test_model_info_refuses_a_damaged_arch_file(tmp_path, capsys, model_info, good_table):
    (tmp_path / 'best_arch.yaml').write_text('INPUT_ARCH: [[0], [1]\n')
    assert_refused(model_info.main, ['--arch', tmp_path / 'best_arch.yaml'], capsys, 'cannot be read as yaml',
                   [tmp_path])
    (tmp_path / 'best_arch.yaml').write_text('- 1\n- 2\n')
    assert_refused(model_info.main, ['--arch', tmp_path / 'best_arch.yaml'], capsys, 'a file without INPUT_ARCH',
                   [tmp_path])
    assert_refused(model_info.main, ['--arch', ARCH, '--latency', good_table, '--repeats', '0'], capsys,
                   '--repeats: must be at least 1', [tmp_path])


def test_a_search_with_a_table_whose_settings_record_is_broken_stops_before_its_run_folder(tmp_path, capsys,
                                                                                          demo_data):
    data = demo_data(classes=3, train=2, val=1, size=32)
    table = handmade_table(resolution=64, num_classes=3).to_dict()
    table['runtime'] = {'runtime': 'torch'}  # the wrong shape: it used to load and crash the search later
    (tmp_path / 'table.json').write_text(json.dumps(table))
    opts = {'OUTPUT': tmp_path / 'runs', 'DATA_DIR': data, 'FLOPS_MAXIMUM': 6, 'DATASET.NUM_CLASSES': 3,
            'SUPERNET.BUDGET_MEASURE': 'latency', 'SUPERNET.LATENCY_MAXIMUM': 10.0,
            'SUPERNET.LATENCY_TABLE': tmp_path / 'table.json', 'DATASET.GENERATE_DEMO': False, 'WORKERS': 0}
    argv = ['--cfg', REPO / 'configs/demo/train.yaml', *[x for kv in opts.items() for x in kv]]
    assert_refused(train.main, argv, capsys, 'runtime must hold exactly', [tmp_path / 'runs', tmp_path / 'table.json'])
