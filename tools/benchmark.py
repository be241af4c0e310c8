"""Throughput of the search step, its fixed-network ceiling, retraining and evaluation, on synthetic data.

    python tools/benchmark.py --device cpu --batch-size 32 --image-size 64 --steps 20 --warmup 3 --interleave
    python tools/benchmark.py --device cuda --batch-size 128 --image-size 224 --amp bf16 --channels-last

Phases (``--phases``, comma-separated):
  search-plain           the supernet search step before META_STA_EPOCH (CE only) on the FIXED ``--path``
  search-plain-resample  the same with a new path from the sampler every step (also with ``--resample``), or
                         the paths of ``--paths-file`` in turn
  search-kd              the step after META_STA_EPOCH with a full board (POOL_SIZE entries of random probes,
                         sampled paths, PICK_METHOD meta): teacher selection + distillation + board decision
  search-meta            one meta-matching update (img/s counts the batch it is given)
  static                 ``--path`` built as a fixed child network, same optimizer and loss: the ceiling
  retrain                the released ``--selection`` network, the retrain loop's steps (its recipe)
  eval                   inference of the released network through the evaluator

The search phases run the training code itself (``lib.search.step.search_step``), the retrain and eval phases
``lib.retrain.step.retrain_one_epoch`` and ``lib.engine.evaluate.evaluate``. Each phase prints one JSON
line (img/s, ms per step, peak GPU memory in GiB, reset between phases); a table follows the last. With
``--interleave`` the search and static phases are timed in rounds, one step of each per round: on a shared,
noisy machine (the CPU figures) their ratios are then measured under the same load.
"""
import argparse
import contextlib
import functools
import gc
import json
import os
import statistics
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

import lib.search.step
from lib.checked_io import check_output_file, file_error, int_at_least, make_parent
from lib.config import load_config
from lib.engine.distributed import DistContext
from lib.engine.evaluate import evaluate
from lib.engine.guard import exit_on_error
from lib.engine.precision import autocast, grad_scaler
from lib.errors import CreamError
from lib.models import ops
from lib.models.childnet import RELEASED_MODELS, build_childnet, resolve_selection
from lib.models.from_config import build_child_from_cfg
from lib.models.supernet import SuperNet, path_to_arch
from lib.retrain.optim import build_optimizer, build_scheduler
from lib.retrain.step import RetrainStep, retrain_one_epoch
from lib.retrain.wrappers import build_criterion, build_ema
from lib.search.board import BoardEntry
from lib.search.flops import SearchSpace, op_costs_for
from lib.search.macs_table import MacsTable
from lib.search.meta_matching import MetaMatchingNetwork
from lib.search.parts import SearchParts, build_linear_schedule, build_loss, build_search_optimizer, build_search_parts
from lib.search.sampler import PathSampler, sampler_from_config
from lib.train.steps import EpochStart

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RETRAIN_RECIPE = os.path.join(REPO, 'configs', 'retrain.yaml')
PHASES = ('search-plain', 'search-plain-resample', 'search-kd', 'search-meta', 'static', 'retrain', 'eval')
DEFAULT_PHASES = 'search-plain,search-kd,search-meta,static,retrain,eval'
# Every layer k5e6 at the full depth of the 600 MFLOPs search space.
DEFAULT_PATH = '[[3,3,3,3],[3,3,3,3],[3,3,3,3],[3,3,3,3],[3,3,3,3]]'
DEFAULT_SEARCH_IMAGE_SIZE = 64
AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16', 'none': None}
BOARD_PREC1 = 90.0  # board entries score far above a student on random data: the board stays as filled
GIB = float(2 ** 30)


class BenchmarkError(CreamError, ValueError):
    """A benchmark option that cannot be run; the message says what to change."""


# ---- synthetic data -------------------------------------------------------------------------------
class SyntheticLoader:
    """``steps`` batches cycling over a few pre-made device batches (what the loops iterate over)."""

    def __init__(self, batches, steps: int):
        self.batches, self.steps = batches, steps
        self.batch_size = batches[0][0].shape[0]

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        for step in range(self.steps):
            yield self.batches[step % len(self.batches)]


def make_batches(args, image_size: int, device: torch.device, count: int = 2):
    generator = torch.Generator().manual_seed(args.seed)
    batches = []
    for _ in range(count):
        images = torch.randn(args.batch_size, 3, image_size, image_size, generator=generator)
        target = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator)
        images = images.to(device)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        batches.append((images, target.to(device)))
    return batches


# ---- timing -------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(step: Callable[[int], None], warmup: int, steps: int, device: torch.device,
          sync_report: Optional[Dict] = None) -> Tuple[float, Optional[List[float]]]:
    """(seconds, per-step seconds or None) of ``steps`` calls of ``step(i)`` after ``warmup`` untimed ones.

    Per-step times only on the CPU (on a GPU they would need a sync per step). With ``sync_report`` (a dict;
    CUDA only) the timed steps run under torch's sync debug mode and it receives the host syncs they made."""
    for i in range(warmup):
        step(i)
    synchronize(device)
    watch = sync_report is not None and device.type == 'cuda'
    per_step = [] if device.type == 'cpu' else None
    with warnings.catch_warnings(record=True) if watch else contextlib.nullcontext() as caught:
        if watch:
            warnings.simplefilter('always')
            torch.cuda.set_sync_debug_mode('warn')
        start = last = time.perf_counter()
        try:
            for i in range(warmup, warmup + steps):
                step(i)
                if per_step is not None:
                    now = time.perf_counter()
                    per_step.append(now - last)
                    last = now
        finally:
            if watch:
                torch.cuda.set_sync_debug_mode('default')
        synchronize(device)
        seconds = time.perf_counter() - start
    if watch:
        syncs = [w for w in caught if 'synchroniz' in str(w.message)]
        sync_report['syncs_per_step'] = round(len(syncs) / steps, 2)
        sync_report['sync_sites'] = sorted({f'{os.path.relpath(w.filename, REPO)}:{w.lineno}' for w in syncs})
        for w in caught:
            if w not in syncs:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return seconds, per_step


def reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> Optional[float]:
    return round(torch.cuda.max_memory_allocated(device) / GIB, 3) if device.type == 'cuda' else None


# ---- step phases: one at a time, or interleaved -----------------------------------------------------
class Phase:
    """A phase measured step by step: ``step(i)`` runs step i; ``extra()`` gives its JSON fields after timing."""

    def __init__(self, name: str, step: Callable[[int], None], image_size: int, extra: Callable[[], Dict]):
        self.name, self.step, self.image_size, self.extra = name, step, image_size, extra


def run_phase(phase: Phase, args, device: torch.device) -> Dict:
    report = {} if args.sync_debug and phase.name.startswith('search') else None
    seconds, per_step = timed(phase.step, args.warmup, args.steps, device, report)
    return record(phase.name, args, device, seconds, phase.image_size, per_step, **phase.extra(), **(report or {}))


def run_interleaved(phases: Sequence[Phase], args, device: torch.device) -> List[Dict]:
    """Time ``phases`` in rounds, one step of each per round, so that load changes on a shared machine hit every
    phase alike: their ratios are then far steadier than those of phases timed one after another. Peak memory
    is not attributable to one phase here (None). ``--clock cpu`` (CPU device) times each step by the CPU time
    this process spent on it instead of the wall clock: with ``--threads 1`` that ignores what other processes
    of a busy machine take, which the wall clock does not."""
    clock = time.process_time if args.clock == 'cpu' else time.perf_counter
    for phase in phases:
        for i in range(args.warmup):
            phase.step(i)
    per_step: Dict[str, List[float]] = {phase.name: [] for phase in phases}
    for i in range(args.warmup, args.warmup + args.steps):
        for phase in phases:
            synchronize(device)
            start = clock()
            phase.step(i)
            synchronize(device)
            per_step[phase.name].append(clock() - start)
    return [record(phase.name, args, device, sum(per_step[phase.name]), phase.image_size, per_step[phase.name],
                   interleaved=True, clock=args.clock, **phase.extra()) | {'peak_gib': None} for phase in phases]


# ---- the search phases ----------------------------------------------------------------------------
def parse_path(text: str):
    try:
        path = tuple(tuple(int(op) for op in stage) for stage in json.loads(text))
    except (ValueError, TypeError) as err:
        raise BenchmarkError(f'--path must be JSON: one list of op indices per searchable stage, e.g. '
                             f'{DEFAULT_PATH}; got {text!r} ({err})') from None
    if len(path) != ops.NUM_SEARCH_STAGES or any(len(stage) == 0 for stage in path):
        raise BenchmarkError(f'--path needs {ops.NUM_SEARCH_STAGES} non-empty stages; got {text!r}')
    if any(not 0 <= op < ops.NUM_OPS for stage in path for op in stage):
        raise BenchmarkError(f'--path op indices must lie in 0..{ops.NUM_OPS - 1}; got {text!r}')
    return path


def read_paths(file_name: str):
    """--paths-file: a JSON list of paths, each one list of op indices per searchable stage, or the seven stages of
    INPUT_ARCH (the fixed first and last stages written [0], as the original's sampled candidates)."""
    try:
        with open(file_name) as f:
            paths = json.load(f)
        paths = [path[1:-1] if len(path) == ops.NUM_SEARCH_STAGES + 2 else path for path in paths]
        return [parse_path(json.dumps(path)) for path in paths] or None
    except (OSError, ValueError, TypeError, BenchmarkError) as err:
        raise BenchmarkError(f'--paths-file {file_name}: {err}') from None


def search_config(args, cfg_files=None):
    """The search config of the phases: ``cfg_files`` (default ``--cfg``) with the benchmark's settings."""
    opts = ['DATASET.NUM_CLASSES', args.num_classes, 'DATASET.BATCH_SIZE', args.batch_size,
            'AMP', args.amp != 'none', 'AMP_DTYPE', AMP_DTYPES[args.amp] or 'bfloat16',
            'CHANNELS_LAST', args.channels_last, 'COMPILE', args.compile, 'SEED', args.seed,
            'SUPERNET.POOL_SIZE', args.pool_size, 'SUPERNET.SLICE', args.slice,
            'SUPERNET.PICK_METHOD', 'meta', 'EPOCHS', 1]
    return load_config(cfg_files if cfg_files is not None else args.cfg, [str(o) for o in opts])


def prepare_model(model: torch.nn.Module, args, device: torch.device) -> torch.nn.Module:
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def build_step_parts(args, cfg, device: torch.device, path, image_size: int, board: bool) -> SearchParts:
    """The parts one search step reads, built as a run builds them (``lib.search.parts``) for ``path``'s layout at
    ``image_size``; ``board``: full, POOL_SIZE entries with sampled paths and random probes."""
    layers = tuple(len(stage) for stage in path)
    space = SearchSpace(layers, image_size, 1.0, op_costs_for(cfg.SUPERNET.FLOPS_TABLE))
    entries = board_entries(args, cfg, space) if board else ()
    # Far more steps than measured: the LR stays well above 0.
    parts = build_search_parts(cfg, total_steps=100 * (args.warmup + args.steps + 1), dist_ctx=DistContext(device=device),
                               space=space, macs_table=macs_table(layers, image_size, args.num_classes),
                               board_entries=entries)
    if args.compile:
        compile_blocks(parts.supernet)
    if not cfg.SUPERNET.STEP_ONLY_PATH:
        # A long run's steady state under the original's zero_grad: every op has been sampled, so every
        # parameter holds a (zero) gradient and takes each optimizer step.
        for param in list(parts.supernet.parameters()) + list(parts.mmn.parameters()):
            param.grad = torch.zeros_like(param)
    return parts


def path_sampler(args, cfg, layers, board_paths=lambda: []) -> PathSampler:
    return sampler_from_config(cfg, layers, ops.NUM_OPS, seed=args.seed, board_paths=board_paths)


def board_entries(args, cfg, space: SearchSpace) -> List[BoardEntry]:
    """POOL_SIZE entries with sampled paths, random probe images and probabilities."""
    generator = torch.Generator().manual_seed(args.seed + 1)
    sampler = path_sampler(args, cfg, space.layers_per_stage)
    entries = []
    for index in range(cfg.SUPERNET.POOL_SIZE):
        path = sampler.sample()
        images = torch.randn(cfg.SUPERNET.SLICE, 3, space.resolution, space.resolution, generator=generator)
        probs = torch.softmax(torch.randn(cfg.SUPERNET.SLICE, args.num_classes, generator=generator), -1)
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


def prepare_search_phase(name: str, args, device: torch.device, path, image_size: int,
                         cfg_files=None, label: str = '') -> Phase:
    """The search phase ``name`` under ``cfg_files`` (default ``--cfg``); ``label`` tells its result apart."""
    cfg = search_config(args, cfg_files)
    session = build_step_parts(args, cfg, device, path, image_size, board=name in ('search-kd', 'search-meta'))
    sampler = path_sampler(args, cfg, session.space.layers_per_stage, session.board.paths)
    batches = make_batches(args, image_size, device)
    distill_epoch = cfg.SUPERNET.META_STA_EPOCH + 1

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
            if resample:  # --paths-file: those paths in turn (step i: path i, warm-up included)
                step_path = args.replay_paths[i % len(args.replay_paths)] if args.replay_paths else sampler.sample()
            lib.search.step.search_step(session, step_path, images, target, epoch=epoch)

    def extra() -> Dict:
        resampled = 'replayed' if args.replay_paths else 'sampled'
        out = {'path': [list(s) for s in path] if name != 'search-plain-resample' else resampled}
        if name == 'search-kd':
            out['board_size'] = len(session.board)
        return out
    return Phase(name + label, step, image_size, extra)


def compare_label(cfg_files: Sequence[str]) -> str:
    """'@train_corrected' for ``--compare-cfg configs/train_corrected.yaml``; '' for none."""
    return ('@' + '+'.join(os.path.splitext(os.path.basename(path))[0] for path in cfg_files)) if cfg_files else ''


# ---- the fixed-network phases ---------------------------------------------------------------------
def prepare_static_phase(args, device: torch.device, path, image_size: int) -> Phase:
    """The search step's work on the path built as a fixed network: same optimizer groups, LR schedule,
    loss, AMP and on-device metric sums; no path bookkeeping, no board."""
    cfg = search_config(args)
    torch.manual_seed(args.seed)
    model = build_childnet(path_to_arch(path), num_classes=args.num_classes,
                           bn_momentum=cfg.BATCHNORM.BN_MOMENTUM, bn_eps=cfg.BATCHNORM.BN_EPS)
    model = prepare_model(model, args, device).train()
    mmn = MetaMatchingNetwork(cfg.SUPERNET.SLICE, args.num_classes).to(device)
    optimizer = build_search_optimizer(cfg, model, mmn)
    scheduler = build_linear_schedule(optimizer, 100 * (args.warmup + args.steps + 1))
    scaler = grad_scaler(device, cfg.AMP, cfg.AMP_DTYPE)
    loss_fn = build_loss(cfg)
    forward = torch.compile(model) if args.compile else model
    batches = make_batches(args, image_size, device)

    def step(i):
        images, target = batches[i % len(batches)]
        with autocast(device, cfg.AMP, cfg.AMP_DTYPE):
            logits = forward(images)
            loss = loss_fn(logits, target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        lib.search.step.step_sums(logits.detach(), loss.detach(), None, target, meta_updates=0)

    return Phase('static', step, image_size, lambda: {'path': [list(s) for s in path]})


def released_config(args, image_size: int):
    opts = ['NET.SELECTION', args.selection, 'DATASET.NUM_CLASSES', args.num_classes,
            'DATASET.BATCH_SIZE', args.batch_size, 'DATASET.IMAGE_SIZE', image_size,
            'AMP', args.amp != 'none', 'AMP_DTYPE', AMP_DTYPES[args.amp] or 'bfloat16',
            'CHANNELS_LAST', args.channels_last, 'COMPILE', args.compile, 'SEED', args.seed,
            'NET.EMA.USE', not args.no_ema, 'LOG_INTERVAL', 10 ** 9]
    return load_config([RETRAIN_RECIPE], [str(o) for o in opts])


def released_resolution(args) -> int:
    return args.image_size or RELEASED_MODELS[resolve_selection(args.selection)].resolution


def retrain_phase(args, device: torch.device) -> Dict:
    """The retrain loop's steps with the retraining recipe (configs/retrain.yaml): optimizer, timm
    schedule, label smoothing, EMA (``--no-ema``: off), AMP, channels_last."""
    image_size = released_resolution(args)
    cfg = released_config(args, image_size)
    torch.manual_seed(args.seed)
    model, info = build_child_from_cfg(cfg)
    model = prepare_model(model, args, device).train()
    optimizer = build_optimizer(cfg, model, cfg.LR)
    scheduler, _ = build_scheduler(cfg, optimizer, args.warmup + args.steps)
    loss_fn, mixup_fn = build_criterion(cfg, args.num_classes)
    ema = build_ema(cfg, model)
    train_model = torch.compile(model) if args.compile else model
    batches = make_batches(args, image_size, device)
    global_step = 0

    def run(steps: int) -> None:
        nonlocal global_step
        step = RetrainStep(train_model, optimizer, loss_fn, device, scheduler=scheduler,
                           scaler=grad_scaler(device, cfg.AMP, cfg.AMP_DTYPE), model_ema=ema, mixup_fn=mixup_fn,
                           amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE, clip_grad=cfg.CLIP_GRAD)
        result = retrain_one_epoch(step, SyntheticLoader(batches, steps), EpochStart(0, global_step=global_step),
                                   steps_per_epoch=steps, log_interval=cfg.LOG_INTERVAL)
        global_step = result.global_step

    seconds = whole_loop_timed(run, args, device)
    return record('retrain', args, device, seconds, image_size, None, model=info.name, ema=ema is not None)


def eval_phase(args, device: torch.device) -> Dict:
    image_size = released_resolution(args)
    cfg = released_config(args, image_size)
    torch.manual_seed(args.seed)
    model, info = build_child_from_cfg(cfg)
    model = prepare_model(model, args, device).eval()
    forward = torch.compile(model) if args.compile else None
    batches = make_batches(args, image_size, device)

    def run(steps: int) -> None:
        evaluate(model, SyntheticLoader(batches, steps), device, amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE,
                 channels_last=args.channels_last, forward=forward)

    seconds = whole_loop_timed(run, args, device)
    return record('eval', args, device, seconds, image_size, None, model=info.name)


def whole_loop_timed(run: Callable[[int], None], args, device: torch.device) -> float:
    """Seconds of one ``run(steps)`` after an untimed ``run(warmup)`` (loops that own their iteration)."""
    if args.warmup:
        run(args.warmup)
    synchronize(device)
    start = time.perf_counter()
    run(args.steps)
    synchronize(device)
    return time.perf_counter() - start


# ---- output ---------------------------------------------------------------------------------------
def record(phase: str, args, device: torch.device, seconds: float, image_size: int,
           per_step: Optional[List[float]], **extra) -> Dict:
    """One phase's JSON line. ``img_per_sec`` is over all timed steps; ``img_per_sec_median`` (from the median
    step; when steps were timed one by one) is the steadier figure on a shared machine."""
    mean_step = seconds / args.steps
    median = statistics.median(per_step) if per_step else None
    result = {'phase': phase, 'img_per_sec': round(args.batch_size / mean_step, 2),
              'img_per_sec_median': None if median is None else round(args.batch_size / median, 2),
              'ms_per_step': round(1000 * mean_step, 2), 'peak_gib': peak_gib(device),
              'batch_size': args.batch_size, 'image_size': image_size, 'device': device.type, 'amp': args.amp,
              'channels_last': args.channels_last, 'compile': args.compile, 'steps': args.steps,
              'warmup': args.warmup, 'threads': torch.get_num_threads()}
    result.update(extra)
    return result


RESULT_KEYS = ('phase', 'img_per_sec', 'ms_per_step', 'peak_gib', 'image_size', 'device', 'batch_size', 'amp',
               'channels_last', 'compile')  # what ``table`` reads of a result line


def read_jsonl(paths: Sequence[str]) -> List[Dict]:
    """--table-from: the result lines of --jsonl files; a missing file or a damaged line is one error naming it."""
    results = []
    fix = 'give files written by --jsonl'
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise file_error(path, f'cannot be read ({type(err).__name__}: {getattr(err, "strerror", None) or err})',
                             fix) from None
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                result = json.loads(line)
            except ValueError:
                raise file_error(path, f'line {number} is not JSON (truncated or damaged)', fix) from None
            if not isinstance(result, dict) or any(key not in result for key in RESULT_KEYS):
                raise file_error(path, f'line {number} is not a benchmark result (it needs {", ".join(RESULT_KEYS)})',
                                 fix)
            results.append(result)
    return results


def setting(result: Dict) -> str:
    return (f'{result["device"]} b{result["batch_size"]} amp={result["amp"]}'
            f'{" cl" if result["channels_last"] else ""}{" compile" if result["compile"] else ""}')


def ratios(results: Sequence[Dict]) -> Dict[str, float]:
    """img/s ratios between phases measured with the same setting (and of their median steps, when known)."""
    speeds: Dict[str, Dict[str, Dict]] = {}
    for r in results:
        speeds.setdefault(setting(r), {})[r['phase']] = r
    out = {}
    for name, by_phase in speeds.items():
        suffix = '' if len(speeds) == 1 else f' ({name})'
        labels = sorted({phase[phase.index('@'):] for phase in by_phase if '@' in phase})
        pairs = [('search-kd', 'search-plain'), ('search-plain', 'static'), ('search-plain-resample', 'search-plain')]
        for label in labels:  # --compare-cfg: the same ratios under that config, and each phase against ours
            pairs += [(f'search-kd{label}', f'search-plain{label}'), (f'search-plain{label}', 'static')]
            pairs += [(phase, phase[:phase.index('@')]) for phase in by_phase if phase.endswith(label)]
        for num, den in pairs:
            if num in by_phase and den in by_phase:
                a, b = by_phase[num], by_phase[den]
                out[f'{num}/{den}{suffix}'] = round(a['img_per_sec'] / b['img_per_sec'], 3)
                if a.get('img_per_sec_median') and b.get('img_per_sec_median'):
                    out[f'{num}/{den} median{suffix}'] = round(a['img_per_sec_median'] / b['img_per_sec_median'], 3)
    return out


def table(results: Sequence[Dict]) -> str:
    lines = [f'{"phase":<22} {"img/s":>9} {"median":>9} {"ms/step":>9} {"peak GiB":>9} {"px":>4}  setting']
    for r in results:
        peak = '-' if r['peak_gib'] is None else f'{r["peak_gib"]:.2f}'
        median = '-' if r.get('img_per_sec_median') is None else f'{r["img_per_sec_median"]:.1f}'
        lines.append(f'{r["phase"]:<22} {r["img_per_sec"]:>9.1f} {median:>9} {r["ms_per_step"]:>9.1f} {peak:>9} '
                     f'{r["image_size"]:>4}  {setting(r)}')
    lines += [f'{name}: {value:.3f}' for name, value in ratios(results).items()]
    return '\n'.join(lines)


# ---- entry point ----------------------------------------------------------------------------------
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cfg', nargs='*', default=None,
                        help='yaml config(s) of the search phases, e.g. configs/train_corrected.yaml for our '
                             'corrections (default: lib/config.py, the original\'s behaviour)')
    parser.add_argument('--clock', choices=('wall', 'cpu'), default='wall',
                        help="with --interleave on the CPU: 'cpu' times steps by this process's CPU time (use with "
                             "--threads 1 on a busy machine)")
    parser.add_argument('--compare-cfg', nargs='+', default=None, metavar='YAML',
                        help='with --interleave: also time the search phases under these configs in the same '
                             'rounds, e.g. configs/train_corrected.yaml (phases named search-kd@train_corrected)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--image-size', type=int, default=None,
                        help=f'search/static phases: default {DEFAULT_SEARCH_IMAGE_SIZE}; retrain/eval: the '
                             'released network\'s native resolution unless given')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--amp', choices=tuple(AMP_DTYPES), default='none')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile: each supernet block on its own, fixed networks whole')
    parser.add_argument('--steps', type=int, default=10, help='timed steps per phase')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps before them')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--path', default=DEFAULT_PATH, help='JSON student path (its lengths set the supernet)')
    parser.add_argument('--resample', action='store_true', help='also run search-plain-resample')
    parser.add_argument('--paths-file', default=None, metavar='JSON',
                        help='search-plain-resample replays these paths in turn instead of sampling (see read_paths)')
    parser.add_argument('--selection', default='287', help='released network of the retrain/eval phases')
    parser.add_argument('--num-classes', type=int_at_least(1), default=1000)
    parser.add_argument('--pool-size', type=int_at_least(1), default=10, help='board entries of search-kd/search-meta')
    parser.add_argument('--slice', type=int_at_least(1), default=4, help='SUPERNET.SLICE: probe images per board entry')
    parser.add_argument('--no-ema', action='store_true', help='retrain without the EMA update')
    parser.add_argument('--threads', type=int_at_least(0), default=0, help='torch CPU threads (0: torch default)')
    parser.add_argument('--phases', default=DEFAULT_PHASES, help=f'comma-separated, from {", ".join(PHASES)}')
    parser.add_argument('--interleave', action='store_true',
                        help='time the search and static phases in rounds, one step of each per round (steadier '
                             'ratios on a shared machine; no per-phase peak memory)')
    parser.add_argument('--sync-debug', action='store_true',
                        help='CUDA: count the host syncs of the search steps (torch sync debug mode; slower)')
    parser.add_argument('--jsonl', default=None, help='also append each JSON line to this file')
    parser.add_argument('--table-from', nargs='+', default=None, metavar='JSONL',
                        help='run nothing: print the table of JSON lines written by --jsonl')
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(',') if p.strip()]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f'unknown phase(s) {unknown}; choose from {", ".join(PHASES)}')
    if args.resample and 'search-plain-resample' not in phases:
        phases.insert(phases.index('search-plain') + 1 if 'search-plain' in phases else 0, 'search-plain-resample')
    args.phases = phases
    try:
        args.replay_paths = read_paths(args.paths_file) if args.paths_file else None
    except BenchmarkError as err:
        parser.error(str(err))
    if args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        parser.error('--steps and --batch-size must be >= 1, --warmup >= 0')
    if args.image_size is not None and args.image_size < 32:
        parser.error('--image-size must be at least 32 (five stride-2 stages)')
    if 'search-meta' in phases and args.batch_size < 2 * args.slice:
        parser.error(f'search-meta splits two slices off each batch: --batch-size must be >= 2 x --slice '
                     f'= {2 * args.slice}')
    try:
        resolve_selection(args.selection)
        args.student_path = parse_path(args.path)
    except ValueError as err:
        parser.error(str(err))
    if args.clock == 'cpu' and (not args.interleave or args.device != 'cpu'):
        parser.error('--clock cpu needs --interleave and --device cpu')
    if args.compare_cfg and not args.interleave:
        parser.error('--compare-cfg needs --interleave (the two configs are timed in the same rounds)')
    return args


def main(argv: Optional[List[str]] = None) -> List[Dict]:
    """Run the phases of ``argv``; prints and returns one result dict per phase."""
    args = parse_args(argv)
    if args.table_from:
        results = read_jsonl(args.table_from)
        print(table(results), flush=True)
        return results
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda but no CUDA GPU is visible; use --device cpu')
    device = torch.device(args.device, torch.cuda.current_device()) if args.device == 'cuda' else torch.device('cpu')
    if args.jsonl:
        check_output_file(args.jsonl, '--jsonl')
    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.student_path
    search_size = args.image_size or DEFAULT_SEARCH_IMAGE_SIZE

    def prepare(name: str) -> Phase:
        if name == 'static':
            return prepare_static_phase(args, device, path, search_size)
        # Under --cfg the search phases carry the config's name (search-kd@train_corrected), as --compare-cfg's.
        return prepare_search_phase(name, args, device, path, search_size, label=compare_label(args.cfg or []))

    results = []

    def emit(result: Dict) -> None:
        line = json.dumps(result)
        print(line, flush=True)
        if args.jsonl:
            with open(make_parent(args.jsonl), 'a') as f:
                f.write(line + '\n')
        results.append(result)

    step_phases = [name for name in args.phases if name.startswith('search') or name == 'static']
    if args.interleave:
        reset_memory(device)
        prepared = [prepare(name) for name in step_phases]
        if args.compare_cfg:
            label = compare_label(args.compare_cfg)
            prepared += [prepare_search_phase(name, args, device, path, search_size, args.compare_cfg, label)
                         for name in step_phases if name.startswith('search')]
        for result in run_interleaved(prepared, args, device):
            emit(result)
    for name in args.phases:
        if args.interleave and name in step_phases:
            continue
        reset_memory(device)
        if name in step_phases:
            emit(run_phase(prepare(name), args, device))
        elif name == 'retrain':
            emit(retrain_phase(args, device))
        else:
            emit(eval_phase(args, device))
    print(table(results), flush=True)
    return results


if __name__ == '__main__':
    exit_on_error(main)  # a user's mistake: one error: line, exit status 2
