"""Score the ground truth's random paths with search runs' supernets and compare with the stand-alone results:
Kendall's tau and Spearman's rho (90% bootstrap intervals), top-k overlap, for the supernet's val prec@1 and loss
with shared and with re-estimated BN statistics, and for the free floors (parameter count, FLOPs); where each
run's best_arch.yaml and its top-scored path fall among the stand-alone results (percentile). One JSON report,
and with --plot a picture (supernet score against stand-alone accuracy, one colour per label).

  python tools/rank_paths.py --ground-truth output/gt --run defaults=output/search_s0 --run corrected=output/c_s0 \\
      --bn-batches 4 --out output/ranking.json --plot output/ranking.png
"""
import argparse
import json
import os

from lib.checked_io import check_not_an_input, check_output_file, int_at_least, make_parent
from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.experiments.plot import plot_rankings
from lib.experiments.report import board_scores, rank_run
from lib.experiments.supernet_scores import board_paths, check_search_run, load_search_run
from lib.fileio import write_json_atomic
from lib.models.paths import path_key


RUN_FILES = ('config.yaml', 'last.pth.tar', 'board.json', 'best_arch.yaml', 'summary.csv')  # what is read of a run


def parse_run(text: str):
    label, sep, run_dir = text.partition('=')
    if not sep or not label or not run_dir:
        raise argparse.ArgumentTypeError(f'--run takes LABEL=RUN_DIR (e.g. defaults=output/search); got {text!r}')
    return label, run_dir


def check_inputs(args) -> tuple:
    """(ground truth, its sampled paths), after checking, before any scoring: the ground truth's files, that it
    holds every sampled path, each run folder and its space, and that --out and --plot can be written."""
    if not os.path.isdir(args.ground_truth):
        raise ConfigError(f'--ground-truth {args.ground_truth} is not a folder: give the --out of '
                          'tools/ground_truth.py')
    if not os.path.isfile(os.path.join(args.ground_truth, gt.SUMMARY_FILE)):
        raise ConfigError(f'{os.path.join(args.ground_truth, gt.SUMMARY_FILE)} not found: run tools/ground_truth.py '
                          'first')
    truth = gt.read_summary(args.ground_truth)
    sampled = gt.load_paths(args.ground_truth, sampled_only=True)
    if len(sampled) < 3:
        raise ConfigError(f'{args.ground_truth} holds {len(sampled)} sampled paths; rank at least 3 (--sample K)')
    untrained = [path_key(p) for p in sampled if path_key(p) not in truth]
    if untrained:
        raise ConfigError(f'{args.ground_truth} has no result for {len(untrained)} of its sampled paths (e.g. '
                          f'{untrained[0]}): run tools/ground_truth.py on it again to train them')
    labels = [label for label, _ in args.run]
    if len(set(labels)) != len(labels):
        raise ConfigError(f'--run labels must differ; got {labels}')
    for _, run_dir in args.run:
        check_search_run(run_dir, sampled)
    inputs = [os.path.join(args.ground_truth, name) for name in (gt.SUMMARY_FILE, gt.PATHS_FILE)]
    inputs += [os.path.join(run_dir, name) for _, run_dir in args.run for name in RUN_FILES]
    for option, path in (('--out', args.out), ('--plot', args.plot)):
        if path:
            check_output_file(path, option)
            check_not_an_input(path, option, inputs)
    if args.plot and os.path.realpath(args.plot) == os.path.realpath(args.out):
        raise ConfigError('--plot and --out name the same file; give each its own')
    return truth, sampled


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--ground-truth', required=True, help='folder of tools/ground_truth.py')
    parser.add_argument('--run', action='append', required=True, type=parse_run, help='LABEL=RUN_DIR of a search')
    parser.add_argument('--bn-batches', type=int_at_least(0), default=4,
                        help='training batches to re-estimate BN per path (0: off)')
    parser.add_argument('--top-k', type=int_at_least(1), default=5)
    parser.add_argument('--resamples', type=int_at_least(1), default=1000, help='bootstrap resamples')
    parser.add_argument('--out', required=True, help='the JSON report')
    parser.add_argument('--plot', help='the picture (PNG)')
    args = parser.parse_args(argv)
    truth, sampled = check_inputs(args)
    reports = []
    for label, run_dir in args.run:
        run = load_search_run(run_dir)  # once: its board and the ground truth's paths are scored with it
        board = board_scores(run, board_paths(run_dir), args.bn_batches)
        reports.append(rank_run(run_dir, label, truth, sampled, bn_batches=args.bn_batches, k=args.top_k,
                                resamples=args.resamples, board_info=board, run=run))
    result = {'ground_truth': args.ground_truth, 'seed_noise': gt.seed_noise({path_key(p): truth[path_key(p)]
                                                                             for p in sampled}), 'runs': reports}
    write_json_atomic(result, make_parent(args.out))
    if args.plot:
        plot_rankings(reports, make_parent(args.plot))
    for r in reports:
        m = r['metrics']
        print(json.dumps({'label': r['label'], 'run': r['run_dir'],
                          **{f'tau_{name}': round(v['kendall_tau'], 3) for name, v in m.items()},
                          'best_arch_percentile': (r['best_arch'] or {}).get('percentile'),
                          'top_scored_percentile': r['top_scored']['percentile']}))
    return result


if __name__ == '__main__':
    exit_on_error(main)
