"""How well a latency table predicts whole networks: the measured latency of child networks of random paths
against the table's prediction (mean absolute percentage error, Spearman's rank correlation), and the
calibration that corrects the plain sum.

Why a plain sum can miss: the whole network runs its parts back to back (one call, one input transfer, caches
holding the previous part's output), while the table times each part alone (a call, an input and an output
each); with the same number of parts in every network of a space, that shows up as an offset and a scale.
``fit_calibration`` fits prediction = scale * sum + offset_ms by least squares on held-out networks (the
fastest and the slowest path of the space and random ones), which is what the table then stores.
"""
from typing import Dict, List, Sequence

import numpy as np
from scipy.stats import spearmanr

from lib.latency.runtimes import RuntimeSettings, configure_threads, prepare, sync_for
from lib.latency.table import Calibration, LatencyTable, LatencyTableError
from lib.latency.timing import Timing, time_interleaved
from lib.models import childnet, ops
from lib.models.supernet import path_to_arch
from lib.search.sampler import PathSampler

Path = tuple


def table_settings(table: LatencyTable) -> RuntimeSettings:
    """The runtime settings the table was measured with (whole networks are measured the same way)."""
    return RuntimeSettings(**table.meta['runtime']).check()


def random_paths(layers_per_stage: Sequence[int], count: int, seed: int, exclude=()) -> List[Path]:
    """``count`` distinct uniformly drawn paths of the space, none of them in ``exclude``."""
    sampler = PathSampler(layers_per_stage, ops.NUM_OPS, how_to_prob='even', seed=seed)
    seen, paths = set(exclude), []
    total = ops.NUM_OPS ** sum(layers_per_stage)
    if count > total - len(seen):
        raise ValueError(f'the space has {total} paths; cannot draw {count} new ones')
    while len(paths) < count:
        path = sampler.sample()
        if path not in seen:
            seen.add(path)
            paths.append(path)
    return paths


def measure_networks(table: LatencyTable, paths: Sequence[Path], *, warmup: int, repeats: int, clock: str,
                     seed: int = 0) -> List[Timing]:
    """The whole child network of every path, on the table's runtime and settings, timed in shuffled rounds."""
    settings = table_settings(table)
    configure_threads(settings)
    shape = (3, table.resolution, table.resolution)
    runs = [prepare(childnet.build_childnet(path_to_arch(path), num_classes=table.num_classes,
                                            global_pool=table.global_pool), shape, settings, seed) for path in paths]
    return time_interleaved(runs, warmup=warmup, repeats=repeats, clock=clock, sync=sync_for(settings), seed=seed)


def prediction_errors(predicted: Sequence[float], measured: Sequence[float]) -> Dict[str, float]:
    """Mean and largest absolute percentage error of ``predicted`` against ``measured``, and Spearman's rho."""
    predicted, measured = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    errors = np.abs(predicted - measured) / measured * 100
    rho = float(spearmanr(predicted, measured).statistic) if len(measured) > 1 else float('nan')
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


def check_table(table: LatencyTable, *, networks: int, calibrate: int, seed: int, warmup: int, repeats: int,
                clock: str, log=lambda message: None) -> Dict:
    """Measure ``networks`` random paths (and ``calibrate`` held-out ones, when > 0) as whole networks; fit the
    calibration on the held-out ones; report the plain sum's and the calibrated prediction's errors on the rest.
    Returns the report, with ``calibration`` (or None) for the table."""
    held_out: List[Path] = []
    if calibrate:
        extremes = [table.extreme_path(min), table.extreme_path(max)][:calibrate]
        held_out = list(dict.fromkeys(extremes))
        held_out += random_paths(table.layers_per_stage, calibrate - len(held_out), seed + 1, exclude=held_out)
    paths = random_paths(table.layers_per_stage, networks, seed, exclude=held_out)
    log(f'timing {len(paths) + len(held_out)} whole networks ({len(held_out)} for the calibration): '
        f'{warmup} warm-up calls each, then {repeats} shuffled rounds')
    timings = measure_networks(table, held_out + paths, warmup=warmup, repeats=repeats, clock=clock, seed=seed)
    cal_timings, timings = timings[:len(held_out)], timings[len(held_out):]
    plain = table.with_calibration(None)
    sums = [plain.sum_ms(path) for path in paths]
    measured = [t.median_ms for t in timings]
    report = {'networks': len(paths), 'seed': seed, 'warmup': warmup, 'repeats': repeats, 'clock': clock,
              'network_spread_median': float(np.median([t.spread for t in timings])),
              'sum': prediction_errors(sums, measured), 'calibration': None}
    rows = [{'path': [list(s) for s in path], 'sum_ms': s, 'measured_ms': t.median_ms, 'q1_ms': t.q1_ms,
             'q3_ms': t.q3_ms} for path, s, t in zip(paths, sums, timings)]
    if held_out:
        cal_sums = [plain.sum_ms(path) for path in held_out]
        calibration = fit_calibration(cal_sums, [t.median_ms for t in cal_timings], {
            'networks': len(held_out), 'seed': seed + 1, 'paths': 'the fastest and slowest path, then random ones',
            'fit': 'least squares of measured median on the table sum'})
        calibrated = [calibration.apply(s) for s in sums]
        report['calibration'] = calibration.to_dict()
        report['calibrated'] = prediction_errors(calibrated, measured)
        for row, value in zip(rows, calibrated):
            row['predicted_ms'] = value
    report['rows'] = rows
    return report


def searched_path(arch: Sequence[Sequence[int]], keep_single_layer_default: bool = False) -> Path:
    """The searchable-stage ops the child network of ``arch`` really has (the released networks' single-layer
    stages keep their default op: ``childnet.arch_to_block_strings``)."""
    stages = childnet.validate_arch(arch)[1:-1]
    return tuple((ops.STAGE_DEFAULT_OPS[s],) if keep_single_layer_default and len(stage) == 1 else tuple(stage)
                 for s, stage in enumerate(stages))


def predicted_and_measured(table: LatencyTable, path: Path, *, warmup: int, repeats: int, clock: str) -> Dict:
    """One network's predicted latency beside its measured one, on the table's runtime and settings."""
    table.check_path(path)
    timing = measure_networks(table, [path], warmup=warmup, repeats=repeats, clock=clock)[0]
    predicted = table.predict_ms(path)
    return {'table': table.source, 'measured_with': table.describe(), 'resolution': table.resolution,
            'predicted_ms': predicted, 'sum_ms': table.sum_ms(path), 'calibrated': table.calibration is not None,
            'measured_ms': timing.median_ms, 'measured_q1_ms': timing.q1_ms, 'measured_q3_ms': timing.q3_ms,
            'error_percent': (predicted - timing.median_ms) / timing.median_ms * 100, 'clock': clock,
            'repeats': repeats}
