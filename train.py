"""Search: train the Cream supernet with prioritized paths and pick the best architecture for a FLOPs budget.

    python -m torch.distributed.launch --nproc_per_node=8 ./train.py --cfg ./configs/train.yaml
    python -m torch.distributed.run --nproc_per_node=8 train.py --cfg configs/train.yaml
    python train.py --cfg configs/demo/train.yaml            # CPU demo, a few minutes

Writes to OUTPUT/MODEL: train.log, config.yaml, summary.csv, tensorboard/, board.json (every epoch),
best_arch.yaml (at the end: feed it to retrain.py / test.py as a second --cfg), last.pth.tar,
best.pth.tar, checkpoint-<epoch>.pth.tar (top CHECKPOINT_HIST), recovery.pth.tar (RECOVERY_INTERVAL).
AUTO_RESUME True continues from RESUME_PATH or the run folder's newest checkpoint.
"""
import sys
from typing import Any, Callable, Dict, List, Optional

import torch.distributed as tdist

from lib.engine.checkpoint import CheckpointError
from lib.engine.runtime import setup_run
from lib.search.builder import SearchConfigError, build_session
from lib.search.flops import FlopsBudgetError
from lib.search.loop import run_search
from lib.search.sampler import SamplerError

try:
    from lib.data.dataset import DataError
except ImportError:  # pragma: no cover - the data layer always provides it
    DataError = FileNotFoundError

# Errors whose message already says what to fix: shown without a traceback.
USER_ERRORS = (FlopsBudgetError, SearchConfigError, SamplerError, CheckpointError, DataError, NotImplementedError)


def _shutdown_process_group(ok: bool) -> None:
    if tdist.is_available() and tdist.is_initialized():
        if ok:
            tdist.barrier()  # no rank tears the group down while another still writes
        tdist.destroy_process_group()


def main(argv: Optional[List[str]] = None, *, on_epoch_end: Optional[Callable[[int], None]] = None,
         on_step_end: Optional[Callable[[int, int, int], None]] = None) -> Dict[str, Any]:
    """Run the search of ``argv`` (``--cfg FILE ... KEY VALUE ...``); the hooks are for tests and tools."""
    run = setup_run('train', 'Cream supernet search with prioritized paths', argv, log_name='train.log')
    logger, ok, session = run.logger, False, None
    try:
        session = build_session(run)
        result = run_search(session, on_epoch_end=on_epoch_end, on_step_end=on_step_end)
        logger.info('search finished; board.json, best_arch.yaml, summary.csv and checkpoints are in %s',
                    run.run_dir)
        ok = True
        return result
    except USER_ERRORS as err:
        logger.error('%s', err)
        raise SystemExit(f'error: {err}') from None
    except KeyboardInterrupt:
        logger.warning('interrupted; AUTO_RESUME True continues from the last saved checkpoint')
        raise
    except Exception as err:
        logger.exception('the search failed')
        raise SystemExit(f'error: the search failed with {type(err).__name__}: {err} '
                         f'(traceback in {run.run_dir}/train.log)') from None
    finally:
        if session is not None:
            session.tensorboard.close()
        _shutdown_process_group(ok)


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        raise SystemExit(130) from None
