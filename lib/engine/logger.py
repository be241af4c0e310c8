"""What a user watches on long runs: progress lines, ``summary.csv`` and TensorBoard scalars.

On a full disk neither stops a run with a traceback: the log file, once a write to it fails, is left alone with one
warning on the console (the run goes on until its next checkpoint write stops it with one ``error:`` line), and
TensorBoard's writer raises the ``DiskFullError`` of ``lib.fileio`` (any other failure of it: one warning, and no
more scalars).
"""
import csv
import datetime
import io
import logging
import os
import sys
import time
from typing import Dict, Optional

from lib.fileio import disk_full_error, write_text_atomic

LOGGER_NAME = 'cream'


class _RunLogFile(logging.FileHandler):
    """The run's log file; after a failed write (a full disk), one warning on the console and no more writes."""
    failed = False

    def emit(self, record):
        if not self.failed:
            super().emit(record)

    def handleError(self, record):
        if self.failed:
            return
        self.failed = True
        logging.getLogger(LOGGER_NAME).warning('the log file %s cannot be written (%s): logging to the console only',
                                               self.baseFilename, sys.exc_info()[1])


def setup_logging(run_dir: Optional[str], rank: int, log_name: str, verbose: bool = False) -> logging.Logger:
    """Console on every rank (warnings only off the main rank), ``run_dir/log_name`` on the main rank."""
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):  # a second in-process run must not leak the first's log file
        logger.removeHandler(old)
        old.close()
    logger.propagate = False
    level = logging.DEBUG if verbose else logging.INFO
    logger.setLevel(level if rank == 0 else logging.WARNING)
    fmt = logging.Formatter(f'%(asctime)s [rank {rank}] %(levelname)s %(message)s', '%Y-%m-%d %H:%M:%S')
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if run_dir is not None and rank == 0:
        handler = _RunLogFile(os.path.join(run_dir, log_name))
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    return logger


def get_logger(name: str = '') -> logging.Logger:
    return logging.getLogger(f'{LOGGER_NAME}.{name}' if name else LOGGER_NAME)


class AverageMeter:
    """Running sum and count of a scalar (weighted by batch size)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.val = 0.0
        self.sum = 0.0
        self.count = 0

    def update(self, val: float, n: int = 1):
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n

    @property
    def avg(self) -> float:
        return self.sum / max(self.count, 1)


class Throughput:
    """Images per second and data-loading time over the steps since the last progress line."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.data_time = AverageMeter()
        self.batch_time = AverageMeter()

    def data_loaded(self):
        now = time.perf_counter()
        self.data_time.update(now - self.last)

    def step_done(self):
        now = time.perf_counter()
        self.batch_time.update(now - self.last)
        self.last = now

    def images_per_second(self, batch_size_global: int) -> float:
        return batch_size_global / max(self.batch_time.val, 1e-9)

    def eta(self, steps_left: int) -> str:
        return str(datetime.timedelta(seconds=int(self.batch_time.avg * steps_left)))


def progress_line(prefix: str, step: int, steps: int, meters: Dict[str, AverageMeter], lr: float,
                  throughput: Throughput, batch_size_global: int) -> str:
    parts = [f'{prefix} [{step:>{len(str(steps))}}/{steps}]']
    parts += [f'{name} {m.val:.4f} ({m.avg:.4f})' for name, m in meters.items()]
    parts.append(f'lr {lr:.3e}')
    parts.append(f'{throughput.images_per_second(batch_size_global):.1f} img/s')
    parts.append(f'data {throughput.data_time.val:.3f}s')
    parts.append(f'ETA {throughput.eta(steps - step)}')
    return '  '.join(parts)


class SummaryCSV:
    """One row per epoch; a resumed run replaces the rows of the epochs it repeats. Written atomically."""

    def __init__(self, path: str):
        self.path = path

    def write(self, epoch: int, row: Dict[str, float]) -> None:
        rows = []
        if os.path.exists(self.path):
            with open(self.path, newline='') as f:
                rows = [r for r in csv.DictReader(f) if int(r['epoch']) < epoch]
        rows.append({'epoch': epoch, **row})
        fields = list(dict.fromkeys(k for r in rows for k in r))
        text = io.StringIO(newline='')
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(text.getvalue(), self.path)


class TensorBoard:
    """TensorBoard scalars from the main rank; a no-op elsewhere or without a run folder."""

    def __init__(self, run_dir: Optional[str], enabled: bool):
        self.writer = None
        if enabled and run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=os.path.join(run_dir, 'tensorboard'))

    def scalars(self, values: Dict[str, float], step: int, prefix: str = '') -> None:
        if self.writer is not None:
            try:
                for name, value in values.items():
                    if value is not None:
                        self.writer.add_scalar(f'{prefix}{name}', value, step)
            except OSError as err:  # raised by the writer's thread on the next call
                self._failed(err)

    def _failed(self, err: OSError) -> None:
        writer, self.writer = self.writer, None
        full = disk_full_error(err, writer.get_logdir())
        if full is not None:
            raise full from None
        logging.getLogger(LOGGER_NAME).warning('TensorBoard scalars are no longer written: %s', err)

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:  # already reported, or the run ends anyway: nothing to add to its error
                pass
