import csv
import os

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
