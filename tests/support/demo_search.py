"""train.py on configs/demo/train.yaml shortened to seconds on a tiny ImageFolder, and what its run folder holds,
for the tests of the search script and of the tools that read its runs."""
import csv
import json
import os

from lib.train.hooks import Hook

# FLOPS_MAXIMUM 6: one layer per stage. SLICE 2 lets a batch of 4 feed the meta update. With demo_data(classes=3,
# train=4, val=2, size=32): 3 steps of 4 per epoch; epoch 0 plain, epoch 1 board + KD + meta updates.
TINY_SEARCH = {'FLOPS_MAXIMUM': 6, 'WORKERS': 0, 'EPOCHS': 2, 'DATASET.BATCH_SIZE': 4, 'DATASET.NUM_CLASSES': 3,
               'DATASET.VAL_BATCH_MUL': 2, 'DATASET.GENERATE_DEMO': False, 'LOG_INTERVAL': 1, 'LR': 0.05,
               'SUPERNET.SLICE': 2, 'SUPERNET.POOL_SIZE': 2, 'SUPERNET.META_STA_EPOCH': 0, 'SUPERNET.UPDATE_ITER': 2}


def search_argv(repo_root, out, data, config='configs/demo/train.yaml', **extra):
    """train.py's arguments: ``config`` with TINY_SEARCH and DETERMINISTIC on, writing under ``out``, reading
    ``data``, then the ``extra`` KEY=VALUE overrides."""
    opts = dict(TINY_SEARCH, DETERMINISTIC=True, OUTPUT=out, DATA_DIR=data, **extra)
    return ['--cfg', str(repo_root / config)] + [str(x) for kv in opts.items() for x in kv]


def summary_rows(run_dir):
    """summary.csv's rows without the throughput column (it differs between equal runs)."""
    with open(os.path.join(run_dir, 'summary.csv'), newline='') as f:
        return [{k: v for k, v in row.items() if k != 'img_per_sec'} for row in csv.DictReader(f)]


def board_entries(run_dir):
    with open(os.path.join(run_dir, 'board.json')) as f:
        return json.load(f)['entries']


class Stop(KeyboardInterrupt):
    """Raised by a test's step hook to stop an in-process search where a Ctrl-C would."""


class StopAt(Hook):
    """Raise ``Stop`` right after epoch ``epoch`` (its checkpoint and outputs written) or, given ``step``, right
    after that step of it (and its recovery checkpoint, when one is due)."""

    def __init__(self, epoch, step=None):
        self.epoch, self.step = epoch, step

    def after_step(self, session, position):
        if self.step is not None and (position.epoch, position.step_in_epoch) == (self.epoch, self.step):
            raise Stop

    def after_epoch(self, session, epoch, evaluation):
        if self.step is None and epoch == self.epoch:
            raise Stop


class AfterStep(Hook):
    """``act(position)`` after every step."""

    def __init__(self, act):
        self.act = act

    def after_step(self, session, position):
        self.act(position)
