"""The random-search baseline with a search's compute (Li and Talwalkar 2019): K uniform random paths within the
search's budget, each trained briefly alone with a short recipe (retrain.py, through ``lib.experiments.ground_truth``,
so a killed run continues), K chosen so that the K runs together see as many training images as the search did;
the path with the best val prec@1 is the pick (``best_arch.yaml``).

Layout of ``out``: the ground-truth folder of the K paths (paths.json, runs/, results/, ground_truth.json),
best_arch.yaml and random_search.json (compute, every path's val prec@1, the pick).
"""
import os
from types import SimpleNamespace
from typing import Optional, Sequence

from lib.checkpoint.files import load_checkpoint_file
from lib.config import load_config
from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.fileio import write_json_atomic
from lib.models import ops
from lib.models.paths import path_key
from lib.search.final_pick import Candidate, sampled_paths
from lib.search.flops import build_search_space
from lib.search.latency_budget import latency_budget
from lib.search.macs_table import build_macs_table
from lib.search import measures as search_measures
from lib.search.outputs import BEST_ARCH_FILE, write_best_arch

REPORT_FILE = 'random_search.json'
_PATHS_SEED_STRIDE = 15_485_863  # the random paths' generator: seed * stride + 3 (not the final pick's stream)


def search_images(run_dir: str) -> int:
    """Training images a finished search saw: its optimizer steps (last.pth.tar) x batch size x processes."""
    name = os.path.join(run_dir, 'last.pth.tar')
    if not os.path.isfile(name):
        raise ConfigError(f'{name} not found: {run_dir} is not a finished search run folder')
    checkpoint = load_checkpoint_file(name)
    cfg = load_config([os.path.join(run_dir, 'config.yaml')])
    return int(checkpoint['global_step']) * cfg.DATASET.BATCH_SIZE * int(checkpoint.get('world_size') or 1)


def recipe_images(recipe: Sequence[str], opts: Sequence[str] = ()) -> int:
    """Training images one run of the config sees: EPOCHS x steps per epoch x batch size (one process); a search
    config too (its image size may be unset: the step count does not depend on it)."""
    from lib.data.loaders import build_train_loader_from_cfg
    cfg = load_config(list(recipe), [str(o) for o in opts])
    steps = len(build_train_loader_from_cfg(cfg, cfg.DATASET.IMAGE_SIZE or 32))
    return cfg.EPOCHS * steps * cfg.DATASET.BATCH_SIZE


def search_budget(run_dir: str) -> SimpleNamespace:
    """The search's space, budget (``within``; ``measures``: lib.search.measures) and MACs table, from its config.yaml."""
    name = os.path.join(run_dir, 'config.yaml')
    if not os.path.isfile(name):
        raise ConfigError(f'{name} not found: {run_dir} is not a search run folder')
    cfg = load_config([name])
    space = build_search_space(cfg)
    measures = search_measures.search_budget(cfg, space, latency_budget(cfg, space))
    return SimpleNamespace(cfg=cfg, space=space, measures=measures, within=measures.within,
                           text=f'{measures.pick_words} {measures.minimum:g}..{measures.maximum:g}',
                           table=build_macs_table(cfg, space), board_cost=measures.board_measure.cost)


def random_search(repo: str, out: str, run_dir: str, recipe: Sequence[str], *, opts: Sequence[str] = (),
                  seed: int = 0, jobs: int = 1, images: Optional[int] = None, k: Optional[int] = None) -> dict:
    """Train K random paths within ``run_dir``'s budget with ``recipe`` (K from the compute: ``images``, default the
    search's, over one run's images; or ``k``), pick the best on val; writes OUT/best_arch.yaml and the report."""
    budget = search_budget(run_dir)
    opts = ['DATA_DIR', budget.cfg.DATA_DIR, 'DATASET.IMAGE_SIZE', budget.space.resolution, *opts]
    per_path = recipe_images(recipe, opts)
    images = search_images(run_dir) if images is None else images
    k = k or images // per_path
    if k < 1:
        raise ConfigError(f'the search saw {images} training images and one stand-alone run of the recipe sees '
                          f'{per_path}: not even one path fits the compute; shorten the recipe (EPOCHS)')
    paths = sampled_paths(budget.space.layers_per_stage, ops.NUM_OPS, (seed * _PATHS_SEED_STRIDE + 3) % 2 ** 63, k,
                          budget.within)
    if not gt.load_paths(out, sampled_only=True):
        gt.save_paths(out, paths, sampled=True, note=f'{k} uniform random paths within the {budget.text} of {run_dir}')
    paths = gt.load_paths(out, sampled_only=True)
    gt.train_missing(repo, out, recipe, [seed], jobs=jobs, opts=opts, paths=paths)
    results = gt.summarize(out, [seed])
    best = min(paths, key=lambda p: (-results[path_key(p)]['mean'], budget.board_cost(p), path_key(p)))
    pick = Candidate(path=best, board_cost=budget.board_cost(best), macs=budget.table.path_macs(best),
                     params=budget.table.path_params(best), val_prec1=results[path_key(best)]['mean'], prec1=None,
                     source='random-search')
    write_best_arch(pick, os.path.join(out, BEST_ARCH_FILE), budget.measures, epoch=budget.cfg.EPOCHS - 1,
                    run_dir=out)
    report = {'search_run': run_dir, 'budget': budget.text, 'search_images': images, 'images_per_path': per_path,
              'k': len(paths), 'images_trained': per_path * len(paths), 'recipe': list(recipe), 'recipe_opts':
              [str(o) for o in opts], 'seed': seed, 'paths': {path_key(p): results[path_key(p)]['mean']
                                                               for p in paths},
              'best_path': [list(s) for s in best], 'best_val_prec1': pick.val_prec1,
              'best_arch': os.path.join(out, BEST_ARCH_FILE)}
    write_json_atomic(report, os.path.join(out, REPORT_FILE))
    return report
