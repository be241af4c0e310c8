"""Stand-alone ground truth: each path of a list trained alone with one retraining recipe (``retrain.py``),
for several seeds; one result file per (path, seed), written atomically when its run is done, so a killed
run continues with what is not done (and ``retrain.py``'s AUTO_RESUME continues a run killed midway).

Layout of ``out``: ``paths.json`` (the list), ``runs/<key>_seed<s>/`` (retrain run folders),
``results/<key>_seed<s>.json``, ``ground_truth.json`` (per path: accuracies by seed, mean, spread).
"""
import glob
import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from lib.errors import ConfigError
from lib.experiments.jobs import python_command, run_commands
from lib.fileio import write_json_atomic, write_text_atomic
from lib.models.ops import NUM_SEARCH_STAGES
from lib.models.supernet import path_to_arch
from lib.search.sampler import PathSampler

PATHS_FILE = 'paths.json'
SUMMARY_FILE = 'ground_truth.json'


def parse_paths(text: str, num_stages: int = NUM_SEARCH_STAGES):
    """A JSON list of paths; INPUT_ARCH-style entries (with the two fixed stages) lose those."""
    try:
        paths = json.loads(text)
        if paths and isinstance(paths[0], list) and paths[0] and isinstance(paths[0][0], int):
            paths = [paths]  # one path
        return [tuple(tuple(int(op) for op in stage) for stage in (p[1:-1] if len(p) == num_stages + 2 else p))
                for p in paths]
    except (ValueError, TypeError, IndexError):
        raise ConfigError(f'--paths must be a JSON list of paths such as [[[3],[1],[0],[5],[2]]]; got {text!r}') from None


def path_key(path: Sequence[Sequence[int]]) -> str:
    """A file-name key: stages joined by '-', layers of a stage by '.', e.g. ``3-1.5-0-2-4``."""
    return '-'.join('.'.join(str(int(op)) for op in stage) for stage in path)


def key_path(key: str):
    return tuple(tuple(int(op) for op in stage.split('.')) for stage in key.split('-'))


def sample_paths_over_flops(layers_per_stage: Sequence[int], num_ops: int, cost, k: int, seed: int = 0,
                            pool: int = 2000) -> List[tuple]:
    """``k`` distinct uniform random paths spread over the space's cost range: ``pool`` draws sorted by
    ``cost(path)`` (e.g. real MACs), then the paths at ``k`` evenly spaced ranks from cheapest to dearest."""
    sampler = PathSampler(layers_per_stage, num_ops, how_to_prob='even', seed=seed)
    draws = sorted({sampler.sample() for _ in range(pool)}, key=lambda p: (cost(p), p))
    if len(draws) < k:
        raise ValueError(f'the space gave only {len(draws)} distinct paths in {pool} draws; ask for fewer than {k}')
    return evenly(draws, k)


def evenly(items: Sequence, count: int) -> list:
    """``count`` items at evenly spaced positions of ``items`` (first and last included)."""
    positions = np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)
    return [items[i] for i in dict.fromkeys(positions.tolist())]


def _read_list(out: str) -> dict:
    name = os.path.join(out, PATHS_FILE)
    if not os.path.exists(name):
        return {'paths': [], 'sampled': [], 'notes': []}
    with open(name) as f:
        return json.load(f)


def sample_paths_of_config(cfg_files: Sequence[str], k: int, seed: int = 0) -> List[tuple]:
    """``sample_paths_over_flops`` in the space of a search config, spread over real MACs at its resolution."""
    from lib.config import load_config
    from lib.models import ops
    from lib.search.flops import build_search_space
    from lib.search.macs_table import build_flops_table
    cfg = load_config(list(cfg_files))
    space = build_search_space(cfg)
    table = build_flops_table(cfg, space)
    return sample_paths_over_flops(space.layers_per_stage, ops.NUM_OPS, table.path_flops, k, seed=seed)


def load_paths(out: str, sampled_only: bool = False) -> List[tuple]:
    """The paths of ``out``'s list (``sampled_only``: those --sample drew, the random sample of the space)."""
    return [key_path(key) for key in _read_list(out)['sampled' if sampled_only else 'paths']]


def save_paths(out: str, paths: Sequence[Sequence[Sequence[int]]], note: str = '', sampled: bool = False) -> None:
    """Add ``paths`` to ``out``'s list (keeping its order, skipping known ones); ``sampled``: they are the
    random sample of the space (the population that picks are placed in)."""
    listed = _read_list(out)
    new = [k for k in dict.fromkeys(path_key(p) for p in paths)]
    listed['paths'] += [k for k in new if k not in listed['paths']]
    if sampled:
        listed['sampled'] += [k for k in new if k not in listed['sampled']]
    if note:
        listed['notes'].append(note)
    os.makedirs(out, exist_ok=True)
    write_json_atomic(listed, os.path.join(out, PATHS_FILE))


def result_file(out: str, path, seed: int) -> str:
    return os.path.join(out, 'results', f'{path_key(path)}_seed{seed}.json')


def retrain_command(repo: str, out: str, recipe: Sequence[str], path, seed: int, opts: Sequence[str] = ()) -> List[str]:
    """``retrain.py`` with the recipe files, this path and seed, its run folder under out/runs, resumable."""
    args = []
    for cfg in recipe:
        args += ['--cfg', cfg]
    args += ['MODEL_SELECTION', '-1', 'INPUT_ARCH', json.dumps(path_to_arch(path)).replace(' ', ''),
             'NET.SINGLE_LAYER_DEFAULT_OP', 'False', 'SEED', seed, 'SAVE_PATH', os.path.join(out, 'runs'),
             'MODEL', f'{path_key(path)}_seed{seed}', 'AUTO_RESUME', 'True', *opts]
    return python_command(os.path.join(repo, 'retrain.py'), *args)


def record_result(out: str, path, seed: int) -> dict:
    """The finished run's final validation result as the (path, seed) result file."""
    with open(os.path.join(out, 'runs', f'{path_key(path)}_seed{seed}', 'results.json')) as f:
        results = json.load(f)
    record = {'path': [list(s) for s in path], 'seed': seed, 'val_prec1': results['val']['prec1'],
              'val_loss': results['val']['loss'], 'epochs': results['epochs'], 'epoch': results['epoch']}
    write_json_atomic(record, result_file(out, path, seed))
    return record


def _claimed_elsewhere(out: str, path, seed: int) -> bool:
    """True while another live process trains (path, seed) (its claim file names its process id)."""
    claim = os.path.join(out, 'logs', f'{path_key(path)}_seed{seed}.claim')
    try:
        with open(claim) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def train_missing(repo: str, out: str, recipe: Sequence[str], seeds: Sequence[int], jobs: int = 1,
                  opts: Sequence[str] = (), paths: Optional[Sequence] = None) -> int:
    """Train every (path, seed) of ``out``'s list without a result file; returns how many it trained. Runs that
    another live invocation on the same folder has claimed are left to it (and waited for)."""
    paths = load_paths(out) if paths is None else paths
    missing = [(p, s) for p in paths for s in seeds if not os.path.exists(result_file(out, p, s))]
    todo = [(p, s) for p, s in missing if not _claimed_elsewhere(out, p, s)]
    os.makedirs(os.path.join(out, 'results'), exist_ok=True)
    os.makedirs(os.path.join(out, 'logs'), exist_ok=True)
    for p, s in todo:
        write_text_atomic(f'{os.getpid()}\n', os.path.join(out, 'logs', f'{path_key(p)}_seed{s}.claim'))
    run_commands([retrain_command(repo, out, recipe, p, s, opts) for p, s in todo], jobs=jobs,
                 logs=[os.path.join(out, 'logs', f'{path_key(p)}_seed{s}.log') for p, s in todo],
                 on_done=lambda i: record_result(out, *todo[i]))  # each result as soon as its run is done
    while any(_claimed_elsewhere(out, p, s) and not os.path.exists(result_file(out, p, s)) for p, s in missing):
        time.sleep(5)
    return len(todo)


def summarize(out: str, seeds: Optional[Sequence[int]] = None) -> Dict[str, dict]:
    """Per path key: val prec1 by seed, their mean and standard deviation (ddof 1; 0 with one seed); written
    to ground_truth.json. Only paths of the list; only ``seeds`` when given."""
    by_path: Dict[str, Dict[int, float]] = {}
    for name in sorted(glob.glob(os.path.join(out, 'results', '*.json'))):
        with open(name) as f:
            record = json.load(f)
        if seeds is None or record['seed'] in seeds:
            by_path.setdefault(path_key(record['path']), {})[record['seed']] = record['val_prec1']
    listed = {path_key(p) for p in load_paths(out)}
    summary = {}
    for key, accs in by_path.items():
        if key not in listed:
            continue
        values = np.array([accs[s] for s in sorted(accs)])
        summary[key] = {'val_prec1': {str(s): accs[s] for s in sorted(accs)}, 'mean': float(values.mean()),
                        'std': float(values.std(ddof=1)) if len(values) > 1 else 0.0}
    write_json_atomic(summary, os.path.join(out, SUMMARY_FILE))
    return summary


def seed_noise(summary: Dict[str, dict]) -> Dict[str, float]:
    """How far apart the ground truth's paths are against its seed noise: the mean per-path standard deviation
    over seeds, the standard deviation of the path means, and their ratio (above 1: paths differ by more than
    seeds move them)."""
    stds = [v['std'] for v in summary.values() if len(v['val_prec1']) > 1]
    means = [v['mean'] for v in summary.values()]
    noise = float(np.mean(stds)) if stds else float('nan')
    spread = float(np.std(means, ddof=1)) if len(means) > 1 else float('nan')
    return {'mean_seed_std': noise, 'std_of_path_means': spread, 'ratio': spread / noise if noise else float('nan'),
            'range_of_path_means': float(max(means) - min(means)) if means else float('nan')}
