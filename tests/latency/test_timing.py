"""lib/latency/timing.py: how the timing procedure calls what it times, and its statistics (no time asserted)."""
import pytest

from lib.latency.timing import Timing, time_interleaved


def test_every_callable_runs_warmup_then_once_per_shuffled_round():
    calls, syncs = [], []
    runs = [lambda i=i: calls.append(i) for i in range(5)]
    timings = time_interleaved(runs, warmup=2, repeats=6, sync=lambda: syncs.append(1), seed=0)
    assert calls[:10] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]  # warm-up, callable by callable
    rounds = [calls[10 + 5 * r: 15 + 5 * r] for r in range(6)]
    assert all(sorted(r) == [0, 1, 2, 3, 4] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # the order changes between rounds
    assert len(syncs) == 5 + 30  # after each callable's warm-up, and before each sample's clock stops
    assert [t.samples for t in timings] == [6] * 5
    with pytest.raises(ValueError, match='clock must be one of wall, cpu'):
        time_interleaved(runs, warmup=0, repeats=1, clock='gpu')


def test_median_quartiles_and_spread():
    timing = Timing.of([0.004, 0.001, 0.002, 0.003, 0.005])  # seconds
    assert (timing.median_ms, timing.q1_ms, timing.q3_ms, timing.min_ms) == pytest.approx((3.0, 2.0, 4.0, 1.0))
    assert timing.spread == pytest.approx(2.0 / 3.0)
    assert Timing.of([0.002]).to_dict() == {'ms': 2.0, 'q1_ms': 2.0, 'q3_ms': 2.0, 'min_ms': 2.0, 'samples': 1}
