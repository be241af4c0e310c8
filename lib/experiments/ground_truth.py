"""Stand-alone ground truth: each path of a list trained alone with one retraining recipe (``retrain.py``),
for several seeds; one result file per (path, seed), written atomically when its run is done, so a killed
run continues with what is not done (and ``retrain.py``'s AUTO_RESUME continues a run killed midway).

Layout of ``out``: ``paths.json`` (the list), ``runs/<key>_seed<s>/`` (retrain run folders),
``results/<key>_seed<s>.json``, ``ground_truth.json`` (per path: accuracies by seed, mean, spread).

Every file of the folder is read and checked by ``lib.experiments.truth_files``: a damaged one is one error
naming it, never read as missing or null; a path is checked before it is added to the list.
"""
import glob
import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from lib.checked_io import file_error, finite_number, read_json
from lib.errors import ConfigError
from lib.experiments.jobs import python_command, refuse_set_keys, run_commands
from lib.experiments.truth_files import (PATHS_FILE, SUMMARY_FILE, check_results, checked_path,  # noqa: F401
                                         read_list, read_result, read_summary, result_file)
from lib.fileio import write_json_atomic, write_text_atomic
from lib.models.childnet import ArchError
from lib.models.ops import NUM_SEARCH_STAGES
from lib.models.paths import key_path, path_key, random_path, seeded_generator
from lib.models.supernet import path_to_arch

PATHS_EXAMPLE = '[[[3],[1],[0],[5],[2]]]'


def parse_paths(text: str, num_stages: int = NUM_SEARCH_STAGES):
    """A JSON list of paths (or one path); INPUT_ARCH-style entries (with the two fixed stages) lose those. Every
    path is checked (stages, ops) here, before anything is saved."""
    try:
        paths = json.loads(text)
    except ValueError:
        raise ConfigError(f'--paths is not JSON: give a list of paths such as {PATHS_EXAMPLE}; got {text!r}') from None
    if not isinstance(paths, list) or not paths:
        raise ConfigError(f'--paths must be a non-empty JSON list of paths such as {PATHS_EXAMPLE}; got {text!r}')
    if isinstance(paths[0], list) and paths[0] and isinstance(paths[0][0], int):
        paths = [paths]  # one path
    checked = []
    for i, path in enumerate(paths):
        if isinstance(path, list) and len(path) == num_stages + 2:
            if path[0] != [0] or path[-1] != [0]:
                raise ConfigError(f'--paths entry {i} has {num_stages + 2} stages (an INPUT_ARCH), but its fixed first '
                                  f'and last stages are not [0]: {path!r}')
            path = path[1:-1]
        try:
            checked.append(checked_path(path, f'--paths entry {i}'))
        except ArchError as err:
            raise ConfigError(f'{err}; give paths such as {PATHS_EXAMPLE}') from None
    return checked


def sample_paths_over_flops(layers_per_stage: Sequence[int], num_ops: int, cost, k: int, seed: int = 0,
                            pool: int = 2000) -> List[tuple]:
    """``k`` distinct uniform random paths spread over the space's cost range: ``pool`` draws sorted by
    ``cost(path)`` (e.g. real MACs), then the paths at ``k`` evenly spaced ranks from cheapest to dearest."""
    generator = seeded_generator(seed)
    draws = sorted({random_path(layers_per_stage, num_ops, generator) for _ in range(pool)}, key=lambda p: (cost(p), p))
    if len(draws) < k:
        raise ConfigError(f'the space gave only {len(draws)} distinct paths in {pool} draws; ask for fewer than {k}')
    return evenly(draws, k)


def evenly(items: Sequence, count: int) -> list:
    """``count`` items at evenly spaced positions of ``items`` (first and last included)."""
    positions = np.linspace(0, len(items) - 1, min(count, len(items))).round().astype(int)
    return [items[i] for i in dict.fromkeys(positions.tolist())]


def sample_paths_of_config(cfg_files: Sequence[str], k: int, seed: int = 0) -> List[tuple]:
    """``sample_paths_over_flops`` in the space of a search config, spread over real MACs at its resolution."""
    from lib.config import load_config
    from lib.models import ops
    from lib.search.flops import build_search_space
    from lib.search.macs_table import build_macs_table
    cfg = load_config(list(cfg_files))
    space = build_search_space(cfg)
    table = build_macs_table(cfg, space)
    return sample_paths_over_flops(space.layers_per_stage, ops.NUM_OPS, table.path_macs, k, seed=seed)


def load_paths(out: str, sampled_only: bool = False) -> List[tuple]:
    """The paths of ``out``'s list (``sampled_only``: those --sample drew, the random sample of the space)."""
    return [key_path(key) for key in read_list(out)['sampled' if sampled_only else 'paths']]


def save_paths(out: str, paths: Sequence[Sequence[Sequence[int]]], note: str = '', sampled: bool = False) -> None:
    """Add ``paths`` to ``out``'s list (keeping its order, skipping known ones); ``sampled``: they are the
    random sample of the space (the population that picks are placed in)."""
    listed = read_list(out)
    new = [k for k in dict.fromkeys(path_key(checked_path([list(s) for s in p])) for p in paths)]
    listed['paths'] += [k for k in new if k not in listed['paths']]
    if sampled:
        listed['sampled'] += [k for k in new if k not in listed['sampled']]
    if note:
        listed['notes'].append(note)
    os.makedirs(out, exist_ok=True)
    write_json_atomic(listed, os.path.join(out, PATHS_FILE))


def retrain_command(repo: str, out: str, recipe: Sequence[str], path, seed: int, opts: Sequence[str] = ()) -> List[str]:
    """``retrain.py`` with the recipe files, this path and seed, its run folder under out/runs, resumable."""
    args = []
    for cfg in recipe:
        args += ['--cfg', cfg]
    return python_command(os.path.join(repo, 'retrain.py'), *args, *retrain_overrides(out, path, seed, opts))


def run_dir(out: str, path, seed: int) -> str:
    return os.path.join(out, 'runs', f'{path_key(path)}_seed{seed}')


def record_result(out: str, path, seed: int) -> dict:
    """The finished run's final validation result as the (path, seed) result file; a results.json without a
    finite val prec@1 (a diverged or damaged run) is an error naming it, and no result file is written."""
    name = os.path.join(run_dir(out, path, seed), 'results.json')
    fix = f'delete {run_dir(out, path, seed)} to train that run again (with another recipe if it diverged)'
    results = read_json(name, dict, 'retrain.py result', fix)
    val = results.get('val')
    prec1, loss = (val.get('prec1'), val.get('loss')) if isinstance(val, dict) else (None, None)
    if not finite_number(prec1) or not 0 <= prec1 <= 100:
        raise file_error(name, f'has no finite val prec@1 in 0..100 (val: {val!r})', fix)
    record = {'path': [list(s) for s in path], 'seed': seed, 'val_prec1': prec1,
              'val_loss': loss, 'epochs': results.get('epochs'), 'epoch': results.get('epoch')}
    write_json_atomic(record, result_file(out, path, seed))
    return record


RETRAIN_KEYS = ('NET.SELECTION', 'NET.INPUT_ARCH', 'NET.SINGLE_LAYER_DEFAULT_OP', 'SEED', 'SAVE_PATH', 'MODEL',
                'AUTO_RESUME')  # what retrain_overrides sets for every run


def retrain_overrides(out: str, path, seed: int, opts: Sequence[str] = ()) -> List[str]:
    """The KEY VALUE pairs of the (path, seed) run: this path and seed, its run folder under out/runs, resumable."""
    return ['MODEL_SELECTION', '-1', 'INPUT_ARCH', json.dumps(path_to_arch(path)).replace(' ', ''),
            'NET.SINGLE_LAYER_DEFAULT_OP', 'False', 'SEED', str(seed), 'SAVE_PATH', os.path.join(out, 'runs'),
            'MODEL', f'{path_key(path)}_seed{seed}', 'AUTO_RESUME', 'True', *[str(o) for o in opts]]


def check_recipe(out: str, recipe: Sequence[str], opts: Sequence[str], path, seed: int) -> None:
    """Before any run starts: the recipe with the tool's overrides loads, and retrain.py's preflight (network,
    LR schedule, data folders) passes; a mistake is one error here, not N failed children."""
    from lib.config import load_config
    from lib.retrain.setup import preflight
    refuse_set_keys(list(opts), RETRAIN_KEYS, 'the trailing KEY VALUE pairs')
    for name in recipe:
        if not os.path.isfile(name):
            raise ConfigError(f'recipe {name} not found: give retrain.py config files to --recipe')
    preflight(load_config(list(recipe), retrain_overrides(out, path, seed, opts)))


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
    if os.path.isdir(out):
        check_results(out)  # a damaged result file is named here, not taken as a finished run
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
        record = read_result(name)
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
