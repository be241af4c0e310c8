"""Retrain a Cream child network: one of the six released ones or any searched path.

    python retrain.py --cfg configs/retrain/287.yaml
    python -m torch.distributed.run --nproc_per_node=8 retrain.py --cfg configs/retrain.yaml MODEL_SELECTION 481
    python retrain.py --cfg configs/demo/retrain.yaml --cfg output/demo_search/best_arch.yaml

Writes to OUTPUT/MODEL: retrain.log, config.yaml, summary.csv, tensorboard/, results.json,
last.pth.tar, best.pth.tar, checkpoint-<epoch>.pth.tar (top CHECKPOINT_HIST), recovery.pth.tar.
"""
import sys
from typing import Any, Dict, List, Optional

import torch.distributed as tdist

from lib.data.dataset import DataError
from lib.engine.checkpoint import CheckpointError
from lib.engine.retrain_loop import fit
from lib.engine.retrain_setup import build_session
from lib.engine.runtime import setup_run
from lib.engine.training import ApexUnavailableError
from lib.models.childnet import ArchError

# Errors whose message already says what to fix: shown without a traceback.
USER_ERRORS = (ArchError, CheckpointError, DataError, ApexUnavailableError)


def _shutdown_process_group(ok: bool) -> None:
    if tdist.is_available() and tdist.is_initialized():
        if ok:
            tdist.barrier()  # no rank tears the group down while another still saves
        tdist.destroy_process_group()


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


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    run = setup_run('retrain', 'Retrain a Cream child network (released selection or INPUT_ARCH)', argv)
    logger, ok, session = run.logger, False, None
    try:
        session = build_session(run)
        results = fit(session)
        if run.dist.is_main:
            _final_summary(logger, results, run.run_dir)
        ok = True
        return results
    except USER_ERRORS as err:
        logger.error('%s', err)
        raise SystemExit(f'error: {err}') from None
    except KeyboardInterrupt:
        logger.warning('interrupted; AUTO_RESUME True continues from the last saved checkpoint')
        raise SystemExit(130) from None
    except Exception as err:
        logger.exception('retraining failed')
        raise SystemExit(f'error: retraining failed with {type(err).__name__}: {err} '
                         f'(traceback in {run.run_dir}/retrain.log)') from None
    finally:
        if session is not None:
            session.tensorboard.close()
        _shutdown_process_group(ok)


if __name__ == '__main__':
    main(sys.argv[1:])
