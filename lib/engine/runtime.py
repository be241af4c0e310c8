"""What every entry script does first: arguments, config, process group, run folder, logs, seeds."""
import argparse
import os
import random
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
from yacs.config import CfgNode

from lib.config import ConfigError, load_config, save_config
from lib.engine.distributed import DistContext, init_distributed
from lib.engine.logger import setup_logging


@dataclass
class Run:
    cfg: CfgNode
    dist: DistContext
    run_dir: str
    logger: object


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
    try:
        cfg = load_config(args.cfg, args.opts)
    except ConfigError as err:
        raise SystemExit(f'error: {err}') from None
    dist_ctx = init_distributed(cfg.DEVICE, cfg.DIST_BACKEND, args.local_rank)
    cfg.defrost()
    cfg.LOCAL_RANK = dist_ctx.local_rank
    cfg.freeze()
    run_dir = run_dir_of(cfg)
    if dist_ctx.is_main:
        os.makedirs(run_dir, exist_ok=True)
    if dist_ctx.distributed:
        torch.distributed.barrier()
    logger = setup_logging(run_dir, dist_ctx.rank, log_name or f'{script}.log', cfg.VERBOSE)
    if dist_ctx.is_main:
        save_config(cfg, os.path.join(run_dir, 'config.yaml'))
    logger.info('%s: %d process(es), this one rank %d on %s; run folder %s',
                script, dist_ctx.world_size, dist_ctx.rank, dist_ctx.device, run_dir)
    logger.info('config:\n%s', cfg.dump())
    if cfg.DETERMINISTIC:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif cfg.BENCHMARK_MODE and dist_ctx.device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    seed_everything(cfg.SEED)
    return Run(cfg=cfg, dist=dist_ctx, run_dir=run_dir, logger=logger)
