"""lib/latency/timing.py: how the timing procedure calls what it times, and its statistics (no time asserted)."""
import pytest

from lib.latency.timing import Timing, time_interleaved


def test_every_callable_runs_warmup_then_one_block_per_shuffled_round():
    calls, syncs = [], []
    runs = [lambda i=i: calls.append(i) for i in range(5)]
    timings = time_interleaved(runs, warmup=2, repeats=7, block=3, sync=lambda: syncs.append(1), seed=0)
    assert calls[:10] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # warm-up, callable by callable
    calls = calls[10:]
    blocks = [4, 4, 2]  # one untimed call, then 3, 3 and the last 1 of the 7 timed calls
    rounds, start = [], 0
    for size in blocks:
        rounds.append(calls[start:start + 5 * size])
        start += 5 * size
    assert start == len(calls)
    orders = []
    for size, calls_of_round in zip(blocks, rounds):
        order = calls_of_round[::size]
        assert calls_of_round == [i for i in order for _ in range(size)] and sorted(order) == [0, 1, 2, 3, 4]
        orders.append(order)
    assert len({tuple(o) for o in orders}) > 1  # the order changes between rounds
    assert len(syncs) == 5 + 5 * sum(blocks)  # after each warm-up, after the untimed call and before each clock stop
    assert [t.samples for t in timings] == [7] * 5
    with pytest.raises(ValueError, match='clock must be one of wall, cpu'):
        time_interleaved(runs, warmup=0, repeats=1, clock='gpu')
    with pytest.raises(ValueError, match='block must be >= 1'):
        time_interleaved(runs, warmup=0, repeats=1, block=0)


def test_median_quartiles_and_spread():
    timing = Timing.of([0.004, 0.001, 0.002, 0.003, 0.005])  # seconds
    assert (timing.median_ms, timing.q1_ms, timing.q3_ms, timing.min_ms) == pytest.approx((3.0, 2.0, 4.0, 1.0))
    assert timing.spread == pytest.approx(2.0 / 3.0)
    assert Timing.of([0.002]).to_dict() == {'ms': 2.0, 'q1_ms': 2.0, 'q3_ms': 2.0, 'min_ms': 2.0, 'samples': 1}
