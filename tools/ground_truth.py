"""Stand-alone ground truth: train each path of a list alone with one recipe (retrain.py) for several seeds and
record each path's final val prec@1, its mean and spread (OUT/ground_truth.json). Resumable: rerun the same
command and it trains only what has no result file yet (a run killed midway continues from its checkpoint).

  python tools/ground_truth.py --out output/gt --recipe configs/experiments/digits_retrain.yaml \\
      --sample 16 --search-cfg configs/experiments/digits_search.yaml --seeds 0 1 --jobs 2
  python tools/ground_truth.py --out output/gt --recipe ... --paths '[[3],[1],[0],[5],[2]]' --seeds 0 1

--sample K draws K paths of the search config's space spread over its FLOPs range (added to OUT/paths.json);
--paths adds given paths (a JSON list of paths, or of INPUT_ARCH lists with the fixed stages; --only-given trains
just those). Trailing
KEY VALUE pairs go to every retrain.py run.
"""
import argparse
import json
import os

from lib.checked_io import check_output_folder, int_at_least
from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.experiments.ground_truth import parse_paths

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def check_inputs(args) -> tuple:
    """(sampled paths, given paths): everything the run needs, checked (and --sample drawn) before anything is
    written or trained: the paths given, --out, the folder's list and result files, the recipe (loaded with the
    overrides, retrain.py's preflight)."""
    if args.sample and not args.search_cfg:
        raise ConfigError('--sample needs --search-cfg: the search config whose space to draw from')
    if len(args.opts) % 2:
        raise ConfigError(f'the trailing overrides come in KEY VALUE pairs; got an odd list: {args.opts}')
    if args.only_given and not args.paths:
        raise ConfigError('--only-given trains the --paths given: give --paths too')
    given = parse_paths(args.paths) if args.paths else []
    check_output_folder(args.out, '--out')
    listed = gt.load_paths(args.out) if os.path.isdir(args.out) else []
    if not (args.sample or given or listed):
        raise ConfigError(f'{args.out} has no {gt.PATHS_FILE}: give --sample K --search-cfg CFG or --paths')
    if os.path.isdir(args.out):
        gt.check_results(args.out)
    sampled = gt.sample_paths_of_config([args.search_cfg], args.sample, args.sample_seed) if args.sample else []
    gt.check_recipe(args.out, args.recipe, args.opts, (given or listed or sampled)[0], args.seeds[0])
    return sampled, given


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='folder of the ground truth (paths.json, runs/, results/)')
    parser.add_argument('--recipe', action='append', required=True, help='retrain.py config file(s), in order')
    parser.add_argument('--seeds', type=int_at_least(0), nargs='+', default=[0, 1])
    parser.add_argument('--sample', type=int_at_least(0), default=0, help='add K paths spread over the FLOPs range')
    parser.add_argument('--search-cfg', help='the search config whose space --sample draws from')
    parser.add_argument('--sample-seed', type=int, default=0)
    parser.add_argument('--paths', help='add these paths (JSON)')
    parser.add_argument('--only-given', action='store_true', help='train only the --paths given, not the whole list')
    parser.add_argument('--jobs', type=int_at_least(1), default=1, help='runs at once (one thread each)')
    parser.add_argument('opts', nargs=argparse.REMAINDER, help='KEY VALUE pairs for every retrain.py run')
    args = parser.parse_args(argv)
    sampled, given = check_inputs(args)
    if sampled:
        gt.save_paths(args.out, sampled, note=f'{args.sample} paths of {args.search_cfg} over its FLOPs range',
                      sampled=True)
    if given:
        gt.save_paths(args.out, given)
    trained = gt.train_missing(REPO, args.out, args.recipe, args.seeds, jobs=args.jobs, opts=args.opts,
                               paths=given if args.only_given else None)
    summary = gt.summarize(args.out, args.seeds)
    noise = gt.seed_noise(summary)
    print(json.dumps({'trained_now': trained, 'paths': len(summary), 'seed_noise': noise}))
    return summary


if __name__ == '__main__':
    exit_on_error(main)
