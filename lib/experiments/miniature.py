"""The miniature of the paper's ablation: the same search space, data and number of steps under several search
configs and seeds; a stand-alone ground truth of random paths of the space (plus every path a run picked);
each run's supernet ranking and picks against it (``tools/miniature.py`` runs it, resumably).

Layout of ``out``: searches/<label>_seed<s>/ (train.py run folders, ``.done`` markers), ground_truth/
(tools/ground_truth.py's folder), report.json (every run's ranking), summary.json and table.md (per config:
mean and spread over seeds), ranking.png.
"""
import json
import os
import resource
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from lib.checked_io import file_error, read_json
from lib.experiments import ground_truth as gt
from lib.experiments.jobs import python_command, refuse_set_keys, run_commands
from lib.experiments.test_set import test_mean
from lib.fileio import write_json_atomic, write_text_atomic
from lib.models.paths import path_key


def config_differences(base_file: str, other_file: str, ignore=('MODEL',)) -> List[str]:
    """KEY VALUE pairs that turn ``base_file``'s merged config into ``other_file``'s (e.g. every fidelity switch of
    configs/train_corrected.yaml against configs/train.yaml), for layering on another config."""
    from lib.config import load_config

    def flat(node, prefix=''):
        for key, value in node.items():
            if hasattr(value, 'items'):
                yield from flat(value, f'{prefix}{key}.')
            else:
                yield f'{prefix}{key}', value
    base, other = dict(flat(load_config([base_file]))), dict(flat(load_config([other_file])))
    pairs = []
    for key, value in other.items():
        if key not in ignore and base.get(key) != value:
            pairs += [key, repr(value) if not isinstance(value, str) else value]
    return pairs


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def log_cpu(out: str, phase: str, since: float) -> float:
    """Append the CPU seconds a phase of this invocation took to OUT/cpu_time.jsonl; returns the clock now."""
    now = cpu_seconds()
    with open(os.path.join(out, 'cpu_time.jsonl'), 'a') as f:
        f.write(json.dumps({'phase': phase, 'cpu_s': round(now - since, 1), 'time': time.strftime('%Y-%m-%d %H:%M:%S')}) + '\n')
    return now


def search_dir(out: str, label: str, seed: int) -> str:
    return os.path.join(out, 'searches', f'{label}_seed{seed}')


SEARCH_KEYS = ('SEED', 'DATA_DIR', 'SAVE_PATH', 'MODEL', 'AUTO_RESUME')  # what run_searches sets for every search


def check_searches(configs: Dict[str, tuple], data_dir: str) -> None:
    """Before any search starts: each config (with the overrides run_searches adds) loads and passes train.py's
    preflight (budget, search settings, data folders)."""
    from lib.config import load_config
    from lib.search.builder import preflight
    for files, pairs in configs.values():
        refuse_set_keys(pairs, SEARCH_KEYS, '--search-opts')
        preflight(load_config(list(files), [*pairs, 'DATA_DIR', data_dir]))


def check_finished_searches(out: str, labels: Sequence[str], seeds: Sequence[int]) -> None:
    """A search marked done (its ``.done`` file) still has what scoring reads: its config.yaml and checkpoint."""
    for label in labels:
        for seed in seeds:
            run_dir = search_dir(out, label, seed)
            missing = [name for name in ('config.yaml', 'last.pth.tar')
                       if not os.path.isfile(os.path.join(run_dir, name))]
            if os.path.exists(run_dir + '.done') and missing:
                raise file_error(run_dir + '.done', f'marks a finished search, but {run_dir} lacks {missing[0]}',
                                 'delete the marker (and what is left of the folder) to search again')


def run_searches(repo: str, out: str, configs: Dict[str, tuple], seeds: Sequence[int], data_dir: str,
                 jobs: int) -> None:
    """train.py for every (config, seed) without a ``.done`` marker; AUTO_RESUME continues killed ones.
    ``configs``: label -> (config files, KEY VALUE pairs)."""
    todo = [(label, seed) for label in configs for seed in seeds
            if not os.path.exists(search_dir(out, label, seed) + '.done')]
    os.makedirs(os.path.join(out, 'searches'), exist_ok=True)
    commands, logs = [], []
    for label, seed in todo:
        files, pairs = configs[label]
        args = [a for cfg in files for a in ('--cfg', cfg)] + list(pairs)
        args += ['SEED', seed, 'DATA_DIR', data_dir, 'SAVE_PATH', os.path.join(out, 'searches'),
                 'MODEL', f'{label}_seed{seed}', 'AUTO_RESUME', 'True']
        commands.append(python_command(os.path.join(repo, 'train.py'), *args))
        logs.append(search_dir(out, label, seed) + '.log')
    def mark_done(index):
        write_text_atomic('done\n', search_dir(out, *todo[index]) + '.done')
    run_commands(commands, jobs=jobs, logs=logs, on_done=mark_done)


def random_search_report(result: dict, seed: int, truth: Dict[str, dict], sampled: Sequence) -> dict:
    """A random search (``lib.experiments.random_search``) as a run of the report: no supernet to rank with, its
    pick placed among the random paths."""
    from lib.experiments.report import place
    population = [truth[path_key(p)]['mean'] for p in sampled]
    return {'label': 'random-search', 'seed': seed, 'run_dir': os.path.dirname(result['best_arch']), 'metrics': {},
            'best_arch': place(tuple(tuple(s) for s in result['best_path']), truth, population),
            'random_search': {k: result[k] for k in ('k', 'search_images', 'images_per_path', 'best_val_prec1')}}


def _mean_std(values: Sequence[float]) -> dict:
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return {'mean': None, 'std': None, 'n': 0}
    return {'mean': float(np.mean(values)), 'std': float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            'n': len(values)}


def summarize_reports(reports: Sequence[dict], truth: Dict[str, dict], sampled: Sequence,
                      tests: Optional[Dict[str, dict]] = None) -> dict:
    """Per config label: tau and rho of each scorer (mean and spread over seeds), the stand-alone accuracy of
    the picks (best_arch.yaml, top-scored path), and the random paths' median and 90th percentile; with ``tests``
    (``lib.experiments.test_set.test_results``) the same on the test set (each pick's 'test_prec1' is added to its
    report)."""
    population = [truth[path_key(p)]['mean'] for p in sampled]
    summary = {'random_paths': {'count': len(population), 'median': float(np.median(population)),
                                'p90': float(np.percentile(population, 90)), 'max': float(max(population)),
                                'min': float(min(population))},
               'seed_noise': gt.seed_noise({path_key(p): truth[path_key(p)] for p in sampled}),
               'configs': {}}
    if tests:
        on_test = [tests[path_key(p)]['mean'] for p in sampled if path_key(p) in tests]
        summary['random_paths'].update(test_median=float(np.median(on_test)),
                                       test_p90=float(np.percentile(on_test, 90)))
        for report in reports:
            for pick in ('best_arch', 'top_scored', 'board_best_recalibrated'):
                if report.get(pick):
                    report[pick]['test_prec1'] = test_mean(tests, report[pick]['path'])
    for label in dict.fromkeys(r['label'] for r in reports):
        runs = [r for r in reports if r['label'] == label]
        entry = {'runs': len(runs)}
        for scorer in runs[0]['metrics']:
            entry[f'tau_{scorer}'] = _mean_std([r['metrics'][scorer]['kendall_tau'] for r in runs])
            entry[f'rho_{scorer}'] = _mean_std([r['metrics'][scorer]['spearman_rho'] for r in runs])
        for pick in ('best_arch', 'top_scored', 'board_best_recalibrated'):
            placed = [r.get(pick) for r in runs]
            entry[pick] = {'standalone_prec1': _mean_std([p['standalone_prec1'] for p in placed if p]),
                           'percentile': _mean_std([p['percentile'] for p in placed if p]),
                           'test_prec1': _mean_std([p.get('test_prec1') for p in placed if p])}
        entry['supernet_train_prec1_last_epoch'] = _mean_std([r.get('last_train_prec1') for r in runs])
        entry['runs_detail'] = [{'seed': r.get('seed'), 'best_arch': r.get('best_arch'),
                                 **{f'{m}_{scorer}': r['metrics'][scorer][m] for scorer in ('prec1_recalibrated',)
                                    if scorer in r['metrics'] for m in ('kendall_tau', 'kendall_tau_ci',
                                                                        'spearman_rho', 'spearman_rho_ci')}}
                                for r in runs]
        entry['board_val_prec1'] = {k: _mean_std([r['board'][k] for r in runs if r.get('board')])
                                    for k in ('shared_mean', 'recalibrated_mean')}
        summary['configs'][label] = entry
    return summary


def _fmt(stat: dict, digits: int = 2) -> str:
    if not stat or stat.get('mean') is None:
        return 'n/a'
    return f'{stat["mean"]:.{digits}f} ± {stat["std"]:.{digits}f}'


def _num(value) -> str:
    """A statistic that may be undefined (None after a JSON round trip, or NaN): 'n/a'."""
    return 'n/a' if value is None or not np.isfinite(value) else f'{value:.2f}'


SEPARATES_RATIO = 2.0  # the paths' spread over the seeds' at which a ranking measures real differences


def separation_line(noise: dict) -> str:
    """Whether the ground truth separates its paths: the spread of the path means against the seed noise."""
    ratio = noise.get('ratio')
    if ratio is None or not np.isfinite(ratio):
        return ('Ground truth: no path was trained with two seeds, so its seed noise is unknown (give --gt-seeds '
                'two seeds).')
    figures = (f'standard deviation of the path means {noise["std_of_path_means"]:.2f}, mean standard deviation '
               f'between seeds {noise["mean_seed_std"]:.2f}: ratio {ratio:.2f}')
    if ratio >= SEPARATES_RATIO:
        return f'Ground truth: the paths differ by more than the seeds move them ({figures}).'
    return (f'Ground truth: the paths do NOT differ by clearly more than the seeds move them ({figures}, below '
            f'{SEPARATES_RATIO:g}), so a ranking against it is mostly noise; train the paths for fewer epochs '
            '(--recipe-opts EPOCHS N) or use harder data.')


def table_markdown(summary: dict) -> str:
    """The table of docs/miniature.md: one row per config, then the floors and the random paths (the test set's columns when it
    was evaluated); then each run's tau and rho with their 90% bootstrap intervals; then whether the ground truth
    separates its paths."""
    rp = summary['random_paths']
    lines = ['| search config | tau, supernet val prec@1 (shared BN) | tau, BN re-estimated | rho, BN re-estimated | '
             'picked path (best_arch.yaml): stand-alone prec@1 | its percentile among the random paths | '
             'picked path: test prec@1 | top-scored path: stand-alone prec@1 | supernet train prec@1, last epoch |',
             '|---|---|---|---|---|---|---|---|---|']
    for label, e in summary['configs'].items():
        lines.append(f'| {label} ({e["runs"]} seeds) | {_fmt(e.get("tau_prec1_shared"))} | '
                     f'{_fmt(e.get("tau_prec1_recalibrated"))} | {_fmt(e.get("rho_prec1_recalibrated"))} | '
                     f'{_fmt(e["best_arch"]["standalone_prec1"], 1)} | {_fmt(e["best_arch"].get("percentile"), 0)} | '
                     f'{_fmt(e["best_arch"].get("test_prec1"), 1)} | {_fmt(e["top_scored"]["standalone_prec1"], 1)} | '
                     f'{_fmt(e["supernet_train_prec1_last_epoch"], 1)} |')
    ranked = [e for e in summary['configs'].values() if e.get('tau_params')]
    if ranked:
        lines.append(f'| floor: parameter count | {_fmt(ranked[0]["tau_params"])} | | | | | | | |')
        lines.append(f'| floor: FLOPs | {_fmt(ranked[0]["tau_flops"])} | | | | | | | |')
    test = (f'test: median {rp["test_median"]:.1f}, 90th percentile {rp["test_p90"]:.1f}' if 'test_median' in rp
            else 'no test set')
    lines.append(f'| {rp["count"]} random paths | | | | median {rp["median"]:.1f}, 90th percentile {rp["p90"]:.1f} '
                 f'(range {rp["min"]:.1f}-{rp["max"]:.1f}) | | {test} | | |')
    runs = [(label, run) for label, e in summary['configs'].items() for run in e.get('runs_detail', [])
            if 'kendall_tau_prec1_recalibrated' in run]
    if runs:
        lines += ['', '| run | tau, BN re-estimated (90% bootstrap interval) | rho (90% interval) | pick: percentile |',
                  '|---|---|---|---|']
        for label, run in runs:
            tau_ci, rho_ci = run['kendall_tau_ci_prec1_recalibrated'], run['spearman_rho_ci_prec1_recalibrated']
            pick = run.get('best_arch') or {}
            percentile = 'n/a' if pick.get('percentile') is None else f'{pick["percentile"]:.0f}'
            lines.append(f'| {label} seed {run["seed"]} | {_num(run["kendall_tau_prec1_recalibrated"])} '
                         f'[{_num(tau_ci["low"])}, {_num(tau_ci["high"])}] | '
                         f'{_num(run["spearman_rho_prec1_recalibrated"])} [{_num(rho_ci["low"])}, '
                         f'{_num(rho_ci["high"])}] | {percentile} |')
    lines += ['', separation_line(summary['seed_noise'])]
    return '\n'.join(lines) + '\n'


def write_outputs(out: str, reports: Sequence[dict], summary: dict) -> None:
    write_json_atomic({'runs': list(reports)}, os.path.join(out, 'report.json'))
    write_json_atomic(summary, os.path.join(out, 'summary.json'))
    write_text_atomic(table_markdown(summary), os.path.join(out, 'table.md'))


def last_train_prec1(run_dir: str):
    """train_prec1 of the last row of the run's summary.csv."""
    import csv
    name = os.path.join(run_dir, 'summary.csv')
    with open(name) as f:
        rows = list(csv.DictReader(f))
    try:
        return float(rows[-1]['train_prec1']) if rows else None
    except (KeyError, TypeError, ValueError):
        raise file_error(name, 'has no train_prec1 in its last row', 'delete the search run to search again') from None


# ---- scoring the runs (``jobs.in_processes``: a few processes at a time), each result cached in OUT/scores/ ------
def _cached(name: str, compute):
    if os.path.isfile(name):
        cached = read_json(name, dict, 'cached score', 'delete it to compute it again')
        if 'value' not in cached:
            raise file_error(name, 'has no "value"', 'delete it to compute it again', 'cached score')
        return cached['value']
    value = compute()
    os.makedirs(os.path.dirname(name), exist_ok=True)
    write_json_atomic({'value': value}, name)
    return value


def cached_board_scores(out: str, run_dir: str, bn_batches: int):
    """``board_scores`` of a run's final board (OUT/scores/<run>.board.json once computed)."""
    from lib.experiments.report import board_scores
    from lib.experiments.supernet_scores import board_paths, load_search_run
    name = os.path.join(out, 'scores', f'{os.path.basename(run_dir)}.board.json')
    return _cached(name, lambda: board_scores(load_search_run(run_dir), board_paths(run_dir), bn_batches))


def cached_rank_run(out: str, run_dir: str, label: str, seed: int, truth, sampled, bn_batches: int, board_info):
    """``rank_run`` of a search against the ground truth (OUT/scores/<run>.rank.json once computed; delete the
    folder after the ground truth changes)."""
    from lib.experiments.report import rank_run

    def compute():
        report = rank_run(run_dir, label, truth, sampled, bn_batches=bn_batches, board_info=board_info)
        report.update(seed=seed, last_train_prec1=last_train_prec1(run_dir))
        return report
    return _cached(os.path.join(out, 'scores', f'{os.path.basename(run_dir)}.rank.json'), compute)

