import os

import torch

from lib.checkpoint.saver import BEST, LAST, RECOVERY, CheckpointSaver


def _epoch_of(path):
    return torch.load(path, weights_only=True)['epoch']


def _files(folder):
    return sorted(n for n in os.listdir(folder) if not n.startswith('.'))


def test_top_n_by_metric_with_best_and_pruning(tmp_path):
    saver = CheckpointSaver(str(tmp_path), max_history=2, higher_is_better=True)
    for epoch, metric in enumerate([10.0, 30.0, 20.0, 25.0, 5.0]):
        is_best, kept = saver.record(metric, epoch)
        saver.save_epoch({'epoch': epoch}, epoch, is_best, kept)
    assert saver.history == [(30.0, 1), (25.0, 3)]
    assert _files(tmp_path) == sorted([BEST, LAST, 'checkpoint-1.pth.tar', 'checkpoint-3.pth.tar'])
    assert _epoch_of(tmp_path / BEST) == 1 and _epoch_of(tmp_path / LAST) == 4
    assert _epoch_of(tmp_path / 'checkpoint-3.pth.tar') == 3

    restored = CheckpointSaver(str(tmp_path), max_history=2, higher_is_better=True)
    restored.load_state_dict(saver.state_dict())
    assert restored.history == saver.history


def test_loss_ranks_lower_first_and_the_epoch_file_drops_the_recovery(tmp_path):
    saver = CheckpointSaver(str(tmp_path), max_history=1, higher_is_better=False)
    saver.save_recovery({'epoch': 0, 'step_in_epoch': 3})
    assert (tmp_path / RECOVERY).exists()
    assert saver.record(2.0, 0) == (True, True)
    saver.save_epoch({'epoch': 0}, 0, True, True)
    assert not (tmp_path / RECOVERY).exists()
    assert saver.record(3.0, 1) == (False, False)
    saver.save_epoch({'epoch': 1}, 1, False, False)
    assert saver.best == (2.0, 0) and _epoch_of(tmp_path / BEST) == 0
    assert _files(tmp_path) == sorted([BEST, LAST, 'checkpoint-0.pth.tar'])


def test_stale_epoch_files_of_an_earlier_run_are_pruned_and_other_ranks_write_nothing(tmp_path):
    (tmp_path / 'checkpoint-7.pth.tar').write_bytes(b'old')
    CheckpointSaver(str(tmp_path), max_history=0, higher_is_better=True, is_main=False).save_epoch(
        {'epoch': 0}, 0, True, False)
    assert _files(tmp_path) == ['checkpoint-7.pth.tar']
    saver = CheckpointSaver(str(tmp_path), max_history=0, higher_is_better=True)
    is_best, kept = saver.record(1.0, 0)
    assert (is_best, kept) == (True, False)
    saver.save_epoch({'epoch': 0}, 0, is_best, kept)
    assert _files(tmp_path) == sorted([BEST, LAST])
