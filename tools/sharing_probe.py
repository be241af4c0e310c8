"""Train a search config's supernet for a few steps with the search's own step on random, fixed or partly varying
paths, and score given paths (val prec@1, BN shared and re-estimated): the controlled experiments of
docs/own_data.md ("Why the supernet did not learn on Fashion-MNIST"). One JSON report (OUT).

  OMP_NUM_THREADS=1 python tools/sharing_probe.py --cfg configs/experiments/fashion_search.yaml --steps 300 \\
      --score '[[[0],[0],[0,0,0],[0,0,0],[0,0]]]' --out output/probe.json LR 0.02
  ... --fixed '[[0],[0],[0,0,0],[0,0,0],[0,0]]'     # one path only: the reference
  ... --vary 4.1                                     # only the last layer varies (0-based STAGE.LAYER, comma-separated)

Trailing KEY VALUE pairs override the config.
"""
import argparse
import json

from lib.engine.guard import exit_on_error
from lib.errors import ConfigError
from lib.experiments.ground_truth import parse_paths
from lib.experiments.sharing_probe import run_probe
from lib.fileio import write_json_atomic


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cfg', action='append', required=True, help='search config(s), layered in order')
    parser.add_argument('--steps', type=int, default=300, help='training steps (the LR falls linearly to 0 over them)')
    parser.add_argument('--fixed', help='train only this path (JSON)')
    parser.add_argument('--vary', help='vary only these layers, op 0 elsewhere: STAGE.LAYER[,STAGE.LAYER...], 0-based')
    parser.add_argument('--score', default='', help='paths to score at the end (JSON list); default: none')
    parser.add_argument('--bn-batches', type=int, default=4, help='training batches re-estimating BN per scored path')
    parser.add_argument('--out', required=True, help='the JSON report')
    parser.add_argument('opts', nargs=argparse.REMAINDER, help='KEY VALUE config overrides')
    args = parser.parse_args(argv)
    if args.fixed and args.vary:
        raise ConfigError('give --fixed or --vary, not both')
    fixed = parse_paths(args.fixed)[0] if args.fixed else None
    score = parse_paths(args.score) if args.score else []
    report = run_probe(args.cfg, args.opts, steps=args.steps, score=score, fixed=fixed, vary=args.vary,
                       bn_batches=args.bn_batches)
    report.update(cfg=args.cfg, opts=args.opts, fixed=args.fixed, vary=args.vary)
    write_json_atomic(report, args.out)
    for row in report['scores']:
        print(f"{json.dumps(row['path'])}: val prec@1 {row['shared']['prec1']:.1f} (shared BN)"
              + (f", {row['recalibrated']['prec1']:.1f} (BN re-estimated)" if 'recalibrated' in row else ''))
    return report


if __name__ == '__main__':
    exit_on_error(main)
