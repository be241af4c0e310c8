"""Where a search step's time goes: torch.profiler over the steps tools/benchmark.py times.

    python tools/profile_step.py --device cpu --threads 1 --batch-size 32 --image-size 64 --phase search-kd
    python tools/profile_step.py --device cuda --batch-size 128 --image-size 224 --amp bf16 --channels-last

Builds the phase as tools/benchmark.py does (synthetic data, a full board for search-kd; ``--cfg`` for another
config, e.g. configs/train_corrected.yaml), runs ``--warmup`` steps, then profiles ``--steps`` steps. Prints the
step's parts (inclusive time per step and share; parts nest as marked) and the operators with the most self
time. The parts are marked here, around the functions the step calls, so the training code carries no
profiler marks. ``--trace FILE`` also writes a Chrome trace.
"""
import argparse
import contextlib
import functools
import sys
from typing import Dict, List, Optional

import torch
from torch.profiler import ProfilerActivity, profile, record_function

import benchmark
import lib.search.meta_matching
import lib.search.step
from lib.models.supernet import SuperNet

# (label, owner, attribute): the step's parts. Indented labels run inside the one above them. The optimizer's
# step and zero_grad carry torch's own marks ('Optimizer.step#SGD.step', ...).
PARTS = (
    ('teacher selection', lib.search.step, 'select_teacher'),
    ('  probe forward, every entry', lib.search.meta_matching, 'probe_deltas'),
    ('  probe forward, chosen entry', lib.search.meta_matching, 'chosen_probe_delta'),
    ('meta-matching update', lib.search.step, 'meta_update'),
    ('student + teacher forward', SuperNet, 'forward_with_teacher'),
    ('backward', torch.Tensor, 'backward'),
    ('gradient all-reduce', lib.search.step, 'all_reduce_mean_'),
    ('board offer', lib.search.step, '_offer_to_board'),
    ('step sums', lib.search.step, 'step_sums'),
)


def marked(label: str, function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        with record_function(label):
            return function(*args, **kwargs)
    return call


@contextlib.contextmanager
def parts_marked():
    present = [(label, owner, name) for label, owner, name in PARTS if hasattr(owner, name)]  # older checkouts too
    saved = [(owner, name, getattr(owner, name)) for _, owner, name in present]
    for label, owner, name in present:
        setattr(owner, name, marked(label.strip(), getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, function in saved:
            setattr(owner, name, function)


def part_rows(events, steps: int, device_times: bool) -> List[str]:
    by_name: Dict[str, object] = {event.key: event for event in events}
    step = by_name['step']
    total_cpu = step.cpu_time_total
    total_dev = step.device_time_total if device_times else 0
    header = f'{"part":<40} {"CPU ms/step":>11} {"share":>6}'
    rows = [header + (f' {"GPU ms/step":>11} {"share":>6}' if device_times else '')]
    labels = ['step'] + [label for label, _, _ in PARTS]
    labels += sorted(key for key in by_name if key.startswith(('Optimizer.step#', 'Optimizer.zero_grad#')))
    for label in labels:
        event = by_name.get(label.strip())
        if event is None:
            continue
        row = f'{label:<40} {event.cpu_time_total / 1e3 / steps:>11.1f} {event.cpu_time_total / total_cpu:>6.1%}'
        if device_times:
            share = event.device_time_total / max(total_dev, 1)
            row += f' {event.device_time_total / 1e3 / steps:>11.1f} {share:>6.1%}'
        rows.append(row)
    return rows


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--phase', default='search-kd', choices=('search-plain', 'search-kd', 'search-meta'))
    parser.add_argument('--cfg', nargs='*', default=None, help='yaml config(s); default: lib/config.py')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--image-size', type=int, default=benchmark.DEFAULT_SEARCH_IMAGE_SIZE)
    parser.add_argument('--amp', choices=tuple(benchmark.AMP_DTYPES), default='none')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--path', default=benchmark.DEFAULT_PATH, help='JSON student path')
    parser.add_argument('--num-classes', type=int, default=1000)
    parser.add_argument('--pool-size', type=int, default=10, help='board entries of search-kd/search-meta')
    parser.add_argument('--steps', type=int, default=3, help='profiled steps')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--ops', type=int, default=12, help='operators listed by self time')
    parser.add_argument('--trace', default=None, help='also write a Chrome trace to this file')
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0:
        parser.error('--steps must be >= 1 and --warmup >= 0')
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('error: --device cuda but no CUDA GPU is visible; use --device cpu')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # The benchmark's own options for the phase, so that both build the same session.
    options = ['--device', args.device, '--batch-size', str(args.batch_size), '--image-size', str(args.image_size),
               '--amp', args.amp, '--seed', str(args.seed), '--path', args.path, '--phases', args.phase,
               '--num-classes', str(args.num_classes), '--pool-size', str(args.pool_size)]
    options += (['--channels-last'] if args.channels_last else []) + (['--cfg', *args.cfg] if args.cfg else [])
    bench = benchmark.parse_args(options)
    path = benchmark.parse_path(args.path)
    phase = benchmark.prepare_search_phase(args.phase, bench, device, path, args.image_size)
    for i in range(args.warmup):
        phase.step(i)
    benchmark.synchronize(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with parts_marked(), profile(activities=activities) as prof:
        for i in range(args.warmup, args.warmup + args.steps):
            with record_function('step'):
                phase.step(i)
            benchmark.synchronize(device)
    events = prof.key_averages()
    cfg = ' '.join(args.cfg) if args.cfg else 'defaults'
    print(f'{args.phase} ({cfg}), {args.device}, batch {args.batch_size}, {args.image_size} px, amp {args.amp}, '
          f'{torch.get_num_threads()} thread(s), {args.steps} steps')
    print('\n'.join(part_rows(events, args.steps, device.type == 'cuda')))
    sort_by = 'self_device_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    print(events.table(sort_by=sort_by, row_limit=args.ops, max_name_column_width=48))
    if args.trace:
        prof.export_chrome_trace(args.trace)


if __name__ == '__main__':
    main(sys.argv[1:])
