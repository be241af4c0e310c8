"""lib/latency/table.py: the file format, loading and its checks, the prediction as the sum it claims, and the
refusal of a table measured for another space."""
import json

import pytest

from lib.latency.table import FORMAT, LatencyTableError, load_table, table_from_dict
from tests.support.handmade_latency import FIXED_MS, handmade_table, op_ms_by_kernel


def test_prediction_is_the_sum_of_fixed_parts_and_the_paths_ops():
    table = handmade_table(layers_per_stage=(1, 2, 1, 1, 1))
    path = ((0,), (4, 1), (2,), (5,), (3,))  # k3e4 | k7e4, k3e6 (later layer: half) | k5e4 | k7e6 | k5e6
    expected = 1.0 + 1.0 + (4.0 + 1.5 / 2) + 2.0 + 4.5 + 2.5
    assert table.sum_ms(path) == pytest.approx(expected)
    assert table.predict_ms(path) == pytest.approx(expected)
    assert sum(FIXED_MS.values()) == 1.0
    calibrated = handmade_table(layers_per_stage=(1, 2, 1, 1, 1), calibration=(0.8, 0.3))
    assert calibrated.sum_ms(path) == pytest.approx(expected)
    assert calibrated.predict_ms(path) == pytest.approx(0.8 * expected + 0.3)


def test_extreme_paths_and_range():
    table = handmade_table(calibration=(2.0, 1.0))
    assert table.extreme_path(min) == ((0,),) * 5
    assert table.extreme_path(max) == ((5,),) * 5
    assert table.range_ms() == pytest.approx((2 * (1 + 5 * 1.0) + 1, 2 * (1 + 5 * 4.5) + 1))


def test_a_path_of_another_space_is_refused():
    with pytest.raises(LatencyTableError, match=r'does not fit latency table handmade.json \(\[1, 1, 1, 1, 1\] layers'):
        handmade_table().sum_ms(((0, 0), (0,), (0,), (0,), (0,)))


def test_file_round_trip_keeps_everything(tmp_path):
    table = handmade_table(layers_per_stage=(2, 1, 1, 1, 3), resolution=64, num_classes=7, calibration=(1.1, -0.2))
    path = str(tmp_path / 't.json')
    table.save(path)
    data = json.loads(open(path).read())
    assert data['format'] == FORMAT
    assert data['space'] == {'layers_per_stage': [2, 1, 1, 1, 3], 'resolution': 64, 'num_classes': 7,
                             'global_pool': 'avg', 'op_names': ['k3e4', 'k3e6', 'k5e4', 'k5e6', 'k7e4', 'k7e6']}
    assert data['ops'][4][2][5] == {'ms': op_ms_by_kernel(4, 2, 5), 'q1_ms': 2.25, 'q3_ms': 2.25, 'min_ms': 2.25,
                                    'samples': 1}
    assert data['runtime']['threads'] == 1 and data['device']['name'] == 'hand-made'
    assert data['calibration'] == {'scale': 1.1, 'offset_ms': -0.2, 'networks': 2}
    loaded = load_table(path)
    assert loaded.source == path
    assert (loaded.layers_per_stage, loaded.resolution, loaded.num_classes) == ((2, 1, 1, 1, 3), 64, 7)
    assert loaded.op_times == table.op_times and loaded.fixed == table.fixed
    assert loaded.calibration.scale == 1.1 and loaded.calibration.offset_ms == -0.2
    some_path = ((1, 2), (3,), (4,), (5,), (0, 1, 2))
    assert loaded.predict_ms(some_path) == pytest.approx(table.predict_ms(some_path))


def _table_dict(**changes):
    data = handmade_table().to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize('change, message', [
    ({'format': 'something-else'}, r"format is 'something-else'"),
    ({'ops': [[[{'ms': 1.0, 'q1_ms': 1, 'q3_ms': 1, 'min_ms': 1}] * 6]] * 4}, r'ops must hold \[1, 1, 1, 1, 1\] layers'),
    ({'ops': [[[{'ms': 1.0, 'q1_ms': 1, 'q3_ms': 1, 'min_ms': 1}] * 5]] * 5}, r'must hold 6 entries'),
    ({'fixed': {'stem': {'ms': 1.0}}}, r'fixed.stem must be an entry'),
    ({'fixed': dict(_table_dict()['fixed'], head={'ms': -1.0, 'q1_ms': 0, 'q3_ms': 0, 'min_ms': 0})},
     r'finite non-negative times'),
    ({'calibration': {'scale': -1.0, 'offset_ms': 0.0}}, r'positive scale'),
    ({'calibration': {'scale': 1.0, 'offset_ms': -100.0}}, r'predicts .* ms for the fastest path'),
])
def test_a_broken_table_is_one_clear_error(change, message):
    with pytest.raises(LatencyTableError, match=message) as info:
        table_from_dict(_table_dict(**change), 'broken.json')
    assert str(info.value).startswith('broken.json')


def test_missing_key_and_unreadable_file(tmp_path):
    data = _table_dict()
    del data['runtime']
    with pytest.raises(LatencyTableError, match=r"missing key 'runtime'.*tools/latency_table.py measure"):
        table_from_dict(data, 'x.json')
    with pytest.raises(LatencyTableError, match=r'not found'):
        load_table(str(tmp_path / 'none.json'))
    (tmp_path / 'bad.json').write_text('{not json')
    with pytest.raises(LatencyTableError, match=r'bad.json is not valid JSON'):
        load_table(str(tmp_path / 'bad.json'))


def test_a_table_of_another_space_resolution_or_class_count_is_refused():
    table = handmade_table(layers_per_stage=(1, 1, 1, 1, 1), resolution=96, num_classes=10)
    table.check_space((1, 1, 1, 1, 1), 96, 10)  # its own space passes
    for space in (((1, 1, 2, 1, 1), 96, 10), ((1, 1, 1, 1, 1), 128, 10), ((1, 1, 1, 1, 1), 96, 1000)):
        with pytest.raises(LatencyTableError, match=r'handmade.json was measured for \[1, 1, 1, 1, 1\] layers per '
                                                    r'stage at 96 px, 10 classes, but this search has'):
            table.check_space(*space)
