"""tools/sharing_probe.py on a tiny Fashion-MNIST-space search (layers 1, 1, 3, 3, 2): a few steps of the search's
own step on partly varying, fixed or sampled paths, then the scored paths' val prec@1."""
import json

import pytest

from lib.errors import ConfigError
from lib.experiments.sharing_probe import VaryingLayers, parse_layers
from tests.support.scripts_as_modules import load_script

LAYERS = (1, 1, 3, 3, 2)
PATHS = [[[0], [0], [0, 0, 0], [0, 0, 0], [0, 0]], [[5], [4], [3, 2, 1], [0, 5, 4], [3, 2]]]
TINY = ['DATASET.NUM_CLASSES', '3', 'DATASET.BATCH_SIZE', '4', 'SUPERNET.SLICE', '2']


def probe(tmp_path, data, *extra):
    return load_script('tools/sharing_probe.py').main(
        ['--cfg', 'configs/experiments/fashion_search.yaml', '--steps', '3', '--score', json.dumps(PATHS),
         '--bn-batches', '1', '--out', str(tmp_path / 'probe.json'), *extra, 'DATA_DIR', str(data), *TINY])


def test_only_the_named_layers_vary():
    sampler = VaryingLayers(LAYERS, 6, parse_layers('4.1, 0.0', LAYERS), seed=0)
    paths = [sampler.sample() for _ in range(40)]
    assert {p[4][1] for p in paths} == set(range(6)) and {p[0][0] for p in paths} == set(range(6))
    assert all(op == 0 for p in paths for s, stage in enumerate(p) for layer, op in enumerate(stage)
               if (s, layer) not in {(4, 1), (0, 0)})


@pytest.mark.parametrize('extra', [['--vary', '4.1'], ['--fixed', json.dumps(PATHS[1])], []])
def test_report_of_a_tiny_probe(tmp_path, tiny_imagefolder, extra):
    report = probe(tmp_path, tiny_imagefolder, *extra)
    assert json.loads((tmp_path / 'probe.json').read_text()) == report
    assert report['steps'] == 3 and len(report['train_prec1']) == len(report['train_loss']) == 1
    assert 0 <= report['train_prec1'][0] <= 100 and report['train_loss'][0] > 0
    assert [row['path'] for row in report['scores']] == PATHS
    assert all(0 <= row[kind]['prec1'] <= 100 for row in report['scores'] for kind in ('shared', 'recalibrated'))


@pytest.mark.parametrize('vary, problem', [('4.2', 'not a layer of this space'), ('last', 'not STAGE.LAYER')])
def test_a_layer_outside_the_space_is_refused(vary, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_layers(vary, LAYERS)


def test_fixed_and_vary_together_are_refused(tmp_path, tiny_imagefolder):
    with pytest.raises(ConfigError, match='not both'):
        probe(tmp_path, tiny_imagefolder, '--vary', '4.1', '--fixed', json.dumps(PATHS[0]))
