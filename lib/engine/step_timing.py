"""Timing training steps on a device: warm-up, then timed steps (one at a time, or in interleaved rounds), with
the device synchronised at the clock's edges; peak GPU memory. What tools/benchmark.py and tools/profile_step.py
measure with (``lib.latency.timing`` times whole networks' inference for latency tables instead)."""
import contextlib
import gc
import os
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GIB = float(2 ** 30)
CLOCKS = {'wall': time.perf_counter, 'cpu': time.process_time}


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def reset_memory(device: torch.device) -> None:
    """Free what earlier phases left and restart the peak-memory count."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> Optional[float]:
    return round(torch.cuda.max_memory_allocated(device) / GIB, 3) if device.type == 'cuda' else None


def time_steps(step: Callable[[int], None], warmup: int, steps: int, device: torch.device,
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


def time_interleaved(steps_list: Sequence[Callable[[int], None]], warmup: int, steps: int, device: torch.device,
                     clock: str = 'wall') -> List[List[float]]:
    """For each step function, the seconds of each of its ``steps`` timed steps, taken in rounds of one step of
    every function (after ``warmup`` untimed steps of each), so that load changes on a shared machine hit them all
    alike: their ratios are then far steadier than those of steps timed one function after another. ``clock``
    'cpu' times by the CPU time this process spent (with one thread, what other processes of a busy machine take
    is not counted)."""
    now = CLOCKS[clock]
    for step in steps_list:
        for i in range(warmup):
            step(i)
    per_step: List[List[float]] = [[] for _ in steps_list]
    for i in range(warmup, warmup + steps):
        for step, seconds in zip(steps_list, per_step):
            synchronize(device)
            start = now()
            step(i)
            synchronize(device)
            seconds.append(now() - start)
    return per_step


def time_loop(run: Callable[[int], None], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds of one ``run(steps)`` after an untimed ``run(warmup)`` (loops that own their iteration)."""
    if warmup:
        run(warmup)
    synchronize(device)
    start = time.perf_counter()
    run(steps)
    synchronize(device)
    return time.perf_counter() - start

