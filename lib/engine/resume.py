"""Resuming a retraining run: what a checkpoint holds beyond the weights, and putting it back.

A checkpoint written by retrain.py holds, next to the released-format keys, the scheduler, the AMP
scaler, the position (``epoch``, ``step_in_epoch`` of ``steps_per_epoch``, ``global_step``), every
rank's RNG states (and, mid-epoch, its running loss/accuracy sums), the top-N history and the config
as yaml. Everything is tensors, numbers, strings and lists, so ``torch.load(weights_only=True)`` reads it.
"""
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
import torch.distributed as tdist

from lib.config import RESUME_MAY_CHANGE
from lib.engine.checkpoint import (CheckpointError, StateDictMismatchError, capture_rng_state, check_state_dict,
                                   config_to_dict, extract_state_dict, load_checkpoint_file, restore_rng_state)
from lib.engine.checkpoint_saver import BEST, EPOCH_FILE_PATTERN, LAST, RECOVERY, CheckpointSaver, epoch_file
from lib.engine.distributed import DistContext, broadcast_object
from lib.engine.finite import describe_nonfinite, nonfinite_tensors


class ResumeError(CheckpointError):
    """A checkpoint that cannot be resumed (missing, unreadable, or from an incompatible run)."""


@dataclass
class Position:
    epoch: int = 0  # the epoch to run (or the one in progress)
    step_in_epoch: int = 0  # batches of it already trained
    global_step: int = 0  # optimizer updates so far


@dataclass
class ResumePoint:
    position: Position
    source: str
    rng_state: Optional[Dict[str, Any]]  # this rank's; restore right before training continues
    epoch_totals: Optional[torch.Tensor]  # this rank's sums of the epoch in progress, mid-epoch only


# -- writing ---------------------------------------------------------------------------------------
def gather_rank_states(epoch_totals: Optional[torch.Tensor] = None) -> List[Dict[str, Any]]:
    """Every rank's RNG states (and running epoch sums), indexed by rank. A collective: call on all ranks."""
    mine = {'rng': capture_rng_state(),
            'epoch_totals': epoch_totals.detach().cpu() if epoch_totals is not None else None}
    if not (tdist.is_available() and tdist.is_initialized()):
        return [mine]
    states: List[Any] = [None] * tdist.get_world_size()
    tdist.all_gather_object(states, mine)
    return states


def resume_extras(*, position: Position, steps_per_epoch: int, scheduler, scaler, saver: CheckpointSaver,
                  rank_states: List[Dict[str, Any]], cfg) -> Dict[str, Any]:
    """The keys a retrain checkpoint adds to the released format (see ``make_checkpoint(extra=...)``)."""
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


# -- choosing --------------------------------------------------------------------------------------
def _is_retrain_checkpoint(checkpoint: Any) -> bool:
    return isinstance(checkpoint, dict) and 'global_step' in checkpoint and 'step_in_epoch' in checkpoint


def _problem(checkpoint: Any) -> Optional[str]:
    """Why a loaded run-folder checkpoint cannot be resumed, or None."""
    if not _is_retrain_checkpoint(checkpoint):
        return 'it lacks the resume state train.py and retrain.py write'
    bad, total = nonfinite_tensors(checkpoint)
    return describe_nonfinite(bad, total) if bad else None


def _load_explicit(path: str) -> Dict[str, Any]:
    try:
        checkpoint = load_checkpoint_file(path)
    except CheckpointError as err:
        raise ResumeError(f'cannot resume from RESUME_PATH {path!r}: {err}. Fix RESUME_PATH, or empty it '
                          'to resume from the run folder\'s own checkpoints') from None
    if not isinstance(checkpoint, dict):
        raise ResumeError(f'RESUME_PATH {path!r} is not a checkpoint dict')
    bad, total = nonfinite_tensors(checkpoint)
    if bad:
        raise ResumeError(f'cannot resume from RESUME_PATH {path!r}: {describe_nonfinite(bad, total)} (a diverged '
                          'run). Point RESUME_PATH at an earlier checkpoint of that run')
    return checkpoint


def _fallbacks(run_dir: str) -> List[str]:
    """checkpoint-<epoch> files, newest epoch first, then best.pth.tar: older, but good, when last is not."""
    names = os.listdir(run_dir) if os.path.isdir(run_dir) else []
    epochs = sorted((int(m.group(1)) for m in map(EPOCH_FILE_PATTERN.match, names) if m), reverse=True)
    return [epoch_file(e) for e in epochs] + [BEST]


def _choose_in_run_dir(run_dir: str, logger: logging.Logger) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """The newest good checkpoint of ``run_dir``: the further (by training progress) of last and recovery,
    else the newest checkpoint-<epoch>, else best. Unreadable and non-finite ones are skipped with a warning;
    when some exist but none is good, ResumeError (a fresh start would overwrite them)."""
    skipped: List[str] = []

    def usable(name: str):
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            return None
        try:
            checkpoint = load_checkpoint_file(path)
        except CheckpointError as err:
            problem = str(err)
        else:
            problem = _problem(checkpoint)
            if problem is None:
                return path, checkpoint
        logger.warning('AUTO_RESUME: skipping %s: %s', path, problem)
        skipped.append(f'{name} ({problem})')
        return None

    newest = [found for found in map(usable, (LAST, RECOVERY)) if found is not None]
    chosen = max(newest, key=lambda f: (f[1]['global_step'], f[0].endswith(LAST)), default=None)
    if chosen is None:
        chosen = next((found for found in map(usable, _fallbacks(run_dir)) if found is not None), None)
    if chosen is None:
        if skipped:
            raise ResumeError(
                f'AUTO_RESUME: no checkpoint of {run_dir} can be resumed: {"; ".join(skipped)}. Nothing was '
                'changed; move the bad files away, or set AUTO_RESUME False and OVERWRITE True to start afresh')
        logger.info('AUTO_RESUME: no checkpoint in %s yet; starting from epoch 0', run_dir)
        return None, None
    if skipped:
        logger.warning('AUTO_RESUME: resuming from %s, the newest good checkpoint of %s', chosen[0], run_dir)
    return chosen


def _flatten(tree: Any, prefix: str = '') -> Dict[str, Any]:
    if isinstance(tree, Mapping):
        flat: Dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f'{prefix}{key}.'))
        return flat
    return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def config_differences(saved: Mapping[str, Any], cfg) -> List[str]:
    """'KEY (checkpoint A, now B)' for every key outside RESUME_MAY_CHANGE that both configs hold and differ in."""
    before, now = _flatten(saved), _flatten(config_to_dict(cfg))
    may_change = tuple(RESUME_MAY_CHANGE)
    return [f'{key} (checkpoint {before[key]!r}, now {now[key]!r})' for key in sorted(before.keys() & now.keys())
            if not any(key == k or key.startswith(k + '.') for k in may_change) and before[key] != now[key]]


def check_resume_config(checkpoint: Dict[str, Any], source: str, cfg) -> None:
    """ResumeError naming the keys when the config differs from the one ``checkpoint`` was trained with."""
    if not _is_retrain_checkpoint(checkpoint) or not isinstance(checkpoint.get('args'), Mapping):
        return  # a released-format checkpoint: its config is the original's, not ours
    differences = config_differences(checkpoint['args'], cfg)
    if differences:
        shown = '; '.join(differences[:8]) + (f'; ... ({len(differences)} keys)' if len(differences) > 8 else '')
        raise ResumeError(
            f'cannot resume from {source}: this config differs from the one that run was trained with in {shown}. '
            'A resumed run continues its own recipe: set those keys back, or start a new run (another MODEL, or '
            f'OVERWRITE True). Keys that may change on resume: {", ".join(RESUME_MAY_CHANGE)}')


def find_resume_checkpoint(cfg, run_dir: str, dist_ctx: DistContext,
                           logger: logging.Logger) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """(path, loaded checkpoint) to continue from, or (None, None) for a fresh start. Call on all ranks.

    RESUME_PATH when set (missing, unreadable or non-finite: ResumeError); else the run folder's newest
    good checkpoint (see ``_choose_in_run_dir``). The main rank chooses; every rank then reads the chosen
    file. A checkpoint whose config differs from ``cfg`` beyond RESUME_MAY_CHANGE is a ResumeError.
    """
    if not cfg.AUTO_RESUME:
        if cfg.RESUME_PATH:
            logger.info('RESUME_PATH is set but AUTO_RESUME is False: not resuming (as the original)')
        return None, None
    if cfg.RESUME_PATH:
        path, checkpoint = cfg.RESUME_PATH, _load_explicit(cfg.RESUME_PATH)
    else:
        path, checkpoint, problem = None, None, None
        if dist_ctx.is_main:
            try:
                path, checkpoint = _choose_in_run_dir(run_dir, logger)
            except ResumeError as err:
                problem = str(err)
        path, problem = broadcast_object((path, problem))  # every rank takes the same file, or stops alike
        if problem is not None:
            raise ResumeError(problem)
        if path is not None and checkpoint is None:  # the other ranks read the file rank 0 chose
            checkpoint = load_checkpoint_file(path)
    if checkpoint is not None:
        check_resume_config(checkpoint, path, cfg)
    return path, checkpoint


# -- applying --------------------------------------------------------------------------------------
def _this_rank_state(checkpoint: Dict[str, Any], dist_ctx: DistContext) -> Optional[Dict[str, Any]]:
    states = checkpoint.get('rank_states') or []
    if len(states) != dist_ctx.world_size:
        return None
    return states[dist_ctx.rank]


def _check_fits(model: torch.nn.Module, state_dict, checkpoint: Dict[str, Any], source: str) -> None:
    try:
        check_state_dict(model, state_dict, source=source)
    except StateDictMismatchError as err:
        raise ResumeError(
            f'cannot resume from {source}: it holds the weights of another network (arch {checkpoint.get("arch")!r}) '
            f'than this config builds ({err}). Resume with the MODEL_SELECTION / INPUT_ARCH / DATASET.NUM_CLASSES '
            'it was trained with, or point RESUME_PATH at a checkpoint of this network') from None


def apply_resume(checkpoint: Dict[str, Any], source: str, *, model: torch.nn.Module, optimizer, scheduler,
                 scaler, ema, saver: CheckpointSaver, steps_per_epoch: int, dist_ctx: DistContext,
                 logger: logging.Logger) -> ResumePoint:
    """Load weights, EMA, optimizer, scheduler, scaler and history; return where to continue.

    ``model`` is the bare network (not yet DDP-wrapped). A released-format checkpoint (no resume
    state) gives weights, EMA, optimizer and the epoch only.
    """
    state_dict, _ = extract_state_dict(checkpoint, use_ema=False)
    _check_fits(model, state_dict, checkpoint, source)
    model.load_state_dict(state_dict)
    if ema is not None:
        if checkpoint.get('state_dict_ema') is not None:
            ema_state, _ = extract_state_dict({'state_dict_ema': checkpoint['state_dict_ema']})
            _check_fits(ema.module, ema_state, checkpoint, source)
            ema.module.load_state_dict(ema_state)
        else:
            logger.warning('%s has no EMA weights: the EMA restarts from the loaded weights', source)
            ema.module.load_state_dict(model.state_dict())
    ours = _is_retrain_checkpoint(checkpoint)
    optimizer_loaded = False
    if checkpoint.get('optimizer') is not None:
        try:
            optimizer.load_state_dict(checkpoint['optimizer'])
            optimizer_loaded = True
        except (ValueError, KeyError) as err:
            problem = (f'the optimizer state in {source} does not fit OPT {type(optimizer).__name__} '
                       f'and this network ({err})')
            if ours:
                raise ResumeError(f'{problem}; resume with the OPT the run was started with') from None
            logger.warning('%s: the optimizer starts fresh', problem)

    if not ours:
        epoch = int(checkpoint.get('epoch', -1)) + 1
        logger.warning('%s is not a retrain.py checkpoint: continuing at epoch %d with its weights%s; '
                       'scheduler position, RNG and top-N history start fresh', source, epoch,
                       ' and optimizer state' if optimizer_loaded else '')
        position = Position(epoch=epoch, step_in_epoch=0, global_step=epoch * steps_per_epoch)
        _step_scheduler_to(scheduler, position)
        return ResumePoint(position, source, rng_state=None, epoch_totals=None)

    if scheduler is not None and checkpoint.get('scheduler') is not None:
        scheduler.load_state_dict(checkpoint['scheduler'])
    if scaler is not None and scaler.is_enabled() and checkpoint.get('scaler') is not None:
        scaler.load_state_dict(checkpoint['scaler'])
    if checkpoint.get('best_history'):
        saver.load_state_dict(checkpoint['best_history'])

    epoch, step = int(checkpoint['epoch']), int(checkpoint['step_in_epoch'])
    saved_steps = int(checkpoint['steps_per_epoch'])
    rank_state = _this_rank_state(checkpoint, dist_ctx)
    if step >= saved_steps:  # an end-of-epoch checkpoint: the next epoch starts afresh
        position = Position(epoch=epoch + 1, step_in_epoch=0, global_step=int(checkpoint['global_step']))
        totals = None
    else:
        if saved_steps != steps_per_epoch or rank_state is None:
            raise ResumeError(
                f'{source} was saved mid-epoch by {checkpoint.get("world_size")} process(es) with '
                f'{saved_steps} steps per epoch; this run has {dist_ctx.world_size} process(es) and '
                f'{steps_per_epoch} steps per epoch, so the epoch cannot be continued. Resume with the same '
                'world size, batch size and data, or set RESUME_PATH to the last.pth.tar of that run')
        position = Position(epoch=epoch, step_in_epoch=step, global_step=int(checkpoint['global_step']))
        totals = rank_state.get('epoch_totals')
    if rank_state is None:
        logger.warning('%s was written by %s process(es), this run has %d: RNG states are not restored, '
                       'so augmentation draws will differ from an uninterrupted run', source,
                       checkpoint.get('world_size'), dist_ctx.world_size)
    # The optimizer state restored the exact LR of the saved step; the scheduler needs no stepping.
    logger.info('resuming from %s: epoch %d, step %d of %d (global step %d)', source, position.epoch,
                position.step_in_epoch, steps_per_epoch, position.global_step)
    return ResumePoint(position, source, rng_state=rank_state['rng'] if rank_state else None,
                       epoch_totals=totals)


def _step_scheduler_to(scheduler, position: Position) -> None:
    # timm schedules are functions of their counter: this sets the LR of that point, as timm's train does.
    if scheduler is not None:
        scheduler.step(position.epoch)
        scheduler.step_update(position.global_step)


def restore_rank_rng(resume_point: Optional[ResumePoint]) -> None:
    """Put this rank's RNG states back; call as the last thing before training continues."""
    if resume_point is not None and resume_point.rng_state is not None:
        restore_rng_state(resume_point.rng_state)
