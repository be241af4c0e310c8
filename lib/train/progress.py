"""Progress of an epoch: meters built from the epoch's running sums, and the timing of the steps."""
import time

from lib.engine.logger import AverageMeter, Throughput


def meter(last: float, total: float, count: float) -> AverageMeter:
    """A meter showing ``last`` (this step's value) and ``total / count`` (the epoch's average so far)."""
    m = AverageMeter()
    m.val, m.sum, m.count = last, total, count
    return m


class StepTimer(Throughput):
    """Data-loading time per step, and step time per interval between progress lines, taken after the sync that
    reading the sums for a progress line makes (so the interval's device work is done)."""

    def __init__(self, start_step: int):
        super().__init__()
        self.last_log_time, self.last_log_step, self.fetch_start = self.start, start_step, self.start

    def data_loaded(self) -> None:
        self.data_time.update(time.perf_counter() - self.fetch_start)

    def fetching(self) -> None:
        self.fetch_start = time.perf_counter()

    def logged(self, step: int) -> None:
        now = time.perf_counter()
        self.batch_time.update((now - self.last_log_time) / (step - self.last_log_step), step - self.last_log_step)
        self.last_log_time, self.last_log_step = now, step
