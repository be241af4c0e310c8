"""Resuming a run (search or retraining): which checkpoint to continue from, and whether it belongs to this run.

A checkpoint of train.py or retrain.py (``lib.checkpoint.format``) holds the position, every rank's RNG
states and the config it was trained with; ``find_resume_checkpoint`` picks RESUME_PATH or the run folder's
newest good file and refuses one whose config differs. A good file is readable, finite, and was written while
the training loss was healthy (``lib.engine.finite.loss_health_problem``): after a divergence, AUTO_RESUME goes
back to before the loss exploded. ``lib.checkpoint.restore`` puts it back.
"""
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from lib import comm
from lib.checkpoint.files import CheckpointError, config_to_dict, load_checkpoint_file
from lib.checkpoint.format import is_training_checkpoint
from lib.checkpoint.saver import BEST, EPOCH_FILE_PATTERN, LAST, RECOVERY, epoch_file
from lib.config.table import RESUME_MAY_CHANGE, may_change_on_resume
from lib.engine.distributed import DistContext
from lib.engine.finite import describe_nonfinite, loss_health_problem, nonfinite_tensors


_QUIET = logging.getLogger('cream.resume_choice')  # for looking without resuming: no "AUTO_RESUME:" lines
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())


class ResumeError(CheckpointError):
    """A checkpoint that cannot be resumed (missing, unreadable, or from an incompatible run)."""


# -- choosing --------------------------------------------------------------------------------------
def _problem(checkpoint: Any) -> Optional[str]:
    """Why a loaded run-folder checkpoint cannot be resumed, or None."""
    if not is_training_checkpoint(checkpoint):
        return 'it lacks the resume state train.py and retrain.py write'
    bad, total = nonfinite_tensors(checkpoint)
    if bad:
        return describe_nonfinite(bad, total)
    return loss_health_problem(checkpoint.get('loss_health'))


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


def describe_position(checkpoint: Dict[str, Any]) -> str:
    """'after epoch 3' or 'epoch 3, step 40 of 100', and the training loss it recorded."""
    epoch, step, steps = checkpoint.get('epoch'), checkpoint.get('step_in_epoch'), checkpoint.get('steps_per_epoch')
    where = f'after epoch {epoch}' if step is None or steps is None or step >= steps else \
        f'epoch {epoch}, step {step} of {steps}'
    loss = (checkpoint.get('loss_health') or {}).get('loss')
    return where + (f', training loss {loss:.4g}' if loss is not None else '')


def healthy_resume_choice(run_dir: str) -> Optional[str]:
    """'PATH (after epoch 3, training loss 1.2)': the checkpoint AUTO_RESUME would continue from, or None."""
    try:
        path, checkpoint = _choose_in_run_dir(run_dir, _QUIET)
    except ResumeError:
        return None
    return None if path is None else f'{path} ({describe_position(checkpoint)})'


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
    return [f'{key} (checkpoint {before[key]!r}, now {now[key]!r})' for key in sorted(before.keys() & now.keys())
            if not may_change_on_resume(key) and before[key] != now[key]]


def check_resume_config(checkpoint: Dict[str, Any], source: str, cfg) -> None:
    """ResumeError naming the keys when the config differs from the one ``checkpoint`` was trained with."""
    if not is_training_checkpoint(checkpoint) or not isinstance(checkpoint.get('args'), Mapping):
        return  # a released-format checkpoint: its config is the original's, not ours
    differences = config_differences(checkpoint['args'], cfg)
    if differences:
        shown = '; '.join(differences[:8]) + (f'; ... ({len(differences)} keys)' if len(differences) > 8 else '')
        raise ResumeError(
            f'cannot resume from {source}: this config differs from the one that run was trained with in {shown}. '
            'A resumed run continues its own recipe: set those keys back, or start a new run (another MODEL, or '
            f'OVERWRITE True). Keys that may change on resume: {", ".join(RESUME_MAY_CHANGE)}')


def check_world_size(checkpoint: Dict[str, Any], source: str, cfg, world_size: int) -> None:
    """ResumeError when ``checkpoint`` was trained by another number of processes than this run has.

    The global batch is DATASET.BATCH_SIZE per process times the processes, and a resumed run keeps its recipe (as
    it keeps DATASET.BATCH_SIZE): with another world size the batch, the steps per epoch and with them the LR
    schedule over steps, each process's share of the data and position in it, the RNG streams and a search's
    per-process board probes would all change midway. torchrun's elastic restarts (--nnodes MIN:MAX) come here
    when a node has left."""
    saved = checkpoint.get('world_size') if is_training_checkpoint(checkpoint) else None
    if saved is None or saved == world_size:
        return
    raise ResumeError(
        f'cannot resume from {source} on {world_size} process(es): it was trained by {saved} process(es) (a global '
        f'batch of {saved * cfg.DATASET.BATCH_SIZE} images per step), and a run continues on the world size it '
        f'started with. Start it again on {saved} process(es) (torchrun --nnodes x --nproc-per-node = {saved}), or '
        'start a new run (another MODEL) on this one')


def find_resume_checkpoint(cfg, run_dir: str, dist_ctx: DistContext,
                           logger: logging.Logger) -> Tuple[Optional[str], Optional[Dict[str, Any]]]:
    """(path, loaded checkpoint) to continue from, or (None, None) for a fresh start. Call on all ranks.

    RESUME_PATH when set (missing, unreadable or non-finite: ResumeError); else the run folder's newest
    good checkpoint (see ``_choose_in_run_dir``). The main rank chooses; every rank then reads the chosen
    file. A checkpoint whose config differs from ``cfg`` beyond RESUME_MAY_CHANGE, or that was trained by another
    number of processes, is a ResumeError.
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
        path, problem = comm.broadcast_object((path, problem))  # every rank takes the same file, or stops alike
        if problem is not None:
            raise ResumeError(problem)
        if path is not None and checkpoint is None:  # the other ranks read the file rank 0 chose
            checkpoint = load_checkpoint_file(path)
    if checkpoint is not None:
        check_resume_config(checkpoint, path, cfg)
        check_world_size(checkpoint, path, cfg, dist_ctx.world_size)
    return path, checkpoint
