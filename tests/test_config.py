import warnings
from pathlib import Path

import pytest

from lib.config import ConfigError, load_config, save_config
from lib.config.compat import UnreadConfigWarning
from lib.config.table import KEYS

REPO_CONFIGS = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / 'configs').rglob('*.yaml'))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_usage_doc_aliases_map_onto_the_tree(tmp_path):
    path = write(tmp_path, 'a.yaml', 'MODEL_SELECTION: -1\n'
                 'INPUT_ARCH: [[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]]\n'
                 'FLOPS_MINIMUM: 0\nFLOPS_MAXIMUM: 200\nRESUME_PATH: ./43.pth.tar\n')
    cfg = load_config(path)
    assert cfg.NET.SELECTION == -1
    assert cfg.NET.INPUT_ARCH[3] == [3, 1, 3]
    assert (cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM) == (0, 200)
    assert cfg.RESUME_PATH == './43.pth.tar'
    assert cfg.is_frozen()


def test_command_line_overrides_win_and_are_typed(tmp_path):
    path = write(tmp_path, 'a.yaml', 'DATASET:\n  BATCH_SIZE: 16\nLR: 1\n')
    cfg = load_config([path], ['DATASET.BATCH_SIZE', '64', 'MODEL_SELECTION', '112', 'LR_NOISE', '[30, 40]'])
    assert cfg.DATASET.BATCH_SIZE == 64
    assert cfg.NET.SELECTION == 112
    assert cfg.LR == 1.0 and isinstance(cfg.LR, float)
    assert cfg.LR_NOISE == [30, 40]


def test_original_yaml_spellings_load(tmp_path):
    # The original files write tuples and None as yaml strings.
    path = write(tmp_path, 'a.yaml', "SUPERNET:\n  PRE_PROB: (0.05,0.2,0.05,0.5,0.05,0.15)\n"
                 "START_EPOCH: None\nOUTPUT: 'None'\nSAVE_IMAGES: False\nLOCAL_RANK: 0\n")
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # keys the original set to their defaults: nothing to warn about
        cfg = load_config(path)
    assert cfg.SUPERNET.PRE_PROB == (0.05, 0.2, 0.05, 0.5, 0.05, 0.15)
    assert cfg.START_EPOCH is None


def test_keys_nothing_reads_are_accepted_with_one_warning_naming_them(tmp_path):
    # Lines of the original's configs/test/test.yaml (NUM_GPU 2, an OPTIMIZER section) and one more.
    path = write(tmp_path, 'old.yaml', "NUM_GPU: 2\nOPTIMIZER:\n  NAME: 'adamw'\n  MOMENTUM: 0.9\nLR: 0.1\n")
    with pytest.warns(UnreadConfigWarning) as caught:
        cfg = load_config(path, ['BATCHNORM.BN_TF', 'True'])
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "NUM_GPU 2 (the launcher decides" in message and "OPTIMIZER.NAME 'adamw'" in message
    assert 'BATCHNORM.BN_TF True' in message and 'MOMENTUM' not in message  # left at its default
    assert cfg.NUM_GPU == 2 and cfg.LR == 0.1


@pytest.mark.parametrize('opts, words', [
    (['DATASET.BATCHSIZE', '3'], 'DATASET.BATCHSIZE'),
    (['NOT_A_KEY', '1'], 'NOT_A_KEY'),
    (['DATASET.BATCH_SIZE', 'many'], 'DATASET.BATCH_SIZE'),
    (['SUPERNET.PICK_METHOD', 'random'], 'PICK_METHOD'),
    (['LR'], 'pairs'),
])
def test_bad_overrides_name_the_key(opts, words):
    with pytest.raises(ConfigError, match=words):
        load_config(None, opts)


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    path = write(tmp_path, 'bad.yaml', 'NET:\n  SELECTON: 43\n')
    with pytest.raises(ConfigError, match=r'bad\.yaml.*NET\.SELECTON'):
        load_config(path)


def test_missing_file_and_alias_conflict(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        load_config(str(tmp_path / 'nope.yaml'))
    path = write(tmp_path, 'a.yaml', 'MODEL_SELECTION: 43\nNET:\n  SELECTION: 14\n')
    with pytest.raises(ConfigError, match='keep one'):
        load_config(path)


def test_base_file_is_layered(tmp_path):
    write(tmp_path, 'base.yaml', 'LR: 0.5\nEPOCHS: 7\n')
    path = write(tmp_path, 'child.yaml', '_BASE_: base.yaml\nEPOCHS: 9\n')
    cfg = load_config(path)
    assert (cfg.LR, cfg.EPOCHS) == (0.5, 9)


def test_saved_config_reloads_identically(tmp_path):
    cfg = load_config(None, ['MODEL_SELECTION', '287', 'AMP', 'True'])
    out = tmp_path / 'config.yaml'
    save_config(cfg, str(out))
    again = load_config(str(out))
    assert again == cfg


def test_every_key_has_one_line_of_help():
    missing = [key.name for key in KEYS if not key.help.strip() or '\n' in key.help]
    assert not missing, f'keys without one line of help: {missing}'


@pytest.mark.parametrize('path', REPO_CONFIGS)
def test_repository_configs_load_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_config(path)


def test_every_repository_config_is_checked():
    assert len(REPO_CONFIGS) >= 12 and any(path.endswith('demo/train.yaml') for path in REPO_CONFIGS)


@pytest.mark.parametrize('key, value, words', [
    ('SUPERNET.UPDATE_ITER', '0', 'SUPERNET.UPDATE_ITER is 0; it must be at least 1'),
    ('SUPERNET.POOL_SIZE', '0', 'SUPERNET.POOL_SIZE is 0; it must be at least 1'),
    ('SUPERNET.SLICE', '0', 'SUPERNET.SLICE is 0'),
    ('EPOCHS', '-2', 'EPOCHS is -2; it must be at least 1'),
    ('WORKERS', '-1', 'WORKERS is -1'),
    ('LR', '-0.1', 'LR is -0.1; it must be positive'),
    ('LR', '0', 'LR is 0.0; it must be positive'),
    ('RECOVERY_INTERVAL', '-5', 'RECOVERY_INTERVAL is -5'),
    ('LOG_INTERVAL', '0', 'LOG_INTERVAL is 0'),
    ('CHECKPOINT_HIST', '-1', 'CHECKPOINT_HIST is -1'),
    ('DATASET.CROP_PCT', '1.5', 'DATASET.CROP_PCT is 1.5; it must be in (0, 1]'),
    ('NET.EMA.DECAY', '1.1', 'NET.EMA.DECAY is 1.1'),
    ('AUGMENTATION.RE_PROB', '2.0', 'AUGMENTATION.RE_PROB is 2.0'),
    ('AUGMENTATION.SCALE', '(0.5, 0.2)', 'AUGMENTATION.SCALE is (0.5, 0.2); it must be two area shares'),
    ('SEED', '-1', 'SEED is -1'),
    ('FLOPS_MINIMUM', '700', 'FLOPS_MINIMUM 700 is above SUPERNET.FLOPS_MAXIMUM 600'),
    ('OVERWRITE', 'True', 'AUTO_RESUME and OVERWRITE are both True'),
])
def test_each_bad_value_is_one_error_naming_key_and_range(key, value, words):
    opts = [key, value] + (['AUTO_RESUME', 'True'] if key == 'OVERWRITE' else [])
    with pytest.raises(ConfigError) as err:
        load_config(None, opts)
    assert words in str(err.value) and '\n' not in str(err.value)


def test_every_shipped_config_passes_the_checks(repo_root):
    configs = sorted(repo_root.glob('configs/**/*.yaml'))
    assert len(configs) >= 12
    for path in configs:
        load_config([str(path)])
