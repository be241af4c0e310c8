"""One search run against the stand-alone ground truth: its supernet's scores of the ground truth's random
paths, how they rank against the stand-alone accuracies (and the free floors: parameter count and FLOPs), and
where its picks fall among those paths."""
from typing import Dict, Optional, Sequence

import numpy as np

from lib.experiments.ranking import compare, percentile_of
from lib.experiments.supernet_scores import chosen_path, load_search_run, score_paths
from lib.models.paths import path_key

SCORERS = ('prec1_shared', 'prec1_recalibrated', 'neg_loss_shared', 'neg_loss_recalibrated', 'params', 'flops')


def _scorer_values(row: dict) -> Dict[str, float]:
    values = {'prec1_shared': row['shared']['prec1'], 'neg_loss_shared': -row['shared']['loss'],
              'params': row['params'], 'flops': row['macs']}
    if 'recalibrated' in row:
        values['prec1_recalibrated'] = row['recalibrated']['prec1']
        values['neg_loss_recalibrated'] = -row['recalibrated']['loss']
    return values


def place(path, truth: Dict[str, dict], population: Sequence[float]) -> Optional[dict]:
    """A path's stand-alone mean accuracy and its percentile among ``population`` (None when not trained)."""
    if path is None:
        return None
    entry = truth.get(path_key(path))
    mean = None if entry is None else entry['mean']
    return {'path': [list(s) for s in path], 'standalone_prec1': mean,
            'percentile': None if mean is None else percentile_of(mean, population)}


def board_scores(run, board: Sequence, bn_batches: int) -> Optional[dict]:
    """The board's paths scored with shared and re-estimated BN: both means, and the board path a pick by
    re-estimated val prec@1 takes (what SUPERNET.BN_RECALIBRATION_BATCHES does to best_arch.yaml)."""
    if not board or bn_batches <= 0:
        return None
    rows = score_paths(run, board, bn_batches)
    best = max(range(len(rows)), key=lambda i: (rows[i]['recalibrated']['prec1'], -i))
    return {'scores': rows, 'shared_mean': float(np.mean([r['shared']['prec1'] for r in rows])),
            'recalibrated_mean': float(np.mean([r['recalibrated']['prec1'] for r in rows])),
            'best_recalibrated': rows[best]['path']}


def rank_run(run_dir: str, label: str, truth: Dict[str, dict], sampled: Sequence, bn_batches: int = 4,
             k: int = 5, resamples: int = 1000, device: str = 'cpu', board_info: Optional[dict] = None,
             run=None) -> dict:
    """Score the ground truth's random paths (``sampled``, all trained: ``truth`` holds them) with the run's
    supernet and compare each scorer's order with the stand-alone means; ``board_info``: ``board_scores`` of the
    run's board, placed too. ``run``: the run already loaded (``load_search_run``), else it is loaded here."""
    missing = [path_key(p) for p in sampled if path_key(p) not in truth]
    if missing:
        raise ValueError(f'the ground truth lacks {len(missing)} sampled paths (e.g. {missing[0]}): train them first')
    run = run or load_search_run(run_dir, device)
    rows = score_paths(run, sampled, bn_batches)
    for row, path in zip(rows, sampled):
        row['standalone_prec1'] = truth[path_key(path)]['mean']
        row['params'] = run.table.path_params(path)
        row['macs'] = run.table.path_macs(path)
    standalone = [row['standalone_prec1'] for row in rows]
    values = [_scorer_values(row) for row in rows]
    metrics = {name: compare(standalone, [v[name] for v in values], k=k, resamples=resamples)
               for name in SCORERS if name in values[0]}
    best_by = 'prec1_recalibrated' if bn_batches > 0 else 'prec1_shared'
    top = int(np.argmax([v[best_by] for v in values]))
    return {'label': label, 'run_dir': run_dir, 'resolution': run.space.resolution,
            'layers_per_stage': list(run.space.layers_per_stage), 'bn_batches': bn_batches, 'scores': rows,
            'metrics': metrics, 'best_arch': place(chosen_path(run_dir), truth, standalone),
            'top_scored': dict(place(sampled[top], truth, standalone), by=best_by), 'board': board_info,
            'board_best_recalibrated': None if board_info is None else place(board_info['best_recalibrated'], truth,
                                                                             standalone)}
