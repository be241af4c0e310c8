"""The paper's ablation in miniature, on real data, from one resumable command: search the same space on the
same data for the same number of steps under several configs, several seeds each; the random-search baseline with
the same compute; train random paths of the space and every picked path stand-alone (the ground truth); rank, and
place every pick among the random paths, on val and on the held-out test set (DATA_DIR/test, when there is one).

The configs (--configs): 'single-path' (no board, no distillation; the same PRE_PROB path sampling, the default
final pick), 'defaults' (the original's Cream), 'train_corrected' (configs/train_corrected.yaml's switches),
'spos' (single-path one-shot: uniform sampling, no board or distillation, the evolutionary final pick), 'best'
(issue 23's switches: board admission on a val batch, strictly fair sampling, paths outside the FLOPs budget
redrawn, the evolutionary final pick) and 'random-search' (tools/random_search.py with the compute of the
'defaults' search of the same seed, or of the first search config).

  pip install -e '.[experiments]'
  python tools/miniature.py --out output/miniature --jobs 2                     # the digits (written when missing)
  python tools/miniature.py --data data/fashion --search-cfg configs/experiments/fashion_search.yaml \
      --recipe configs/experiments/fashion_retrain.yaml \
      --configs defaults spos best random-search --paths 24 --out output/fashion --jobs 2

Writes OUT/table.md (the table of docs/miniature.md), OUT/summary.json, OUT/report.json and OUT/ranking.png; --plan only prints
what the command would train (images per phase). Rerun the same command after an interruption: finished searches,
stand-alone runs, random searches and test evaluations are kept, interrupted ones continue.
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
from lib.experiments.jobs import in_processes, refuse_set_keys
from lib.experiments.plot import plot_rankings
from lib.experiments.random_search import random_search
from lib.experiments.supernet_scores import chosen_path
from lib.experiments.test_set import TEST_SPLIT, test_results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(REPO, 'configs', 'experiments')
CONFIG_LABELS = ('single-path', 'defaults', 'train_corrected', 'spos', 'best', 'random-search')
DEFAULT_LABELS = ('single-path', 'defaults', 'train_corrected')
RANDOM_SEARCH = 'random-search'
# Issue 23's switches (part A's keys) and the evolutionary final pick: the 'best' config.
BEST_SWITCHES = ('SUPERNET.BOARD_ADMISSION', 'val_batch', 'SUPERNET.HOW_TO_PROB', 'fair',
                 'SUPERNET.SAMPLE_WITHIN_BUDGET', 'True', 'SUPERNET.FINAL_PICK', 'evolution')
# The miniature's evolution: 20 + 10 x 20 = 220 candidates at most (the default SUPERNET.EVOLUTION scores 1050).
EVOLUTION_OPTS = ('SUPERNET.EVOLUTION.POPULATION', '20', 'SUPERNET.EVOLUTION.GENERATIONS', '10',
                  'SUPERNET.EVOLUTION.PARENTS', '5', 'SUPERNET.EVOLUTION.MUTATIONS', '10',
                  'SUPERNET.EVOLUTION.CROSSOVERS', '10')
RANDOM_SEARCH_OPTS = ('EPOCHS', '2', 'WARMUP_EPOCHS', '0')  # the random search's short recipe


def search_configs(labels, opts=(), search_file=None, evolution_opts=EVOLUTION_OPTS):
    """label -> (config files, KEY VALUE pairs) of the train.py configs among ``labels``, all on ``search_file``
    (default digits_search.yaml) with ``opts``: (a) META_STA_EPOCH = EPOCHS (no epoch comes after it: no board,
    teacher, distillation or meta-matching update; the same PRE_PROB sampling and steps), (b) as it is, (c) with
    every setting in which configs/train_corrected.yaml differs from configs/train.yaml, (d) 'spos': (a) with
    uniform sampling and the evolutionary final pick, (e) 'best': BEST_SWITCHES."""
    search = search_file or os.path.join(EXPERIMENTS, 'digits_search.yaml')
    epochs = load_config([search], list(opts)).EPOCHS
    corrected = mini.config_differences(os.path.join(REPO, 'configs', 'train.yaml'),
                                        os.path.join(REPO, 'configs', 'train_corrected.yaml'))
    single = ['SUPERNET.META_STA_EPOCH', epochs]
    configs = {'single-path': ([search], [*opts, *single]), 'defaults': ([search], list(opts)),
               'train_corrected': ([search], [*opts, *corrected]),
               'spos': ([search], [*opts, *single, 'SUPERNET.HOW_TO_PROB', 'even', 'SUPERNET.FINAL_PICK', 'evolution',
                                   *evolution_opts]),
               'best': ([search], [*opts, *BEST_SWITCHES, *evolution_opts])}
    return {label: configs[label] for label in labels if label != RANDOM_SEARCH}
RECIPE = os.path.join(EXPERIMENTS, 'digits_retrain.yaml')


def check_inputs(args, out: str, data: str) -> dict:
    """The searches' configs, after checking the overrides, --out and --data (a digits folder, or a place to write
    one)."""
    for name in ('--search-opts', '--recipe-opts', '--evolution-opts', '--random-search-opts'):
        pairs = getattr(args, name[2:].replace('-', '_'))
        if len(pairs) % 2:
            raise ConfigError(f'{name} takes KEY VALUE pairs; got an odd list: {pairs}')
    refuse_set_keys(args.recipe_opts, ('DATA_DIR',), '--recipe-opts')  # --data is every run's data
    check_output_folder(out, '--out')
    configs = search_configs(args.configs, args.search_opts, args.search_cfg, args.evolution_opts)
    if RANDOM_SEARCH in args.configs:
        compute_label(configs)  # refused before any work
    if not os.path.isdir(os.path.join(data, 'train')):
        if args.search_cfg:
            raise ConfigError(f'{data}/train not found: make the data set first (e.g. tools/make_fashion_data.py)')
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
    gt.check_recipe(os.path.join(out, 'ground_truth'), [args.recipe], ['DATA_DIR', data, *args.recipe_opts],
                    ((0,),) * 5, args.gt_seeds[0])


def random_search_dir(out: str, seed: int) -> str:
    return os.path.join(out, 'random_search', f'seed{seed}')


def pick_dir(out: str, label: str, seed: int) -> str:
    """The folder of a run's best_arch.yaml: its search, or its random search."""
    return random_search_dir(out, seed) if label == RANDOM_SEARCH else mini.search_dir(out, label, seed)


def compute_label(configs) -> str:
    """The search whose compute the random search spends: 'defaults', else the first search config."""
    if not configs:
        raise ConfigError('--configs random-search needs a search config beside it (its compute is the search\'s), '
                          'e.g. --configs defaults random-search')
    return 'defaults' if 'defaults' in configs else next(iter(configs))


def plan(configs, labels, args, data: str, recipe: str) -> dict:
    """What the command would train, in training images per phase (before anything runs)."""
    from lib.experiments.random_search import recipe_images
    search_images = {label: recipe_images(files, [*pairs, 'DATA_DIR', data]) for label, (files, pairs) in
                     configs.items()}
    per_path = recipe_images([recipe], ['DATA_DIR', data, *args.recipe_opts])
    noisy = args.paths if not args.noise_paths else args.noise_paths
    phases = {'searches': {label: images * len(args.seeds) for label, images in search_images.items()},
              'ground_truth_random_paths': per_path * (args.paths + noisy * (len(args.gt_seeds) - 1)),
              'ground_truth_picks_at_most': per_path * len(args.seeds) * 2 * len(labels)}
    if RANDOM_SEARCH in labels:
        phases['random_search'] = search_images[compute_label(configs)] * len(args.seeds)
    return {'training_images': phases, 'stand_alone_images_per_path': per_path}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='output/miniature')
    parser.add_argument('--data', default='data/digits', help='the ImageFolder (train/, val/, optionally test/); the '
                        'digits are written when it is missing and the search config is the digits\'')
    parser.add_argument('--search-cfg', help='the search config every label starts from (default '
                        'configs/experiments/digits_search.yaml)')
    parser.add_argument('--recipe', default=RECIPE, help='the stand-alone recipe of the ground truth (retrain.py)')
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
    parser.add_argument('--configs', nargs='+', default=list(DEFAULT_LABELS), choices=CONFIG_LABELS)
    parser.add_argument('--search-opts', nargs='*', default=[], help='KEY VALUE pairs for every search (e.g. EPOCHS)')
    parser.add_argument('--evolution-opts', nargs='*', default=list(EVOLUTION_OPTS),
                        help='KEY VALUE pairs for the searches with the evolutionary final pick (spos, best)')
    parser.add_argument('--recipe-opts', nargs='*', default=[], help='KEY VALUE pairs for every stand-alone run')
    parser.add_argument('--random-search-opts', nargs='*', default=list(RANDOM_SEARCH_OPTS),
                        help='KEY VALUE pairs making the random search\'s short recipe from --recipe')
    parser.add_argument('--plan', action='store_true', help='print the training images per phase and stop')
    args = parser.parse_args(argv)
    out, data = os.path.abspath(args.out), os.path.abspath(args.data)
    configs = check_inputs(args, out, data)
    if not os.path.isdir(os.path.join(data, 'train')):
        write_digits_imagefolder(data, image_size=32)
    labels = list(args.configs)
    if args.plan:
        result = plan(configs, labels, args, data, args.recipe)
        print(json.dumps(result, indent=1))
        return result
    check_children(args, configs, out, data)

    os.makedirs(out, exist_ok=True)
    clock = mini.cpu_seconds()
    # 1. the searches, then the random searches with the compute of a search of the same seed
    mini.run_searches(REPO, out, configs, args.seeds, data, args.jobs)
    runs = [(label, seed, mini.search_dir(out, label, seed)) for label in configs for seed in args.seeds]
    clock = mini.log_cpu(out, 'searches', clock)
    random_searches = {}
    if RANDOM_SEARCH in labels:
        for seed in args.seeds:
            random_searches[seed] = random_search(
                REPO, random_search_dir(out, seed), mini.search_dir(out, compute_label(configs), seed), [args.recipe],
                opts=[*args.recipe_opts, *args.random_search_opts], seed=seed, jobs=args.jobs)
        clock = mini.log_cpu(out, 'random search', clock)

    # 2. the ground truth: random paths of the space, and every path a run picks (best_arch.yaml, and the board
    #    path with the best val prec@1 after BN re-estimation)
    truth_dir = os.path.join(out, 'ground_truth')
    if not gt.load_paths(truth_dir, sampled_only=True):
        files = configs[runs[0][0]][0]
        gt.save_paths(truth_dir, gt.sample_paths_of_config(files, args.paths, seed=0), sampled=True,
                      note=f'{args.paths} random paths over the FLOPs range of {files}')
    boards = dict(zip([r[2] for r in runs], in_processes(
        mini.cached_board_scores, [(out, run_dir, args.bn_batches) for _, _, run_dir in runs], args.jobs)))
    picks = [p for p in (chosen_path(pick_dir(out, label, seed)) for label in labels for seed in args.seeds) if p]
    if not args.no_picks:
        gt.save_paths(truth_dir, picks + [info['best_recalibrated'] for info in boards.values() if info],
                      note='the searches\' picks')
    sampled = gt.load_paths(truth_dir, sampled_only=True)
    recipe_opts = ['DATA_DIR', data, *args.recipe_opts]
    gt.train_missing(REPO, truth_dir, [args.recipe], args.gt_seeds[:1], jobs=args.jobs, opts=recipe_opts,
                     paths=gt.load_paths(truth_dir) if not args.no_picks else sampled)
    noisy = sampled if not args.noise_paths else gt.evenly(sampled, args.noise_paths)
    gt.train_missing(REPO, truth_dir, [args.recipe], args.gt_seeds[1:], jobs=args.jobs, opts=recipe_opts, paths=noisy)
    clock = mini.log_cpu(out, 'ground truth', clock)
    truth = gt.summarize(truth_dir, args.gt_seeds)

    # 3. rank the searches' supernets; place the random searches' picks; the test set
    reports = in_processes(mini.cached_rank_run, [(out, run_dir, label, seed, truth, sampled, args.bn_batches,
                                                        boards[run_dir]) for label, seed, run_dir in runs], args.jobs)
    reports += [mini.random_search_report(random_searches[seed], seed, truth, sampled) for seed in random_searches]
    tests = None
    if os.path.isdir(os.path.join(data, TEST_SPLIT)):
        tests = test_results(out, truth_dir, sampled + picks, args.gt_seeds, data)
        clock = mini.log_cpu(out, 'test set', clock)
    summary = mini.summarize_reports(reports, truth, sampled, tests)
    mini.write_outputs(out, reports, summary)
    plot_rankings([r for r in reports if r['metrics']], os.path.join(out, 'ranking.png'))
    mini.log_cpu(out, 'ranking', clock)
    print(open(os.path.join(out, 'table.md')).read())
    print(json.dumps({'seed_noise': summary['seed_noise'], 'random_paths': summary['random_paths']}))
    return summary


if __name__ == '__main__':
    exit_on_error(main)
