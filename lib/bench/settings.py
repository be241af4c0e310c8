"""What a benchmark run is set to (``BenchSettings``: tools/benchmark.py's options), the student path it times,
and the configs its phases run under: the search's (``--cfg``, default lib/config/'s defaults) and the retraining recipe."""
import json
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from lib.config import load_config
from lib.errors import CreamError
from lib.models import ops
from lib.models.childnet import RELEASED_MODELS, resolve_selection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RETRAIN_RECIPE = os.path.join(REPO, 'configs', 'retrain.yaml')
# Every layer k5e6 at the full depth of the 600 MFLOPs search space.
DEFAULT_PATH = '[[3,3,3,3],[3,3,3,3],[3,3,3,3],[3,3,3,3],[3,3,3,3]]'
DEFAULT_SEARCH_IMAGE_SIZE = 64
AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16', 'none': None}


class BenchmarkError(CreamError, ValueError):
    """A benchmark option that cannot be run; the message says what to change."""


@dataclass
class BenchSettings:
    """The settings the phases read (tools/benchmark.py's options of the same names)."""
    batch_size: int = 32
    image_size: Optional[int] = None  # search/static: DEFAULT_SEARCH_IMAGE_SIZE; retrain/eval: the native one
    num_classes: int = 1000
    amp: str = 'none'  # a key of AMP_DTYPES
    channels_last: bool = False
    compile: bool = False
    seed: int = 0
    warmup: int = 3
    steps: int = 10
    pool_size: int = 10
    slice: int = 4
    selection: str = '287'
    no_ema: bool = False
    replay_paths: Optional[Sequence] = None  # search-plain-resample: these paths in turn instead of sampled ones
    sync_debug: bool = False
    clock: str = 'wall'
    cfg: Optional[Sequence[str]] = None  # yaml files of the search phases (None: lib/config/'s defaults)

    @property
    def search_image_size(self) -> int:
        return self.image_size or DEFAULT_SEARCH_IMAGE_SIZE


def parse_path(text: str) -> Tuple[Tuple[int, ...], ...]:
    try:
        path = tuple(tuple(int(op) for op in stage) for stage in json.loads(text))
    except (ValueError, TypeError) as err:
        raise BenchmarkError(f'--path must be JSON: one list of op indices per searchable stage, e.g. '
                             f'{DEFAULT_PATH}; got {text!r} ({err})') from None
    if len(path) != ops.NUM_SEARCH_STAGES or any(len(stage) == 0 for stage in path):
        raise BenchmarkError(f'--path needs {ops.NUM_SEARCH_STAGES} non-empty stages; got {text!r}')
    if any(not 0 <= op < ops.NUM_OPS for stage in path for op in stage):
        raise BenchmarkError(f'--path op indices must lie in 0..{ops.NUM_OPS - 1}; got {text!r}')
    return path


def read_paths(file_name: str):
    """--paths-file: a JSON list of paths, each one list of op indices per searchable stage, or the seven stages of
    INPUT_ARCH (the fixed first and last stages written [0], as the original's sampled candidates)."""
    try:
        with open(file_name) as f:
            paths = json.load(f)
        paths = [path[1:-1] if len(path) == ops.NUM_SEARCH_STAGES + 2 else path for path in paths]
        return [parse_path(json.dumps(path)) for path in paths] or None
    except (OSError, ValueError, TypeError, BenchmarkError) as err:
        raise BenchmarkError(f'--paths-file {file_name}: {err}') from None


def search_config(settings: BenchSettings, cfg_files=None):
    """The search config of the phases: ``cfg_files`` (default ``settings.cfg``) with the benchmark's settings."""
    opts = ['DATASET.NUM_CLASSES', settings.num_classes, 'DATASET.BATCH_SIZE', settings.batch_size,
            'AMP', settings.amp != 'none', 'AMP_DTYPE', AMP_DTYPES[settings.amp] or 'bfloat16',
            'CHANNELS_LAST', settings.channels_last, 'COMPILE', settings.compile, 'SEED', settings.seed,
            'SUPERNET.POOL_SIZE', settings.pool_size, 'SUPERNET.SLICE', settings.slice,
            'SUPERNET.PICK_METHOD', 'meta', 'EPOCHS', 1]
    return load_config(cfg_files if cfg_files is not None else settings.cfg, [str(o) for o in opts])


def compare_label(cfg_files: Sequence[str]) -> str:
    """'@train_corrected' for ``--compare-cfg configs/train_corrected.yaml``; '' for none."""
    return ('@' + '+'.join(os.path.splitext(os.path.basename(path))[0] for path in cfg_files)) if cfg_files else ''


def released_resolution(settings: BenchSettings) -> int:
    return settings.image_size or RELEASED_MODELS[resolve_selection(settings.selection)].resolution


def released_config(settings: BenchSettings, image_size: int):
    """The retraining recipe (configs/retrain.yaml) for the released ``settings.selection`` network."""
    opts = ['NET.SELECTION', settings.selection, 'DATASET.NUM_CLASSES', settings.num_classes,
            'DATASET.BATCH_SIZE', settings.batch_size, 'DATASET.IMAGE_SIZE', image_size,
            'AMP', settings.amp != 'none', 'AMP_DTYPE', AMP_DTYPES[settings.amp] or 'bfloat16',
            'CHANNELS_LAST', settings.channels_last, 'COMPILE', settings.compile, 'SEED', settings.seed,
            'NET.EMA.USE', not settings.no_ema, 'LOG_INTERVAL', 10 ** 9]
    return load_config([RETRAIN_RECIPE], [str(o) for o in opts])
