"""A controlled probe of weight-sharing training: the search's own step (``lib.search.step.search_step``, CE only,
no board) for N steps on a search config, with the student path drawn by the config's sampler (SUPERNET.HOW_TO_PROB; no budget
rejection), held fixed, or varied
only in chosen layers (uniformly there, op 0 elsewhere). It reports the running train prec@1 every 50 steps and, at
the end, the val prec@1 of given paths with the supernet's shared BN statistics and with each path's own
re-estimated (``lib.experiments.supernet_scores.score_paths``). Nothing is written but the report.

It isolates what a full search mixes: the LR schedule runs over exactly N steps, there is no distillation phase,
and the same seed gives the same weights, batches and paths."""
import time
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from lib.config import load_config
from lib.engine.distributed import DistContext
from lib.errors import ConfigError
from lib.experiments.supernet_scores import score_paths
from lib.search.parts import build_search_parts
from lib.search.sampler import PathSampler
from lib.search.step import SearchSums, search_step
from lib.train.session import build_loaders

WINDOW = 50  # steps per reported train prec@1


def parse_layers(text: str, layers_per_stage: Sequence[int]) -> List[Tuple[int, int]]:
    """'stage.layer,...' (0-based searchable stage and layer) -> checked (stage, layer) pairs."""
    pairs = []
    for item in text.split(','):
        try:
            stage, layer = (int(part) for part in item.strip().split('.'))
        except ValueError:
            raise ConfigError(f'--vary entry {item!r} is not STAGE.LAYER (e.g. 4.1 for the last layer of the fifth '
                              'searchable stage)') from None
        if not (0 <= stage < len(layers_per_stage) and 0 <= layer < layers_per_stage[stage]):
            raise ConfigError(f'--vary entry {item!r} is not a layer of this space, whose layers per stage are '
                              f'{tuple(layers_per_stage)} (0-based STAGE.LAYER)')
        pairs.append((stage, layer))
    return pairs


class VaryingLayers:
    """Paths with op 0 everywhere except ``layers``, which draw their op uniformly from a seeded generator."""

    def __init__(self, layers_per_stage: Sequence[int], num_ops: int, layers: Sequence[Tuple[int, int]], seed: int):
        self.layers_per_stage, self.num_ops, self.layers = tuple(layers_per_stage), num_ops, set(layers)
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self):
        return tuple(tuple(int(torch.randint(self.num_ops, (), generator=self.generator))
                           if (stage, layer) in self.layers else 0 for layer in range(count))
                     for stage, count in enumerate(self.layers_per_stage))


def run_probe(cfg_files: Sequence[str], opts: Sequence[str], *, steps: int, score: Sequence,
              fixed=None, vary: Optional[str] = None, bn_batches: int = 4, log=print) -> Dict:
    """Train for ``steps`` steps (paths: ``fixed``, else ``vary``'s layers, else the config's sampler); score the
    paths ``score``. Returns {'train_prec1': [per WINDOW steps], 'train_loss': [...], 'scores': score_paths rows}."""
    if steps < 1:
        raise ConfigError(f'--steps must be at least 1; got {steps}')
    cfg = load_config(list(cfg_files), list(opts))
    dist = DistContext()
    parts = build_search_parts(cfg, total_steps=steps)
    layers, num_ops = parts.space.layers_per_stage, parts.supernet.num_ops
    paths = [parts.supernet.check_path(p) for p in score]
    fixed = parts.supernet.check_path(fixed) if fixed is not None else None
    if vary:
        sampler = VaryingLayers(layers, num_ops, parse_layers(vary, layers), cfg.SEED)
    else:
        sampler = PathSampler(layers, num_ops, cfg.SUPERNET.HOW_TO_PROB, cfg.SUPERNET.PRE_PROB, seed=cfg.SEED,
                              board_paths=lambda: [])  # no board: 'teacher' draws uniformly
    train_loader, val_loader, _ = build_loaders(cfg, parts.space.resolution, dist)
    train_loss, train_prec1, window, start = [], [], [], time.time()
    epoch, step = 0, 0
    while step < steps:
        train_loader.set_epoch(epoch)
        for images, target in train_loader:
            if step == steps:
                break
            parts.supernet.train()
            path = fixed if fixed is not None else sampler.sample()
            window.append(search_step(parts, path, images, target, epoch=0))
            step += 1
            if len(window) == WINDOW or step == steps:
                total = SearchSums(*torch.stack(window).sum(0).tolist())
                train_loss.append(total.loss / total.images)
                train_prec1.append(100.0 * total.top1 / total.images)
                window = []
                log(f'step {step}: train loss {train_loss[-1]:.3f}, prec@1 {train_prec1[-1]:.1f} over the last '
                    f'{WINDOW} steps ({time.time() - start:.0f} s)')
        epoch += 1
    run = SimpleNamespace(cfg=cfg, supernet=parts.supernet, train_loader=train_loader, val_loader=val_loader,
                          dist=dist)
    scores = score_paths(run, paths, bn_batches) if paths else []
    return {'steps': steps, 'train_loss': train_loss, 'train_prec1': train_prec1,
            'scores': scores}
