"""A small search step's parts for the search-step tests (CPU, 32 px, one layer per stage), built the way a run
builds them (``lib.search.parts.build_search_parts``) with a board holding given entries."""
import functools

import torch
from timm.loss import LabelSmoothingCrossEntropy

from lib.config import load_config
from lib.search.board import BoardEntry
from lib.search.flops import SearchSpace, op_costs_for, with_board_measure
from lib.search.macs_table import MacsTable
from lib.search.parts import build_search_parts

NUM_CLASSES, SLICE, IMAGE = 5, 2, 32
LAYERS = (1, 1, 1, 1, 1)
STUDENT = ((1,), (0,), (2,), (5,), (3,))
TEACHERS = (((0,), (1,), (2,), (3,), (4,)), ((5,), (4,), (3,), (2,), (1,)))


@functools.lru_cache(maxsize=1)
def tiny_macs_table() -> MacsTable:
    return MacsTable.build(LAYERS, IMAGE, NUM_CLASSES)


def board_entries(paths, dtype=torch.float32):
    """One entry per path, in the board's order (each scores below the one before), with random probes."""
    generator = torch.Generator().manual_seed(3)
    return [BoardEntry(path=path, prec1=60.0 - rank, board_cost=10.0 + rank,
                       probe_images=torch.randn(SLICE, 3, IMAGE, IMAGE, generator=generator, dtype=dtype),
                       probe_probs=torch.softmax(torch.randn(SLICE, NUM_CLASSES, generator=generator, dtype=dtype), -1))
            for rank, path in enumerate(paths)]


def make_search_parts(*overrides, board_paths=(), total_steps=10, dtype=None):
    """The step's parts; ``overrides``: config ``KEY VALUE`` pairs; ``board_paths`` fill the board."""
    cfg = load_config(None, ['DATASET.NUM_CLASSES', str(NUM_CLASSES), 'SUPERNET.SLICE', str(SLICE), 'LR', '0.1',
                             'SEED', '0', *overrides])
    space = with_board_measure(SearchSpace(LAYERS, IMAGE, 1.0, op_costs_for(cfg.SUPERNET.FLOPS_TABLE)),
                               cfg.SUPERNET.BOARD_FLOPS)
    return build_search_parts(cfg, total_steps=total_steps, space=space, macs_table=tiny_macs_table(),
                              board_entries=board_entries(board_paths), dtype=dtype)


def batch(n: int):
    """``n`` random images and labels, the same on every call."""
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(n, 3, IMAGE, IMAGE, generator=generator),
            torch.randint(0, NUM_CLASSES, (n,), generator=generator))


def make_session(*overrides):
    """The step's parts with a board of the two TEACHERS (POOL_SIZE 3) and the default label-smoothed loss."""
    session = make_search_parts('SUPERNET.POOL_SIZE', '3', *overrides, board_paths=TEACHERS)
    assert isinstance(session.loss_fn, LabelSmoothingCrossEntropy) and session.loss_fn.smoothing == 0.1
    return session
