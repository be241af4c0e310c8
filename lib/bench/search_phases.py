"""The search phases of a benchmark: a search step's parts built as a run builds them
(``lib.search.parts.build_search_parts``) on synthetic data, with a full board of random probes where the phase
distils, and the step functions the phases time: the training code's own ``lib.search.step.search_step`` and
``run_meta_update``, and ``lib.search.static_step.static_step`` for the fixed-network ceiling.

    search-plain           the step before META_STA_EPOCH (CE only) on the fixed path
    search-plain-resample  the same with a new path from the sampler every step, or the replayed paths in turn
    search-kd              the step after META_STA_EPOCH with a full board: teacher selection + distillation +
                           board decision
    search-meta            one meta-matching update
    static                 the path as a fixed child network (``static_step``)
"""
import functools
from typing import Dict, List

import torch

import lib.search.static_step
import lib.search.step
from lib.bench.phases import Phase
from lib.bench.settings import BenchSettings, search_config
from lib.data.synthetic import random_batches
from lib.engine.distributed import DistContext
from lib.models import ops
from lib.models.supernet import SuperNet
from lib.search.board import BoardEntry
from lib.search.flops import SearchSpace, op_costs_for
from lib.search.macs_table import MacsTable
from lib.search.parts import SearchParts, build_search_parts
from lib.search.sampler import PathSampler, sampler_from_config

SEARCH_PHASES = ('search-plain', 'search-plain-resample', 'search-kd', 'search-meta')
BOARD_PREC1 = 90.0  # board entries score far above a student on random data: the board stays as filled


def schedule_steps(settings: BenchSettings) -> int:
    """Far more LR-schedule steps than measured: the LR stays well above 0."""
    return 100 * (settings.warmup + settings.steps + 1)


def build_step_parts(settings: BenchSettings, cfg, device: torch.device, path, image_size: int,
                     board: bool) -> SearchParts:
    """The parts one search step reads for ``path``'s layout at ``image_size``; ``board``: full, POOL_SIZE entries
    with sampled paths and random probes."""
    layers = tuple(len(stage) for stage in path)
    space = SearchSpace(layers, image_size, 1.0, op_costs_for(cfg.SUPERNET.FLOPS_TABLE))
    entries = board_entries(settings, cfg, space) if board else ()
    parts = build_search_parts(cfg, total_steps=schedule_steps(settings), dist_ctx=DistContext(device=device),
                               space=space, macs_table=macs_table(layers, image_size, settings.num_classes),
                               board_entries=entries)
    if settings.compile:
        compile_blocks(parts.supernet)
    if not cfg.SUPERNET.STEP_ONLY_PATH:
        # A long run's steady state under the original's zero_grad: every op has been sampled, so every
        # parameter holds a (zero) gradient and takes each optimizer step.
        for param in list(parts.supernet.parameters()) + list(parts.mmn.parameters()):
            param.grad = torch.zeros_like(param)
    return parts


def path_sampler(settings: BenchSettings, cfg, layers, board_paths=lambda: []) -> PathSampler:
    return sampler_from_config(cfg, layers, ops.NUM_OPS, seed=settings.seed, board_paths=board_paths)


def board_entries(settings: BenchSettings, cfg, space: SearchSpace) -> List[BoardEntry]:
    """POOL_SIZE entries with sampled paths, random probe images and probabilities."""
    generator = torch.Generator().manual_seed(settings.seed + 1)
    sampler = path_sampler(settings, cfg, space.layers_per_stage)
    entries = []
    for index in range(cfg.SUPERNET.POOL_SIZE):
        path = sampler.sample()
        images = torch.randn(cfg.SUPERNET.SLICE, 3, space.resolution, space.resolution, generator=generator)
        probs = torch.softmax(torch.randn(cfg.SUPERNET.SLICE, settings.num_classes, generator=generator), -1)
        entries.append(BoardEntry(path=path, prec1=BOARD_PREC1 - index, board_cost=space.board_flops(path),
                                  probe_images=images, probe_probs=probs))
    return entries


@functools.lru_cache(maxsize=4)
def macs_table(layers, image_size: int, num_classes: int) -> MacsTable:
    return MacsTable.build(layers, image_size, num_classes)


def compile_blocks(supernet: SuperNet) -> None:
    """torch.compile every block on its own (in place): a path switch reuses the blocks' graphs instead of
    recompiling the whole network for each path."""
    for stage in supernet.blocks:
        for layer in stage:
            for block in (layer if isinstance(layer, torch.nn.ModuleList) else [layer]):
                block.compile()


def prepare_search_phase(name: str, settings: BenchSettings, device: torch.device, path, image_size: int,
                         cfg_files=None, label: str = '') -> Phase:
    """The search phase ``name`` under ``cfg_files`` (default ``settings.cfg``); ``label`` tells its result apart."""
    cfg = search_config(settings, cfg_files)
    session = build_step_parts(settings, cfg, device, path, image_size, board=name in ('search-kd', 'search-meta'))
    sampler = path_sampler(settings, cfg, session.space.layers_per_stage, session.board.paths)
    batches = random_batches(settings.batch_size, image_size, settings.num_classes, device, seed=settings.seed,
                             channels_last=settings.channels_last)
    distill_epoch = cfg.SUPERNET.META_STA_EPOCH + 1
    replay = settings.replay_paths

    if name == 'search-meta':
        def step(i):
            images, target = batches[i % len(batches)]
            lib.search.step.run_meta_update(session, path, images, target, epoch=distill_epoch, step=i)
    else:
        epoch = distill_epoch if name == 'search-kd' else 0
        resample = name == 'search-plain-resample'

        def step(i):
            images, target = batches[i % len(batches)]
            step_path = path
            if resample:  # replayed paths in turn (step i: path i, warm-up included), else sampled ones
                step_path = replay[i % len(replay)] if replay else sampler.sample()
            lib.search.step.search_step(session, step_path, images, target, epoch=epoch)

    def extra() -> Dict:
        out = {'path': [list(s) for s in path] if name != 'search-plain-resample' else
               ('replayed' if replay else 'sampled')}
        if name == 'search-kd':
            out['board_size'] = len(session.board)
        return out
    return Phase(name + label, step, image_size, extra)


def prepare_static_phase(settings: BenchSettings, device: torch.device, path, image_size: int) -> Phase:
    """``path`` as a fixed network trained by ``static_step``: the search step's optimizer groups, LR schedule,
    loss, AMP and on-device sums, without path bookkeeping or board."""
    parts = lib.search.static_step.build_static_parts(search_config(settings), path, device, total_steps=schedule_steps(settings))
    batches = random_batches(settings.batch_size, image_size, settings.num_classes, device, seed=settings.seed,
                             channels_last=settings.channels_last)

    def step(i):
        lib.search.static_step.static_step(parts, *batches[i % len(batches)])

    return Phase('static', step, image_size, lambda: {'path': [list(s) for s in path]})
