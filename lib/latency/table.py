"""The latency table of one search space on one device and runtime, and the path latencies it predicts.

A table holds the median time of every fixed part (stem, stage 0, final block, head) and of every op at
every searchable layer, each at the input shape it sees in the space. A path's *sum* is the fixed parts plus
its op at every layer; its *prediction* is that sum, or ``scale * sum + offset_ms`` once the table holds a
calibration fitted on whole networks (``lib.experiments.latency_check``). A table names the space it was measured
for (layers per searchable stage, resolution, classes, global pool), the device, runtime, versions and
settings; loading checks the format, and ``check_space`` refuses a table of another space.

File format (JSON, ``FORMAT``): ``space``, ``device``, ``runtime`` (runtime, device, batch_size, threads,
channels_last), ``versions``, ``timing`` (warm-up, repeats, clock, when, machine load), ``fixed``
(part -> entry), ``ops`` (``[stage][layer][op]`` -> entry), ``calibration`` (null or scale, offset_ms and
how it was fitted); an entry is ``{"ms": median, "q1_ms", "q3_ms", "min_ms", "samples"}``.
"""
import dataclasses
import math
from dataclasses import dataclass, field
from typing import ClassVar, Dict, Optional, Sequence, Tuple

from lib.checked_io import read_json
from lib.config.timm_names import global_pool_problem
from lib.errors import CreamError, InputFileError
from lib.fileio import write_json_atomic
from lib.latency.parts import FIXED_PARTS
from lib.latency.runtimes import LatencySettingsError, RuntimeSettings
from lib.latency.timing import CLOCKS, Timing
from lib.models import ops

FORMAT = 'cream-latency-table-1'
MEASURE_COMMAND = 'python tools/latency_table.py measure'


class LatencyTableError(CreamError, ValueError):
    """A latency table that cannot be read, or that belongs to another search space."""


@dataclass(frozen=True)
class Calibration:
    """prediction = scale * sum + offset_ms, fitted (least squares) on whole networks of the space."""
    scale: float
    offset_ms: float
    details: dict = field(default_factory=dict)  # how it was fitted: networks, seed, residuals

    def apply(self, sum_ms: float) -> float:
        return self.scale * sum_ms + self.offset_ms

    def to_dict(self) -> dict:
        return {'scale': self.scale, 'offset_ms': self.offset_ms, **self.details}

    @classmethod
    def from_dict(cls, data: dict) -> 'Calibration':
        """The inverse of ``to_dict`` (KeyError without scale or offset_ms, ValueError on a non-number)."""
        details = dict(data)
        return cls(float(details.pop('scale')), float(details.pop('offset_ms')), details)


@dataclass(frozen=True)
class LatencyTable:
    """A ``lib.search.path_cost.SpaceCost`` named 'latency_ms': ``cost`` is ``predict_ms``."""
    name: ClassVar[str] = 'latency_ms'
    unit: ClassVar[str] = 'ms'
    layers_per_stage: Tuple[int, ...]
    resolution: int
    num_classes: int
    global_pool: str
    fixed: Dict[str, Timing]
    op_times: Tuple[Tuple[Tuple[Timing, ...], ...], ...]  # [stage][layer][op]
    meta: dict = field(default_factory=dict)  # device, runtime, versions, timing
    calibration: Optional[Calibration] = None
    source: str = ''  # the file it was read from

    # ---- prediction -------------------------------------------------------------------------------
    def check_path(self, path: Sequence[Sequence[int]]) -> None:
        if tuple(len(stage) for stage in path) != self.layers_per_stage:
            raise LatencyTableError(f'path {[list(s) for s in path]} does not fit latency table {self.source} '
                                    f'({self.space_text()}): measure a table for its space')

    def sum_ms(self, path: Sequence[Sequence[int]]) -> float:
        """The table's sum for ``path``: every fixed part plus the path's op at every searchable layer."""
        self.check_path(path)
        return (sum(self.fixed[name].median_ms for name in FIXED_PARTS)
                + sum(self.op_times[s][l][op].median_ms for s, stage in enumerate(path) for l, op in enumerate(stage)))

    def predict_ms(self, path: Sequence[Sequence[int]]) -> float:
        """The predicted latency of ``path``'s child network: the sum, calibrated when the table is."""
        total = self.sum_ms(path)
        return self.calibration.apply(total) if self.calibration is not None else total

    def cost(self, path: Sequence[Sequence[int]]) -> float:
        return self.predict_ms(path)

    def cost_range(self) -> Tuple[float, float]:
        return self.range_ms()

    def extreme_path(self, pick=min) -> Tuple[Tuple[int, ...], ...]:
        """The fastest (``pick=min``) or slowest (``max``) path (the sum is separable, calibration increasing)."""
        return tuple(tuple(pick(range(len(layer)), key=lambda op, layer=layer: layer[op].median_ms)
                           for layer in stage) for stage in self.op_times)

    def range_ms(self) -> Tuple[float, float]:
        """Predicted latency of the fastest and of the slowest path of the space."""
        return self.predict_ms(self.extreme_path(min)), self.predict_ms(self.extreme_path(max))

    # ---- identity -------------------------------------------------------------------------------
    def describe(self) -> str:
        run = self.meta.get('runtime', {})
        device = self.meta.get('device', {}).get('name', '?')
        return (f'{run.get("runtime", "?")} on {run.get("device", "?")} ({device}), '
                f'batch {run.get("batch_size", "?")}, '
                f'{run.get("threads", "?")} thread(s){", channels_last" if run.get("channels_last") else ""}')

    def space_text(self) -> str:
        return f'{list(self.layers_per_stage)} layers per stage at {self.resolution} px, {self.num_classes} classes'

    def check_space(self, layers_per_stage: Sequence[int], resolution: int, num_classes: int) -> None:
        """Refuse (one error) a table measured for another space, resolution or class count."""
        wanted = (tuple(int(n) for n in layers_per_stage), int(resolution), int(num_classes))
        if wanted != (self.layers_per_stage, self.resolution, self.num_classes):
            raise LatencyTableError(
                f'latency table {self.source or "(in memory)"} was measured for {self.space_text()}, but this search '
                f'has {list(wanted[0])} layers per stage at {wanted[1]} px, {wanted[2]} classes: measure a table '
                f'for this space ({MEASURE_COMMAND} --cfg <this config> --out <table.json>)')

    # ---- the file ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {'format': FORMAT,
                'space': {'layers_per_stage': list(self.layers_per_stage), 'resolution': self.resolution,
                          'num_classes': self.num_classes, 'global_pool': self.global_pool,
                          'op_names': [ops.op_name(i) for i in range(ops.NUM_OPS)]},
                **self.meta,
                'fixed': {name: self.fixed[name].to_dict() for name in FIXED_PARTS},
                'ops': [[[entry.to_dict() for entry in layer] for layer in stage] for stage in self.op_times],
                'calibration': None if self.calibration is None else self.calibration.to_dict(),
                'range_ms': list(self.range_ms())}

    def save(self, path: str) -> None:
        write_json_atomic(self.to_dict(), path)

    def with_calibration(self, calibration: Optional[Calibration]) -> 'LatencyTable':
        return dataclasses.replace(self, calibration=calibration)


META_KEYS = ('device', 'runtime', 'versions', 'timing')
TIMING_COUNTS = {'warmup': 0, 'repeats': 1, 'block': 1}  # a table's timing record: key -> least value


def _checked_meta(data: dict) -> dict:
    """The device, runtime, versions and timing records, each of the shape the tools and the search read
    (``describe``, ``latency_check.table_settings``, the defaults of ``check``): ValueError naming the first defect."""
    meta = {key: data[key] for key in META_KEYS}
    for key in META_KEYS:
        if not isinstance(meta[key], dict):
            raise ValueError(f'{key} must be an object; got {meta[key]!r}')
    fields = set(RuntimeSettings.__dataclass_fields__)
    if set(meta['runtime']) != fields:
        raise ValueError(f'runtime must hold exactly {sorted(fields)}; got {sorted(meta["runtime"])}')
    try:
        RuntimeSettings(**meta['runtime']).check_values()
    except LatencySettingsError as err:
        raise ValueError(f'runtime: {err}') from None
    for key, least in TIMING_COUNTS.items():
        value = meta['timing'].get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f'timing.{key} must be an integer of at least {least}; got {value!r}')
    if meta['timing'].get('clock', 'wall') not in CLOCKS:
        raise ValueError(f'timing.clock must be one of {", ".join(CLOCKS)}; got {meta["timing"]["clock"]!r}')
    if not isinstance(meta['device'].get('name', ''), str):
        raise ValueError(f'device.name must be a string; got {meta["device"]["name"]!r}')
    return meta


def _checked_space(space: dict) -> tuple:
    """(layers per stage, resolution, classes, global pool) of a table's space record."""
    def count(value, least: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f'must be an integer of at least {least}; got {value!r}')
        return value
    if not isinstance(space, dict):
        raise ValueError(f'space must be an object; got {space!r}')
    try:
        layers = tuple(count(n, 1) for n in space['layers_per_stage'])
    except (TypeError, ValueError):
        raise ValueError(f'space.layers_per_stage must be {ops.NUM_SEARCH_STAGES} positive counts; '
                         f'got {space["layers_per_stage"]!r}') from None
    if len(layers) != ops.NUM_SEARCH_STAGES:
        raise ValueError(f'space.layers_per_stage must be {ops.NUM_SEARCH_STAGES} positive counts; got {list(layers)}')
    for key, least in (('resolution', 32), ('num_classes', 1)):
        try:
            count(space[key], least)
        except ValueError as err:
            raise ValueError(f'space.{key} {err}') from None
    pool_problem = global_pool_problem(space['global_pool'])
    if pool_problem is not None:
        raise ValueError(f'space.global_pool {space["global_pool"]!r} is no timm pooling ({pool_problem})')
    return layers, space['resolution'], space['num_classes'], space['global_pool']


ENTRY_TIMES = ('ms', 'q1_ms', 'q3_ms', 'min_ms')


def _entry(value, where: str) -> Timing:
    def number(x) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if not isinstance(value, dict) or not all(number(value.get(k)) for k in ENTRY_TIMES):
        raise ValueError(f'{where} must be an entry {{"ms", "q1_ms", "q3_ms", "min_ms", "samples"}}; got {value!r}')
    if not all(math.isfinite(value[k]) and value[k] >= 0 for k in ENTRY_TIMES) or value['ms'] <= 0:
        raise ValueError(f'{where} must hold finite non-negative times with a positive median; got {value!r}')
    return Timing(float(value['ms']), float(value['q1_ms']), float(value['q3_ms']), float(value['min_ms']),
                  int(value.get('samples', 1)))


def table_from_dict(data: dict, source: str = '') -> LatencyTable:
    """A table from its JSON form; any defect is one LatencyTableError naming the file and what is wrong."""
    where = source or 'latency table'
    try:
        if not isinstance(data, dict) or data.get('format') != FORMAT:
            found = data.get('format') if isinstance(data, dict) else type(data).__name__
            raise ValueError(f'format is {found!r}, not {FORMAT!r}')
        layers, resolution, num_classes, global_pool = _checked_space(data['space'])
        if not isinstance(data['fixed'], dict):
            raise ValueError(f'fixed must be an object of {", ".join(FIXED_PARTS)}')
        fixed = {name: _entry(data['fixed'][name], f'fixed.{name}') for name in FIXED_PARTS}
        op_rows = data['ops']
        if not isinstance(op_rows, list) or not all(isinstance(stage, list) for stage in op_rows) \
                or not all(isinstance(layer, list) for stage in op_rows for layer in stage):
            raise ValueError('ops must be a list (stages) of lists (layers) of lists (one entry per op)')
        if len(op_rows) != len(layers) or any(len(stage) != n for stage, n in zip(op_rows, layers)):
            raise ValueError(f'ops must hold {list(layers)} layers per stage (space.layers_per_stage)')
        table_ops = tuple(tuple(tuple(_entry(entry, f'ops[{s}][{l}][{op}]') for op, entry in enumerate(layer))
                                for l, layer in enumerate(stage)) for s, stage in enumerate(op_rows))
        if any(len(layer) != ops.NUM_OPS for stage in table_ops for layer in stage):
            raise ValueError(f'every layer of ops must hold {ops.NUM_OPS} entries, one per op')
        calibration = None
        if data.get('calibration') is not None:
            if not isinstance(data['calibration'], dict):
                raise ValueError(f'calibration must be null or an object; got {data["calibration"]!r}')
            calibration = Calibration.from_dict(data['calibration'])
            scale, offset = calibration.scale, calibration.offset_ms
            if not (math.isfinite(scale) and math.isfinite(offset) and scale > 0):
                raise ValueError(f'calibration needs a finite positive scale and a finite offset; '
                                 f'got {scale}, {offset}')
        table = LatencyTable(layers, resolution, num_classes, global_pool, fixed, table_ops, _checked_meta(data),
                             calibration, source)
    except (KeyError, TypeError, ValueError) as err:
        missing = f'missing key {err}' if isinstance(err, KeyError) else str(err)
        raise LatencyTableError(f'{where} is not a usable latency table: {missing}; measure one with '
                                f'{MEASURE_COMMAND}') from None
    if min(table.range_ms()) <= 0:
        raise LatencyTableError(f'{where}: its calibration predicts {table.range_ms()[0]:.4g} ms for the fastest path; '
                                'calibrate it again (tools/latency_table.py check --calibrate N)')
    return table


def load_table(path: str) -> LatencyTable:
    """The table in ``path``, checked: a missing, damaged or non-strict (NaN) file, or one whose content is not a
    table, is one LatencyTableError naming the file."""
    try:
        data = read_json(path, dict, 'latency table', f'measure one with {MEASURE_COMMAND} --out {path}')
    except InputFileError as err:
        raise LatencyTableError(str(err)) from None
    return table_from_dict(data, path)
