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

from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.experiments.ground_truth import parse_paths

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', required=True, help='folder of the ground truth (paths.json, runs/, results/)')
    parser.add_argument('--recipe', action='append', required=True, help='retrain.py config file(s), in order')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--sample', type=int, default=0, help='add K paths spread over the FLOPs range')
    parser.add_argument('--search-cfg', help='the search config whose space --sample draws from')
    parser.add_argument('--sample-seed', type=int, default=0)
    parser.add_argument('--paths', help='add these paths (JSON)')
    parser.add_argument('--only-given', action='store_true', help='train only the --paths given, not the whole list')
    parser.add_argument('--jobs', type=int, default=1, help='runs at once (one thread each)')
    parser.add_argument('opts', nargs=argparse.REMAINDER, help='KEY VALUE pairs for every retrain.py run')
    args = parser.parse_args(argv)
    if args.sample:
        if not args.search_cfg:
            raise ConfigError('--sample needs --search-cfg: the search config whose space to draw from')
        gt.save_paths(args.out, gt.sample_paths_of_config([args.search_cfg], args.sample, args.sample_seed),
                      note=f'{args.sample} paths of {args.search_cfg} over its FLOPs range', sampled=True)
    if args.paths:
        gt.save_paths(args.out, parse_paths(args.paths))
    if not os.path.exists(os.path.join(args.out, gt.PATHS_FILE)):
        raise ConfigError(f'{args.out} has no {gt.PATHS_FILE}: give --sample K --search-cfg CFG or --paths')
    given = parse_paths(args.paths) if args.only_given and args.paths else None
    trained = gt.train_missing(REPO, args.out, args.recipe, args.seeds, jobs=args.jobs, opts=args.opts, paths=given)
    summary = gt.summarize(args.out, args.seeds)
    noise = gt.seed_noise(summary)
    print(json.dumps({'trained_now': trained, 'paths': len(summary), 'seed_noise': noise}))
    return summary


if __name__ == '__main__':
    exit_on_error(main)
