"""lib/latency/accuracy.py: the error figures and the calibration fit, on given numbers (nothing timed)."""
import pytest

from handmade_latency import handmade_table
from lib.latency.accuracy import fit_calibration, prediction_errors, random_paths
from lib.latency.table import LatencyTableError


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
