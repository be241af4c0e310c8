"""A benchmark phase and its result line: ``Phase`` (a step function timed step by step: the search and static
phases, lib.bench.search_phases), ``run_phase`` / ``run_interleaved`` (one at a time, or in rounds), the phases
that own their loop (``retrain_phase``, ``eval_phase``: the released network through the retrain loop and the
evaluator), and ``record``, one phase's JSON line."""
import statistics
from typing import Callable, Dict, List, Optional, Sequence

import torch

from lib.bench.settings import BenchSettings, released_config, released_resolution
from lib.data.synthetic import SyntheticLoader, random_batches
from lib.engine.evaluate import evaluate
from lib.engine.precision import grad_scaler
from lib.engine.step_timing import peak_gib, time_interleaved, time_loop, time_steps
from lib.models.from_config import build_child_from_cfg
from lib.retrain.optim import build_optimizer, build_schedule
from lib.retrain.step import RetrainStep, retrain_one_epoch
from lib.retrain.wrappers import build_criterion, build_ema
from lib.train.steps import EpochStart


class Phase:
    """A phase measured step by step: ``step(i)`` runs step i; ``extra()`` gives its JSON fields after timing."""

    def __init__(self, name: str, step: Callable[[int], None], image_size: int, extra: Callable[[], Dict]):
        self.name, self.step, self.image_size, self.extra = name, step, image_size, extra


def record(phase: str, settings: BenchSettings, device: torch.device, seconds: float, image_size: int,
           per_step: Optional[List[float]], **extra) -> Dict:
    """One phase's JSON line. ``img_per_sec`` is over all timed steps; ``img_per_sec_median`` (from the median
    step; when steps were timed one by one) is the steadier figure on a shared machine."""
    mean_step = seconds / settings.steps
    median = statistics.median(per_step) if per_step else None
    result = {'phase': phase, 'img_per_sec': round(settings.batch_size / mean_step, 2),
              'img_per_sec_median': None if median is None else round(settings.batch_size / median, 2),
              'ms_per_step': round(1000 * mean_step, 2), 'peak_gib': peak_gib(device),
              'batch_size': settings.batch_size, 'image_size': image_size, 'device': device.type,
              'amp': settings.amp, 'channels_last': settings.channels_last, 'compile': settings.compile,
              'steps': settings.steps, 'warmup': settings.warmup, 'threads': torch.get_num_threads()}
    result.update(extra)
    return result


def run_phase(phase: Phase, settings: BenchSettings, device: torch.device) -> Dict:
    report = {} if settings.sync_debug and phase.name.startswith('search') else None
    seconds, per_step = time_steps(phase.step, settings.warmup, settings.steps, device, report)
    return record(phase.name, settings, device, seconds, phase.image_size, per_step, **phase.extra(),
                  **(report or {}))


def run_interleaved(phases: Sequence[Phase], settings: BenchSettings, device: torch.device) -> List[Dict]:
    """``phases`` timed in rounds, one step of each per round (``lib.engine.step_timing.time_interleaved``, by
    ``settings.clock``). Peak memory is not attributable to one phase here (None)."""
    per_step = time_interleaved([phase.step for phase in phases], settings.warmup, settings.steps, device,
                                settings.clock)
    return [record(phase.name, settings, device, sum(seconds), phase.image_size, seconds, interleaved=True,
                   clock=settings.clock, **phase.extra()) | {'peak_gib': None}
            for phase, seconds in zip(phases, per_step)]


def _released_model(settings: BenchSettings, device: torch.device):
    image_size = released_resolution(settings)
    cfg = released_config(settings, image_size)
    torch.manual_seed(settings.seed)
    model, info = build_child_from_cfg(cfg)
    model.to(device)
    if settings.channels_last:
        model.to(memory_format=torch.channels_last)
    batches = random_batches(settings.batch_size, image_size, settings.num_classes, device, seed=settings.seed,
                             channels_last=settings.channels_last)
    return cfg, model, info, image_size, batches


def retrain_phase(settings: BenchSettings, device: torch.device) -> Dict:
    """The retrain loop's steps with the retraining recipe (configs/retrain.yaml): optimizer, timm
    schedule, label smoothing, EMA (``no_ema``: off), AMP, channels_last."""
    cfg, model, info, image_size, batches = _released_model(settings, device)
    model.train()
    optimizer = build_optimizer(cfg, model, cfg.LR)
    scheduler, _ = build_schedule(cfg, optimizer, settings.warmup + settings.steps)
    loss_fn, mixup_fn = build_criterion(cfg, settings.num_classes)
    ema = build_ema(cfg, model)
    train_model = torch.compile(model) if settings.compile else model
    global_step = 0

    def run(steps: int) -> None:
        nonlocal global_step
        step = RetrainStep(train_model, optimizer, loss_fn, device, scheduler=scheduler,
                           scaler=grad_scaler(device, cfg.AMP, cfg.AMP_DTYPE), model_ema=ema, mixup_fn=mixup_fn,
                           amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE, clip_grad=cfg.CLIP_GRAD)
        result = retrain_one_epoch(step, SyntheticLoader(batches, steps), EpochStart(0, global_step=global_step),
                                   steps_per_epoch=steps, log_interval=cfg.LOG_INTERVAL)
        global_step = result.global_step

    seconds = time_loop(run, settings.warmup, settings.steps, device)
    return record('retrain', settings, device, seconds, image_size, None, model=info.name, ema=ema is not None)


def eval_phase(settings: BenchSettings, device: torch.device) -> Dict:
    """Inference of the released network through the evaluator (``lib.engine.evaluate``)."""
    cfg, model, info, image_size, batches = _released_model(settings, device)
    model.eval()
    forward = torch.compile(model) if settings.compile else None

    def run(steps: int) -> None:
        evaluate(model, SyntheticLoader(batches, steps), device, amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE,
                 channels_last=settings.channels_last, forward=forward)

    seconds = time_loop(run, settings.warmup, settings.steps, device)
    return record('eval', settings, device, seconds, image_size, None, model=info.name)
