"""Evaluate a trained or downloaded Cream checkpoint on DATA_DIR/val.

    python -m torch.distributed.launch --nproc_per_node=8 ./test.py --cfg ./configs/test.yaml
    python test.py --cfg configs/test.yaml MODEL_SELECTION 43 RESUME_PATH ./43.pth.tar

Writes SAVE_PATH/MODEL/test_results.json; ``weights_finite`` there is false (with a warning in the log) when the
checkpoint's weights hold NaN or infinite values.
"""
import os

import torch

from lib.checkpoint.weights import load_model_weights
from lib.config import ConfigError
from lib.data.loaders import build_val_loader_from_cfg, check_data_folders
from lib.engine.evaluate import evaluate
from lib.engine.finite import describe_nonfinite, nonfinite_tensors
from lib.engine.guard import exit_on_error, logged_run
from lib.engine.runtime import setup_run
from lib.fileio import write_json_atomic
from lib.models.from_config import build_child_from_cfg, log_model_complexity, resolve_child


def preflight(cfg) -> None:
    """What the evaluation would refuse, checked before the run folder exists."""
    if not cfg.RESUME_PATH:
        raise ConfigError('RESUME_PATH is empty: set it to the checkpoint to evaluate '
                          '(in the yaml or as RESUME_PATH ./43.pth.tar on the command line)')
    resolve_child(cfg)
    check_data_folders(cfg, ('val',))


def main(argv=None) -> dict:
    run = setup_run('test', 'Evaluate a Cream child network checkpoint', argv, preflight=preflight)
    with logged_run(run, 'the evaluation', 'test.log'):
        results = evaluate_checkpoint(run)
    return results


def evaluate_checkpoint(run) -> dict:
    cfg, dist, log = run.cfg, run.dist, run.logger
    model, info = build_child_from_cfg(cfg)
    log_model_complexity(model, info, log)
    which = load_model_weights(model, cfg.RESUME_PATH, use_ema=cfg.NET.EMA.USE)
    bad, total = nonfinite_tensors({'state_dict': model.state_dict()})
    if bad:
        log.warning('the %s weights of %s are not finite: %s; the results below are those of a diverged network',
                    which, cfg.RESUME_PATH, describe_nonfinite(bad, total))
    model.to(dist.device).eval()
    if cfg.CHANNELS_LAST:
        model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if cfg.COMPILE else model
    loader = build_val_loader_from_cfg(cfg, info.resolution, dist.rank, dist.world_size, dist.device)
    run.save_config()
    log.info('evaluating %s (%s weights) at %dx%d on %d val images per pass',
             cfg.RESUME_PATH, which, info.resolution, info.resolution, len(loader.dataset))
    metrics = evaluate(model, loader, dist.device, amp=cfg.AMP, amp_dtype=cfg.AMP_DTYPE,
                       channels_last=cfg.CHANNELS_LAST, tta=cfg.TTA, log_interval=cfg.LOG_INTERVAL,
                       forward=forward)
    log.info('Test: loss %.4f  Prec@1 %.3f  Prec@5 %.3f  images %d  %.1f img/s',
             metrics['loss'], metrics['prec1'], metrics['prec5'], metrics['images'], metrics['img_per_sec'])
    results = {'model': info.name, 'arch': info.arch, 'resolution': info.resolution,
               'checkpoint': os.path.abspath(cfg.RESUME_PATH), 'weights': which,
               'macs_M': info.macs / 1e6, 'params_M': info.params / 1e6, 'tta': cfg.TTA,
               'weights_finite': not bad, **({'weights_problem': describe_nonfinite(bad, total)} if bad else {}),
               **metrics}
    if dist.is_main:
        write_json_atomic(results, os.path.join(run.run_dir, 'test_results.json'))
    return results


if __name__ == '__main__':
    exit_on_error(main)
