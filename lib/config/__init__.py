"""The one defaults tree of every script (train.py, retrain.py, test.py).

A yaml file given with ``--cfg`` overrides only the keys it names; trailing ``KEY VALUE`` pairs on the
command line override both (``DATASET.BATCH_SIZE 64``). Unknown keys and wrong types are errors. The
merged config is frozen and saved as ``config.yaml`` in the run's output folder.

Top-level aliases from the original usage document are accepted in yaml files and on the command
line: ``MODEL_SELECTION`` -> ``NET.SELECTION``, ``INPUT_ARCH`` -> ``NET.INPUT_ARCH``,
``FLOPS_MINIMUM``/``FLOPS_MAXIMUM`` -> ``SUPERNET.FLOPS_MINIMUM``/``SUPERNET.FLOPS_MAXIMUM``,
``OUTPUT`` -> ``SAVE_PATH`` (the original's files set ``OUTPUT: 'None'`` beside ``SAVE_PATH``: an
empty or ``'None'`` folder counts as not set).

Keys the original had but nothing here reads are accepted, so that its configs load, with one warning
(``lib.config.compat``).

Every key is declared once, in a table (``lib.config.spec.Key``: default, help, choices or range, whether a resumed
run may change it, whether anything reads it, the original's aliases): ``keys_run``, ``keys_training`` and
``keys_search``. ``lib.config.table`` derives the defaults tree and the lists from them; ``checks`` runs the
per-key checks and the named cross-key rules; ``timm_names`` asks timm about OPT, NET.GP and AUGMENTATION.AA;
``build`` loads and saves; ``compat`` handles the original's aliases and unread keys. docs/config.md is generated
from the table (tools/config_reference.py).
"""
from lib.config.build import get_defaults, load_config, save_config
from lib.config.table import RESUME_MAY_CHANGE
from lib.errors import ConfigError

__all__ = ['ConfigError', 'RESUME_MAY_CHANGE', 'get_defaults', 'load_config', 'save_config']
