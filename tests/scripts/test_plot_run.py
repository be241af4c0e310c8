"""tools/plot_run.py: a PNG from a real (tiny) search run folder and from a retraining run folder."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import retrain
import train
from lib.engine.guard import exit_on_error
from tests.support.processes import script_env
from tests.support.demo_search import TINY_SEARCH
from tests.support.scripts_as_modules import load_script

REPO = Path(__file__).resolve().parents[2]
plot_tool = load_script('tools/plot_run.py')

# The tiny demo search with a third epoch: epoch 0 plain, epochs 1-2 fill and validate the board.
SEARCH = dict(TINY_SEARCH, EPOCHS=3)


@pytest.fixture(scope='module')
def data(demo_data):
    return demo_data(classes=3, train=4, val=2, size=32)


@pytest.fixture(scope='module')
def search_run(repo_root, data, tmp_path_factory):
    out = tmp_path_factory.mktemp('search')
    opts = dict(SEARCH, OUTPUT=out, DATA_DIR=data)
    train.main(['--cfg', str(repo_root / 'configs/demo/train.yaml'), *[str(x) for kv in opts.items() for x in kv]])
    return out / 'demo_search'


def png_size(path):
    with Image.open(path) as image:
        assert image.format == 'PNG'
        return image.size


@pytest.mark.process
def test_a_search_run_becomes_a_png_of_board_and_curves(search_run, tmp_path):
    history = [json.loads(line) for line in (search_run / 'board_history.jsonl').read_text().splitlines()]
    assert [h['epoch'] for h in history] == [0, 1, 2]  # epochs 1 and 2 hold boards: one faded, one current
    out = tmp_path / 'search.png'
    completed = subprocess.run([sys.executable, 'tools/plot_run.py', str(search_run), '--out', str(out)], cwd=REPO,
                               env=script_env(), capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == str(out)
    assert png_size(out) == (15 * 90, 4 * 90)  # three panels
    assert out.stat().st_size < 200_000


def test_the_board_panel_shows_what_the_files_say(search_run):
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    plot_tool.draw_board(ax, str(search_run))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == 'earlier boards (epochs 1-1)' and 'board after epoch 2' in labels
    assert 'chosen (best_arch.yaml)' in labels and labels[-1] == 'budget 0-6 MFLOPs'
    board = json.loads((search_run / 'board.json').read_text())
    current = next(c for c in ax.collections if c.get_label() == 'board after epoch 2')
    assert sorted(map(tuple, current.get_offsets().tolist())) == \
        sorted((plot_tool.flops_of(r), r['val_prec1']) for r in board['entries'])


def test_budget_flops_is_preferred_over_the_older_flops_field():
    assert plot_tool.flops_of({'budget_flops_M': 5.0, 'flops_M': 7.0, 'macs_M': 9.0}) == 5.0
    assert plot_tool.flops_of({'flops_M': 7.0}) == 7.0


def test_a_retrain_run_becomes_a_png_of_its_curves(repo_root, data, tmp_path):
    retrain.main(['--cfg', str(repo_root / 'configs/demo/retrain.yaml'), 'OUTPUT', str(tmp_path), 'DATA_DIR', data,
                  'WORKERS', '0', 'EPOCHS', '2', 'DATASET.BATCH_SIZE', '6', 'DATASET.NUM_CLASSES', '3',
                  'DATASET.IMAGE_SIZE', '32', 'DATASET.GENERATE_DEMO', 'False'])
    out = plot_tool.main([str(tmp_path / 'demo_retrain')])
    assert Path(out) == tmp_path / 'demo_retrain' / 'plot.png'
    assert png_size(out) == (10 * 90, 4 * 90)  # two panels


def test_a_folder_without_a_summary_is_one_error_line(tmp_path):
    with pytest.raises(SystemExit, match='has no summary.csv') as stop:
        exit_on_error(plot_tool.main, [str(tmp_path)])
    assert stop.value.code == 2


@pytest.mark.process
def test_a_truncated_board_json_is_one_error_line_and_exit_status_2(search_run, tmp_path):
    run_dir = tmp_path / 'copy'
    shutil.copytree(search_run, run_dir)
    board = (run_dir / 'board.json').read_bytes()
    (run_dir / 'board.json').write_bytes(board[:len(board) // 2])  # a copy cut short
    completed = subprocess.run([sys.executable, 'tools/plot_run.py', str(run_dir)], cwd=REPO, env=script_env(),
                               capture_output=True, text=True, timeout=300)
    lines = completed.stderr.strip().splitlines()
    assert completed.returncode == 2 and len(lines) == 1, completed.stderr
    assert lines[0].startswith(f'error: board {run_dir / "board.json"} is not valid JSON')
    assert 'truncated or damaged' in lines[0] and not (run_dir / 'plot.png').exists()
