import csv
import logging
import os

import pytest

from lib.engine.logger import AverageMeter, SummaryCSV, TensorBoard, Throughput, progress_line


def test_summary_csv_replaces_repeated_epochs(tmp_path):
    path = tmp_path / 'summary.csv'
    summary = SummaryCSV(str(path))
    summary.write(0, {'loss': 2.0})
    summary.write(1, {'loss': 1.5, 'prec1': 40.0})
    summary.write(1, {'loss': 1.4, 'prec1': 41.0})  # a resumed run repeats epoch 1
    rows = list(csv.DictReader(open(path)))
    assert [r['epoch'] for r in rows] == ['0', '1']
    assert rows[1]['loss'] == '1.4' and rows[1]['prec1'] == '41.0'
    assert [name for name in os.listdir(tmp_path) if name.endswith('.tmp')] == []


def test_progress_line_has_what_users_watch():
    meters = {'loss': AverageMeter(), 'prec@1': AverageMeter()}
    meters['loss'].update(2.0, 4)
    meters['prec@1'].update(50.0, 4)
    tp = Throughput()
    tp.data_loaded()
    tp.step_done()
    line = progress_line('Epoch 3', 10, 100, meters, 0.1, tp, 256)
    for word in ('Epoch 3', '10/100', 'loss', 'prec@1', 'lr', 'img/s', 'data', 'ETA'):
        assert word in line


def test_tensorboard_writes_event_files(tmp_path):
    tb = TensorBoard(str(tmp_path), enabled=True)
    tb.scalars({'loss': 1.0, 'skipped': None}, step=1, prefix='train/')
    tb.close()
    assert list((tmp_path / 'tensorboard').glob('events.out.tfevents.*'))
    TensorBoard(str(tmp_path / 'x'), enabled=False).scalars({'a': 1.0}, 0)
    assert not (tmp_path / 'x').exists()


def test_a_log_file_on_a_full_disk_warns_once_on_the_console_and_is_left_alone(tmp_path, capsys):
    """/dev/full refuses every write with ENOSPC, as a full disk does."""
    import lib.engine.logger as logger_module
    logger = logger_module.setup_logging(str(tmp_path), 0, 'x.log')
    file_handler = next(h for h in logger.handlers if isinstance(h, logging.FileHandler))
    file_handler.stream = open('/dev/full', 'w')
    for n in range(3):
        logger.info('line %d', n)
    out, err = capsys.readouterr()
    assert err == '' and out.count('cannot be written') == 1 and 'No space left on device' in out
    assert out.count('line ') == 3  # the console goes on


def test_tensorboard_on_a_full_disk_is_one_disk_full_error_and_other_failures_a_warning(tmp_path, caplog):
    import errno

    from lib.engine.logger import TensorBoard
    from lib.fileio import DiskFullError

    class Refusing:
        def __init__(self, code):
            self.code = code

        def add_scalar(self, *args):
            raise OSError(self.code, os.strerror(self.code))

        def get_logdir(self):
            return str(tmp_path / 'tensorboard')

    board = TensorBoard(None, enabled=False)
    board.writer = Refusing(errno.ENOSPC)
    with pytest.raises(DiskFullError, match='the disk is full'):
        board.scalars({'loss': 1.0}, 0)
    board.writer = Refusing(errno.EIO)
    board.scalars({'loss': 1.0}, 0)
    board.scalars({'loss': 1.0}, 1)  # no writer any more: nothing
    assert board.writer is None and 'TensorBoard scalars are no longer written' in caplog.text
