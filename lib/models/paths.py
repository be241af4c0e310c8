"""A path through the supernet: one tuple of op indices per searchable stage, e.g. ``((3,), (1, 5), ...)``.

The one path type of the package, its text key (file names, JSON keys) and the one uniform random draw of a
path, which every caller that wants uniform random paths uses with a seeded generator of its own. One exception:
the evolutionary search (lib/search/evolution.py) draws with Python's ``random.Random``, whose state its resumable
state files hold.
"""
from typing import Sequence, Tuple

import torch

Path = Tuple[Tuple[int, ...], ...]


def normalize_path(path: Sequence[Sequence[int]]) -> Path:
    """A path as a tuple (one per searchable stage) of tuples of non-negative op indices."""
    try:
        normalized = tuple(tuple(int(op) for op in stage) for stage in path)
    except TypeError as error:
        raise ValueError(
            f'a path must be a sequence of per-stage op-index sequences, e.g. ((0,), (3, 1)); '
            f'got {path!r}') from error
    if any(op < 0 for stage in normalized for op in stage):
        raise ValueError(f'op indices of a path must be >= 0; got {path!r}')
    return normalized


def path_key(path: Sequence[Sequence[int]]) -> str:
    """A path as a file-name and JSON key: stages joined by '-', layers of a stage by '.', e.g. ``3-1.5-0-2-4``."""
    return '-'.join('.'.join(str(int(op)) for op in stage) for stage in path)


def key_path(key: str) -> Path:
    """The path of a ``path_key``."""
    return tuple(tuple(int(op) for op in stage.split('.')) for stage in key.split('-'))


def split_stages(ops: Sequence[int], layers_per_stage: Sequence[int]) -> Path:
    """The path whose layers, stage after stage, take ``ops`` in order."""
    path, start = [], 0
    for count in layers_per_stage:
        path.append(tuple(int(op) for op in ops[start:start + count]))
        start += count
    return tuple(path)


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator of its own for a stream of draws, leaving torch's global one untouched."""
    generator = torch.Generator(device='cpu')
    generator.manual_seed(int(seed))
    return generator


def random_path(layers_per_stage: Sequence[int], num_ops: int, generator: torch.Generator) -> Path:
    """A uniform random path: every layer's op drawn independently and evenly from ``num_ops``, from ``generator``
    (one ``torch.randint`` over all layers, so a seed gives the same paths everywhere)."""
    ops = torch.randint(int(num_ops), (sum(layers_per_stage),), generator=generator).tolist()
    return split_stages(ops, layers_per_stage)
