"""train.py under a latency budget (SUPERNET.BUDGET_MEASURE latency) on tiny generated data, with a hand-made
table: every board path and the chosen one within the budget in predicted ms, board.json, best_arch.yaml, the log
and the plot in ms; a table of another space and an infeasible budget stop the run before any work."""
import json
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import train
from lib.errors import CreamError
from tests.support.demo_search import TINY_SEARCH
from tests.support.handmade_latency import handmade_table
from tests.support.scripts_as_modules import load_script

REPO = Path(__file__).resolve().parents[2]
plot_tool = load_script('tools/plot_run.py')

# As tests/scripts/test_train.py: one layer per stage at 64 px (FLOPS_MAXIMUM 6), 3 classes, epoch 0 plain,
# epoch 1 board + distillation + meta updates.
SEARCH = dict(TINY_SEARCH, **{'SUPERNET.POOL_SIZE': 3, 'SUPERNET.BUDGET_MEASURE': 'latency',
                             'SUPERNET.LATENCY_MAXIMUM': 10.0})


@pytest.fixture(scope='module')
def data(demo_data):
    return demo_data(classes=3, train=4, val=2, size=32)


def run(out, data, table, **extra):
    opts = dict(SEARCH, OUTPUT=out, DATA_DIR=data, **{'SUPERNET.LATENCY_TABLE': table}, **extra)
    return train.main(['--cfg', str(REPO / 'configs/demo/train.yaml')] + [str(x) for kv in opts.items() for x in kv])


def test_a_latency_budget_decides_board_pick_and_outputs(data, tmp_path):
    table = handmade_table(resolution=64, num_classes=3, source=str(tmp_path / 'table.json'))
    table.save(table.source)
    result = run(tmp_path, data, table.source)
    run_dir = tmp_path / 'demo_search'
    board = json.loads((run_dir / 'board.json').read_text())
    assert board['budget_measure'] == 'latency' and board['latency_budget_ms'] == [0.0, 10.0]
    assert len(board['entries']) == 3
    for row in board['entries']:  # the sampler only trains paths within the budget
        assert row['predicted_ms'] == pytest.approx(table.predict_ms(row['path'])) and row['predicted_ms'] <= 10.0
    chosen = result['best_arch']
    assert table.predict_ms(chosen) <= 10.0
    text = (run_dir / 'best_arch.yaml').read_text()
    assert f'predicted latency {table.predict_ms(chosen):.4g} ms (latency budget 0..10 ms' in text
    log = (run_dir / 'train.log').read_text()
    assert 'latency budget 0..10 ms (it decides the board' in log and '% of them within the budget' in log
    assert f'predicted latency {table.predict_ms(chosen):.4g} ms (budget 0..10 ms)' in log
    ax = Figure().subplots()
    plot_tool.draw_board(ax, str(run_dir))
    assert ax.get_xlabel().startswith('predicted latency (ms)')
    assert [t.get_text() for t in ax.get_legend().get_texts()][-1] == 'budget 0-10 ms'
    star = next(c for c in ax.collections if c.get_label() == 'chosen (best_arch.yaml)')
    assert star.get_offsets()[0][0] == pytest.approx(table.predict_ms(chosen))


@pytest.mark.parametrize('table_args, extra, message', [
    (dict(resolution=96, num_classes=3), {}, 'was measured for [1, 1, 1, 1, 1] layers per stage at 96 px'),
    (dict(resolution=64, num_classes=3), {'SUPERNET.LATENCY_MAXIMUM': 5.0}, 'latency budget 0..5 ms is infeasible'),
], ids=['another-space', 'infeasible'])
def test_a_wrong_table_or_an_infeasible_budget_fails_before_any_work(data, tmp_path, table_args, extra, message):
    table = str(tmp_path / 'table.json')
    handmade_table(**table_args).save(table)
    with pytest.raises(CreamError) as error:
        run(tmp_path, data, table, **extra)
    assert message in str(error.value)
    assert not (tmp_path / 'demo_search').exists()  # refused before the run folder was made (train.py's preflight)
