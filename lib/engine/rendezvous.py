"""The key-value store every rank of one start of a job meets in, before the process group is built on it.

torchrun's c10d rendezvous hands its workers a store that its agent hosts (``TORCHELASTIC_USE_AGENT_STORE``)
and keeps for the life of the job: when torchrun restarts the workers (``--max-restarts``), the new ones find
the keys the old ones wrote (gloo's addresses of the ranks, barrier counters) and the process group of the
restart joins stale peers or waits forever (pytorch/pytorch#135712; ``TORCHELASTIC_RESTART_COUNT`` cannot
tell the starts apart, as it counts per node). So each start gets a store of its own: rank 0 serves a fresh
one and announces its address and a random token in the agent's store; the other ranks take an announcement
only when the store at that address holds that token (one left over from an earlier start names a dead
server, or a server holding another token). Without torchrun's agent store, rank 0 serves the store at
MASTER_ADDR:MASTER_PORT, as ``init_method='env://'`` would.

Then every rank says it has arrived and waits for all the others, at most DIST_INIT_TIMEOUT seconds: a rank
that never comes is one error naming it, raised before anything is written.
"""
import datetime
import json
import os
import secrets
import socket
import time
from typing import List

import torch.distributed as dist

from lib.errors import CreamError

ANNOUNCEMENT = 'cream/store_of_this_start'  # in the agent's store: [host, port, token] of this start's store
TOKEN = 'cream/token'
_CONNECT_TRY_S = 5.0  # how long one try to reach an announced store lasts before the announcement is read again


class RendezvousError(CreamError, RuntimeError):
    """The ranks of the job did not all meet in time; the message says which and what to check."""


def _seconds(timeout_s: float) -> datetime.timedelta:
    return datetime.timedelta(seconds=timeout_s)


def _missing_rank_0(where: str, timeout_s: float) -> RendezvousError:
    return RendezvousError(
        f'rank 0 did not open the job\'s store at {where} within DIST_INIT_TIMEOUT {timeout_s:g} s; nothing was '
        'written. Check that rank 0\'s process started (its log or stderr), that this node reaches its host and '
        'ports, and that every node was started with the same command; a slow start may need a larger '
        'DIST_INIT_TIMEOUT')


def accepts_connections(host: str, port: int, deadline: float, retry: bool = True) -> bool:
    """Whether something accepts connections at host:port before ``deadline`` (a plain socket: torch's store client
    would retry by itself, with a warning on stderr for each try)."""
    while True:
        try:
            socket.create_connection((host, port), timeout=max(0.1, min(1.0, deadline - time.monotonic()))).close()
            return True
        except OSError:
            if not retry or time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def _client(host: str, port: int, world_size: int, timeout_s: float) -> dist.TCPStore:
    return dist.TCPStore(host, port, world_size, is_master=False, timeout=_seconds(timeout_s))


def _serve(host: str, port: int, world_size: int, timeout_s: float) -> dist.TCPStore:
    return dist.TCPStore(host, port, world_size, is_master=True, timeout=_seconds(timeout_s),
                         wait_for_workers=False)


def _fresh_store_under_agent(host: str, port: int, rank: int, world_size: int, timeout_s: float) -> dist.Store:
    """This start's own store, announced through (and checked against) the agent's long-lived one."""
    deadline = time.monotonic() + timeout_s
    if not accepts_connections(host, port, deadline):
        raise _missing_rank_0(f'{host}:{port} (torchrun\'s agent store)', timeout_s)
    agent = _client(host, port, world_size, timeout_s)
    if rank == 0:
        store = _serve(host, 0, world_size, timeout_s)
        token = secrets.token_hex(16)
        store.set(TOKEN, token)
        agent.set(ANNOUNCEMENT, json.dumps([host, store.port, token]))
        return store
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _missing_rank_0(f'the address it announces in {host}:{port}', timeout_s)
        try:
            if agent.check([ANNOUNCEMENT]):
                announced_host, announced_port, token = json.loads(agent.get(ANNOUNCEMENT))
                # An earlier start's store is gone with its rank 0 (or the port serves another token).
                if accepts_connections(announced_host, announced_port, deadline, retry=False):
                    store = _client(announced_host, announced_port, world_size, min(_CONNECT_TRY_S, left))
                    if store.get(TOKEN).decode() == token:
                        store.set_timeout(_seconds(timeout_s))
                        return store
        except (RuntimeError, dist.DistError):  # it went away while we asked
            pass
        time.sleep(0.2)


def _store_of_this_start(rank: int, world_size: int, timeout_s: float) -> dist.Store:
    host, port = os.environ.get('MASTER_ADDR', '127.0.0.1'), int(os.environ.get('MASTER_PORT', '29500'))
    if os.environ.get('TORCHELASTIC_USE_AGENT_STORE') == 'True':
        return _fresh_store_under_agent(host, port, rank, world_size, timeout_s)
    if rank == 0:
        return _serve(host, port, world_size, timeout_s)
    if not accepts_connections(host, port, time.monotonic() + timeout_s):
        raise _missing_rank_0(f'MASTER_ADDR:MASTER_PORT {host}:{port}', timeout_s)
    return _client(host, port, world_size, timeout_s)


def _ranks(ranks: List[int]) -> str:
    return ('rank ' if len(ranks) == 1 else 'ranks ') + ', '.join(map(str, ranks))


def meet_every_rank(rank: int, world_size: int, timeout_s: float) -> dist.Store:
    """The store of this start of the job, once every rank has reached it; RendezvousError after ``timeout_s``."""
    store = _store_of_this_start(rank, world_size, timeout_s)
    keys = [f'cream/arrived/{r}' for r in range(world_size)]
    store.set(keys[rank], '1')
    deadline = time.monotonic() + timeout_s
    try:
        while not store.check(keys) and time.monotonic() < deadline:  # polled: a timed-out wait warns on stderr
            time.sleep(0.05)
        missing = [r for r, key in enumerate(keys) if not store.check([key])]
    except (RuntimeError, dist.DistError):  # rank 0, and its store, are gone
        raise _missing_rank_0('its address', timeout_s) from None
    if missing:
        raise RendezvousError(
            f'{_ranks(missing)} of the {world_size} process(es) never joined the job within DIST_INIT_TIMEOUT '
            f'{timeout_s:g} s; nothing was written. Check that every node was started (with the same command and '
            'the same --nnodes / --nproc-per-node) and that the missing one\'s log shows no error; a slow start '
            'may need a larger DIST_INIT_TIMEOUT')
    return store
