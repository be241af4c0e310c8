"""Retrain a Cream child network: one of the six released ones or any searched path.

    python retrain.py --cfg configs/retrain/287.yaml
    python -m torch.distributed.run --nproc_per_node=8 retrain.py --cfg configs/retrain.yaml MODEL_SELECTION 481
    python retrain.py --cfg configs/demo/retrain.yaml --cfg output/demo_search/best_arch.yaml

Writes to SAVE_PATH/MODEL: retrain.log, config.yaml, summary.csv, tensorboard/, results.json,
last.pth.tar, best.pth.tar, checkpoint-<epoch>.pth.tar (top CHECKPOINT_HIST), recovery.pth.tar.
"""
from typing import Any, Dict, Iterable, List, Optional

from lib.engine.guard import exit_on_error, logged_run
from lib.engine.runtime import setup_run
from lib.retrain.epoch import fit
from lib.retrain.setup import build_session, preflight
from lib.train.hooks import Hook
from lib.train.loop import train_run


def _final_summary(logger, results: Dict[str, Any], run_dir: str) -> None:
    if not results:
        return
    ema = results.get('val_ema')
    best = results['best']
    logger.info('finished %s (%s, %d px) after epoch %d: val prec@1 %.3f%s; best %s %s %.4f at epoch %d',
                results['model'], results['arch'], results['resolution'], results['epoch'],
                results['val']['prec1'], f', EMA prec@1 {ema["prec1"]:.3f}' if ema else '',
                best['of'], best['metric'], best['value'], best['epoch'])
    logger.info('checkpoints, summary.csv and results.json are in %s', run_dir)


def main(argv: Optional[List[str]] = None, *, hooks: Optional[Iterable[Hook]] = None) -> Dict[str, Any]:
    """Retrain as ``argv`` (``--cfg FILE ... KEY VALUE ...``) says; ``hooks`` (``lib.train.hooks``) are for tests
    and tools."""
    run = setup_run('retrain', 'Retrain a Cream child network (released selection or INPUT_ARCH)', argv,
                    preflight=preflight)
    with logged_run(run, 'retraining', 'retrain.log'):
        results = train_run(run, build_session, lambda session: fit(session, hooks))
        if run.dist.is_main:
            _final_summary(run.logger, results, run.run_dir)
    return results


if __name__ == '__main__':
    exit_on_error(main)
