import json

import pytest
import torch

from lib.search.board import BoardEntry, PrioritizedBoard

SLICE, NUM_CLASSES = 2, 5


def make_entry(prec1, flops, path=((0,), (1, 2)), seed=0, **kwargs):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(SLICE, 3, 8, 8, generator=generator)
    probs = torch.softmax(torch.randn(SLICE, NUM_CLASSES, generator=generator), dim=-1)
    return BoardEntry(path=path, prec1=prec1, board_cost=flops, probe_images=images, probe_probs=probs, **kwargs)


def full_board(acc_gap=5.0):
    """Pool of 3 whose worst entry has prec1 50 and 100 MFLOPs."""
    board = PrioritizedBoard(pool_size=3, acc_gap=acc_gap)
    for prec1, flops in ((70.0, 300.0), (60.0, 200.0), (50.0, 100.0)):
        assert board.offer(make_entry(prec1, flops))
    return board


def numbers(board):
    return [(entry.prec1, entry.board_cost) for entry in board]


def test_admits_while_not_full_even_if_worse():
    board = PrioritizedBoard(pool_size=3, acc_gap=5.0)
    assert board.offer(make_entry(50.0, 100.0))
    assert board.offer(make_entry(10.0, 999.0))
    assert board.offer(make_entry(5.0, 999.0))
    assert len(board) == 3
    assert numbers(board) == [(50.0, 100.0), (10.0, 999.0), (5.0, 999.0)]


def test_acc_gap_rule_on_full_board():
    board = full_board(acc_gap=5.0)
    # Better than the worst by less than the gap and not cheaper: rejected.
    assert not board.offer(make_entry(55.0, 150.0))
    # Better by exactly the gap: still rejected (strict).
    assert not board.offer(make_entry(55.0, 100.0 + 1))
    assert numbers(board) == [(70.0, 300.0), (60.0, 200.0), (50.0, 100.0)]
    # Better by more than the gap, even with more FLOPs: admitted, the worst is evicted.
    assert board.offer(make_entry(55.5, 400.0))
    assert numbers(board) == [(70.0, 300.0), (60.0, 200.0), (55.5, 400.0)]


def test_flops_tie_break_rule_on_full_board():
    board = full_board(acc_gap=5.0)
    # Equal prec1 with fewer FLOPs: rejected (prec1 must be strictly better).
    assert not board.offer(make_entry(50.0, 10.0))
    # Slightly better and cheaper: admitted.
    assert board.offer(make_entry(50.5, 90.0))
    assert numbers(board) == [(70.0, 300.0), (60.0, 200.0), (50.5, 90.0)]
    # Slightly better but not cheaper: rejected.
    assert not board.offer(make_entry(51.0, 90.0))
    assert board.would_admit(51.0, 89.0) and not board.would_admit(51.0, 90.0)


def test_order_is_the_originals_prec1_then_flops_then_path_descending_and_worst_is_evicted():
    """The original sorted (prec1, prec1, flops, path, ...) tuples in reverse: on equal prec1 the larger
    FLOPs ranks first, then the larger path; the last entry is the worst."""
    board = PrioritizedBoard(pool_size=3, acc_gap=0.0)
    for prec1, flops in ((60.0, 100.0), (60.0, 300.0), (80.0, 500.0)):
        board.offer(make_entry(prec1, flops))
    assert numbers(board) == [(80.0, 500.0), (60.0, 300.0), (60.0, 100.0)]
    assert board.best().prec1 == 80.0
    assert board.offer(make_entry(70.0, 50.0))
    assert len(board) == 3
    assert numbers(board) == [(80.0, 500.0), (70.0, 50.0), (60.0, 300.0)]
    ties = PrioritizedBoard(pool_size=3, acc_gap=0.0)
    for path in (((0,), (1, 2)), ((0,), (3, 0)), ((1,), (0, 0))):
        ties.offer(make_entry(50.0, 10.0, path=path))
    # As the original's list comparison, reversed.
    assert ties.paths() == [((1,), (0, 0)), ((0,), (3, 0)), ((0,), (1, 2))]
    # A full tie (same numbers, same path) keeps the older entry first, where the original crashed.
    first = ties[0]
    ties.offer(make_entry(50.0, 10.0, path=((1,), (0, 0)), seed=5))
    assert ties[0] is first


def test_entry_keeps_the_exact_path_given():
    board = PrioritizedBoard(pool_size=2, acc_gap=5.0)
    student_path = [[3], [1, 5], [0, 0, 4]]
    board.offer(make_entry(10.0, 1.0, path=student_path))
    assert board.paths() == [((3,), (1, 5), (0, 0, 4))]
    assert isinstance(board.best().path, tuple) and all(isinstance(s, tuple) for s in board.best().path)


def test_board_holds_no_autograd_graph_nor_the_batch():
    weight = torch.randn(NUM_CLASSES, 3 * 8 * 8, requires_grad=True)
    batch = torch.randn(6, 3, 8, 8)
    logits = batch.flatten(1) @ weight.t()
    assert logits.grad_fn is not None
    entry = BoardEntry(path=((0,),), prec1=torch.tensor(42.0), board_cost=1.0,
                       probe_images=batch[:SLICE], probe_probs=torch.softmax(logits[:SLICE], dim=-1))
    board = PrioritizedBoard(pool_size=2, acc_gap=5.0)
    assert board.offer(entry)
    stored = board.best()
    assert isinstance(stored.prec1, float) and stored.prec1 == 42.0
    for tensor in (stored.probe_images, stored.probe_probs):
        assert not tensor.requires_grad and tensor.grad_fn is None
    # A copy, not a view of the batch (a view would keep the whole batch alive).
    assert stored.probe_images.untyped_storage().data_ptr() != batch.untyped_storage().data_ptr()
    torch.testing.assert_close(stored.probe_images, batch[:SLICE])


def test_state_dict_round_trip_through_weights_only_load(tmp_path):
    board = PrioritizedBoard(pool_size=3, acc_gap=5.0)
    board.offer(make_entry(60.0, 200.0, path=((1,), (2, 3)), seed=1, params=1.5))
    board.offer(make_entry(70.0, 300.0, path=((4,), (5, 0)), seed=2))
    board.record_val_prec1(0, 33.0)
    file = tmp_path / 'board.pth'
    torch.save(board.state_dict(), file)
    state = torch.load(file, weights_only=True)

    restored = PrioritizedBoard(pool_size=3, acc_gap=5.0)
    restored.load_state_dict(state)
    assert restored.paths() == board.paths() == [((4,), (5, 0)), ((1,), (2, 3))]
    assert restored.to_rows() == board.to_rows()
    assert restored.best().val_prec1 == 33.0 and restored[1].params == 1.5
    for original, loaded in zip(board, restored):
        torch.testing.assert_close(loaded.probe_images, original.probe_images, rtol=0, atol=0)
        torch.testing.assert_close(loaded.probe_probs, original.probe_probs, rtol=0, atol=0)

    with pytest.raises(ValueError, match='POOL_SIZE'):
        PrioritizedBoard(pool_size=4, acc_gap=5.0).load_state_dict(state)


def test_rows():
    board = PrioritizedBoard(pool_size=3, acc_gap=5.0)
    board.offer(make_entry(60.0, 1.0, path=((0,), (0, 1)), macs=2.5))
    board.offer(make_entry(50.0, 1.0, path=((3,), (0, 1))))
    rows = board.to_rows()
    assert rows[0] == {'path': [[0], [0, 1]], 'prec1': 60.0, 'val_prec1': None, 'board_cost': 1.0, 'macs': 2.5,
                       'params': None}
    json.dumps(rows)


def test_bad_input_errors():
    with pytest.raises(IndexError):
        PrioritizedBoard(pool_size=2, acc_gap=1.0).best()
    with pytest.raises(ValueError):
        PrioritizedBoard(pool_size=0, acc_gap=1.0)
    with pytest.raises(ValueError):
        make_entry(1.0, 1.0, path=((0,), (-1,)))
    with pytest.raises(ValueError):
        BoardEntry(path=((0,),), prec1=1.0, board_cost=1.0, probe_images=torch.zeros(2, 3, 4, 4),
                   probe_probs=torch.zeros(3, NUM_CLASSES))
