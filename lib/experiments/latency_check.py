"""How well a latency table predicts whole networks: the measured latency of child networks of random paths
against the table's prediction (mean absolute percentage error, Spearman's rank correlation), and the
calibration that corrects the plain sum.

Why a plain sum can miss: timed alone, a part keeps its own weights and input in the cache, while a whole
network's working set is all of its parts; and a network is one call with one input copy where the table pays
a call per part. With the same number of parts in every network of a space, that shows up as a scale and an
offset.
``fit_calibration`` fits prediction = scale * sum + offset_ms by least squares on held-out networks (the
fastest and the slowest path of the space and random ones), which is what the table then stores.
"""
from typing import Dict, List, Sequence

import numpy as np

from lib.experiments.ranking import spearman_rho
from lib.latency.measure import machine_load, part_runs
from lib.latency.runtimes import LatencySettingsError, RuntimeSettings, configure_threads, prepare, sync_for
from lib.latency.table import Calibration, LatencyTable, LatencyTableError
from lib.latency.timing import Timing, time_rounds
from lib.models import childnet, ops
from lib.models.paths import Path, random_path, seeded_generator
from lib.models.supernet import path_to_arch


def table_settings(table: LatencyTable) -> RuntimeSettings:
    """The runtime settings the table was measured with (whole networks are measured the same way)."""
    try:
        return RuntimeSettings(**table.meta['runtime']).check()
    except LatencySettingsError as err:
        raise LatencySettingsError(f'latency table {table.source} was measured with {table.describe()}, which cannot '
                                   f'be measured here ({err}); measure on the machine the table was made on') from None


def random_paths(layers_per_stage: Sequence[int], count: int, seed: int, exclude=()) -> List[Path]:
    """``count`` distinct uniformly drawn paths of the space, none of them in ``exclude``."""
    generator = seeded_generator(seed)
    seen, paths = set(exclude), []
    total = ops.NUM_OPS ** sum(layers_per_stage)
    if count > total - len(seen):
        raise ValueError(f'the space has {total} paths; cannot draw {count} new ones')
    while len(paths) < count:
        path = random_path(layers_per_stage, ops.NUM_OPS, generator)
        if path not in seen:
            seen.add(path)
            paths.append(path)
    return paths


def network_runs(table: LatencyTable, paths: Sequence[Path], seed: int = 0) -> List:
    """A callable per path running its whole child network once, on the table's runtime and settings."""
    settings = table_settings(table)
    configure_threads(settings)
    shape = (3, table.resolution, table.resolution)
    return [prepare(childnet.build_childnet(path_to_arch(path), num_classes=table.num_classes,
                                            global_pool=table.global_pool), shape, settings, seed) for path in paths]


def measure_networks(table: LatencyTable, paths: Sequence[Path], *, warmup: int, repeats: int, block: int,
                     clock: str, seed: int = 0) -> List[List[float]]:
    """The whole child network of every path timed as a table's parts are: every network's samples (seconds)."""
    return time_rounds(network_runs(table, paths, seed), warmup=warmup, repeats=repeats, block=block, clock=clock,
                       sync=sync_for(table_settings(table)), seed=seed)


def split_half_rho(samples: Sequence[Sequence[float]], block: int = 1) -> float:
    """Spearman's rho between the networks' medians over the even and over the odd rounds (of ``block`` samples
    each): how well the measurement ranks the networks against itself, the ceiling of any prediction's rho on
    this machine."""
    halves = [[[x for i, x in enumerate(s) if (i // block) % 2 == half] for s in samples] for half in (0, 1)]
    if len(samples) < 2 or not all(h for half in halves for h in half):
        return float('nan')
    return spearman_rho([np.median(h) for h in halves[0]], [np.median(h) for h in halves[1]])


def prediction_errors(predicted: Sequence[float], measured: Sequence[float]) -> Dict[str, float]:
    """Mean and largest absolute percentage error of ``predicted`` against ``measured``, and Spearman's rho."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    errors = np.abs(predicted - measured) / measured * 100
    rho = spearman_rho(measured, predicted) if len(measured) > 1 else float('nan')
    return {'mape_percent': float(errors.mean()), 'max_ape_percent': float(errors.max()), 'spearman_rho': rho,
            'mean_signed_percent': float(((predicted - measured) / measured * 100).mean())}


def fit_calibration(sums: Sequence[float], measured: Sequence[float], details: dict) -> Calibration:
    """Least-squares scale and offset mapping the table's sums to measured latencies."""
    if len(sums) < 2 or np.ptp(np.asarray(sums, dtype=float)) == 0:
        raise ValueError('a calibration needs at least two networks with different sums')
    scale, offset = np.polyfit(np.asarray(sums, dtype=float), np.asarray(measured, dtype=float), 1)
    if scale <= 0:
        raise LatencyTableError(f'the calibration networks gave a non-positive scale ({scale:.3g}): the timings are '
                                'too noisy to fit; measure again with more --repeats (or when the machine is quieter)')
    return Calibration(float(scale), float(offset), details)


def evaluate(table: LatencyTable, paths: Sequence[Path], timings: Sequence[Timing], held_out: Sequence[Path],
             held_out_timings: Sequence[Timing], seed: int) -> Dict:
    """The plain sum's errors on ``paths``, and with held-out networks the calibration and its errors."""
    plain = table.with_calibration(None)
    sums = [plain.sum_ms(path) for path in paths]
    measured = [t.median_ms for t in timings]
    report = {'sum': prediction_errors(sums, measured), 'calibration': None}
    rows = [{'path': [list(s) for s in path], 'sum_ms': s, 'measured_ms': t.median_ms, 'q1_ms': t.q1_ms,
             'q3_ms': t.q3_ms} for path, s, t in zip(paths, sums, timings)]
    if held_out:
        how = {'networks': len(held_out), 'seed': seed, 'paths': 'the fastest and slowest path, then random ones',
               'fit': 'least squares of measured median on the table sum'}
        calibration = fit_calibration([plain.sum_ms(path) for path in held_out],
                                      [t.median_ms for t in held_out_timings], how)
        calibrated = [calibration.apply(s) for s in sums]
        report['calibration'] = calibration.to_dict()
        report['calibrated'] = prediction_errors(calibrated, measured)
        for row, value in zip(rows, calibrated):
            row['predicted_ms'] = value
    report['rows'] = rows
    return report


def check_table(table: LatencyTable, *, networks: int, calibrate: int, seed: int, warmup: int, repeats: int,
                block: int, clock: str, same_window: bool = False, log=lambda message: None) -> Dict:
    """Measure ``networks`` random paths (and ``calibrate`` held-out ones, when > 0) as whole networks; fit the
    calibration on the held-out ones; report the plain sum's and the calibrated prediction's errors on the rest.
    ``same_window``: also time the table's parts again in the same rounds as the networks and report that fresh
    table's errors too (what the table predicts when the machine's speed cannot drift between the two).
    Returns the report, with ``calibration`` (or None) for the table."""
    held_out: List[Path] = []
    if calibrate:
        held_out = list(dict.fromkeys([table.extreme_path(min), table.extreme_path(max)][:calibrate]))
        held_out += random_paths(table.layers_per_stage, calibrate - len(held_out), seed + 1, exclude=held_out)
    paths = random_paths(table.layers_per_stage, networks, seed, exclude=held_out)
    runs = network_runs(table, held_out + paths, seed)
    parts = None
    if same_window:
        parts = part_runs(table.layers_per_stage, table.resolution, table_settings(table),
                          num_classes=table.num_classes, global_pool=table.global_pool, seed=seed, log=log)
        runs += parts.runs
    also = f' and {len(parts.runs)} parts' if parts else ''
    log(f'timing {len(paths) + len(held_out)} whole networks ({len(held_out)} for the calibration){also}: '
        f'{warmup} warm-up calls each, then {repeats} timed calls in blocks of {block}')
    started_load = machine_load()
    samples = time_rounds(runs, warmup=warmup, repeats=repeats, block=block, clock=clock,
                          sync=sync_for(table_settings(table)), seed=seed)
    timings = [Timing.of(s) for s in samples]
    n_held, n_nets = len(held_out), len(held_out) + len(paths)
    report = {'networks': len(paths), 'seed': seed, 'warmup': warmup, 'repeats': repeats, 'block': block,
              'clock': clock,
              'load_before': started_load, 'load_after': machine_load(),
              'network_spread_median': float(np.median([t.spread for t in timings[n_held:n_nets]])),
              'split_half_rho': split_half_rho(samples[n_held:n_nets], block),
              **evaluate(table, paths, timings[n_held:n_nets], held_out, timings[:n_held], seed + 1)}
    if parts is not None:
        fresh = parts.table(timings[n_nets:], table.resolution, table.num_classes, table.global_pool, table.meta)
        same = evaluate(fresh, paths, timings[n_held:n_nets], held_out, timings[:n_held], seed + 1)
        report['same_window'] = {key: value for key, value in same.items() if key != 'rows'}
    return report


def searched_path(arch: Sequence[Sequence[int]], keep_single_layer_default: bool = False) -> Path:
    """The searchable-stage ops the child network of ``arch`` really has (the released networks' single-layer
    stages keep their default op: ``childnet.arch_to_block_strings``)."""
    return tuple(tuple(stage) for stage in childnet.built_searchable_ops(arch, keep_single_layer_default))


def predicted_and_measured(table: LatencyTable, path: Path, *, warmup: int, repeats: int, block: int,
                           clock: str) -> Dict:
    """One network's predicted latency beside its measured one, on the table's runtime and settings."""
    table.check_path(path)
    timing = Timing.of(measure_networks(table, [path], warmup=warmup, repeats=repeats, block=block, clock=clock)[0])
    predicted = table.predict_ms(path)
    return {'table': table.source, 'measured_with': table.describe(), 'resolution': table.resolution,
            'predicted_ms': predicted, 'sum_ms': table.sum_ms(path), 'calibrated': table.calibration is not None,
            'measured_ms': timing.median_ms, 'measured_q1_ms': timing.q1_ms, 'measured_q3_ms': timing.q3_ms,
            'error_percent': (predicted - timing.median_ms) / timing.median_ms * 100, 'clock': clock,
            'repeats': repeats}
