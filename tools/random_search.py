"""The random-search baseline with a search's compute: K uniform random paths within a finished search's budget,
each trained alone with a short recipe (retrain.py), K such that they see as many training images as the search
did; the best on val is written as best_arch.yaml. Resumable: rerun the same command after an interruption.

  python tools/random_search.py output/search --recipe configs/experiments/digits_retrain.yaml \\
      --recipe-opts EPOCHS 2 --out output/random_search --jobs 2

Writes OUT/best_arch.yaml (retrain.py and test.py take it as a second --cfg) and OUT/random_search.json (the
compute, every path's val prec@1, the pick); the stand-alone runs are under OUT/runs.
"""
import argparse
import json
import os

from lib.engine.guard import exit_on_error
from lib.experiments.random_search import random_search

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('search_run', help='a finished search folder: its space, budget, data and compute')
    parser.add_argument('--recipe', nargs='+', required=True, help='retrain.py config file(s) of the short recipe')
    parser.add_argument('--recipe-opts', nargs='*', default=[], help='KEY VALUE pairs for every stand-alone run')
    parser.add_argument('--out', required=True, help='the random search\'s folder')
    parser.add_argument('--seed', type=int, default=0, help='draws the paths and seeds their training')
    parser.add_argument('--images', type=int, help='training images to spend (default: the search\'s)')
    parser.add_argument('--k', type=int, help='paths to train (default: the compute over one run\'s images)')
    parser.add_argument('--jobs', type=int, default=1, help='runs at once (one thread each)')
    args = parser.parse_args(argv)
    report = random_search(REPO, os.path.abspath(args.out), os.path.abspath(args.search_run), args.recipe,
                           opts=args.recipe_opts, seed=args.seed, jobs=args.jobs, images=args.images, k=args.k)
    print(json.dumps({k: report[k] for k in ('k', 'search_images', 'images_per_path', 'best_path', 'best_val_prec1',
                                             'best_arch')}))
    return report


if __name__ == '__main__':
    exit_on_error(main)
