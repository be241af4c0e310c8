"""train.py end to end with configs/demo/train_recommended.yaml (fair sampling, the FLOPs budget's redraws, the
held-out board admission, on top of every correction) on tiny generated data: the run and its exact resume."""
import pytest
import torch

import train
from lib.config import load_config
from tests.support.demo_search import Stop, StopAt, board_entries, search_argv, summary_rows


@pytest.fixture(scope='module')
def data(demo_data):
    return demo_data(classes=3, train=4, val=2, size=32)


def argv(repo_root, out, data, **extra):
    return search_argv(repo_root, out, data, config='configs/demo/train_recommended.yaml', **extra)


def run_once(args, hooks=()):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the thread count changes float sums
    try:
        return train.main(args, hooks=hooks)
    finally:
        torch.set_num_threads(threads)


def test_recommended_search_runs_and_resumes_exactly(repo_root, data, tmp_path):
    whole = tmp_path / 'whole'
    result = run_once(argv(repo_root, whole, data, RECOVERY_INTERVAL=2, **{'SUPERNET.FINAL_PICK_SAMPLES': 3}))
    whole_dir = whole / 'demo_search_recommended'
    cfg = load_config([str(whole_dir / 'config.yaml')])
    assert (cfg.SUPERNET.HOW_TO_PROB, cfg.SUPERNET.SAMPLE_WITHIN_BUDGET, cfg.SUPERNET.BOARD_ADMISSION) == \
        ('fair', True, 'val_batch')
    assert result['board'] and (whole_dir / 'best_arch.yaml').is_file()
    assert 'SUPERNET.SAMPLE_WITHIN_BUDGET: paths outside the FLOPs budget' in (whole_dir / 'train.log').read_text()

    resumed = tmp_path / 'resumed'
    args = argv(repo_root, resumed, data, RECOVERY_INTERVAL=2, AUTO_RESUME=True,
                **{'SUPERNET.FINAL_PICK_SAMPLES': 3})
    with pytest.raises(Stop):
        run_once(args, hooks=[StopAt(epoch=1, step=2)])  # right after the recovery checkpoint of step 2: mid fair round
    run_once(args)
    run_dir = resumed / 'demo_search_recommended'
    assert summary_rows(run_dir) == summary_rows(whole_dir)
    assert board_entries(run_dir) == board_entries(whole_dir)
    last = torch.load(run_dir / 'last.pth.tar', map_location='cpu', weights_only=True)
    reference = torch.load(whole_dir / 'last.pth.tar', map_location='cpu', weights_only=True)
    for name, value in reference['state_dict'].items():
        assert torch.equal(last['state_dict'][name], value), name
    assert last['path_sampler']['fair_position'] == reference['path_sampler']['fair_position']
    assert torch.equal(last['path_sampler']['fair_round'], reference['path_sampler']['fair_round'])
