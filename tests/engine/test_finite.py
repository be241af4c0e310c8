import os

import pytest
import torch

from lib.checkpoint.saver import LAST, RECOVERY, CheckpointSaver
from lib.engine.finite import DivergedError, check_loss_sum_finite, nonfinite_tensors


def checkpoint(epoch, poison=None):
    weights = {'a.weight': torch.ones(3), 'a.bias': torch.zeros(2), 'bn.num_batches_tracked': torch.tensor(4)}
    optimizer = {'state': {0: {'momentum_buffer': torch.ones(3)}}, 'param_groups': [{'lr': 0.1, 'params': [0]}]}
    result = {'epoch': epoch, 'step_in_epoch': 2, 'state_dict': weights, 'optimizer': optimizer,
              'state_dict_ema': {k: v.clone() for k, v in weights.items()}}
    if poison is not None:
        key, name, value = poison
        tensor = result[key][name] if key != 'optimizer' else result[key]['state'][0][name]
        tensor[0] = value
    return result


@pytest.mark.parametrize('poison, name', [(('state_dict', 'a.weight', float('nan')), 'state_dict.a.weight'),
                                          (('state_dict_ema', 'a.bias', float('inf')), 'state_dict_ema.a.bias'),
                                          (('optimizer', 'momentum_buffer', float('-inf')),
                                           'optimizer.state.0.momentum_buffer')])
def test_nonfinite_tensors_names_each_poisoned_entry(poison, name):
    assert nonfinite_tensors(checkpoint(0)) == ([], 5)
    assert nonfinite_tensors(checkpoint(0, poison)) == ([name], 5)


def test_the_saver_writes_no_nonfinite_checkpoint_and_keeps_the_good_ones(tmp_path):
    saver = CheckpointSaver(str(tmp_path), max_history=2, higher_is_better=True)
    saver.save_epoch(checkpoint(0), 0, *saver.record(10.0, 0))
    good = {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)}
    poisoned = checkpoint(1, ('state_dict', 'a.weight', float('nan')))
    with pytest.raises(DivergedError, match=r'diverged at epoch 1 step 2: 1 of 5 tensors .*state_dict\.a\.weight.*'
                                            r'last\.pth\.tar was not written.*lower LR'):
        saver.save_epoch(poisoned, 1, *saver.record(20.0, 1))
    with pytest.raises(DivergedError, match='recovery.pth.tar was not written'):
        saver.save_recovery(poisoned)
    assert {name: (tmp_path / name).read_bytes() for name in os.listdir(tmp_path)} == good  # every byte kept
    assert not (tmp_path / RECOVERY).exists() and (tmp_path / LAST).exists()


def test_a_nonfinite_running_loss_sum_stops_with_the_fix():
    check_loss_sum_finite(12.5, 0, 3)
    with pytest.raises(FloatingPointError, match='epoch 2 step 7: the training diverged; lower LR'):
        check_loss_sum_finite(float('nan'), 2, 7)
