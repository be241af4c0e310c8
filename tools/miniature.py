"""The paper's ablation in miniature, on real data, from one resumable command: search the same space on the
same data for the same number of steps with (a) single-path training (no board, no distillation; the same
PRE_PROB path sampling), (b) the defaults (the original's Cream) and (c) configs/train_corrected.yaml's switches,
several seeds each; train random paths of the space and every picked path stand-alone (the ground truth); rank.

  pip install -e '.[experiments]'
  python tools/miniature.py --out output/miniature --jobs 2

Writes OUT/table.md (the table of docs/miniature.md), OUT/summary.json, OUT/report.json and OUT/ranking.png. Rerun the same
command after an interruption: finished searches and stand-alone runs are kept, interrupted ones continue.
"""
import argparse
import json
import os

from lib.checked_io import check_output_folder, int_at_least
from lib.config import load_config
from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.experiments import miniature as mini
from lib.experiments.digits import write_digits_imagefolder
from lib.experiments.jobs import refuse_set_keys
from lib.experiments.plot import plot_rankings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(REPO, 'configs', 'experiments')
CONFIG_LABELS = ('single-path', 'defaults', 'train_corrected')


def search_configs(labels, opts=()):
    """label -> (config files, KEY VALUE pairs), all on digits_search.yaml with ``opts``: (a) META_STA_EPOCH =
    EPOCHS (no epoch comes after it: no board, teacher, distillation or meta-matching update; the same PRE_PROB
    sampling and steps), (b) as it is, (c) with every setting in which configs/train_corrected.yaml differs from
    configs/train.yaml."""
    search = os.path.join(EXPERIMENTS, 'digits_search.yaml')
    epochs = load_config([search], list(opts)).EPOCHS
    corrected = mini.config_differences(os.path.join(REPO, 'configs', 'train.yaml'),
                                        os.path.join(REPO, 'configs', 'train_corrected.yaml'))
    configs = {'single-path': ([search], [*opts, 'SUPERNET.META_STA_EPOCH', epochs]),
               'defaults': ([search], list(opts)), 'train_corrected': ([search], [*opts, *corrected])}
    return {label: configs[label] for label in labels}
RECIPE = os.path.join(EXPERIMENTS, 'digits_retrain.yaml')


def check_inputs(args, out: str, data: str) -> dict:
    """The searches' configs, after checking the overrides, --out and --data (a digits folder, or a place to write
    one)."""
    for name in ('--search-opts', '--recipe-opts'):
        pairs = getattr(args, name[2:].replace('-', '_'))
        if len(pairs) % 2:
            raise ConfigError(f'{name} takes KEY VALUE pairs; got an odd list: {pairs}')
    refuse_set_keys(args.recipe_opts, ('DATA_DIR',), '--recipe-opts')  # --data is every run's data
    check_output_folder(out, '--out')
    configs = search_configs(args.configs, args.search_opts)
    if not os.path.isdir(os.path.join(data, 'train')):
        check_output_folder(data, '--data', empty=True)
    return configs


def check_children(args, configs: dict, out: str, data: str) -> None:
    """Before any search or stand-alone run starts: each search's and the recipe's preflight, so that a mistake
    in them is one error here, not a failed child."""
    mini.check_searches(configs, data)
    mini.check_finished_searches(out, list(configs), args.seeds)
    truth_dir = os.path.join(out, 'ground_truth')
    if os.path.isdir(truth_dir):
        gt.load_paths(truth_dir)
        gt.check_results(truth_dir)
    gt.check_recipe(os.path.join(out, 'ground_truth'), [RECIPE], ['DATA_DIR', data, *args.recipe_opts],
                    ((0,),) * 5, args.gt_seeds[0])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='output/miniature')
    parser.add_argument('--data', default='data/digits', help='the digits ImageFolder (written when missing)')
    parser.add_argument('--seeds', type=int_at_least(0), nargs='+', default=[0, 1, 2], help='search seeds per config')
    parser.add_argument('--gt-seeds', type=int_at_least(0), nargs='+', default=[0, 1], help='stand-alone seeds per path')
    parser.add_argument('--noise-paths', type=int_at_least(0), default=0, help='train the seeds after the first only for this '
                        'many random paths (evenly over the FLOPs range; 0: every path); the seed-noise check uses them')
    parser.add_argument('--no-picks', action='store_true', help='do not train the searches\' picks stand-alone '
                        '(their place among the random paths is then not known)')
    parser.add_argument('--paths', type=int_at_least(3), default=16,
                        help='random paths of the space in the ground truth')
    parser.add_argument('--bn-batches', type=int_at_least(0), default=4,
                        help='training batches re-estimating BN per path')
    parser.add_argument('--jobs', type=int_at_least(1), default=2, help='processes at once (one thread each)')
    parser.add_argument('--configs', nargs='+', default=list(CONFIG_LABELS), choices=CONFIG_LABELS)
    parser.add_argument('--search-opts', nargs='*', default=[], help='KEY VALUE pairs for every search (e.g. EPOCHS)')
    parser.add_argument('--recipe-opts', nargs='*', default=[], help='KEY VALUE pairs for every stand-alone run')
    args = parser.parse_args(argv)
    out, data = os.path.abspath(args.out), os.path.abspath(args.data)
    configs = check_inputs(args, out, data)
    if not os.path.isdir(os.path.join(data, 'train')):
        write_digits_imagefolder(data, image_size=32)
    check_children(args, configs, out, data)

    os.makedirs(out, exist_ok=True)
    clock = mini.cpu_seconds()
    # 1. the searches
    mini.run_searches(REPO, out, configs, args.seeds, data, args.jobs)
    runs = [(label, seed, mini.search_dir(out, label, seed)) for label in configs for seed in args.seeds]
    clock = mini.log_cpu(out, 'searches', clock)

    # 2. the ground truth: random paths of the space, and every path a run picks (best_arch.yaml, and the board
    #    path with the best val prec@1 after BN re-estimation)
    truth_dir = os.path.join(out, 'ground_truth')
    if not gt.load_paths(truth_dir, sampled_only=True):
        files = configs[runs[0][0]][0]
        gt.save_paths(truth_dir, gt.sample_paths_of_config(files, args.paths, seed=0), sampled=True,
                      note=f'{args.paths} random paths over the FLOPs range of {files}')
    boards = dict(zip([r[2] for r in runs], mini.in_processes(
        mini.cached_board_scores, [(out, run_dir, args.bn_batches) for _, _, run_dir in runs], args.jobs)))
    if not args.no_picks:
        picks = mini.picked_paths(out, list(configs), args.seeds)
        picks += [info['best_recalibrated'] for info in boards.values() if info]
        gt.save_paths(truth_dir, picks, note='the searches\' picks')
    sampled = gt.load_paths(truth_dir, sampled_only=True)
    recipe_opts = ['DATA_DIR', data, *args.recipe_opts]
    gt.train_missing(REPO, truth_dir, [RECIPE], args.gt_seeds[:1], jobs=args.jobs, opts=recipe_opts,
                     paths=gt.load_paths(truth_dir) if not args.no_picks else sampled)
    noisy = sampled if not args.noise_paths else gt.evenly(sampled, args.noise_paths)
    gt.train_missing(REPO, truth_dir, [RECIPE], args.gt_seeds[1:], jobs=args.jobs, opts=recipe_opts, paths=noisy)
    clock = mini.log_cpu(out, 'ground truth', clock)
    truth = gt.summarize(truth_dir, args.gt_seeds)

    # 3. rank
    reports = mini.in_processes(mini.cached_rank_run, [(out, run_dir, label, seed, truth, sampled, args.bn_batches,
                                                        boards[run_dir]) for label, seed, run_dir in runs], args.jobs)
    summary = mini.summarize_reports(reports, truth, sampled)
    mini.write_outputs(out, reports, summary)
    plot_rankings(reports, os.path.join(out, 'ranking.png'))
    mini.log_cpu(out, 'ranking', clock)
    print(open(os.path.join(out, 'table.md')).read())
    print(json.dumps({'seed_noise': summary['seed_noise'], 'random_paths': summary['random_paths']}))
    return summary


if __name__ == '__main__':
    exit_on_error(main)
