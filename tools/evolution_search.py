"""An evolutionary search over a finished search's supernet (population, mutation, crossover; every candidate
scored by val prec@1 with its BN statistics re-estimated), within the run's own FLOPs or latency budget, starting
from its board's paths; writes best_arch.yaml and a JSON report (with the number of evaluations). Resumable: the
state is saved after every generation, and the same command continues an interrupted run to the same result.

  python tools/evolution_search.py output/demo_search              # -> output/demo_search/evolution/
  python tools/evolution_search.py RUN_DIR --out DIR --generations 10 --bn-batches 4
  python tools/evolution_search.py RUN_DIR --replace-run-pick      # also replaces RUN_DIR/best_arch.yaml

The settings default to the run's SUPERNET.EVOLUTION and SUPERNET.FINAL_PICK_BN_BATCHES (docs/config.md), the
generator's seed to its SEED; a run searched with SUPERNET.FINAL_PICK evolution and the same settings gets the
same pick here.
"""
import argparse
import dataclasses
import json
import os

from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.experiments.supernet_scores import load_search_run
from lib.fileio import copy_file_atomic, write_json_atomic
from lib.search.final_pick import evolution_settings, pick_by_evolution
from lib.search.outputs import BEST_ARCH_FILE, BOARD_FILE, write_best_arch

STATE_FILE, REPORT_FILE = 'evolution_state.json', 'evolution_report.json'
SETTING_FLAGS = ('population', 'generations', 'parents', 'mutations', 'crossovers', 'mutation_prob')


def read_board(run_dir: str):
    """(epoch, {path: train prec1}) of the run's board.json (the epoch the search ended with)."""
    name = os.path.join(run_dir, BOARD_FILE)
    if not os.path.isfile(name):
        return None, {}
    with open(name) as f:
        board = json.load(f)
    return board['epoch'], {tuple(tuple(int(op) for op in s) for s in e['path']): e['prec1'] for e in board['entries']}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run_dir', help='a finished search folder (config.yaml, last.pth.tar)')
    parser.add_argument('--out', help='folder for best_arch.yaml, the report and the state (default RUN_DIR/evolution)')
    parser.add_argument('--replace-run-pick', action='store_true', help="also replace the run's own best_arch.yaml")
    for flag in SETTING_FLAGS:
        parser.add_argument(f'--{flag.replace("_", "-")}', type=float if flag == 'mutation_prob' else int,
                            help=f'SUPERNET.EVOLUTION.{flag.upper()} (default: the run\'s)')
    parser.add_argument('--bn-batches', type=int, help='training batches re-estimating BN per candidate '
                        '(default: the run\'s SUPERNET.FINAL_PICK_BN_BATCHES)')
    parser.add_argument('--seed', type=int, help="the generator's seed (default: the run's SEED)")
    args = parser.parse_args(argv)
    run_dir = os.path.abspath(args.run_dir)
    out = os.path.abspath(args.out or os.path.join(run_dir, 'evolution'))
    if out == run_dir and not args.replace_run_pick:
        raise ConfigError(f'--out {out} would overwrite the run\'s own {BEST_ARCH_FILE}; give another folder, or '
                          '--replace-run-pick to replace it on purpose')
    run = load_search_run(run_dir)
    cfg = run.cfg
    settings = evolution_settings(cfg, seed=args.seed)
    settings = dataclasses.replace(settings, **{f: getattr(args, f) for f in SETTING_FLAGS
                                                if getattr(args, f) is not None})
    bn_batches = cfg.SUPERNET.FINAL_PICK_BN_BATCHES if args.bn_batches is None else args.bn_batches
    if bn_batches < 1 or settings.population < 1 or settings.parents < 1 or not 0 < settings.mutation_prob <= 1:
        raise ConfigError('--bn-batches, --population and --parents must be at least 1 and --mutation-prob in (0, 1]')
    budget = run.budget
    board_epoch, board = read_board(run_dir)
    epoch = cfg.EPOCHS - 1 if board_epoch is None else board_epoch

    within, board_cost = budget.within, budget.board_measure.cost
    os.makedirs(out, exist_ok=True)
    start = [p for p in board if within(p)]
    best, result = pick_by_evolution(run, table=run.table, board_cost=board_cost, within=within, start=start,
                                     board_prec1=board, epoch=epoch, bn_batches=bn_batches, settings=settings,
                                     state_file=os.path.join(out, STATE_FILE))
    arch_file = os.path.join(out, BEST_ARCH_FILE)
    write_best_arch(best, arch_file, budget, epoch=epoch, run_dir=run_dir)
    if args.replace_run_pick and arch_file != os.path.join(run_dir, BEST_ARCH_FILE):
        copy_file_atomic(arch_file, os.path.join(run_dir, BEST_ARCH_FILE))
    report = {'run_dir': run_dir, 'epoch': epoch, 'budget': {'measure': budget.pick_words, 'minimum': budget.minimum,
                                                      'maximum': budget.maximum},
              'settings': dataclasses.asdict(settings), 'bn_batches': bn_batches,
              'start_paths': [[list(s) for s in p] for p in start], **result.report(),
              'best': {'val_prec1': best.val_prec1, 'board_measure': best.board_cost, 'macs_M': best.macs,
                       'params_M': best.params, 'on_board': best.path in board},
              'best_arch': arch_file}
    write_json_atomic(report, os.path.join(out, REPORT_FILE))
    print(json.dumps({k: report[k] for k in ('best_path', 'best_score', 'evaluations', 'best_arch')}))
    return report


if __name__ == '__main__':
    exit_on_error(main)
