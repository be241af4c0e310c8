"""The held-out test set (DATA_DIR/test, class sub-folders as in train/ and val/): a stand-alone run's final
weights (the ground truth's retrain.py runs) evaluated on it once, each result cached as a file, so that the
miniature reports its picks and the random paths on images no choice has seen."""
import json
import os
from typing import Dict, Optional, Sequence

import numpy as np

from lib.config import load_config
from lib.data.loaders import build_val_loader
from lib.engine.evaluate import evaluate
from lib.experiments import ground_truth as gt
from lib.fileio import write_json_atomic
from lib.models.paths import path_key

TEST_SPLIT = 'test'


def evaluate_run_on_test(run_dir: str, data_dir: str) -> dict:
    """prec1 and loss of a finished retrain.py run (its config.yaml, last.pth.tar) on DATA_DIR/test."""
    from lib.checkpoint.weights import load_model_weights
    from lib.models.from_config import build_child_from_cfg
    cfg = load_config([os.path.join(run_dir, 'config.yaml')])
    model, info = build_child_from_cfg(cfg)
    load_model_weights(model, os.path.join(run_dir, 'last.pth.tar'), use_ema=cfg.NET.EMA.USE)
    model.eval()
    loader = build_val_loader(data_dir=data_dir, image_size=info.resolution, batch_size=cfg.DATASET.BATCH_SIZE,
                              workers=0, interpolation=cfg.DATASET.EVAL_INTERPOLATION, crop_pct=cfg.DATASET.CROP_PCT,
                              use_prefetcher=False, num_classes=cfg.DATASET.NUM_CLASSES, split=TEST_SPLIT)
    result = evaluate(model, loader, 'cpu', forward=model)
    return {'prec1': float(result['prec1']), 'loss': float(result['loss']), 'images': int(result['images'])}


def test_results(out: str, truth_dir: str, paths: Sequence, seeds: Sequence[int], data_dir: str) -> Dict[str, dict]:
    """Per path key: test prec1 by seed and their mean, for every (path, seed) the ground truth has trained; each
    evaluation cached in OUT/test_set/<key>_seed<s>.json."""
    results = {}
    for path in paths:
        by_seed = {}
        for seed in seeds:
            if not os.path.exists(gt.result_file(truth_dir, path, seed)):
                continue
            name = os.path.join(out, 'test_set', f'{path_key(path)}_seed{seed}.json')
            if not os.path.isfile(name):
                run_dir = os.path.join(truth_dir, 'runs', f'{path_key(path)}_seed{seed}')
                os.makedirs(os.path.dirname(name), exist_ok=True)
                write_json_atomic(evaluate_run_on_test(run_dir, data_dir), name)
            with open(name) as f:
                by_seed[str(seed)] = json.load(f)['prec1']
        if by_seed:
            results[path_key(path)] = {'test_prec1': by_seed, 'mean': float(np.mean(list(by_seed.values())))}
    return results


def test_mean(results: Dict[str, dict], path) -> Optional[float]:
    entry = None if path is None else results.get(path_key(path))
    return None if entry is None else entry['mean']
