"""Run a test body on two gloo ranks: this process is rank 0, one spawned process rank 1
(spawned, not forked: a fork deadlocks on torch's threads)."""
import multiprocessing as mp
from datetime import timedelta

import torch.distributed as dist

from lib import comm


def _as_rank(worker, rank: int, world_size: int, init_file: str) -> None:
    comm.init_process_group(backend='gloo', init_method=f'file://{init_file}', rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=60))
    try:
        worker(rank, world_size)
    finally:
        dist.destroy_process_group()


def run_on_two_ranks(worker, tmp_path) -> None:
    """``worker(rank, world_size)`` must be a module-level function (it is pickled for the spawn)."""
    init_file = str(tmp_path / 'pg_init')
    other = mp.get_context('spawn').Process(target=_as_rank, args=(worker, 1, 2, init_file))
    other.start()
    try:
        _as_rank(worker, 0, 2, init_file)
    finally:
        other.join(timeout=120)
    assert other.exitcode == 0
