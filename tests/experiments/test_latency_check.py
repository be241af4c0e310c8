"""lib/experiments/latency_check.py: the error figures and the calibration fit, on given numbers (nothing timed)."""
import pytest

from lib.experiments.latency_check import evaluate, fit_calibration, prediction_errors, random_paths, split_half_rho
from lib.latency.timing import Timing
from lib.latency.table import LatencyTableError
from tests.support.handmade_latency import handmade_table


def test_errors_are_mean_absolute_percentages_and_rank_correlation():
    errors = prediction_errors([11.0, 18.0, 33.0], [10.0, 20.0, 30.0])
    assert errors['mape_percent'] == pytest.approx(10.0)
    assert errors['max_ape_percent'] == pytest.approx(10.0)
    assert errors['mean_signed_percent'] == pytest.approx((10 - 10 + 10) / 3)
    assert errors['spearman_rho'] == pytest.approx(1.0)
    assert prediction_errors([3.0, 2.0, 1.0], [1.0, 2.0, 3.0])['spearman_rho'] == pytest.approx(-1.0)


def test_calibration_recovers_scale_and_offset():
    sums = [2.0, 3.0, 5.0, 7.0]
    cal = fit_calibration(sums, [0.5 * s + 1.0 for s in sums], {'networks': 4})
    assert (cal.scale, cal.offset_ms) == (pytest.approx(0.5), pytest.approx(1.0))
    assert cal.apply(4.0) == pytest.approx(3.0)
    with pytest.raises(LatencyTableError, match='non-positive scale'):
        fit_calibration(sums, [10.0, 9.0, 8.0, 7.0], {})
    with pytest.raises(ValueError, match='two networks with different sums'):
        fit_calibration([2.0, 2.0], [1.0, 2.0], {})


def test_random_paths_are_distinct_and_avoid_the_held_out_ones():
    table = handmade_table()
    held_out = [table.extreme_path(min), table.extreme_path(max)]
    paths = random_paths(table.layers_per_stage, 50, seed=3, exclude=held_out)
    assert len(set(paths)) == 50 and not set(paths) & set(held_out)
    assert paths == random_paths(table.layers_per_stage, 50, seed=3, exclude=held_out)
    with pytest.raises(ValueError, match='has 7776 paths'):
        random_paths(table.layers_per_stage, 7777, seed=0)


def test_split_half_rho_ranks_even_rounds_against_odd_ones():
    steady = [[1.0, 1.1, 1.0, 1.1], [2.0, 2.1, 2.0, 2.1], [3.0, 3.1, 3.0, 3.1]]
    assert split_half_rho(steady) == pytest.approx(1.0)
    swapped = [[1.0, 3.0, 1.0, 3.0], [2.0, 2.0, 2.0, 2.0], [3.0, 1.0, 3.0, 1.0]]  # even rounds say 1<2<3, odd 3>2>1
    assert split_half_rho(swapped) == pytest.approx(-1.0)
    in_blocks = [[1.0, 1.0, 3.0, 3.0], [2.0, 2.0, 2.0, 2.0], [3.0, 3.0, 1.0, 1.0]]  # rounds of two samples
    assert split_half_rho(in_blocks, block=2) == pytest.approx(-1.0)


def test_evaluation_of_a_table_against_given_network_timings():
    table = handmade_table()
    held_out = [table.extreme_path(min), table.extreme_path(max)]
    paths = random_paths(table.layers_per_stage, 6, seed=0, exclude=held_out)

    def timing(path):  # the "measured" latency: 0.5 * sum + 2 ms
        ms = 0.5 * table.sum_ms(path) + 2.0
        return Timing(ms, ms, ms, ms, 1)
    report = evaluate(table, paths, [timing(p) for p in paths], held_out, [timing(p) for p in held_out], seed=9)
    assert report['sum']['spearman_rho'] == pytest.approx(1.0) and report['sum']['mape_percent'] > 10
    assert report['calibration']['scale'] == pytest.approx(0.5) and report['calibration']['offset_ms'] == pytest.approx(2)
    assert report['calibration']['networks'] == 2 and report['calibration']['seed'] == 9
    assert report['calibrated']['mape_percent'] == pytest.approx(0.0, abs=1e-9)
    assert [row['path'] for row in report['rows']] == [[list(s) for s in p] for p in paths]
    assert all(row['predicted_ms'] == pytest.approx(row['measured_ms']) for row in report['rows'])
