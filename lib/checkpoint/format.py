"""What a checkpoint we write holds: assembled here, for retraining and for the search alike.

The released checkpoints' keys (``epoch``, ``arch``, ``state_dict``, ``state_dict_ema``, ``optimizer``,
``args``, ``version``, ``metric``), with the config as a plain nested dict so that the file loads with
``torch.load(weights_only=True)``; then the training state every run adds (``training_state``: LR
scheduler, AMP scaler, position in the run, every rank's RNG states and mid-epoch running sums, best-epoch
history, the config as yaml); then, for a search, ``search_state``: the meta-matching network, the board
with its probe tensors, the path sampler's generator, the search space it belongs to, and the names of
the parameters holding a gradient (under SUPERNET.STEP_ONLY_PATH False every parameter ever sampled keeps
a zero gradient and so takes every optimizer step: a resumed run must give them back their zero gradients
to continue exactly). Reading it back: ``lib.checkpoint.resume`` (which file) and ``lib.checkpoint.restore``.
"""
import random
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch

from lib import comm
from lib.checkpoint.files import config_to_dict
from lib.checkpoint.weights import unwrap_model

# The released files say 2; ours are a superset of that format.
CHECKPOINT_VERSION = 2
FORMAT_TAG = 'cream-reimpl-1'
SEARCH_FORMAT = 'cream-search-1'
SEARCH_ARCH_NAME = 'cream_supernet'


@dataclass
class Position:
    epoch: int = 0  # the epoch to run (or the one in progress)
    step_in_epoch: int = 0  # batches of it already trained
    global_step: int = 0  # optimizer updates so far


def make_checkpoint(model: torch.nn.Module, model_ema: Optional[torch.nn.Module] = None,
                    optimizer: Optional[torch.optim.Optimizer] = None, *, epoch: int, arch: Any,
                    cfg: Any = None, metric: Optional[float] = None,
                    extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A checkpoint dict in the released format family (plus whatever ``extra`` adds).

    ``arch`` is the model name or the path (list of lists); ``cfg`` a yacs config or dict, stored as a
    plain dict under ``args``; ``state_dict_ema`` is left out when there is no EMA model.
    """
    checkpoint = {
        'epoch': int(epoch),
        'arch': arch,
        'state_dict': unwrap_model(model).state_dict(),
        'optimizer': optimizer.state_dict() if optimizer is not None else None,
        'args': config_to_dict(cfg) if cfg is not None else None,
        'version': CHECKPOINT_VERSION,
        'format': FORMAT_TAG,
        'metric': float(metric) if metric is not None else None,
    }
    if model_ema is not None:
        checkpoint['state_dict_ema'] = unwrap_model(model_ema).state_dict()
    for key, value in (extra or {}).items():
        if key in checkpoint:
            raise ValueError(f"make_checkpoint: extra key '{key}' would overwrite a standard checkpoint key")
        checkpoint[key] = value
    return checkpoint


# -- the training state ------------------------------------------------------------------------------
def capture_rng_state() -> Dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) RNG states as tensors/lists, so no numpy pickle is needed."""
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state(legacy=True)
    state = {
        'python': random.getstate(),
        'numpy': [np_kind, torch.from_numpy(np_keys.astype(np.int64)), int(np_pos), int(np_has_gauss),
                  float(np_cached)],
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng_state`` (CUDA states only when CUDA is in use)."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    np_kind, np_keys, np_pos, np_has_gauss, np_cached = state['numpy']
    np.random.set_state((np_kind, np.asarray(np_keys, dtype=np.int64).astype(np.uint32), np_pos,
                         np_has_gauss, np_cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def gather_rank_states(epoch_totals: Optional[torch.Tensor] = None,
                       extra: Optional[Dict[str, Any]] = None) -> List[Dict[str, Any]]:
    """Every rank's RNG states (and running epoch sums, and the client's own per-rank state ``extra``), indexed by
    rank. A collective: call on all ranks."""
    mine = {'rng': capture_rng_state(),
            'epoch_totals': epoch_totals.detach().cpu() if epoch_totals is not None else None}
    if extra is not None:
        mine['extra'] = extra
    return comm.all_gather_object(mine)


def training_state(*, position: Position, steps_per_epoch: int, scheduler, scaler, saver,
                   rank_states: List[Dict[str, Any]], cfg) -> Dict[str, Any]:
    """The keys every checkpoint of train.py and retrain.py adds to the released format."""
    return {
        'step_in_epoch': position.step_in_epoch,
        'steps_per_epoch': steps_per_epoch,
        'global_step': position.global_step,
        'scheduler': scheduler.state_dict() if scheduler is not None else None,
        'scaler': scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        'rank_states': rank_states,
        'world_size': len(rank_states),
        'best_history': saver.state_dict(),
        'config_yaml': cfg.dump(),
    }


def is_training_checkpoint(checkpoint: Any) -> bool:
    """Written by train.py or retrain.py (it has the training state), not a released-format file."""
    return isinstance(checkpoint, dict) and 'global_step' in checkpoint and 'step_in_epoch' in checkpoint


# -- the search state --------------------------------------------------------------------------------
def search_space_record(space) -> Dict[str, Any]:
    return {'layers_per_stage': [int(n) for n in space.layers_per_stage], 'resolution': int(space.resolution)}


def _names_with_grad(module) -> list:
    return [name for name, param in module.named_parameters() if param.grad is not None]


def search_state(*, space, supernet, mmn, board, path_sampler) -> Dict[str, Any]:
    """The keys a search checkpoint adds to the training state."""
    return {
        'search_format': SEARCH_FORMAT,
        'search_space': search_space_record(space),
        'mmn': mmn.state_dict(),
        'board': board.state_dict(),
        'path_sampler': path_sampler.state_dict(),
        'params_with_grad': {'supernet': _names_with_grad(supernet), 'mmn': _names_with_grad(mmn)},
    }


def run_checkpoint(session, position: Position, metric: Optional[float], rank_states, *, model, ema, arch,
                   extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The checkpoint of a training session (retraining or search) at ``position``: the released keys, the
    training state and ``extra`` (a search's ``search_state``)."""
    state = training_state(position=position, steps_per_epoch=session.steps_per_epoch, scheduler=session.scheduler,
                           scaler=session.scaler, saver=session.saver, rank_states=rank_states, cfg=session.cfg)
    state.update(extra or {})
    return make_checkpoint(model, ema, session.optimizer, epoch=position.epoch, arch=arch, cfg=session.cfg,
                           metric=metric, extra=state)
