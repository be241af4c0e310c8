"""The BN layers one path of the supernet runs through, and a context that puts their statistics back: what the
per-path BN re-estimation (``lib.search.validate.recalibrated_bn``) and the held-out board admission
(``lib.search.admission``) change and must undo."""
import contextlib
from typing import List

import torch.nn as nn


def path_bn_layers(supernet, path) -> List[nn.modules.batchnorm._BatchNorm]:
    """The BN layers of ``path`` (stem, fixed stages and head included), each once."""
    modules = [entry[-1] for entry in supernet.path_modules(path)]  # (names..., module) per entry
    return list(dict.fromkeys(m for module in modules for m in module.modules()
                              if isinstance(m, nn.modules.batchnorm._BatchNorm)))


@contextlib.contextmanager
def restored_bn(layers):
    """Inside the block ``layers`` may change their running statistics and momentum; afterwards they hold the
    values they had before (the supernet's shared training statistics)."""
    saved = [({k: v.clone() for k, v in m.named_buffers(recurse=False)}, m.momentum) for m in layers]
    try:
        yield
    finally:
        for m, (buffers, momentum) in zip(layers, saved):
            for name, value in buffers.items():
                getattr(m, name).copy_(value)
            m.momentum = momentum
