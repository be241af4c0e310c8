"""What every entry script does first: arguments, config, process group, run folder, logs, seeds.

Nothing is written before the config is valid and the run folder checked (``lib.engine.run_folder``);
config.yaml is written by ``Run.save_config`` once the script's own set-up has passed."""
import argparse
import os
import random
import warnings
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
from yacs.config import CfgNode

from lib.comm import broadcast_object
from lib.config import load_config, save_config
from lib.engine.distributed import DistContext, init_distributed
from lib.engine.logger import setup_logging
from lib.engine.run_folder import RunFolderError, prepare_run_dir


@dataclass
class Run:
    cfg: CfgNode
    dist: DistContext
    run_dir: str
    logger: object

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


def setup_run(script: str, description: str, argv: Optional[List[str]] = None, log_name: str = '') -> Run:
    """Parse ``argv``, build the frozen config, join the process group and open the run folder."""
    args = parse_args(description, argv)
    with warnings.catch_warnings(record=True) as config_warnings:  # logged once the log is open
        warnings.simplefilter('always')
        cfg = load_config(args.cfg, args.opts)
    dist_ctx = init_distributed(cfg.DEVICE, cfg.DIST_BACKEND, args.local_rank)
    cfg.defrost()
    cfg.LOCAL_RANK = dist_ctx.local_rank
    cfg.freeze()
    run_dir = run_dir_of(cfg)
    problem, notes = None, []
    if dist_ctx.is_main:  # nothing is written into the run folder before this passes
        try:
            notes = prepare_run_dir(cfg, run_dir, script)
        except RunFolderError as err:
            problem = str(err)
    problem = broadcast_object(problem)  # every rank stops alike (a collective: it also replaces a barrier)
    if problem is not None:
        raise RunFolderError(problem)
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
    return Run(cfg=cfg, dist=dist_ctx, run_dir=run_dir, logger=logger)
