import json
import os

import pytest
from lib.errors import OutputError
from tests.support.scripts_as_modules import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _tool(name):
    return load_script(f'tools/{name}.py')


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('tools') / 'demo'
    _tool('make_demo_data').main(['--out', str(out), '--classes', '2', '--train-per-class', '6',
                                  '--val-per-class', '2', '--image-size', '40'])
    return out


def test_make_demo_data_cli(demo_dir):
    assert sorted(os.listdir(demo_dir / 'train')) == ['n00000000_circle', 'n00000001_square']
    assert len(os.listdir(demo_dir / 'train' / 'n00000001_square')) == 6
    assert len(os.listdir(demo_dir / 'val' / 'n00000000_circle')) == 2


def test_make_demo_data_cli_refuses_existing_output(demo_dir):
    with pytest.raises(OutputError, match='exists and is not empty'):  # before anything is drawn
        _tool('make_demo_data').main(['--out', str(demo_dir)])


def test_benchmark_loader_prints_one_json_line(demo_dir, capsys):
    _tool('benchmark_loader').main(['--data', str(demo_dir), '--workers', '0', '--batch-size', '4',
                                    '--image-size', '32', '--batches', '5', '--warmup', '1'])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result['images'] == 20 and result['img_per_s'] > 0 and result['skipped'] == 0
    assert result['auto_augment'] == 'rand-m9-mstd0.5' and result['re_prob'] > 0
