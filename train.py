"""Search: train the Cream supernet with prioritized paths and pick the best architecture for a FLOPs budget.

    python -m torch.distributed.launch --nproc_per_node=8 ./train.py --cfg ./configs/train.yaml
    python -m torch.distributed.run --nproc_per_node=8 train.py --cfg configs/train.yaml
    python train.py --cfg configs/demo/train.yaml            # CPU demo, a few minutes

Writes to SAVE_PATH/MODEL: train.log, config.yaml, summary.csv, tensorboard/, board.json (every epoch),
best_arch.yaml (at the end: feed it to retrain.py / test.py as a second --cfg), last.pth.tar,
best.pth.tar, checkpoint-<epoch>.pth.tar (top CHECKPOINT_HIST), recovery.pth.tar (RECOVERY_INTERVAL).
AUTO_RESUME True continues from RESUME_PATH or the run folder's newest checkpoint.
"""
from typing import Any, Dict, Iterable, List, Optional

from lib.engine.guard import exit_on_error, logged_run
from lib.engine.runtime import setup_run
from lib.search.builder import build_session, preflight
from lib.search.epoch import run_search
from lib.train.hooks import Hook
from lib.train.loop import train_run


def main(argv: Optional[List[str]] = None, *, hooks: Optional[Iterable[Hook]] = None) -> Dict[str, Any]:
    """Run the search of ``argv`` (``--cfg FILE ... KEY VALUE ...``); ``hooks`` (``lib.train.hooks``) are for
    tests and tools."""
    run = setup_run('train', 'Cream supernet search with prioritized paths', argv, log_name='train.log',
                    preflight=preflight)
    with logged_run(run, 'the search', 'train.log'):
        result = train_run(run, build_session, lambda session: run_search(session, hooks))
        run.logger.info('search finished; board.json, best_arch.yaml, summary.csv and checkpoints are in %s',
                        run.run_dir)
    return result


if __name__ == '__main__':
    exit_on_error(main)
