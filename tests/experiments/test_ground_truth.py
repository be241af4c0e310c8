import json

import pytest

from lib.experiments import ground_truth as gt
from lib.fileio import write_json_atomic


def test_path_keys_round_trip_and_commands_name_the_path_and_seed(tmp_path):
    path = ((3,), (1, 5), (0,), (2,), (4,))
    assert gt.path_key(path) == '3-1.5-0-2-4' and gt.key_path('3-1.5-0-2-4') == path
    command = gt.retrain_command('/repo', str(tmp_path), ['recipe.yaml'], path, 7, ['EPOCHS', '2'])
    assert command[1] == '/repo/retrain.py' and command[command.index('INPUT_ARCH') + 1] == '[[0],[3],[1,5],[0],[2],[4],[0]]'
    assert command[command.index('SEED') + 1] == '7' and command[command.index('AUTO_RESUME') + 1] == 'True'
    assert command[-2:] == ['EPOCHS', '2']


def test_sampled_paths_are_distinct_and_spread_over_the_cost_range():
    cost = lambda p: sum(op for stage in p for op in stage)  # noqa: E731
    paths = gt.sample_paths_over_flops((1, 1, 1, 1, 1), 6, cost, k=8, seed=3)
    costs = [cost(p) for p in paths]
    assert len(set(paths)) == 8 and costs == sorted(costs)
    assert costs[0] <= 3 and costs[-1] >= 22  # from near the cheapest (0) to near the dearest (25)
    assert paths == gt.sample_paths_over_flops((1, 1, 1, 1, 1), 6, cost, k=8, seed=3)
    with pytest.raises(ValueError, match='distinct paths'):
        gt.sample_paths_over_flops((1, 1, 1, 1, 1), 2, cost, k=40, pool=100)


def test_path_list_summary_and_seed_noise(tmp_path):
    out = str(tmp_path)
    a, b, c = ((0,),) * 5, ((1,),) * 5, ((2,),) * 5
    gt.save_paths(out, [a, b], sampled=True)
    gt.save_paths(out, [b, c])  # a pick: listed, not sampled
    assert gt.load_paths(out) == [a, b, c] and gt.load_paths(out, sampled_only=True) == [a, b]
    (tmp_path / 'results').mkdir()
    for path, seed, acc in ((a, 0, 80.0), (a, 1, 82.0), (b, 0, 90.0), (b, 1, 90.0), (c, 0, 70.0)):
        write_json_atomic({'path': path, 'seed': seed, 'val_prec1': acc}, gt.result_file(out, path, seed))
    summary = gt.summarize(out, seeds=[0, 1])
    assert summary[gt.path_key(a)] == {'val_prec1': {'0': 80.0, '1': 82.0}, 'mean': 81.0, 'std': pytest.approx(2 ** 0.5)}
    assert summary[gt.path_key(c)]['std'] == 0.0
    assert json.loads((tmp_path / gt.SUMMARY_FILE).read_text()) == summary
    noise = gt.seed_noise({k: summary[k] for k in (gt.path_key(a), gt.path_key(b))})
    assert noise['mean_seed_std'] == pytest.approx(2 ** 0.5 / 2) and noise['range_of_path_means'] == 9.0
    assert noise['ratio'] == pytest.approx(noise['std_of_path_means'] / noise['mean_seed_std'])
