"""tools/supernet_curve.py end to end on a tiny search of the Fashion-MNIST space (configs/experiments/
fashion_search.yaml: layers 1, 1, 3, 3, 2) and its stand-alone recipe: every epoch checkpoint scores the paths, the
ground truth's runs give their per-epoch curves."""
import json

import pytest

from lib.errors import ConfigError
from lib.experiments import ground_truth as gt
from lib.experiments.learning_curve import epoch_checkpoints
from tests.support.scripts_as_modules import load_script

PATHS = [((0,), (1,), (2, 3, 4), (5, 0, 1), (2, 3)), ((5,), (4,), (3, 2, 1), (0, 5, 4), (3, 2))]
TINY = ['DATASET.NUM_CLASSES', '3', 'DATASET.BATCH_SIZE', '4', 'SUPERNET.SLICE', '2', 'LOG_INTERVAL', '2']


@pytest.mark.process
def test_curve_of_a_tiny_search_against_its_paths_trained_alone(tmp_path, tiny_imagefolder):
    data = ['DATA_DIR', str(tiny_imagefolder)]
    load_script('train.py').main(['--cfg', 'configs/experiments/fashion_search.yaml', *data, *TINY, 'EPOCHS', '2',
                                  'SUPERNET.META_STA_EPOCH', '0', 'SUPERNET.UPDATE_ITER', '2', 'CHECKPOINT_HIST', '9',
                                  'SAVE_PATH', str(tmp_path), 'MODEL', 'search'])
    run = tmp_path / 'search'
    assert [epoch for epoch, _ in epoch_checkpoints(str(run))] == [0, 1]
    truth = tmp_path / 'gt'
    load_script('tools/ground_truth.py').main(
        ['--out', str(truth), '--recipe', 'configs/experiments/fashion_retrain.yaml', '--seeds', '0', '--paths',
         json.dumps([[list(s) for s in PATHS[0]]]), *data, *TINY, 'EPOCHS', '2', 'WARMUP_EPOCHS', '0'])

    report = load_script('tools/supernet_curve.py').main(
        ['--run', str(run), '--ground-truth', str(truth), '--paths', json.dumps([[list(s) for s in p] for p in PATHS]),
         '--bn-batches', '1', '--out', str(tmp_path / 'curve.json')])
    assert json.loads((tmp_path / 'curve.json').read_text()) == report
    first, second = (gt.path_key(p) for p in PATHS)
    for key in (first, second):
        curve = report['supernet'][key]
        assert curve['epochs'] == [0, 1] and len(curve['shared']) == len(curve['recalibrated']) == 2
        assert all(0 <= v <= 100 for v in curve['shared'] + curve['recalibrated'])
    assert list(report['standalone']) == [first] and len(report['standalone'][first]['0']) == 2
    alone = report['standalone'][first]['0'][-1]
    assert report['comparison'][first]['gap'] == pytest.approx(alone - report['supernet'][first]['recalibrated'][-1])
    assert report['comparison'][second]['gap'] is None  # not trained alone


def test_a_search_without_epoch_checkpoints_is_refused(tmp_path):
    with pytest.raises(ConfigError, match='CHECKPOINT_HIST at least EPOCHS'):
        load_script('tools/supernet_curve.py').main(['--run', str(tmp_path), '--paths', '[[[0],[0],[0],[0],[0]]]',
                                                      '--out', str(tmp_path / 'c.json')])
