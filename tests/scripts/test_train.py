"""train.py end to end on tiny generated data (CPU, 64 px, the smallest search space): the demo search and
its best_arch.yaml in retrain.py/test.py, exact resume (after an epoch and mid-epoch), two processes
holding one board, an infeasible budget."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

import train
from lib.config import load_config
from lib.engine.finite import DivergedError
from lib.errors import CreamError
from lib.models.from_config import build_child_from_cfg
from lib.search.outputs import read_board_history
from tests.support.demo_search import TINY_SEARCH, AfterStep, Stop, StopAt, board_entries, search_argv, summary_rows

SEARCH = dict(TINY_SEARCH, DETERMINISTIC=True)


@pytest.fixture(scope='module')
def data(demo_data):
    return demo_data(classes=3, train=4, val=2, size=32)


@pytest.fixture(scope='module')
def uninterrupted(repo_root, data, tmp_path_factory):
    """The demo config, shortened: two epochs without a stop."""
    out = tmp_path_factory.mktemp('whole')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the other tests: the thread count changes float sums
    try:
        result = train.main(search_argv(repo_root, out, data, RECOVERY_INTERVAL=2))
    finally:
        torch.set_num_threads(threads)
    return out / 'demo_search', result


def test_demo_search_writes_board_and_a_best_arch_that_retrain_and_test_accept(repo_root, data, uninterrupted,
                                                                               tmp_path):
    run_dir, result = uninterrupted
    rows = summary_rows(run_dir)
    assert [r['epoch'] for r in rows] == ['0', '1']
    assert rows[0]['board_size'] == '0' and rows[0]['train_kd_loss'] == ''  # plain epoch
    assert rows[1]['board_size'] == '2' and float(rows[1]['train_kd_loss']) > 0  # board, distillation
    assert int(rows[1]['meta_updates']) == 1  # step 2 of epoch 1 (UPDATE_ITER 2)
    entries = board_entries(run_dir)
    assert len(entries) == 2 and all(e['val_prec1'] is not None and 0 < e['budget_flops_M'] < e['macs_M']
                                     for e in entries)
    assert [e['path'] for e in entries] == [e['path'] for e in result['board']]
    history = read_board_history(run_dir / 'board_history.jsonl')
    assert [(h['epoch'], len(h['entries'])) for h in history] == [(0, 0), (1, 2)]
    assert history[-1]['entries'] == entries
    for name in ('last.pth.tar', 'best.pth.tar', 'train.log', 'config.yaml'):
        assert (run_dir / name).is_file(), name
    checkpoint = torch.load(run_dir / 'last.pth.tar', map_location='cpu', weights_only=True)
    assert len(checkpoint['board']['entries']) == 2 and 'mmn' in checkpoint and 'path_sampler' in checkpoint

    best_arch = run_dir / 'best_arch.yaml'
    assert best_arch.is_file()
    cfg = load_config([str(repo_root / 'configs/demo/retrain.yaml'), str(best_arch)])
    arch = [[0]] + result['best_arch'] + [[0]]
    assert cfg.NET.SELECTION == -1 and cfg.NET.INPUT_ARCH == arch and cfg.DATASET.IMAGE_SIZE == 64
    _, info = build_child_from_cfg(cfg)
    assert info.arch == arch and not info.keep_single_layer_default

    import retrain
    import test as test_script
    tiny = ['OUTPUT', str(tmp_path), 'DATA_DIR', str(data), 'DATASET.NUM_CLASSES', '3', 'WORKERS', '0',
            'DATASET.BATCH_SIZE', '4']
    retrain.main(['--cfg', str(repo_root / 'configs/demo/retrain.yaml'), '--cfg', str(best_arch), *tiny,
                  'EPOCHS', '1', 'MODEL', 'demo_retrain'])
    results = test_script.main(['--cfg', str(repo_root / 'configs/demo/test.yaml'), '--cfg', str(best_arch), *tiny,
                                'RESUME_PATH', str(tmp_path / 'demo_retrain' / 'last.pth.tar')])
    assert results['arch'] == arch and results['resolution'] == 64 and results['images'] == 6


def test_resume_after_an_epoch_and_mid_epoch_continues_exactly(repo_root, data, uninterrupted, tmp_path):
    whole_dir, _ = uninterrupted

    args = search_argv(repo_root, tmp_path, data, RECOVERY_INTERVAL=2, AUTO_RESUME=True)
    with pytest.raises(Stop):  # main() lets the interrupt through (the command line exits with 130)
        train.main(args, hooks=[StopAt(epoch=0)])
    run_dir = tmp_path / 'demo_search'
    assert not (run_dir / 'best_arch.yaml').exists()
    with pytest.raises(Stop):
        train.main(args, hooks=[StopAt(epoch=1, step=2)])  # right after the recovery checkpoint of step 2
    assert (run_dir / 'recovery.pth.tar').is_file()
    train.main(args)

    assert summary_rows(run_dir) == summary_rows(whole_dir)
    assert board_entries(run_dir) == board_entries(whole_dir)
    history = read_board_history(run_dir / 'board_history.jsonl')
    assert history == read_board_history(whole_dir / 'board_history.jsonl') and len(history) == 2
    def best_arch_lines(folder):  # without the lines naming the run folder
        return [line for line in (folder / 'best_arch.yaml').read_text().splitlines() if str(folder) not in line]
    assert best_arch_lines(run_dir) == best_arch_lines(whole_dir)
    resumed = torch.load(run_dir / 'last.pth.tar', map_location='cpu', weights_only=True)
    whole = torch.load(whole_dir / 'last.pth.tar', map_location='cpu', weights_only=True)
    for key in ('state_dict', 'mmn'):
        for name, value in whole[key].items():
            assert torch.equal(resumed[key][name], value), (key, name)
    for a, b in zip(resumed['board']['entries'], whole['board']['entries']):
        assert torch.equal(a['probe_images'], b['probe_images']) and torch.equal(a['probe_probs'], b['probe_probs'])
    assert 'resuming from' in (run_dir / 'train.log').read_text()


@pytest.mark.process
def test_two_processes_hold_the_same_board_and_weights(repo_root, data, tmp_path, free_port):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(repo_root))
    command = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2', '--master_addr=127.0.0.1',
               f'--master_port={free_port}', str(repo_root / 'train.py'),
               *search_argv(repo_root, tmp_path, data, VERBOSE=True, **{'DATASET.BATCH_SIZE': 2, 'SUPERNET.SLICE': 1})]
    completed = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    run_dir = tmp_path / 'demo_search'
    digests = [[dict(zip(line.split()[::2], line.split()[1::2]))
                for line in (run_dir / f'state_digest.rank{rank}.txt').read_text().splitlines()] for rank in (0, 1)]
    assert len(digests[0]) == 2 and digests[0][1]['size'] == '2'  # the board filled in epoch 1
    for rank0, rank1 in zip(*digests):  # the same paths on the board and the same weights on both ranks ...
        assert [rank0[key] for key in ('epoch', 'board', 'weights', 'size')] == \
            [rank1[key] for key in ('epoch', 'board', 'weights', 'size')]
    # ... but each rank's board holds the probe images of its own batches (SUPERNET.PROBE_SOURCE 'rank', the original)
    assert digests[0][1]['probes'] != digests[1][1]['probes']
    assert 'over 2 process(es)' in (run_dir / 'train.log').read_text()


def test_corrected_config_runs_the_search_with_every_switch_on_our_side(repo_root, data, tmp_path):
    """configs/demo/train_corrected.yaml: the same demo search with our corrections (docs/differences.md)."""
    opts = dict(SEARCH, OUTPUT=tmp_path, DATA_DIR=data)
    result = train.main(['--cfg', str(repo_root / 'configs/demo/train_corrected.yaml')]
                        + [str(x) for kv in opts.items() for x in kv])
    run_dir = tmp_path / 'demo_search_corrected'
    cfg = load_config([str(run_dir / 'config.yaml')])
    assert cfg.SUPERNET.STEP_ONLY_PATH and cfg.SUPERNET.DETACH_KD_WEIGHT and cfg.SUPERNET.FLOPS_TABLE == 'counted'
    assert len(result['board']) == 2 and (run_dir / 'best_arch.yaml').is_file()


def test_infeasible_budget_fails_before_any_work(repo_root, data, tmp_path):
    with pytest.raises(CreamError) as error:
        train.main(search_argv(repo_root, tmp_path, data, FLOPS_MAXIMUM=1))
    assert 'infeasible' in str(error.value) and 'FLOPS_MAXIMUM' in str(error.value)
    assert not (tmp_path / 'demo_search').exists()  # failed before the run folder was made


def test_a_budget_no_path_meets_fails_before_any_work_naming_budgets_that_would(repo_root, data, tmp_path):
    """20..20 MFLOPs passes the rule (a space of one layer per stage at 96 px) but its paths cost 9.77..18.14."""
    with pytest.raises(CreamError) as error:
        train.main(search_argv(repo_root, tmp_path, data, FLOPS_MINIMUM=20, FLOPS_MAXIMUM=20))
    assert 'holds no path of its search space' in str(error.value)
    assert 'budgets that would work: FLOPS_MINIMUM 0 FLOPS_MAXIMUM 20' in str(error.value)
    assert not (tmp_path / 'demo_search').exists()


def test_an_empty_board_at_the_end_writes_no_best_arch(repo_root, data, tmp_path):
    result = train.main(search_argv(repo_root, tmp_path, data, EPOCHS=1))  # epoch 0 <= META_STA_EPOCH: no offers
    run_dir = tmp_path / 'demo_search'
    assert result['best_arch'] is None and result['board'] == []
    assert not (run_dir / 'best_arch.yaml').exists() and (run_dir / 'last.pth.tar').is_file()
    assert 'the board is empty after the last epoch' in (run_dir / 'train.log').read_text()


def test_divergence_never_reaches_a_checkpoint_and_auto_resume_continues(repo_root, data, uninterrupted, tmp_path,
                                                                         monkeypatch):
    """The loss turns NaN at epoch 1 step 2, a step without a progress line: the recovery checkpoint of that step is
    refused (the run stops with one error), every checkpoint left is finite, and AUTO_RESUME continues from the
    recovery checkpoint of step 1 to the uninterrupted run's result."""
    import lib.search.parts as parts
    from lib.engine.finite import nonfinite_tensors
    real_build_loss, poisoned = parts.build_loss, []

    def build_loss(cfg):
        loss_fn = real_build_loss(cfg)
        return lambda output, target: loss_fn(output, target) * (float('nan') if poisoned else 1.0)

    def poison_after_step_1_of_epoch_1(position):
        if (position.epoch, position.step_in_epoch) == (1, 1):
            poisoned.append(True)

    monkeypatch.setattr(parts, 'build_loss', build_loss)
    with pytest.raises(DivergedError) as stop:
        train.main(search_argv(repo_root, tmp_path, data, RECOVERY_INTERVAL=1, LOG_INTERVAL=100),
                   hooks=[AfterStep(poison_after_step_1_of_epoch_1)])
    run_dir = tmp_path / 'demo_search'
    assert 'training loss became nan by epoch 1 step 2' in str(stop.value)  # checked before the checkpoint
    assert f'AUTO_RESUME True continues from {run_dir / "recovery.pth.tar"} (epoch 1, step 1 of 3' in str(stop.value)
    assert 'resume with a lower LR, e.g. LR 0.025' in str(stop.value)
    for path in run_dir.glob('*.pth.tar'):
        assert nonfinite_tensors(torch.load(path, map_location='cpu', weights_only=True))[0] == [], path
    monkeypatch.undo()
    train.main(search_argv(repo_root, tmp_path, data, RECOVERY_INTERVAL=2, AUTO_RESUME=True))
    assert 'recovery.pth.tar: epoch 1, step 1 of 3' in (run_dir / 'train.log').read_text()
    whole_dir, _ = uninterrupted
    assert summary_rows(run_dir) == summary_rows(whole_dir) and board_entries(run_dir) == board_entries(whole_dir)


def test_a_search_resumed_for_more_epochs_drops_the_old_best_arch_until_its_end(repo_root, data, uninterrupted,
                                                                              tmp_path):
    whole_dir, _ = uninterrupted
    run_dir = tmp_path / 'demo_search'
    shutil.copytree(whole_dir, run_dir)
    assert 'after epoch 1' in (run_dir / 'best_arch.yaml').read_text()
    seen = []
    train.main(search_argv(repo_root, tmp_path, data, AUTO_RESUME=True, EPOCHS=3),
               hooks=[AfterStep(lambda position: seen.append((run_dir / 'best_arch.yaml').exists()))])
    assert seen == [False] * 3  # no best_arch.yaml beside the growing board
    assert 'after epoch 2' in (run_dir / 'best_arch.yaml').read_text()


def final_pick_scores(log: str) -> dict:
    """{path: val prec1} from the 'final pick:' lines of a train.log."""
    scores = {}
    for line in log.splitlines():
        if 'final pick: ' in line:
            text = line.split('final pick: ', 1)[1]
            source, rest = text.split(' path ', 1)
            path, val = rest.split('  val prec1 ', 1)
            scores[path] = (source, float(val.split()[0]))
    return scores


def test_the_final_pick_can_score_sampled_paths_beside_the_board(repo_root, data, uninterrupted, tmp_path):
    whole_dir, whole = uninterrupted
    run_dir = tmp_path / 'demo_search'
    shutil.copytree(whole_dir, run_dir)
    # The finished run, resumed with the switch: no training, only the final pick (FINAL_PICK_* may change).
    result = train.main(search_argv(repo_root, tmp_path, data, AUTO_RESUME=True, **{'SUPERNET.FINAL_PICK_SAMPLES': 3,
                                                                             'SUPERNET.FINAL_PICK_BN_BATCHES': 1}))
    scores = final_pick_scores((run_dir / 'train.log').read_text())
    sources = [source for source, _ in scores.values()]
    assert sources.count('sampled') == 3 and sources.count('board') == len(whole['board'])
    best = max(val for _, val in scores.values())
    assert scores[str(result['best_arch'])][1] == best
    text = (run_dir / 'best_arch.yaml').read_text()
    assert f'INPUT_ARCH: [[0], {str(result["best_arch"])[1:-1]}, [0]]'.replace(' ', '') in text.replace(' ', '')
    assert 'among the board and 3 sampled paths' in (run_dir / 'train.log').read_text()


def test_a_search_without_a_board_gets_a_sampled_pick(repo_root, data, tmp_path):
    result = train.main(search_argv(repo_root, tmp_path, data, EPOCHS=1, **{'SUPERNET.FINAL_PICK_SAMPLES': 2,
                                                                     'SUPERNET.FINAL_PICK_BN_BATCHES': 1}))
    text = (tmp_path / 'demo_search' / 'best_arch.yaml').read_text()
    assert result['board'] == [] and result['best_arch'] is not None
    assert text.startswith('# Best sampled path') and 'train prec1 n/a (sampled at the end)' in text
    cfg = load_config([str(tmp_path / 'demo_search' / 'best_arch.yaml')])
    assert build_child_from_cfg(cfg) is not None  # retrain.py's builder takes it
