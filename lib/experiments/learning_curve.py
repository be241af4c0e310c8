"""How far a supernet has learnt, epoch by epoch: a few fixed paths scored by each epoch's checkpoint of a search
(val prec@1 with the supernet's shared BN statistics and with the path's own re-estimated, as
``lib.experiments.supernet_scores`` scores them), beside the same paths trained alone (the per-epoch val prec@1 of
their tools/ground_truth.py runs). The search must keep every epoch's checkpoint: run it with CHECKPOINT_HIST at
least EPOCHS (the saver keeps the CHECKPOINT_HIST best ``checkpoint-<epoch>.pth.tar``)."""
import csv
import glob
import os
import re
from typing import Dict, List, Sequence

import numpy as np

from lib.checkpoint.files import load_checkpoint_file
from lib.checkpoint.saver import EPOCH_FILE_PATTERN
from lib.errors import ConfigError
from lib.experiments.supernet_scores import load_search_run, score_paths
from lib.models.paths import path_key


def epoch_checkpoints(run_dir: str) -> List[tuple]:
    """(epoch, file) of every ``checkpoint-<epoch>.pth.tar`` of the run, by epoch."""
    found = []
    for name in glob.glob(os.path.join(run_dir, 'checkpoint-*.pth.tar')):
        match = EPOCH_FILE_PATTERN.match(os.path.basename(name))
        if match:
            found.append((int(match.group(1)), name))
    return sorted(found)


def supernet_curves(run_dir: str, paths: Sequence, bn_batches: int) -> Dict[str, dict]:
    """Per path key: the epochs and, for each, val prec1 with shared and with re-estimated BN statistics."""
    checkpoints = epoch_checkpoints(run_dir)
    if not checkpoints:
        raise ConfigError(f'{run_dir} holds no checkpoint-<epoch>.pth.tar: run the search with CHECKPOINT_HIST at '
                          'least EPOCHS so that it keeps one per epoch')
    run = load_search_run(run_dir)
    curves = {path_key(p): {'epochs': [], 'shared': [], 'recalibrated': []} for p in paths}
    for epoch, name in checkpoints:
        run.supernet.load_state_dict(load_checkpoint_file(name)['state_dict'])
        for row in score_paths(run, paths, bn_batches):
            curve = curves[path_key(row['path'])]
            curve['epochs'].append(epoch)
            curve['shared'].append(row['shared']['prec1'])
            curve['recalibrated'].append(row.get('recalibrated', row['shared'])['prec1'])
    return curves


def standalone_curves(ground_truth: str, paths: Sequence) -> Dict[str, Dict[str, List[float]]]:
    """Per path key and seed: the val prec1 of each epoch of its stand-alone run (tools/ground_truth.py's
    runs/<key>_seed<s>/summary.csv); paths without a run are left out."""
    curves: Dict[str, Dict[str, List[float]]] = {}
    for path in paths:
        key = path_key(path)
        for folder in sorted(glob.glob(os.path.join(ground_truth, 'runs', f'{key}_seed*'))):
            seed = re.search(r'_seed(\d+)$', folder)
            summary = os.path.join(folder, 'summary.csv')
            if seed is None or not os.path.isfile(summary):
                continue
            with open(summary, newline='') as f:
                rows = sorted(csv.DictReader(f), key=lambda r: int(r['epoch']))
            curves.setdefault(key, {})[seed.group(1)] = [float(r['val_prec1']) for r in rows]
    return curves


def compare(supernet: Dict[str, dict], standalone: Dict[str, Dict[str, List[float]]]) -> Dict[str, dict]:
    """Per path: the supernet's last re-estimated score, the stand-alone final (mean over seeds) and the gap."""
    rows = {}
    for key, curve in supernet.items():
        finals = [accs[-1] for accs in standalone.get(key, {}).values() if accs]
        alone = float(np.mean(finals)) if finals else None
        last = curve['recalibrated'][-1] if curve['recalibrated'] else None
        rows[key] = {'supernet_last': last, 'standalone_final': alone,
                     'gap': None if alone is None or last is None else alone - last}
    return rows
