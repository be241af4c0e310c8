"""Measure a search space's latency table on this device, and check how well it predicts whole networks.

    python tools/latency_table.py measure --cfg configs/demo/train.yaml --out output/demo_latency.json
    python tools/latency_table.py measure --layers 4,4,4,4,4 --resolution 224 --runtime torch --threads 4 --out t.json
    python tools/latency_table.py check --table output/demo_latency.json --networks 30 --calibrate 8 --write

``measure`` times every fixed part (stem, stage 0, final block, head) and every op of every searchable layer at
the input shape it sees in the space: the space of ``--cfg`` (and ``KEY VALUE`` overrides: the space the search
of that config uses, its classes and pooling), or ``--layers``/``--resolution``/``--num-classes``; on PyTorch
eager (``--runtime torch``, CPU or ``--device cuda``) or onnxruntime on the CPU (the default); with a batch
size, threads, channels_last; ``--warmup`` calls, then ``--repeats`` timed calls in shuffled rounds of
``--block`` calls in a row (lib/latency/timing.py says why); median and quartiles recorded. ``check``
measures ``--networks`` random paths as whole child networks on the table's runtime and settings and prints
the mean absolute percentage error and Spearman's rho of the plain sum and, with ``--calibrate N``, of the sum
calibrated on N held-out networks (``--write`` stores the calibration in the table; a search then predicts
with it); ``split_half_rho`` ranks the networks' own timings (even rounds against odd ones), the ceiling for
any prediction on this machine; ``--same-window`` also re-times the table's parts in the same rounds as the
networks, which separates the method's error from the machine's drift since the table.
"""
import argparse
import json
import sys

from lib.checked_io import check_not_an_input, check_output_file, int_at_least, make_parent
from lib.config import load_config
from lib.config.timm_names import global_pool_problem
from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.fileio import write_json_atomic
from lib.experiments.latency_check import check_table
from lib.latency.measure import measure_table
from lib.latency.runtimes import DEVICES, RUNTIMES, RuntimeSettings
from lib.latency.table import Calibration, load_table
from lib.latency.timing import CLOCKS
from lib.models import ops
from lib.search.flops import build_search_space


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def space_of(args):
    """(layers per stage, resolution, classes, global pool) from --cfg or the explicit options."""
    if args.global_pool is not None and global_pool_problem(args.global_pool) is not None:
        raise ConfigError(f'--global-pool {args.global_pool!r} is no timm pooling '
                          f'({global_pool_problem(args.global_pool)}); use avg, max, avgmax or catavgmax')
    if args.layers is not None:
        if args.resolution is None:
            raise ConfigError('--layers needs --resolution (the input size in px)')
        if args.cfg or args.opts:
            raise ConfigError('give the space either with --cfg (and KEY VALUE overrides) or with --layers, not both')
        try:
            layers = tuple(int(n) for n in args.layers.split(','))
        except ValueError:
            layers = ()
        if len(layers) != ops.NUM_SEARCH_STAGES or min(layers) < 1:
            raise ConfigError(f'--layers must be {ops.NUM_SEARCH_STAGES} positive counts joined by commas, e.g. '
                              f'1,1,2,1,1; got {args.layers!r}')
        return layers, args.resolution, args.num_classes or 1000, args.global_pool or 'avg'
    cfg = load_config(args.cfg, args.opts)
    space = build_search_space(cfg)
    return (space.layers_per_stage, args.resolution or space.resolution, args.num_classes or cfg.DATASET.NUM_CLASSES,
            args.global_pool or cfg.NET.GP)


def measure(args) -> dict:
    layers, resolution, num_classes, global_pool = space_of(args)
    settings = RuntimeSettings(args.runtime, args.device, args.batch_size, args.threads, args.channels_last).check()
    check_output_file(args.out, '--out')  # before minutes of measuring
    table = measure_table(layers, resolution, settings, num_classes=num_classes, global_pool=global_pool,
                          warmup=args.warmup, repeats=args.repeats, block=args.block, clock=args.clock,
                          seed=args.seed, log=log)
    table.save(make_parent(args.out))
    spreads = sorted(t.spread for t in [*table.fixed.values(), *(e for s in table.op_times for l in s for e in l)])
    summary = {'table': args.out, 'space': table.space_text(), 'measured_with': table.describe(),
               'range_ms': table.range_ms(), 'parts': len(spreads), 'spread_median': spreads[len(spreads) // 2],
               'spread_max': spreads[-1], 'seconds': table.meta['timing']['seconds'],
               'load_before': table.meta['timing']['load_before'], 'load_after': table.meta['timing']['load_after']}
    print(json.dumps(summary))
    return summary


def check(args) -> dict:
    table = load_table(args.table)
    if args.report:
        check_output_file(args.report, '--report')
        check_not_an_input(args.report, '--report', [args.table])
    if args.write:
        check_output_file(args.table, '--table (--write)')
    drawn, total = args.networks + args.calibrate, ops.NUM_OPS ** sum(table.layers_per_stage)
    if drawn > total:
        raise ConfigError(f'--networks {args.networks} and --calibrate {args.calibrate} ask for {drawn} distinct '
                          f'paths; the space of {args.table} has {total}')
    timing = table.meta.get('timing', {})
    report = check_table(table, networks=args.networks, calibrate=args.calibrate, seed=args.seed,
                         warmup=args.warmup if args.warmup is not None else timing.get('warmup', 10),
                         repeats=args.repeats if args.repeats is not None else timing.get('repeats', 50),
                         block=args.block if args.block is not None else timing.get('block', 10),
                         clock=args.clock or timing.get('clock', 'wall'), same_window=args.same_window, log=log)
    report = {'table': args.table, 'measured_with': table.describe(), 'space': table.space_text(), **report}
    if args.report:
        write_json_atomic(report, make_parent(args.report))
    if args.write and report['calibration'] is not None:
        table.with_calibration(Calibration.from_dict(report['calibration'])).save(args.table)
        log(f'calibration written into {args.table}')
    print(json.dumps({key: value for key, value in report.items() if key != 'rows'}))
    return report


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', required=True)
    m = commands.add_parser('measure', help='measure a latency table')
    m.add_argument('--out', required=True, help='the JSON table to write')
    m.add_argument('--cfg', action='append', default=[], metavar='FILE', help='search config giving the space')
    m.add_argument('--layers', default=None, help='layers per searchable stage, e.g. 1,1,1,1,1 (instead of --cfg)')
    m.add_argument('--resolution', type=int_at_least(32), default=None, help='input size in px (with --layers; overrides --cfg)')
    m.add_argument('--num-classes', type=int_at_least(1), default=None, help='classifier size (default: --cfg, or 1000)')
    m.add_argument('--global-pool', default=None, help='pooling (default: --cfg NET.GP, or avg)')
    m.add_argument('--runtime', choices=RUNTIMES, default='onnxruntime')
    m.add_argument('--device', choices=DEVICES, default='cpu')
    m.add_argument('--batch-size', type=int_at_least(1), default=1)
    m.add_argument('--threads', type=int_at_least(1), default=1)
    m.add_argument('--channels-last', action='store_true', help='NHWC (PyTorch eager only)')
    m.add_argument('--warmup', type=int_at_least(0), default=10, help='calls per part before timing')
    m.add_argument('--repeats', type=int_at_least(1), default=50, help='timed calls of every part')
    m.add_argument('--block', type=int_at_least(1), default=10,
                   help='timed calls in a row per part and round, after one untimed call (lib/latency/timing.py)')
    m.add_argument('--clock', choices=tuple(CLOCKS), default='wall',
                   help='wall (latency) or cpu (process CPU time: not inflated by other processes; with 1 thread)')
    m.add_argument('--seed', type=int, default=0, help='input batch, weights and round order')
    m.add_argument('opts', nargs=argparse.REMAINDER, metavar='KEY VALUE', help='config overrides (with --cfg)')
    c = commands.add_parser('check', help='predicted against measured latency of whole networks')
    c.add_argument('--table', required=True)
    c.add_argument('--networks', type=int, default=30, help='random paths to measure as whole networks')
    c.add_argument('--calibrate', type=int, default=0,
                   help='held-out networks to fit prediction = scale * sum + offset on (0: plain sum only)')
    c.add_argument('--write', action='store_true', help='store the fitted calibration in the table')
    c.add_argument('--same-window', action='store_true',
                   help="also time the table's parts again in the same rounds as the networks and report that "
                        "table's errors (no drift of the machine's speed between table and networks)")
    c.add_argument('--report', default='', help='also write the full report (every network) as JSON here')
    c.add_argument('--seed', type=int, default=1, help='which random paths')
    c.add_argument('--warmup', type=int_at_least(0), default=None, help="default: the table's")
    c.add_argument('--repeats', type=int_at_least(1), default=None, help="default: the table's")
    c.add_argument('--block', type=int_at_least(1), default=None, help="default: the table's")
    c.add_argument('--clock', choices=tuple(CLOCKS), default=None, help="default: the table's")
    args = parser.parse_args(argv)
    if args.command == 'check' and (args.networks < 2 or args.calibrate < 0):
        parser.error('--networks must be at least 2 and --calibrate 0 or more')
    if args.command == 'check' and args.write and args.calibrate < 2:
        parser.error('--write stores a calibration: give --calibrate N with N >= 2')
    return args


def main(argv=None):
    args = parse_args(argv)
    return measure(args) if args.command == 'measure' else check(args)


if __name__ == '__main__':
    exit_on_error(main)
