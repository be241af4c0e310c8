"""tools/benchmark.py in-process on a tiny setting: one JSON line per phase with positive img/s, the
search phases running the training loop's own step, the table and --table-from."""
import json

import pytest

from lib.search import static_step as static_steps
from lib.search import step as search_steps
from tests.support.scripts_as_modules import load_script

TINY = ['--device', 'cpu', '--batch-size', '8', '--image-size', '32', '--steps', '2', '--warmup', '1',
        '--path', '[[1],[1],[1],[1],[1]]', '--num-classes', '10', '--pool-size', '2', '--slice', '2',
        '--selection', '14', '--no-ema']
ALL_PHASES = 'search-plain,search-kd,search-meta,static,retrain,eval'


@pytest.fixture(scope='module')
def bench_tool(repo_root):
    return load_script('tools/benchmark.py')


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith('{')]


def test_every_phase_prints_one_json_line_with_positive_throughput(bench_tool, monkeypatch, capsys, tmp_path):
    calls = {'search_step': 0, 'run_meta_update': 0}
    for name in calls:  # the search phases must run the training loop's own step functions
        original = getattr(search_steps, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(search_steps, name, counted)
    jsonl = tmp_path / 'results.jsonl'

    results = bench_tool.main(TINY + ['--phases', ALL_PHASES, '--resample', '--jsonl', str(jsonl)])

    out = capsys.readouterr().out
    printed = json_lines(out)
    phases = ['search-plain', 'search-plain-resample', 'search-kd', 'search-meta', 'static', 'retrain', 'eval']
    assert [r['phase'] for r in printed] == phases
    assert printed == results == json_lines(jsonl.read_text())
    for result in printed:
        assert result['img_per_sec'] > 0 and result['ms_per_step'] > 0, result
        assert result['peak_gib'] is None  # CPU: no CUDA peak memory
        assert (result['steps'], result['warmup'], result['batch_size']) == (2, 1, 8)
    by_phase = {r['phase']: r for r in printed}
    assert by_phase['search-kd']['board_size'] == 2  # the board stayed full: every step distilled
    assert by_phase['retrain']['model'] == by_phase['eval']['model'] == 'cream_014'
    assert by_phase['retrain']['image_size'] == 32  # --image-size given: not the native 64
    # 3 search-step phases x (warmup + steps); the meta phase runs the loop's meta update.
    assert calls == {'search_step': 9, 'run_meta_update': 3}
    # The table comes last, with the ratios of the same setting.
    tail = out[out.rindex('}') + 1:]
    assert 'search-kd/search-plain:' in tail and 'search-plain/static:' in tail

    assert bench_tool.main(['--table-from', str(jsonl)]) == results
    assert 'search-plain-resample/search-plain:' in capsys.readouterr().out


def test_released_phases_default_to_the_native_resolution(bench_tool, capsys):
    argv = [a for a in TINY if a not in ('--image-size', '32')]
    (result,) = bench_tool.main(argv + ['--phases', 'eval', '--steps', '1', '--warmup', '0'])
    assert (result['model'], result['image_size']) == ('cream_014', 64)


def test_bad_options_fail_clearly(bench_tool, capsys):
    with pytest.raises(SystemExit) as stop:
        bench_tool.main(TINY + ['--path', '[[1],[1]]', '--phases', 'static'])
    assert stop.value.code == 2 and '--path needs 5 non-empty stages' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_tool.main(TINY + ['--phases', 'search-plain,warp-drive'])
    assert 'unknown phase' in capsys.readouterr().err


def test_interleaved_phases_are_timed_in_rounds(bench_tool, monkeypatch, capsys):
    """--interleave: warm-up of every step phase, then one step of each phase per round; phases that own their
    loop (eval) still run on their own afterwards."""
    order = []
    original = search_steps.search_step

    def traced(session, path, images, target, *, epoch, meta_updates=0):
        order.append('kd' if epoch > session.cfg.SUPERNET.META_STA_EPOCH else 'plain')
        return original(session, path, images, target, epoch=epoch, meta_updates=meta_updates)
    monkeypatch.setattr(search_steps, 'search_step', traced)

    results = bench_tool.main(TINY + ['--phases', 'search-plain,eval,search-kd,static', '--interleave',
                                      '--steps', '3', '--warmup', '1'])

    assert [r['phase'] for r in results] == ['search-plain', 'search-kd', 'static', 'eval']
    assert order == ['plain', 'kd'] + ['plain', 'kd'] * 3  # warm-up, then alternating rounds
    for result in results[:3]:
        assert result['interleaved'] and result['steps'] == 3 and result['img_per_sec_median'] > 0
    assert results[1]['board_size'] == 2
    assert 'interleaved' not in results[3]
    assert 'search-kd/search-plain:' in capsys.readouterr().out


def test_compare_cfg_times_both_configs_in_the_same_rounds(bench_tool, monkeypatch, capsys, repo_root):
    """--compare-cfg configs/train_corrected.yaml: the search phases under that config too, in the same rounds
    (the original's behaviour against our corrections under one load), each with its session's own switches."""
    seen = []
    original = search_steps.search_step

    def traced(session, path, images, target, *, epoch, meta_updates=0):
        seen.append(session.cfg.SUPERNET.STEP_ONLY_PATH)
        return original(session, path, images, target, epoch=epoch, meta_updates=meta_updates)
    monkeypatch.setattr(search_steps, 'search_step', traced)

    results = bench_tool.main(TINY + ['--phases', 'search-plain,search-kd', '--interleave', '--steps', '2',
                                      '--warmup', '1', '--clock', 'cpu',
                                      '--compare-cfg', str(repo_root / 'configs/train_corrected.yaml')])
    assert [r['phase'] for r in results] == ['search-plain', 'search-kd', 'search-plain@train_corrected',
                                             'search-kd@train_corrected']
    assert seen == [False, False, True, True] * 3  # warm-up and two rounds: original, original, ours, ours
    assert all(r['clock'] == 'cpu' and r['img_per_sec'] > 0 for r in results)
    out = capsys.readouterr().out
    assert 'search-kd@train_corrected/search-kd:' in out and 'search-kd/search-plain:' in out
    with pytest.raises(SystemExit) as stop:
        bench_tool.main(TINY + ['--phases', 'search-plain', '--compare-cfg', str(repo_root / 'configs/train_corrected.yaml')])
    assert stop.value.code == 2 and 'needs --interleave' in capsys.readouterr().err


def test_cfg_phases_carry_the_configs_name(bench_tool, capsys, repo_root):
    """--cfg configs/train_corrected.yaml: the search phases are named after it (search-kd@train_corrected), so
    that a table of several runs keeps them apart from the defaults' phases."""
    results = bench_tool.main(TINY + ['--phases', 'search-plain,static', '--cfg',
                                      str(repo_root / 'configs/train_corrected.yaml')])
    assert [r['phase'] for r in results] == ['search-plain@train_corrected', 'static']
    assert 'search-plain@train_corrected/static:' in capsys.readouterr().out


def test_paths_file_is_replayed_in_turn(bench_tool, monkeypatch, tmp_path):
    """--paths-file: search-plain-resample runs the file's paths in turn (step i: path i), given per searchable
    stage or as the original's seven-stage candidates."""
    paths_file = tmp_path / 'paths.json'
    paths_file.write_text(json.dumps([[[0], [2], [3], [4], [5], [0], [0]], [[5], [4], [3], [2], [1]]]))
    seen = []
    original = search_steps.search_step

    def traced(session, path, images, target, *, epoch, meta_updates=0):
        seen.append(path)
        return original(session, path, images, target, epoch=epoch, meta_updates=meta_updates)
    monkeypatch.setattr(search_steps, 'search_step', traced)
    results = bench_tool.main(TINY + ['--phases', 'search-plain-resample', '--paths-file', str(paths_file)])
    assert seen == [((2,), (3,), (4,), (5,), (0,)), ((5,), (4,), (3,), (2,), (1,)), ((2,), (3,), (4,), (5,), (0,))]
    assert results[0]['path'] == 'replayed'
    paths_file.write_text('[[[0], [9]]]')
    with pytest.raises(SystemExit):
        bench_tool.main(TINY + ['--phases', 'search-plain-resample', '--paths-file', str(paths_file)])


def test_the_step_phases_run_the_packages_steps_and_the_tools_hold_none(bench_tool, monkeypatch, repo_root):
    """The static phase trains with lib.search.static_step (beside search_step), and neither tool has a training
    step of its own: no backward, zero_grad or autocast in their source (tools/benchmark_stop_check.py times a
    plain DDP step of a child network, not the search's, and is not one of them)."""
    calls = []
    original = static_steps.static_step

    def counted(parts, images, target):
        calls.append(images.shape[0])
        return original(parts, images, target)
    monkeypatch.setattr(static_steps, 'static_step', counted)
    (result,) = bench_tool.main(TINY + ['--phases', 'static'])
    assert calls == [8] * 3 and result['phase'] == 'static'  # warm-up + 2 timed steps
    for tool in ('tools/benchmark.py', 'tools/profile_step.py'):
        source = (repo_root / tool).read_text()
        assert not any(call in source for call in ('.backward(', 'zero_grad(', 'autocast(')), tool
