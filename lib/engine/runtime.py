"""What every entry script does first: arguments, config, process group, run folder, logs, seeds.

Nothing is written, and no run folder created, before the config is valid and the script's preflight (its
cheap checks of what set-up would find wrong later: the FLOPs budget, the LR schedule, the data folder) has
passed on every rank; then the main rank locks and checks the run folder (``lib.engine.run_folder``). Every
rank learns the first problem any rank met and stops with it, so that none starts working alone. A restart by
torchrun continues the run (AUTO_RESUME True).
config.yaml is written by ``Run.save_config`` once the script's own set-up has passed."""
import argparse
import logging
import os
import random
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
import torch
from yacs.config import CfgNode

from lib import comm
from lib.comm import all_gather_object
from lib.config import load_config, save_config
from lib.engine.distributed import DistContext, init_distributed
from lib.engine.logger import setup_logging
from lib.engine.run_folder import RunFolderError, prepare_run_dir
from lib.engine.run_lock import RunLock
from lib.errors import CreamError


@dataclass
class Run:
    cfg: CfgNode
    dist: DistContext
    run_dir: str
    logger: object
    lock: Optional[RunLock] = None  # the run folder's, held by the main rank until the run ends

    def save_config(self) -> None:
        """Write config.yaml (main rank). The scripts call it once their set-up has passed, so that a run
        stopped by a bad value, or a resume refused, leaves the folder's config.yaml as it was."""
        if self.dist.is_main:
            save_config(self.cfg, os.path.join(self.run_dir, 'config.yaml'))


def parse_args(description: str, argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=description,
        epilog='Trailing KEY VALUE pairs override the config, e.g. DATASET.BATCH_SIZE 64 MODEL_SELECTION 43')
    parser.add_argument('--cfg', action='append', default=[], metavar='FILE',
                        help='yaml config; repeat to layer several (later ones win)')
    # torch.distributed.launch passes one of these; torchrun sets LOCAL_RANK instead.
    parser.add_argument('--local-rank', '--local_rank', dest='local_rank', type=int, default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument('opts', nargs=argparse.REMAINDER, metavar='KEY VALUE', help='config overrides')
    return parser.parse_args(argv)


def run_dir_of(cfg: CfgNode) -> str:
    """SAVE_PATH/MODEL (the original's SAVE_PATH is the parent; its MMDD- date prefix is left out so that
    AUTO_RESUME finds the folder again on another day)."""
    return os.path.join(cfg.SAVE_PATH, cfg.MODEL)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _resume_after_torchrun_restart(cfg: CfgNode, script: str) -> Optional[str]:
    """On a restart by torchrun (``--max-restarts``): AUTO_RESUME True and OVERWRITE False, so that the workers
    continue the run of the first start instead of refusing its folder (or deleting it); the line to log, or None.
    Every rank takes part (a collective): torchrun counts restarts per node, and a node whose worker did not fail
    restarts with a count of 0."""
    restarts = max(all_gather_object(int(os.environ.get('TORCHELASTIC_RESTART_COUNT') or 0)))
    if script == 'test' or restarts == 0 or (cfg.AUTO_RESUME and not cfg.OVERWRITE):
        return None
    cfg.defrost()
    cfg.AUTO_RESUME, cfg.OVERWRITE = True, False
    cfg.freeze()
    return (f'torchrun restarted this job (restart {restarts} of {os.environ.get("TORCHELASTIC_MAX_RESTARTS", "?")}): '
            'AUTO_RESUME True and OVERWRITE False, to continue from the newest checkpoint of the run folder')


def _open_run_folder(cfg: CfgNode, dist_ctx: DistContext, run_dir: str, script: str,
                     preflight: Optional[Callable[[CfgNode], None]]):
    """(lock or None, notes to log): the preflight on every rank, the run folder on the main one; every rank
    raises the first problem any rank met (a collective: it also replaces a barrier)."""
    mine: Optional[Exception] = None
    lock, notes = None, []
    try:
        if preflight is not None:
            preflight(cfg)
        if dist_ctx.is_main:
            lock, notes = prepare_run_dir(cfg, run_dir, script)
    except Exception as err:  # a crash too: the other ranks must not wait for this one in a collective
        mine = err
    shared = None if mine is None else (isinstance(mine, RunFolderError), str(mine) if isinstance(mine, CreamError)
                                        else f'rank {dist_ctx.rank} failed in set-up ({type(mine).__name__}: {mine})')
    problems = all_gather_object(shared)
    first = next((problem for problem in problems if problem is not None), None)
    if first is not None:
        if lock is not None:
            lock.release()
        if mine is not None:
            raise mine
        folder_problem, text = first
        raise RunFolderError(text) if folder_problem else CreamError(text)
    return lock, notes


def setup_run(script: str, description: str, argv: Optional[List[str]] = None, log_name: str = '',
              preflight: Optional[Callable[[CfgNode], None]] = None) -> Run:
    """Parse ``argv``, build the frozen config, join the process group, run ``preflight(cfg)`` (CreamError for
    what set-up would refuse later) and lock and open the run folder."""
    args = parse_args(description, argv)
    with warnings.catch_warnings(record=True) as config_warnings:  # logged once the log is open
        warnings.simplefilter('always')
        cfg = load_config(args.cfg, args.opts)
    dist_ctx = init_distributed(cfg.DEVICE, cfg.DIST_BACKEND, args.local_rank, cfg.DIST_INIT_TIMEOUT)
    cfg.defrost()
    cfg.LOCAL_RANK = dist_ctx.local_rank
    cfg.freeze()
    run_dir = run_dir_of(cfg)
    lock = None
    try:
        restart_note = _resume_after_torchrun_restart(cfg, script)
        lock, notes = _open_run_folder(cfg, dist_ctx, run_dir, script, preflight)
        if restart_note is not None:
            notes.insert(0, (logging.WARNING, restart_note))
        logger = setup_logging(run_dir, dist_ctx.rank, log_name or f'{script}.log', cfg.VERBOSE)
        for level, note in notes:
            logger.log(level, '%s', note)
        logger.info('%s: %d process(es), this one rank %d on %s; run folder %s',
                    script, dist_ctx.world_size, dist_ctx.rank, dist_ctx.device, run_dir)
        for warning in config_warnings:
            logger.warning('%s', warning.message)
        logger.info('config:\n%s', cfg.dump())
        if cfg.DETERMINISTIC:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif cfg.BENCHMARK_MODE and dist_ctx.device.type == 'cuda':
            torch.backends.cudnn.benchmark = True
        seed_everything(cfg.SEED)
    except BaseException:
        if lock is not None:
            lock.release()
        comm.destroy_process_group(synchronize=False)  # no run: leave no process group behind either
        raise
    return Run(cfg=cfg, dist=dist_ctx, run_dir=run_dir, logger=logger, lock=lock)
