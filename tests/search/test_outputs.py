"""The search's board history: one line per epoch, rewritten atomically, epochs past a resume point dropped."""
from lib.search.board import PrioritizedBoard
from lib.search.flops import search_space_for_budget
from lib.search.flops_budget import FlopsBudget
from lib.search.outputs import BOARD_HISTORY_FILE, read_board_history, write_board_history, write_board_json


def test_board_json_writes_append_one_history_line_per_epoch(tmp_path):
    board = PrioritizedBoard(pool_size=2, acc_gap=5.0)
    for epoch in range(3):
        write_board_json(board, str(tmp_path / 'board.json'), FlopsBudget(search_space_for_budget(0, 20), 0.0, 20.0),
                         epoch=epoch)
    history = read_board_history(str(tmp_path / BOARD_HISTORY_FILE))
    assert [(h['epoch'], h['resolution'], h['entries']) for h in history] == [(0, 96, []), (1, 96, []), (2, 96, [])]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['board.json', BOARD_HISTORY_FILE]  # no temp files left


def test_a_rerun_epoch_replaces_itself_and_what_followed(tmp_path):
    path = str(tmp_path / BOARD_HISTORY_FILE)
    for epoch in range(4):
        write_board_history(path, {'epoch': epoch, 'entries': [{'run': 'first'}]})
    write_board_history(path, {'epoch': 2, 'entries': [{'run': 'resumed'}]})  # resumed from epoch 1's checkpoint
    history = read_board_history(path)
    assert [(h['epoch'], h['entries'][0]['run']) for h in history] == [(0, 'first'), (1, 'first'), (2, 'resumed')]


def test_unreadable_lines_are_skipped(tmp_path):
    path = tmp_path / BOARD_HISTORY_FILE
    path.write_text('{"epoch": 0, "entries": []}\n{"epoch": 1, "entr\nnot json\n')
    assert [h['epoch'] for h in read_board_history(str(path))] == [0]
    assert read_board_history(str(tmp_path / 'missing.jsonl')) == []
