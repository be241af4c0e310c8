"""Process-group set-up for every launcher (the collectives and rank queries are in ``lib.comm``).

Supported: ``python -m torch.distributed.launch`` (passes ``--local-rank``/``--local_rank`` and sets
env vars), ``torchrun`` (env vars, any number of nodes) and a plain ``python script.py`` (one process,
no process group). The world size always comes from the launcher, never from the config. Every start of a job
builds its group on a store of its own, once every rank has come (``lib.engine.rendezvous``).
"""
import datetime
import os
from dataclasses import dataclass
from typing import Optional

import torch

from lib import comm
from lib.engine.rendezvous import meet_every_rank
from lib.errors import ConfigError

COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)  # torch's default for gloo: a long validation on one rank waits


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == 'cuda' and not torch.cuda.is_available():
        raise ConfigError("DEVICE is 'cuda' but no CUDA GPU is visible; set DEVICE cpu (or auto)")
    if requested in ('cuda', 'auto') and torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def init_distributed(device: str = 'auto', backend: str = 'auto', local_rank_arg: Optional[int] = None,
                     init_timeout_s: float = 1800.0) -> DistContext:
    """Join the process group the launcher describes (if any) and pick this process's device; a rank that does not
    come within ``init_timeout_s`` is a RendezvousError (``lib.engine.rendezvous``)."""
    world_size = int(os.environ.get('WORLD_SIZE', '1'))
    rank = int(os.environ.get('RANK', '0'))
    local_rank = int(os.environ.get('LOCAL_RANK', local_rank_arg if local_rank_arg is not None else 0))
    torch_device = _pick_device(device, local_rank)
    if world_size > 1 and not comm.is_initialized():
        if backend == 'auto':
            backend = 'nccl' if torch_device.type == 'cuda' else 'gloo'
        kwargs = {'device_id': torch_device} if torch_device.type == 'cuda' else {}
        store = meet_every_rank(rank, world_size, init_timeout_s)
        store.set_timeout(COLLECTIVE_TIMEOUT)  # from here on it serves the process groups
        comm.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size,
                                timeout=COLLECTIVE_TIMEOUT, **kwargs)
        rank, world_size = comm.get_rank(), comm.get_world_size()
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)
