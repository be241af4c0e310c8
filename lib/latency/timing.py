"""Timing a set of callables alike: warm-up, then rounds in which every callable runs a block of calls, in a
new shuffled order each round, so that a shared machine's changing load falls on all of them alike; per
callable the median and the quartiles of its samples.

A block is one untimed call, then ``block`` timed calls back to back: every sample is taken with the
callable's weights and input in the cache, as a network serving one request after another runs (and as
tools/model_info.py times a single network). Timed one call at a time after a neighbour, the same parts
run up to twice as slow on this CPU, and whole networks gain far less from it, so a table and the networks
it predicts must be timed the same way; this is that one way.

Clocks: ``wall`` (time.perf_counter, the latency a user sees) or ``cpu`` (time.process_time: the CPU time
this process spent, which other processes on a busy machine do not inflate; with one thread it is the
latency of an idle machine).
"""
import random
import statistics
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}


@dataclass(frozen=True)
class Timing:
    """One callable's samples in milliseconds: median, quartiles, fastest; ``spread`` = IQR / median."""
    median_ms: float
    q1_ms: float
    q3_ms: float
    min_ms: float
    samples: int

    @property
    def spread(self) -> float:
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms > 0 else 0.0

    @classmethod
    def of(cls, seconds: Sequence[float]) -> 'Timing':
        ms = [s * 1e3 for s in seconds]
        if len(ms) == 1:
            return cls(ms[0], ms[0], ms[0], ms[0], 1)
        q1, _, q3 = statistics.quantiles(ms, n=4, method='inclusive')
        return cls(statistics.median(ms), q1, q3, min(ms), len(ms))

    def to_dict(self) -> dict:
        return {'ms': self.median_ms, 'q1_ms': self.q1_ms, 'q3_ms': self.q3_ms, 'min_ms': self.min_ms,
                'samples': self.samples}


def time_rounds(runs: Sequence[Callable[[], object]], *, warmup: int, repeats: int, clock: str = 'wall',
                sync: Optional[Callable[[], None]] = None, seed: int = 0, block: int = 10) -> List[List[float]]:
    """Every callable's ``repeats`` samples in seconds: ``warmup`` calls each, then shuffled rounds of one block
    per callable (one untimed call, then up to ``block`` timed ones). ``sync`` (e.g. torch.cuda.synchronize)
    runs before the clock stops."""
    if clock not in CLOCKS:
        raise ValueError(f'clock must be one of {", ".join(CLOCKS)}; got {clock!r}')
    if repeats < 1 or warmup < 0 or block < 1:
        raise ValueError(f'repeats and block must be >= 1 and warmup >= 0; got {repeats}, {block}, {warmup}')
    now, done = CLOCKS[clock], sync or (lambda: None)
    for run in runs:
        for _ in range(warmup):
            run()
        done()
    samples: List[List[float]] = [[] for _ in runs]
    order, shuffle = list(range(len(runs))), random.Random(seed).shuffle
    for first in range(0, repeats, block):
        shuffle(order)
        for index in order:
            runs[index]()  # untimed: back in the cache after the neighbours
            done()
            for _ in range(min(block, repeats - first)):
                start = now()
                runs[index]()
                done()
                samples[index].append(now() - start)
    return samples


def time_interleaved(runs: Sequence[Callable[[], object]], **kwargs) -> List[Timing]:
    """``time_rounds``, summarized per callable."""
    return [Timing.of(s) for s in time_rounds(runs, **kwargs)]
