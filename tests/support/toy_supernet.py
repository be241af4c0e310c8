"""A float64 stand-in supernet with the supernet's interface (``forward(x, path)``, ``path_parameters(path)``)
and a board of its paths, for the meta-matching and meta-update tests (tests/search)."""
from collections import OrderedDict

import torch
import torch.nn as nn

from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.meta_matching import MetaMatchingNetwork

SLICE, NUM_CLASSES, CHANNELS, IMAGE = 3, 5, 4, 8
STUDENT_PATH = ((1,), (0, 2))
TEACHER_PATHS = (((0,), (1, 1)), ((2,), (2, 0)), ((1,), (0, 1)))


def make_op(index):
    if index == 0:
        return nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False),
                             nn.BatchNorm2d(CHANNELS), nn.SiLU())
    if index == 1:
        return nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 5, padding=2, groups=CHANNELS),
                             nn.Conv2d(CHANNELS, CHANNELS, 1), nn.Tanh())
    return nn.Sequential(nn.Conv2d(CHANNELS, CHANNELS, 1), nn.SiLU())


class TinySupernet(nn.Module):
    """Stand-in with the supernet's interface: forward(x, path) and path_parameters(path)."""

    def __init__(self, layers_per_stage=(1, 2), num_ops=3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, CHANNELS, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(CHANNELS), nn.SiLU())
        self.stages = nn.ModuleList(
            nn.ModuleList(nn.ModuleList(make_op(op) for op in range(num_ops)) for _ in range(layers))
            for layers in layers_per_stage)
        self.classifier = nn.Linear(CHANNELS, NUM_CLASSES)
        self.forward_calls = 0

    def forward(self, x, path):
        self.forward_calls += 1
        x = self.stem(x)
        for stage, ops in zip(self.stages, path):
            for layer, op in zip(stage, ops):
                x = x + layer[op](x)
        return self.classifier(x.mean(dim=(2, 3)))

    def path_parameters(self, path):
        params = OrderedDict((f'stem.{n}', p) for n, p in self.stem.named_parameters())
        for s, ops in enumerate(path):
            for layer, op in enumerate(ops):
                for n, p in self.stages[s][layer][op].named_parameters():
                    params[f'stages.{s}.{layer}.{op}.{n}'] = p
        params.update((f'classifier.{n}', p) for n, p in self.classifier.named_parameters())
        return params


def make_board(model, paths=TEACHER_PATHS, seed=0):
    generator = torch.Generator().manual_seed(seed)
    board = PrioritizedBoard(pool_size=len(paths), acc_gap=5.0)
    for rank, path in enumerate(paths):
        images = torch.randn(SLICE, 3, IMAGE, IMAGE, generator=generator, dtype=torch.float64)
        with torch.no_grad():
            probs = torch.softmax(model(images, path), dim=-1)
        board.offer(BoardEntry(path=path, prec1=90.0 - 10 * rank, board_cost=10.0, probe_images=images,
                               probe_probs=probs))
    return board


def setup(seed=0, batch=2 * SLICE + 2):
    torch.manual_seed(seed)
    model = TinySupernet().double().train()
    mmn = MetaMatchingNetwork(SLICE, NUM_CLASSES).double()
    board = make_board(model, seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(batch, 3, IMAGE, IMAGE, generator=generator, dtype=torch.float64)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    return model, mmn, board, x, y
