"""The search space a FLOPs budget gives, and what its paths cost.

    python tools/flops_table.py --cfg configs/train.yaml SUPERNET.FLOPS_MAXIMUM 20     # one JSON object: space + per-op table
    python tools/flops_table.py --budgets 0-600 0-200 100-300 0-14                     # one JSON line per budget

``--budgets MIN-MAX ...`` prints, per budget, the layers per searchable stage and the resolution the original's
rule gives (SUPERNET.FLOPS_TABLE of ``--cfg``, default: the original's table), and the cheapest and dearest
path in the budget's measure with their cost in the board's measure (SUPERNET.BOARD_FLOPS) and their real
MACs at that resolution; a budget no space fits gets its line with the error, and a budget that no path of
its space meets (which the search refuses too) its space with the error; the exit status is 1 when any budget
was refused (2 for a mistake in the command or the config). No training.
"""
import argparse
import functools
import json
import math
import sys

from lib.config import load_config
from lib.engine.guard import exit_on_error
from lib.search.budget_paths import check_budget_has_paths
from lib.search.flops import (FlopsBudgetError, build_search_space, op_costs_for, search_space_for_budget,
                              with_board_measure)
from lib.search.macs_table import MacsTable, build_macs_table


def parse_budget(text: str):
    try:
        low, high = (float(part) for part in text.split('-'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a budget is MIN-MAX in MFLOPs, e.g. 0-600; got {text!r}') from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
        raise argparse.ArgumentTypeError(f'a budget is MIN-MAX in MFLOPs with 0 <= MIN <= MAX, e.g. 0-600; '
                                         f'got {text!r}')
    return low, high


def budget_line(cfg, low: float, high: float, tables) -> dict:
    line = {'budget': [low, high], 'flops_table': cfg.SUPERNET.FLOPS_TABLE}
    try:
        space = with_board_measure(search_space_for_budget(low, high, op_costs_for(cfg.SUPERNET.FLOPS_TABLE)),
                                   cfg.SUPERNET.BOARD_FLOPS)
    except FlopsBudgetError as err:
        return {**line, 'error': str(err)}
    table = tables(space.layers_per_stage, space.resolution)
    try:
        check_budget_has_paths(space, low, high)
    except FlopsBudgetError as err:
        line['error'] = str(err)

    def described(path) -> dict:
        return {'path': [list(stage) for stage in path], 'budget_flops_M': round(space.budget_flops(path), 4),
                'board_flops_M': round(space.board_flops(path), 4), 'macs_M': round(table.path_macs(path), 4)}
    return {**line, 'layers_per_stage': list(space.layers_per_stage), 'resolution': space.resolution,
            'budget_scale': round(space.budget_scale, 6), 'cheapest': described(space.extreme_path(min)),
            'dearest': described(space.extreme_path(max)),
            'macs_range_M': [round(v, 4) for v in table.macs_range()]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cfg', default=None, help='yaml config (defaults when omitted)')
    parser.add_argument('--budgets', nargs='+', type=parse_budget, default=None, metavar='MIN-MAX',
                        help='FLOPs budgets in MFLOPs; one JSON line each')
    parser.add_argument('opts', nargs=argparse.REMAINDER, help='KEY VALUE overrides')
    args = parser.parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    if args.budgets is None:
        space = build_search_space(cfg)
        table = build_macs_table(cfg, space)
        low, high = space.budget_flops_range()
        print(json.dumps({'flops_budget_M': [cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM],
                          'budget_flops_range_M': [low, high], 'budget_scale': space.budget_scale,
                          'board_flops': space.board_measure_text,
                          'flops_table': cfg.SUPERNET.FLOPS_TABLE, **table.to_dict()}))
        return 0
    tables = functools.lru_cache(maxsize=None)(
        lambda layers, resolution: MacsTable.build(layers, resolution, cfg.DATASET.NUM_CLASSES, cfg.NET.GP))
    failed = False
    for low, high in args.budgets:
        line = budget_line(cfg, low, high, tables)
        failed |= 'error' in line
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(exit_on_error(main))  # a user's mistake: one error: line, exit status 2
