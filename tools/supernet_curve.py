"""A supernet's learning curve on a few fixed paths against the same paths trained alone: every epoch checkpoint
of a search scores the paths (val prec@1, BN statistics shared and re-estimated per path); a ground-truth folder
of tools/ground_truth.py gives their stand-alone per-epoch val prec@1. One JSON report (OUT) and a table.

  python train.py --cfg configs/experiments/fashion_search.yaml CHECKPOINT_HIST 100
  python tools/ground_truth.py --out output/gt --recipe configs/experiments/fashion_retrain.yaml \\
      --paths '[[[0],[0],[0,0,0],[0,0,0],[0,0]]]' --only-given --seeds 0
  python tools/supernet_curve.py --run output/fashion_search --ground-truth output/gt --out output/curve.json

--paths gives the paths (JSON, as tools/ground_truth.py takes them); without it, every path of the ground truth's list.
"""
import argparse

from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.experiments.ground_truth import parse_paths
from lib.experiments.learning_curve import compare, standalone_curves, supernet_curves
from lib.fileio import write_json_atomic


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--run', required=True, help='folder of a finished search that kept every epoch checkpoint')
    parser.add_argument('--ground-truth', help='folder of tools/ground_truth.py with the paths trained alone')
    parser.add_argument('--paths', help='the paths to score (JSON); default: the ground truth\'s list')
    parser.add_argument('--bn-batches', type=int, default=4, help='training batches re-estimating BN per path')
    parser.add_argument('--out', required=True, help='the JSON report')
    args = parser.parse_args(argv)
    if args.paths:
        paths = parse_paths(args.paths)
    elif args.ground_truth:
        paths = gt.load_paths(args.ground_truth)
    else:
        raise ConfigError('give --paths, or --ground-truth whose list of paths to score')
    if not paths:
        raise ConfigError('no paths to score: --paths is empty or the ground truth lists none')
    supernet = supernet_curves(args.run, paths, args.bn_batches)
    standalone = standalone_curves(args.ground_truth, paths) if args.ground_truth else {}
    report = {'run': args.run, 'ground_truth': args.ground_truth, 'bn_batches': args.bn_batches,
              'supernet': supernet, 'standalone': standalone, 'comparison': compare(supernet, standalone)}
    write_json_atomic(report, args.out)
    for key, curve in supernet.items():
        alone = standalone.get(key, {})
        print(f'{key}: supernet (BN re-estimated) by epoch {[round(v, 1) for v in curve["recalibrated"]]}; '
              f'alone {({s: [round(v, 1) for v in accs] for s, accs in alone.items()}) or "n/a"}; '
              f'gap {report["comparison"][key]["gap"]}')
    return report


if __name__ == '__main__':
    exit_on_error(main)
