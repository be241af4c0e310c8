"""Hand-made latency tables for tests: known numbers, nothing timed."""
from lib.latency.parts import FIXED_PARTS
from lib.latency.table import Calibration, LatencyTable
from lib.latency.timing import Timing
from lib.models import ops

FIXED_MS = {'stem': 0.5, 'stage0': 0.25, 'final': 0.125, 'head': 0.125}  # 1 ms in all


def exact(ms: float) -> Timing:
    return Timing(ms, ms, ms, ms, 1)


def op_ms_by_kernel(stage: int, layer: int, op: int) -> float:
    """k3: 1 ms, k5: 2 ms, k7: 4 ms; expansion 6 adds 0.5 ms; every later layer of a stage costs half."""
    kernel, expansion = ops.OP_CHOICES[op]
    return ({3: 1.0, 5: 2.0, 7: 4.0}[kernel] + (0.5 if expansion == 6 else 0.0)) / (2 if layer else 1)


def handmade_table(layers_per_stage=(1, 1, 1, 1, 1), resolution=32, num_classes=5, op_ms=op_ms_by_kernel,
                   calibration=None, source='handmade.json') -> LatencyTable:
    op_times = tuple(tuple(tuple(exact(op_ms(s, l, op)) for op in range(ops.NUM_OPS)) for l in range(n))
                     for s, n in enumerate(layers_per_stage))
    meta = {'device': {'type': 'cpu', 'name': 'hand-made'}, 'versions': {},
            'runtime': {'runtime': 'torch', 'device': 'cpu', 'batch_size': 1, 'threads': 1, 'channels_last': False},
            'timing': {'warmup': 0, 'repeats': 1, 'clock': 'wall'}}
    cal = None if calibration is None else Calibration(*calibration, {'networks': 2})
    return LatencyTable(tuple(layers_per_stage), resolution, num_classes, 'avg',
                        {name: exact(FIXED_MS[name]) for name in FIXED_PARTS}, op_times, meta, cal, source)
