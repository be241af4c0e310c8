"""A small real search session for the search-step tests (CPU, 32 px, one layer per stage): the objects
``lib.search.step`` reads from a ``SearchSession``, with fixed FLOPs figures in place of a table."""
from types import SimpleNamespace

import torch

from lib.config import load_config
from lib.models.supernet import SuperNet
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.builder import build_linear_schedule, build_search_optimizer
from lib.search.meta_matching import MetaMatchingNetwork

NUM_CLASSES, SLICE, IMAGE = 5, 2, 32
STUDENT = ((1,), (0,), (2,), (5,), (3,))


def make_search_session(*overrides, board_paths=(), loss_fn=None, path_flops=10.0, path_params=1.0,
                        budget_flops=9.0):
    """``overrides``: config ``KEY VALUE`` pairs. ``board_paths`` enter the board in order, each scoring
    below the one before and carrying random probe images and probabilities."""
    torch.manual_seed(0)
    cfg = load_config(None, ['DATASET.NUM_CLASSES', str(NUM_CLASSES), 'SUPERNET.SLICE', str(SLICE),
                             'LR', '0.1', *overrides])
    supernet = SuperNet((1, 1, 1, 1, 1), num_classes=NUM_CLASSES).train()
    mmn = MetaMatchingNetwork(SLICE, NUM_CLASSES)
    board = PrioritizedBoard(cfg.SUPERNET.POOL_SIZE, cfg.ACC_GAP)
    for rank, path in enumerate(board_paths):
        board.offer(BoardEntry(path=path, prec1=60.0 - rank, flops=10.0 + rank,
                               probe_images=torch.randn(SLICE, 3, IMAGE, IMAGE),
                               probe_probs=torch.softmax(torch.randn(SLICE, NUM_CLASSES), dim=-1)))
    optimizer = build_search_optimizer(cfg, supernet, mmn)
    return SimpleNamespace(
        cfg=cfg, supernet=supernet, mmn=mmn, board=board, optimizer=optimizer,
        scheduler=build_linear_schedule(optimizer, 10), scaler=torch.amp.GradScaler('cpu', enabled=False),
        loss_fn=loss_fn or torch.nn.CrossEntropyLoss(), dist=SimpleNamespace(device=torch.device('cpu')),
        local_bn_group=None,
        flops_table=SimpleNamespace(path_flops=lambda path: path_flops, path_params=lambda path: path_params),
        space=SimpleNamespace(budget_flops=lambda path: budget_flops, board_flops=lambda path: budget_flops))


def batch(n: int):
    """``n`` random images and labels, the same on every call."""
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(n, 3, IMAGE, IMAGE, generator=generator),
            torch.randint(0, NUM_CLASSES, (n,), generator=generator))
