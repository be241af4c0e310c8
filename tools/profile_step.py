"""Where a search step's time goes: its parts by the process CPU clock, then torch.profiler's operators.

    python tools/profile_step.py --device cpu --threads 1 --batch-size 32 --image-size 64 --phase search-kd
    python tools/profile_step.py --device cuda --batch-size 128 --image-size 224 --amp bf16 --channels-last

Builds the phase as tools/benchmark.py does (``lib.bench``: synthetic data, a full board for search-kd; ``--cfg``
for another config, e.g. configs/train_corrected.yaml), runs ``--warmup`` steps, then ``--steps`` steps timing the step's
parts by this process's CPU time (what a busy machine does not disturb; with ``--threads 1`` it is the work done),
then ``--steps`` more under torch.profiler. Prints the parts (time per step inclusive of the parts nested in them,
as indented; share of the step), by the CPU clock and by the profiler (its CPU column is wall time spent in
operators, and it adds a little to every operator; on a GPU also the kernels' time), then the operators with the
most self time. The parts are marked here, around the functions the step calls, so the training code carries no
profiler marks. ``--trace FILE`` also writes a Chrome trace.
"""
import argparse
import collections
import contextlib
import functools
import time
from typing import Dict, List, Optional

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import lib.search.meta_matching
import lib.search.step
from lib.bench.search_phases import prepare_search_phase
from lib.bench.settings import (AMP_DTYPES, DEFAULT_PATH, DEFAULT_SEARCH_IMAGE_SIZE, BenchmarkError, BenchSettings,
                                parse_path)
from lib.checked_io import check_output_file, int_at_least, make_parent
from lib.engine.guard import exit_on_error
from lib.engine.step_timing import synchronize
from lib.fileio import atomic_path
from lib.models.supernet import SuperNet

# (label, owner, attribute): the step's parts. Indented labels run inside the one above them.
PARTS = (
    ('teacher selection', lib.search.step, 'select_teacher'),
    ('  probe forward, every entry', lib.search.meta_matching, 'probe_deltas'),
    ('  probe forward, chosen entry', lib.search.meta_matching, 'chosen_probe_delta'),
    ('meta-matching update', lib.search.step, 'meta_update'),
    ('student + teacher forward', SuperNet, 'forward_with_teacher'),
    ('backward', torch.Tensor, 'backward'),
    ('gradient all-reduce', lib.search.step, 'all_reduce_mean_'),
    ('optimizer zero_grad', torch.optim.Optimizer, 'zero_grad'),
    ('optimizer step', torch.amp.GradScaler, 'step'),  # the search step's (the LR scheduler wraps opt.step)
    ('board offer', lib.search.step, 'offer_to_board'),
    ('step sums', lib.search.step, 'step_sums'),
)
STEP = 'step'


def marked(label: str, function, seconds: Dict[str, float]):
    @functools.wraps(function)
    def call(*args, **kwargs):
        start = time.process_time()
        try:
            with record_function(label):
                return function(*args, **kwargs)
        finally:
            seconds[label] += time.process_time() - start
    return call


@contextlib.contextmanager
def parts_marked():
    """Inside, the parts carry profiler marks and add their CPU seconds to the yielded dict."""
    seconds: Dict[str, float] = collections.defaultdict(float)
    # Only what this checkout has (older commits too).
    present = [(label, owner, name) for label, owner, name in PARTS if hasattr(owner, name)]
    saved = [(owner, name, owner.__dict__.get(name)) for _, owner, name in present]
    for label, owner, name in present:
        setattr(owner, name, marked(label.strip(), getattr(owner, name), seconds))
    try:
        yield seconds
    finally:
        for owner, name, function in saved:
            if function is None:
                delattr(owner, name)
            else:
                setattr(owner, name, function)


def part_rows(seconds: Dict[str, float], events, steps: int, device_times: bool) -> List[str]:
    by_name = {event.key: event for event in events}
    step_event = by_name[STEP]
    header = f'{"part":<32} {"CPU-clock ms":>12} {"share":>6} {"profiler ms":>11} {"share":>6}'
    rows = [header + (f' {"GPU ms":>8} {"share":>6}' if device_times else '')]
    for label in [STEP] + [label for label, _, _ in PARTS]:
        event = by_name.get(label.strip())
        if event is None:
            continue
        row = (f'{label:<32} {1e3 * seconds[label.strip()] / steps:>12.1f} '
               f'{seconds[label.strip()] / seconds[STEP]:>6.1%} {event.cpu_time_total / 1e3 / steps:>11.1f} '
               f'{event.cpu_time_total / step_event.cpu_time_total:>6.1%}')
        if device_times:
            row += (f' {event.device_time_total / 1e3 / steps:>8.1f} '
                    f'{event.device_time_total / max(step_event.device_time_total, 1):>6.1%}')
        rows.append(row)
    return rows


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--phase', default='search-kd', choices=('search-plain', 'search-kd', 'search-meta'))
    parser.add_argument('--cfg', nargs='*', default=None, help='yaml config(s); default: the defaults of lib/config/')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--image-size', type=int, default=DEFAULT_SEARCH_IMAGE_SIZE)
    parser.add_argument('--amp', choices=tuple(AMP_DTYPES), default='none')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--path', default=DEFAULT_PATH, help='JSON student path')
    parser.add_argument('--num-classes', type=int_at_least(1), default=1000)
    parser.add_argument('--pool-size', type=int_at_least(1), default=10, help='board entries of search-kd/search-meta')
    parser.add_argument('--steps', type=int, default=3, help='steps timed, then as many profiled')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int_at_least(0), default=0, help='torch CPU threads (0: torch default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--ops', type=int_at_least(1), default=12, help='operators listed by self time')
    parser.add_argument('--trace', default=None, help='also write a Chrome trace to this file')
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error('--steps must be >= 1 and --warmup >= 0')
    try:
        args.student_path = parse_path(args.path)
    except BenchmarkError as err:
        parser.error(str(err))
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda but no CUDA GPU is visible; use --device cpu')
    if args.trace:
        check_output_file(args.trace, '--trace')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # tools/benchmark.py's settings for these options (its defaults for the rest): both build the same session.
    settings = BenchSettings(batch_size=args.batch_size, image_size=args.image_size, num_classes=args.num_classes,
                             amp=args.amp, channels_last=args.channels_last, seed=args.seed, pool_size=args.pool_size,
                             cfg=args.cfg)
    phase = prepare_search_phase(args.phase, settings, device, args.student_path, args.image_size)

    def step(i: int, seconds: Dict[str, float]) -> None:
        start = time.process_time()
        with record_function(STEP):
            phase.step(i)
        synchronize(device)
        seconds[STEP] += time.process_time() - start

    for i in range(args.warmup):
        phase.step(i)
    synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with parts_marked() as seconds:
        for i in range(args.warmup, args.warmup + args.steps):
            step(i, seconds)
        timed = dict(seconds)
        with profile(activities=activities) as prof:
            for i in range(args.warmup + args.steps, args.warmup + 2 * args.steps):
                step(i, collections.defaultdict(float))
    events = prof.key_averages()
    cfg = ' '.join(args.cfg) if args.cfg else 'defaults'
    print(f'{args.phase} ({cfg}), {args.device}, batch {args.batch_size}, {args.image_size} px, amp {args.amp}, '
          f'{torch.get_num_threads()} thread(s), {args.steps} steps timed and {args.steps} profiled')
    print('\n'.join(part_rows(collections.defaultdict(float, timed), events, args.steps, device.type == 'cuda')))
    sort_by = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    print(events.table(sort_by=sort_by, row_limit=args.ops, max_name_column_width=48))
    if args.trace:
        with atomic_path(make_parent(args.trace)) as tmp:
            prof.export_chrome_trace(tmp)


if __name__ == '__main__':
    exit_on_error(main)  # a user's mistake: one error: line, exit status 2
