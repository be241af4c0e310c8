"""tools/rank_paths.py under broken inputs: the ground truth's files, the search run folders and the output places
are checked before any scoring; each case is one error line (exit status 2) and nothing is written."""
import json
import shutil

import pytest

from lib.config import load_config, save_config
from lib.experiments import ground_truth as gt
from lib.fileio import write_json_atomic
from tests.support.broken_inputs import assert_refused
from tests.support.paths import REPO
from tests.support.scripts_as_modules import load_script

tool = load_script('tools/rank_paths.py')
PATHS = [((op,),) * 5 for op in range(3)]  # the digits space has one layer per stage


@pytest.fixture
def place(tmp_path, tiny_imagefolder):
    """tmp_path/gt: a finished ground truth of three paths; tmp_path/run: a search run folder of the digits space
    (its checkpoint is not read before the checks this module tests)."""
    truth = tmp_path / 'gt'
    gt.save_paths(str(truth), PATHS, sampled=True)
    (truth / 'results').mkdir()
    for i, path in enumerate(PATHS):
        write_json_atomic({'path': path, 'seed': 0, 'val_prec1': 50.0 + i}, gt.result_file(str(truth), path, 0))
    gt.summarize(str(truth))
    run = tmp_path / 'run'
    run.mkdir()
    save_config(load_config([str(REPO / 'configs/experiments/digits_search.yaml')],
                            ['DATA_DIR', str(tiny_imagefolder), 'DATASET.NUM_CLASSES', '3']), str(run / 'config.yaml'))
    (run / 'last.pth.tar').write_bytes(b'a checkpoint stand-in')
    return tmp_path


def _argv(place, *extra, truth='gt', run='run'):
    return ['--ground-truth', place / truth, '--run', f'a={place / run}', '--out', place / 'out' / 'r.json', *extra]


GROUND_TRUTH_CASES = [  # (id, file, new text, expected)
    ('summary-truncated', gt.SUMMARY_FILE, '{"0-0-0-0-0": {"val_prec1"', 'ground_truth.json is not valid JSON'),
    ('summary-nan', gt.SUMMARY_FILE, '{"0-0-0-0-0": {"val_prec1": {"0": 50}, "mean": NaN, "std": 0}}', 'holds NaN'),
    ('summary-null-mean', gt.SUMMARY_FILE, '{"0-0-0-0-0": {"val_prec1": {"0": 50}, "mean": null, "std": 0}}',
     'has no finite accuracies for path 0-0-0-0-0'),
    ('summary-a-list', gt.SUMMARY_FILE, '[1]', 'holds a list where an object belongs'),
    ('summary-empty', gt.SUMMARY_FILE, '', 'is empty'),
    ('summary-other-space', gt.SUMMARY_FILE, '{"0-0": {"val_prec1": {"0": 50}, "mean": 50, "std": 0}}',
     'not one of the space'),
    ('summary-lacks-a-path', gt.SUMMARY_FILE, '{"0-0-0-0-0": {"val_prec1": {"0": 50}, "mean": 50, "std": 0}}',
     'has no result for 2 of its sampled paths'),
    ('list-truncated', gt.PATHS_FILE, '{"paths": [', 'paths.json is not valid JSON'),
]


@pytest.mark.parametrize('name, text, expected', [c[1:] for c in GROUND_TRUTH_CASES],
                         ids=[c[0] for c in GROUND_TRUTH_CASES])
def test_a_damaged_ground_truth_is_named_before_scoring(place, capsys, name, text, expected):
    (place / 'gt' / name).write_text(text)
    assert_refused(tool.main, _argv(place), capsys, expected, [place])


RUN_CASES = [  # (id, change to the run folder, expected)
    ('board-truncated', lambda run: (run / 'board.json').write_text('{"entries": [{"path": [[0'),
     'board.json is not valid JSON'),
    ('board-without-entries', lambda run: (run / 'board.json').write_text('{"epoch": 3}'), 'has no list of entries'),
    ('board-other-space', lambda run: (run / 'board.json').write_text('{"entries": [{"path": [[0], [0]]}]}'),
     'has 2 stages'),
    ('best-arch-truncated', lambda run: (run / 'best_arch.yaml').write_text('INPUT_ARCH: [[0], [1]\n'),
     'best_arch.yaml cannot be read'),
    ('best-arch-bad-op', lambda run: (run / 'best_arch.yaml').write_text('INPUT_ARCH: [[0],[9],[0],[0],[0],[0],[0]]\n'),
     'holds no usable INPUT_ARCH'),
    ('no-config', lambda run: (run / 'config.yaml').unlink(), 'is not a finished search run folder'),
    ('no-checkpoint', lambda run: (run / 'last.pth.tar').unlink(), 'is not a finished search run folder'),
    ('config-not-yaml', lambda run: (run / 'config.yaml').write_text('SUPERNET: [\n'), 'not valid yaml'),
    ('data-moved', lambda run: (run / 'config.yaml').write_text(
        '\n'.join('DATA_DIR: /no/such/data' if line.startswith('DATA_DIR:') else line
                  for line in (run / 'config.yaml').read_text().splitlines())), 'DATA_DIR/train not found'),
    ('another-space', lambda run: (run / 'config.yaml').write_text(
        (run / 'config.yaml').read_text().replace('FLOPS_MAXIMUM: 20', 'FLOPS_MAXIMUM: 600')), 'does not fit search run'),
]


@pytest.mark.parametrize('change, expected', [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_a_broken_run_folder_is_named_before_scoring(place, capsys, change, expected):
    change(place / 'run')
    assert_refused(tool.main, _argv(place), capsys, expected, [place])


ARGUMENT_CASES = [
    ('bn-batches-negative', ['--bn-batches', '-1'], '--bn-batches: must be at least 0'),
    ('top-k-zero', ['--top-k', '0'], '--top-k: must be at least 1'),
    ('resamples-zero', ['--resamples', '0'], '--resamples: must be at least 1'),
    ('plot-a-folder', ['--plot', '.'], '--plot . is a folder'),
    ('plot-over-the-report', ['--plot', '{place}/out/r.json'], '--plot and --out name the same file'),
    ('plot-over-the-ground-truth', ['--plot', '{place}/gt/ground_truth.json'], 'which this run reads'),
    ('plot-over-the-run-config', ['--plot', '{place}/run/config.yaml'], 'which this run reads'),
]


@pytest.mark.parametrize('extra, expected', [c[1:] for c in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES])
def test_a_bad_argument_is_refused(place, capsys, extra, expected):
    assert_refused(tool.main, _argv(place, *[a.format(place=place) for a in extra]), capsys, expected, [place])


def test_bad_places_are_refused_before_scoring(place, capsys):
    assert_refused(tool.main, ['--ground-truth', place / 'gt', '--run', 'a', '--out', place / 'r.json'], capsys,
                   '--run takes LABEL=RUN_DIR', [place])
    assert_refused(tool.main, _argv(place, truth='none'), capsys, 'is not a folder', [place])
    (place / 'gt' / gt.SUMMARY_FILE).unlink()
    assert_refused(tool.main, _argv(place), capsys, 'ground_truth.json not found', [place])
    gt.summarize(str(place / 'gt'))
    (place / 'a_file').write_text('x')
    argv = ['--ground-truth', place / 'gt', '--run', f'a={place / "run"}', '--out', place / 'a_file' / 'r.json']
    assert_refused(tool.main, argv, capsys, 'a_file is a file, not a folder', [place])
    argv = ['--ground-truth', place / 'gt', '--run', f'a={place / "run"}', '--run', f'a={place / "run"}', '--out',
            place / 'r.json']
    assert_refused(tool.main, argv, capsys, '--run labels must differ', [place])
    shutil.copy(place / 'gt' / gt.PATHS_FILE, place / 'paths.json')
    listed = json.loads((place / 'paths.json').read_text())
    (place / 'gt' / gt.PATHS_FILE).write_text(json.dumps(dict(listed, sampled=listed['sampled'][:2])))
    assert_refused(tool.main, _argv(place), capsys, 'holds 2 sampled paths', [place])


def test_a_damaged_checkpoint_is_named_and_nothing_is_written(place, capsys):
    assert_refused(tool.main, _argv(place), capsys, f"cannot read checkpoint '{place / 'run' / 'last.pth.tar'}'",
                   [place])
