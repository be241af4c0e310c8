"""Putting a chosen checkpoint back (``lib.checkpoint.resume`` chooses it): weights, EMA, optimizer, schedule,
scaler, best-epoch history and where to continue (``apply_resume``); a new LR for the rest of the run
(``rescale_lr``, after a divergence); this rank's RNG states right before training goes on
(``restore_rank_rng``); a search's meta-matching network, board and sampler (``load_search_state``)."""
import logging
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import torch

from lib.checkpoint.files import StateDictMismatchError
from lib.checkpoint.format import SEARCH_FORMAT, Position, is_training_checkpoint, restore_rng_state
from lib.checkpoint.resume import ResumeError
from lib.checkpoint.saver import CheckpointSaver
from lib.checkpoint.weights import check_state_dict, extract_state_dict
from lib.engine.distributed import DistContext


@dataclass
class ResumePoint:
    position: Position
    source: str
    rng_state: Optional[Dict[str, Any]]  # this rank's; restore right before training continues
    epoch_totals: Optional[torch.Tensor]  # this rank's sums of the epoch in progress, mid-epoch only
    evaluation: Optional[Dict[str, Any]] = None  # the finished epoch's (lib.train.loop.Evaluation), end of epoch only


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
    ours = is_training_checkpoint(checkpoint)
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
    evaluation = None
    if step >= saved_steps:  # an end-of-epoch checkpoint: the next epoch starts afresh
        position = Position(epoch=epoch + 1, step_in_epoch=0, global_step=int(checkpoint['global_step']))
        totals, evaluation = None, checkpoint.get('evaluation')
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
                       epoch_totals=totals, evaluation=evaluation)


def rescale_lr(optimizer: torch.optim.Optimizer, scheduler, factor: float, groups: Optional[Sequence[int]] = None
               ) -> None:
    """Multiply every learning rate of the param groups ``groups`` (all: None) by ``factor``: the current one and
    all the schedule will give (``scheduler``: an ``lib.train.schedule.LRSchedule``). For a run resumed with
    another LR than it was trained with."""
    indices = list(range(len(optimizer.param_groups)) if groups is None else groups)
    for i in indices:
        group = optimizer.param_groups[i]
        for key in ('lr', 'initial_lr'):
            if key in group:
                group[key] *= factor
    scheduler.rescale(factor, indices)


def _step_scheduler_to(scheduler, position: Position) -> None:
    if scheduler is not None:
        scheduler.jump_to(position)


def restore_rank_rng(resume_point: Optional[ResumePoint]) -> None:
    """Put this rank's RNG states back; call as the last thing before training continues."""
    if resume_point is not None and resume_point.rng_state is not None:
        restore_rng_state(resume_point.rng_state)


def _restore_zero_grads(module, names) -> None:
    params = dict(module.named_parameters())
    for name in names:
        params[name].grad = torch.zeros_like(params[name])


def load_search_state(checkpoint: Dict[str, Any], source: str, *, search_space: Dict[str, Any], supernet, mmn,
                       board, path_sampler, device, rank: int = 0) -> None:
    """Check that ``checkpoint`` belongs to this search, then restore MMN, board (with this ``rank``'s own probes
    when the checkpoint holds every rank's: it was trained by as many processes, ``check_world_size``) and path
    sampler."""
    if not isinstance(checkpoint, dict) or checkpoint.get('search_format') != SEARCH_FORMAT:
        raise ResumeError(f'{source} is not a search checkpoint written by train.py; point RESUME_PATH at the '
                          'last.pth.tar or recovery.pth.tar of a search (or empty it to use the run folder\'s)')
    saved = checkpoint['search_space']
    for key in ('layers_per_stage', 'resolution'):
        if saved[key] != search_space[key]:
            raise ResumeError(f'{source} searched a space with {key} {saved[key]}, but this config gives '
                              f'{search_space[key]}; resume with the same SUPERNET.FLOPS_MINIMUM/MAXIMUM')
    try:
        mmn.load_state_dict(checkpoint['mmn'])
        board.load_state_dict(checkpoint['board'], device=device)
        rank_probes = [(state.get('extra') or {}).get('board_probes') for state in checkpoint.get('rank_states') or []]
        if rank < len(rank_probes) and all(probes is not None for probes in rank_probes):
            board.load_probes(rank_probes[rank], device=device)
    except (RuntimeError, ValueError) as err:
        raise ResumeError(f'cannot continue the search in {source}: {err}') from None
    path_sampler.load_state_dict(checkpoint['path_sampler'])
    with_grad = checkpoint.get('params_with_grad', {})
    try:
        _restore_zero_grads(supernet, with_grad.get('supernet', ()))
        _restore_zero_grads(mmn, with_grad.get('mmn', ()))
    except KeyError as err:
        raise ResumeError(f'{source} names a parameter {err} this supernet does not have; resume with the '
                          'config the search started with') from None
