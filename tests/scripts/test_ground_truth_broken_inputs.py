"""tools/ground_truth.py under broken inputs: every case is refused before anything is saved or trained, with one
error line (exit status 2) naming the problem, and the ground-truth folder is left as it was."""
import json
import shutil

import pytest

from lib.errors import CreamError
from lib.experiments import ground_truth as gt
from lib.fileio import write_json_atomic
from tests.support.broken_inputs import assert_refused
from tests.support.paths import REPO
from tests.support.processes import script_env
from tests.support.scripts_as_modules import load_script

tool = load_script('tools/ground_truth.py')
RECIPE = str(REPO / 'configs' / 'experiments' / 'digits_retrain.yaml')
SEARCH = str(REPO / 'configs' / 'experiments' / 'digits_search.yaml')
PATH = ((0,), (1,), (2,), (3,), (4,))
ONE_PATH = '[[0],[1],[2],[3],[4]]'


@pytest.fixture
def truth(tmp_path):
    """A ground-truth folder as the tool leaves it: one path listed, its seed-0 result recorded."""
    out = tmp_path / 'gt'
    gt.save_paths(str(out), [PATH], sampled=True)
    (out / 'results').mkdir()
    write_json_atomic({'path': PATH, 'seed': 0, 'val_prec1': 50.0, 'val_loss': 1.0}, gt.result_file(str(out), PATH, 0))
    return out


def _argv(out, data, *extra, opts=()):
    return ['--out', out, '--recipe', RECIPE, *extra, 'DATA_DIR', data, 'DATASET.NUM_CLASSES', '3', *opts]


def _damage(truth, name, text):
    (truth / name).write_text(text)


RESULT = f'results/{gt.path_key(PATH)}_seed0.json'
NEW_FOLDER_CASES = [  # (id, extra arguments, trailing overrides, expected in the error line)
    ('paths-wrong-stage-count', ['--paths', '[[1],[2]]'], [], 'has 2 stages'),
    ('paths-truncated', ['--paths', '[[1],'], [], '--paths is not JSON'),
    ('paths-op-out-of-range', ['--paths', '[[9],[0],[0],[0],[0]]'], [], 'op index 9'),
    ('paths-float-op', ['--paths', '[[[1.5],[0],[0],[0],[0]]]'], [], 'not an integer'),
    ('paths-empty-stage', ['--paths', '[[[],[0],[0],[0],[0]]]'], [], 'is empty'),
    ('paths-empty-list', ['--paths', '[]'], [], 'non-empty JSON list'),
    ('paths-an-object', ['--paths', '{"a": 1}'], [], 'non-empty JSON list'),
    ('jobs-zero', ['--paths', ONE_PATH, '--jobs', '0'], [], '--jobs: must be at least 1'),
    ('seed-negative', ['--paths', ONE_PATH, '--seeds', '-1'], [], '--seeds: must be at least 0'),
    ('sample-without-config', ['--sample', '3'], [], '--sample needs --search-cfg'),
    ('sample-more-than-the-space', ['--sample', '100000', '--search-cfg', SEARCH], [], 'distinct paths'),
    ('search-config-missing', ['--sample', '3', '--search-cfg', 'no/such.yaml'], [], "'no/such.yaml' not found"),
    ('only-given-without-paths', ['--only-given'], [], '--only-given trains the --paths given'),
    ('nothing-to-train', [], [], 'has no paths.json'),
    ('recipe-unknown-key', ['--paths', ONE_PATH], ['NO.SUCH', '1'], 'unknown config key'),
    ('recipe-odd-overrides', ['--paths', ONE_PATH], ['EPOCHS'], 'KEY VALUE pairs'),
    ('recipe-bad-value', ['--paths', ONE_PATH], ['EPOCHS', '-3'], 'EPOCHS is -3'),
    # the second round
    ('override-of-save-path', ['--paths', ONE_PATH], ['SAVE_PATH', '/tmp/elsewhere'], 'SAVE_PATH is set by this tool'),
    ('override-by-alias', ['--paths', ONE_PATH], ['OUTPUT', '/tmp/elsewhere'], 'SAVE_PATH is set by this tool'),
    ('override-of-the-arch', ['--paths', ONE_PATH], ['MODEL_SELECTION', '14'], 'NET.SELECTION is set by this tool'),
    ('input-arch-fixed-stages', ['--paths', '[[[1],[0],[1],[2],[3],[4],[2]]]'], [], 'fixed first and last stages'),
    ('seed-not-an-integer', ['--paths', ONE_PATH, '--seeds', '1e3'], [], "'1e3' is not an integer"),
]


@pytest.mark.parametrize('extra, opts, expected', [c[1:] for c in NEW_FOLDER_CASES], ids=[c[0] for c in NEW_FOLDER_CASES])
def test_a_broken_argument_is_refused_before_the_folder_exists(tmp_path, tiny_imagefolder, capsys, extra, opts,
                                                               expected):
    out = tmp_path / 'gt'
    assert_refused(tool.main, _argv(out, tiny_imagefolder, *extra, opts=opts), capsys, expected, [out])


def test_a_missing_recipe_or_data_folder_is_refused(tmp_path, tiny_imagefolder, capsys):
    out = tmp_path / 'gt'
    argv = ['--out', out, '--recipe', tmp_path / 'none.yaml', '--paths', ONE_PATH]
    assert_refused(tool.main, argv, capsys, 'none.yaml not found', [out])
    argv = ['--out', out, '--recipe', RECIPE, '--paths', ONE_PATH, 'DATA_DIR', tmp_path / 'no_data']
    assert_refused(tool.main, argv, capsys, 'DATA_DIR/train not found', [out])


def test_an_unusable_out_is_refused(tmp_path, tiny_imagefolder, capsys):
    a_file = tmp_path / 'a_file'
    a_file.write_text('x')
    assert_refused(tool.main, _argv(a_file, tiny_imagefolder, '--paths', ONE_PATH), capsys, 'is a file, not a folder',
                   [tmp_path])
    assert_refused(tool.main, _argv(a_file / 'gt', tiny_imagefolder, '--paths', ONE_PATH), capsys,
                   'is a file, not a folder', [tmp_path])


DAMAGED_CASES = [  # (id, file of the folder, its new text, expected in the error line)
    ('list-truncated', 'paths.json', '{"paths": ["0-1', 'paths.json is not valid JSON, truncated'),
    ('list-empty', 'paths.json', '', 'paths.json is empty'),
    ('list-wrong-type', 'paths.json', '[1, 2]', 'holds a list where an object belongs'),
    ('list-without-paths', 'paths.json', '{"sampled": [], "notes": []}', 'has no list "paths"'),
    ('list-of-another-space', 'paths.json', '{"paths": ["0-1"], "sampled": [], "notes": []}', 'has 2 stages'),
    ('list-not-a-key', 'paths.json', '{"paths": ["a-b-c-d-e"], "sampled": [], "notes": []}', 'not a path key'),
    ('list-stray-sample', 'paths.json', '{"paths": [], "sampled": ["0-1-2-3-4"], "notes": []}', 'missing from'),
    ('result-nan', RESULT, '{"path": [[0],[1],[2],[3],[4]], "seed": 0, "val_prec1": NaN}', 'holds NaN'),
    ('result-null', RESULT, '{"path": [[0],[1],[2],[3],[4]], "seed": 0, "val_prec1": null}', 'not a finite accuracy'),
    ('result-out-of-range', RESULT, '{"path": [[0],[1],[2],[3],[4]], "seed": 0, "val_prec1": 140}', 'in 0..100'),
    ('result-truncated', RESULT, '{"path": [[0],[1],[2]', 'is not valid JSON'),
    ('result-seed-text', RESULT, '{"path": [[0],[1],[2],[3],[4]], "seed": "0", "val_prec1": 50}', 'not an integer'),
    ('result-of-another-path', RESULT, '{"path": [[1],[1],[2],[3],[4]], "seed": 0, "val_prec1": 50}', 'belongs in'),
    ('result-of-another-space', RESULT, '{"path": [[0],[1]], "seed": 0, "val_prec1": 50}', 'not a result of this space'),
    ('runs-a-file', 'runs', 'x', 'is a file where the ground truth keeps a folder'),
]


@pytest.mark.parametrize('name, text, expected', [c[1:] for c in DAMAGED_CASES], ids=[c[0] for c in DAMAGED_CASES])
def test_a_damaged_file_of_the_folder_is_named_before_any_work(truth, tiny_imagefolder, capsys, name, text, expected):
    _damage(truth, name, text)
    line = assert_refused(tool.main, _argv(truth, tiny_imagefolder), capsys, expected, [truth])
    assert str(truth / name) in line


def test_a_folder_where_a_file_belongs_is_named(truth, tiny_imagefolder, capsys):
    (truth / RESULT).unlink()
    (truth / RESULT).mkdir()
    assert_refused(tool.main, _argv(truth, tiny_imagefolder), capsys, 'is a folder, not a JSON file', [truth])
    shutil.rmtree(truth / 'results')
    (truth / 'results').write_text('x')
    assert_refused(tool.main, _argv(truth, tiny_imagefolder), capsys, 'results is a file where', [truth])
    (truth / 'paths.json').unlink()
    (truth / 'paths.json').mkdir()
    assert_refused(tool.main, _argv(truth, tiny_imagefolder), capsys, 'paths.json is a folder', [truth])


def test_a_run_whose_accuracy_is_nan_is_not_recorded(truth):
    run = truth / 'runs' / f'{gt.path_key(PATH)}_seed1'
    run.mkdir(parents=True)
    (run / 'results.json').write_text(json.dumps({'val': {'prec1': None, 'loss': None}, 'epochs': 1, 'epoch': 0}))
    with pytest.raises(CreamError, match=r'results.json has no finite val prec@1.*delete .*_seed1'):
        gt.record_result(str(truth), PATH, 1)
    assert not (truth / 'results' / f'{gt.path_key(PATH)}_seed1.json').exists()


@pytest.mark.process
def test_the_tool_as_a_process_prints_one_line_and_keeps_the_folder(truth, tiny_imagefolder):
    import subprocess
    import sys
    from tests.support.broken_inputs import snapshot
    _damage(truth, 'paths.json', '{"paths": ')
    before = snapshot(truth)
    done = subprocess.run([sys.executable, 'tools/ground_truth.py', *map(str, _argv(truth, tiny_imagefolder))],
                          cwd=REPO, env=script_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and 'Traceback' not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f'error: the ground truth\'s path list {truth}/paths.json')
    assert snapshot(truth) == before
    shutil.rmtree(truth)


@pytest.mark.process
def test_a_failed_retraining_shows_its_first_error_line_and_log(tmp_path, tiny_imagefolder, capsys):
    """A mistake only the child's set-up finds (a batch larger than the data: retrain.py's loaders refuse it after
    the preflight) reaches the user as that child's error line with its log, and nothing is recorded for it."""
    out = tmp_path / 'gt'
    line = assert_refused(tool.main, _argv(out, tiny_imagefolder, '--seeds', '0', '--paths', ONE_PATH), capsys,
                          '1 of 1 commands failed: ')
    log = out / 'logs' / f'{gt.path_key(PATH)}_seed0.log'
    assert 'retrain.py (exit 2: ' in line and 'fewer than one batch' in line and line.endswith(f'log {log})')
    assert not (out / 'results' / f'{gt.path_key(PATH)}_seed0.json').exists()
