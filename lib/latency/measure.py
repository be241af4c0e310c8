"""Measuring a latency table: every fixed part and every op of every searchable layer of a space, each on
the input shape it sees there, timed together in shuffled rounds of blocks (``lib.latency.timing``)."""
import os
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from lib.latency.parts import FIXED_PARTS, fixed_part_shapes, layer_slots
from lib.models.childnet import fixed_parts
from lib.latency.runtimes import RuntimeSettings, configure_threads, environment, prepare, sync_for
from lib.latency.table import LatencyTable
from lib.latency.timing import Timing, time_interleaved
from lib.models import ops


def machine_load() -> Optional[List[float]]:
    """The 1, 5 and 15 minute load averages (None where the OS has none): recorded beside the timings."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def timing_record(*, warmup: int, repeats: int, block: int, clock: str, seed: int, load_before,
                  started: float) -> Dict:
    return {'warmup': warmup, 'repeats': repeats, 'block': block, 'clock': clock,
            'order': 'shuffled rounds; per part one untimed call, then block timed calls',
            'seed': seed, 'measured_at': time.strftime('%Y-%m-%dT%H:%M:%S%z', time.localtime(started)),
            'seconds': round(time.time() - started, 1), 'load_before': load_before, 'load_after': machine_load()}


@dataclass
class PartRuns:
    """The callables that run every part of a space once (``keys``: a fixed part's name or (stage, layer, op))."""
    layers_per_stage: Tuple[int, ...]
    keys: List
    runs: List[Callable[[], object]]

    def table(self, timings: Sequence[Timing], resolution: int, num_classes: int, global_pool: str,
              meta: dict) -> LatencyTable:
        """The table of these parts from their timings (in ``keys`` order)."""
        by_key = dict(zip(self.keys, timings))
        op_times = tuple(tuple(tuple(by_key[(s, l, op)] for op in range(ops.NUM_OPS)) for l in range(n))
                         for s, n in enumerate(self.layers_per_stage))
        return LatencyTable(self.layers_per_stage, int(resolution), int(num_classes), global_pool,
                            {name: by_key[name] for name in FIXED_PARTS}, op_times, meta)


def part_runs(layers_per_stage: Sequence[int], resolution: int, settings: RuntimeSettings, *, num_classes: int,
              global_pool: str = 'avg', seed: int = 0, log: Callable[[str], None] = lambda message: None) -> PartRuns:
    """Every fixed part and every op of every searchable layer, ready to run on the input shape it sees."""
    torch.manual_seed(seed)  # weights do not change a float latency, but keep the modules the same each run
    slots = layer_slots(layers_per_stage, resolution)
    shapes, fixed_modules = fixed_part_shapes(resolution), fixed_parts(num_classes, global_pool)
    parts = PartRuns(tuple(len(stage) for stage in slots), [], [])
    for name in FIXED_PARTS:
        parts.keys.append(name)
        parts.runs.append(prepare(fixed_modules[name], shapes[name], settings, seed))
    for stage in slots:
        for slot in stage:
            for op in range(ops.NUM_OPS):
                parts.keys.append((slot.stage, slot.layer, op))
                parts.runs.append(prepare(slot.op_module(op), slot.input_shape, settings, seed))
        log(f'prepared stage {stage[0].stage + 1} of {len(slots)} ({len(parts.runs)} parts so far)')
    return parts


def measure_table(layers_per_stage: Sequence[int], resolution: int, settings: RuntimeSettings, *, num_classes: int,
                  global_pool: str = 'avg', warmup: int = 10, repeats: int = 50, block: int = 10, clock: str = 'wall',
                  seed: int = 0, log: Callable[[str], None] = lambda message: None) -> LatencyTable:
    """Time every part of the space ``layers_per_stage`` at ``resolution`` px with ``settings``."""
    settings.check()
    started, load_before = time.time(), machine_load()
    configure_threads(settings)
    parts = part_runs(layers_per_stage, resolution, settings, num_classes=num_classes, global_pool=global_pool,
                      seed=seed, log=log)
    log(f'timing {len(parts.runs)} parts: {warmup} warm-up calls each, then {repeats} timed calls in blocks of {block}')
    timings = time_interleaved(parts.runs, warmup=warmup, repeats=repeats, block=block, clock=clock,
                               sync=sync_for(settings), seed=seed)
    meta = {**environment(settings), 'runtime': settings.to_dict(),
            'timing': timing_record(warmup=warmup, repeats=repeats, block=block, clock=clock, seed=seed,
                                    load_before=load_before, started=started)}
    return parts.table(timings, resolution, num_classes, global_pool, meta)
