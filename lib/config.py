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
(``lib.config_compat``).
"""
import ast
import os
from typing import List, Optional, Sequence

import yaml
from yacs.config import CfgNode as CN

from lib.config_checks import check_values
from lib.config_compat import apply_aliases, warn_unread_keys
from lib.errors import ConfigError
from lib.fileio import write_text_atomic

_C = CN()

# ---- run --------------------------------------------------------------------------------------
_C.AUTO_RESUME = False  # continue from RESUME_PATH, else from the run folder's newest good checkpoint
# A run folder that holds another run's outputs (checkpoints, summary.csv, board.json, results) is
# never overwritten silently: without AUTO_RESUME the run stops with an error, unless OVERWRITE is True,
# which deletes that run's outputs first (checkpoints, logs, tensorboard/, results) and says so.
_C.OVERWRITE = False  # True: start afresh in a run folder holding another run, deleting its outputs
_C.DATA_DIR = './data/imagenet'  # ImageFolder root holding train/ and val/
_C.MODEL = 'cream'  # run name: the run folder is SAVE_PATH/MODEL
_C.RESUME_PATH = ''  # checkpoint to resume (train/retrain) or to evaluate (test)
_C.SAVE_PATH = './output'  # parent folder of the run folders (the original's key; OUTPUT is an alias)
_C.SEED = 42  # base seed; each rank adds its rank for data augmentation
_C.LOG_INTERVAL = 50  # steps between progress lines
_C.RECOVERY_INTERVAL = 0  # steps between recovery checkpoints (0: only at epoch ends); >= 0
# SIGTERM (SLURM preemption, Kubernetes, torchrun) stops training at the next step boundary with a recovery
# checkpoint; the process exits within this many seconds of the signal in any case. Keep it below the time the
# scheduler waits before SIGKILL (30 s for SLURM's KillWait, Kubernetes' grace period and torchrun).
_C.SIGTERM_GRACE = 25.0  # seconds from SIGTERM to the exit at the latest (the stop's recovery checkpoint within them)
_C.WORKERS = 4  # data loader worker processes per training process
_C.NUM_GPU = 1  # original key, not read: the world size comes from the launcher
_C.SAVE_IMAGES = False  # original key, not read (nor by the original)
_C.AMP = False  # mixed precision (native torch.autocast)
_C.AMP_DTYPE = 'bfloat16'  # 'bfloat16' or 'float16' (float16 uses a GradScaler)
_C.APEX = False  # retrain: NVIDIA apex (amp O1 + apex DDP) instead of native AMP/DDP, needs apex installed; the search warns and runs native
_C.CHANNELS_LAST = False  # NHWC memory format for model and batches (faster on tensor cores)
_C.COMPILE = False  # torch.compile the network (retrain/test); the search warns and runs eagerly (every path is another graph)
_C.DETERMINISTIC = False  # deterministic algorithms, for exact resume checks
_C.DEVICE = 'auto'  # 'auto' (cuda if available), 'cuda' or 'cpu'
_C.DIST_BACKEND = 'auto'  # 'auto' (nccl on GPUs, gloo on the CPU), 'nccl' or 'gloo'
_C.DIST_INIT_TIMEOUT = 1800.0  # seconds every process waits for all ranks to join the job, then one error naming the missing; > 0
_C.EVAL_METRICS = 'prec1'  # metric ranking checkpoints: 'prec1' or 'loss'
_C.TTA = 0  # test-time augmentation: 0 off, 1 average with the horizontally flipped image
_C.LOCAL_RANK = 0  # original key, not read: filled from the launcher into the saved config.yaml
_C.VERBOSE = False  # debug-level logging
_C.ACC_GAP = 5  # board admission: prec1 must beat the worst entry by this many points
_C.CLIP_GRAD = 0.0  # gradient clipping norm (0: off)
_C.CHECKPOINT_HIST = 3  # keep this many best checkpoints by EVAL_METRICS
_C.BENCHMARK_MODE = False  # cudnn.benchmark

# ---- data -------------------------------------------------------------------------------------
_C.DATASET = CN()
_C.DATASET.NUM_CLASSES = 1000  # classes of the dataset (and of the classifier)
_C.DATASET.IMAGE_SIZE = 0  # resolution; 0: the released model's native one (224 for INPUT_ARCH); search: from the budget
_C.DATASET.INTERPOLATION = 'bilinear'  # training resize interpolation: bilinear, bicubic, random
_C.DATASET.EVAL_INTERPOLATION = 'bicubic'  # evaluation resize: 'bicubic' (the original's retrain/test) or 'bilinear' (NNI's re-evaluation)
_C.DATASET.CROP_PCT = 0.875  # eval: resize shorter side to IMAGE_SIZE / CROP_PCT, then center crop
_C.DATASET.BATCH_SIZE = 32  # per process
_C.DATASET.NO_PREFECHTER = False  # original spelling; True: no GPU prefetcher (normalize in workers)
_C.DATASET.PIN_MEM = True  # pinned host memory for faster host-to-GPU copies
_C.DATASET.VAL_BATCH_MUL = 4  # eval batch = BATCH_SIZE * VAL_BATCH_MUL
_C.DATASET.GENERATE_DEMO = False  # create the built-in demo dataset in DATA_DIR when it is missing

# ---- network ----------------------------------------------------------------------------------
_C.NET = CN()
_C.NET.SELECTION = 14  # released network 14/43/114(112)/287/481/604 MFLOPs, or -1 with INPUT_ARCH
_C.NET.INPUT_ARCH = [[0], [3], [3, 3], [3, 1, 3], [3, 3, 3, 3], [3, 3, 3], [0]]  # path for SELECTION -1
# Original child builder quirk for INPUT_ARCH: a single-layer stage keeps its default op. The released
# networks always use it; a searched path should not (the retrained net would not be the searched one).
_C.NET.SINGLE_LAYER_DEFAULT_OP = False  # True: a single-layer stage of INPUT_ARCH keeps its default op, the original builder's quirk (its -1 checkpoints)
_C.NET.GP = 'avg'  # global pool type (timm: avg, max, avgmax, catavgmax)
_C.NET.DROPOUT_RATE = 0.0  # dropout before the classifier
_C.NET.DROP_PATH_RATE = 0.0  # stochastic depth (retrain option)

_C.NET.EMA = CN()
_C.NET.EMA.USE = True  # keep an EMA of the weights (retrain); test.py: evaluate the EMA weights
_C.NET.EMA.FORCE_CPU = False  # keep the EMA copy on the CPU
_C.NET.EMA.DECAY = 0.9998  # EMA decay per optimizer step

# ---- optimisation -----------------------------------------------------------------------------
_C.OPT = 'sgd'  # timm optimizer name: sgd (nesterov), rmsproptf, adamw, ...
_C.OPT_EPS = 1e-2  # optimizer epsilon (rmsproptf)
_C.MOMENTUM = 0.9  # optimizer momentum
_C.WEIGHT_DECAY = 1e-4  # weight decay (supernet and child weights; not the meta network)
_C.OPTIMIZER = CN()  # original keys, read by no script (its test.yaml set them)
_C.OPTIMIZER.NAME = 'sgd'  # original key, not read: OPT names the optimizer
_C.OPTIMIZER.MOMENTUM = 0.9  # original key, not read: MOMENTUM is the one read
_C.OPTIMIZER.WEIGHT_DECAY = 1e-3  # original key, not read: WEIGHT_DECAY is the one read

_C.SCHED = 'step'  # retrain: timm scheduler name (step, cosine, ...); search: always linear to 0
_C.LR = 1e-2  # base LR (retrain: for LR_REFERENCE_BATCH images per step, scaled linearly)
_C.LR_REFERENCE_BATCH = 0  # global batch LR is given for; 0: use LR as is
_C.LR_NOISE = None  # timm LR noise: fraction(s) of the schedule where noise starts/ends (None: off)
_C.LR_NOISE_PCT = 0.67  # timm LR noise range
_C.LR_NOISE_STD = 1.0  # timm LR noise std
_C.WARMUP_LR = 1e-4  # retrain: LR at the start of warm-up
_C.MIN_LR = 1e-5  # retrain: LR floor of the scheduler
_C.EPOCHS = 200  # training epochs
_C.START_EPOCH = None  # original key, not read: resuming decides the start epoch
_C.DECAY_EPOCHS = 30.0  # retrain step schedule: epochs between decays
_C.WARMUP_EPOCHS = 3  # retrain: linear warm-up epochs from WARMUP_LR
_C.COOLDOWN_EPOCHS = 10  # timm cosine-style schedulers: epochs at MIN_LR after the schedule
_C.PATIENCE_EPOCHS = 10  # timm plateau scheduler patience
_C.DECAY_RATE = 0.1  # retrain step schedule: LR factor per decay
_C.META_LR = 1e-4  # learning rate of the meta-matching network

# ---- augmentation -----------------------------------------------------------------------------
_C.AUGMENTATION = CN()
_C.AUGMENTATION.AA = 'rand-m9-mstd0.5'  # timm auto-augment spec ('' or None: off)
_C.AUGMENTATION.COLOR_JITTER = 0.4  # colour jitter strength (when AA is off)
_C.AUGMENTATION.RE_PROB = 0.2  # random erasing probability
_C.AUGMENTATION.RE_MODE = 'pixel'  # random erasing fill
_C.AUGMENTATION.RE_COUNT = 1  # random erasing boxes per image
_C.AUGMENTATION.MIXUP = 0.0  # mixup alpha (0: off)
_C.AUGMENTATION.CUTMIX = 0.0  # cutmix alpha (0: off)
_C.AUGMENTATION.MIXUP_OFF_EPOCH = 0  # turn mixup/cutmix off from this epoch (0: never)
_C.AUGMENTATION.SMOOTHING = 0.1  # label smoothing
_C.AUGMENTATION.SCALE = (0.08, 1.0)  # RandomResizedCrop: range of the crop's share of the image area (timm's default, the original's)

# ---- batch norm -------------------------------------------------------------------------------
_C.BATCHNORM = CN()
_C.BATCHNORM.SYNC_BN = False  # convert BN to SyncBatchNorm when distributed on GPUs
_C.BATCHNORM.BN_TF = False  # original key for TF-style BN, not read (never supported there either)
_C.BATCHNORM.BN_MOMENTUM = 0.1  # BN running-stat momentum (PyTorch convention)
_C.BATCHNORM.BN_EPS = 1e-5  # BN epsilon

# ---- supernet search --------------------------------------------------------------------------
_C.SUPERNET = CN()
_C.SUPERNET.UPDATE_ITER = 1300  # steps between meta-matching updates
_C.SUPERNET.SLICE = 4  # probe images per board entry; meta train/val slices
_C.SUPERNET.POOL_SIZE = 10  # prioritized board size
_C.SUPERNET.RESUNIT = False  # original key; True (its residual-bottleneck op) is refused: no child network could be built from it
_C.SUPERNET.DIL_CONV = False  # original key; True (its 'dilated' ops, undilated in fact) is refused: no child network could be built from them
_C.SUPERNET.UPDATE_2ND = True  # second-order meta update (False: skip meta updates)
_C.SUPERNET.FLOPS_MAXIMUM = 600  # FLOPs budget, MFLOPs
_C.SUPERNET.FLOPS_MINIMUM = 0  # lower end of the FLOPs budget, MFLOPs
# A latency budget on the user's own device instead (docs/latency.md): the board, its ties,
# the final pick, the sampler (paths outside the budget are redrawn), best_arch.yaml, board.json and the log
# use the latency a table measured with tools/latency_table.py predicts. The space's layers come from SEARCH_LAYERS
# when given, else from the FLOPs budget above as always; its resolution from RESOLUTION or that budget.
_C.SUPERNET.BUDGET_MEASURE = 'flops'  # 'flops' (FLOPS_MINIMUM/MAXIMUM, the original) or 'latency' (LATENCY_*)
_C.SUPERNET.LATENCY_TABLE = ''  # BUDGET_MEASURE latency: the table's JSON file (tools/latency_table.py measure)
_C.SUPERNET.LATENCY_MINIMUM = 0.0  # BUDGET_MEASURE latency: lower end of the budget, ms (predicted)
_C.SUPERNET.LATENCY_MAXIMUM = 0.0  # BUDGET_MEASURE latency: upper end of the budget, ms (predicted)
_C.SUPERNET.SEARCH_LAYERS = []  # BUDGET_MEASURE latency: layers per searchable stage, e.g. [1, 2, 2, 2, 1]; []: FLOPs budget's
_C.SUPERNET.RESOLUTION = 0  # search resolution in px: 0 = the one the budget rule picks (the original's); N overrides it (e.g. small images); the budget's measure stays the rule's
_C.SUPERNET.PICK_METHOD = 'meta'  # teacher choice: 'meta' (meta-matching network) or 'top1'
_C.SUPERNET.META_STA_EPOCH = 20  # plain training up to this epoch; distillation and board after
_C.SUPERNET.HOW_TO_PROB = 'pre_prob'  # path sampling: 'even', 'pre_prob', 'teacher' or 'fair' (FairNAS: each round of num_ops paths trains every op of every layer once)
_C.SUPERNET.PRE_PROB = (0.05, 0.2, 0.05, 0.5, 0.05, 0.15)  # op probabilities for 'pre_prob'
# Fidelity switches: each default is the original code's behaviour; the alternative is our correction
# (docs/differences.md; configs/train_corrected.yaml turns them all).
_C.SUPERNET.FLOPS_TABLE = 'original'  # per-op costs sizing the space and measuring the budget: 'original' (the original's table) or 'counted' (thop counts of our blocks)
_C.SUPERNET.STEP_ONLY_PATH = False  # False (original, PyTorch 1.2 zero_grad): every parameter ever sampled keeps weight decay and momentum each step; True: only the sampled path moves
_C.SUPERNET.DETACH_KD_WEIGHT = False  # False (original): the KD weight m keeps its graph, so the MMN (and the student via its probe) learn from every distillation step; True: only in meta updates
_C.SUPERNET.META_INNER_GRAD = 'full'  # meta update's inner gradient g: 'full' (original: the probe forward keeps its graph, g = d(m*KD)/dW includes KD*dm/dW) or 'detached' (m a constant in W: g = m*dKD/dW)
_C.SUPERNET.META_INNER_LR = 'meta'  # lr of the meta step's simulated update W - lr*g: 'meta' (original: the meta group's current LR) or 'supernet'
_C.SUPERNET.PROBE_PROBS = 'teacher'  # board P_j once the board has entries: 'teacher' (original: the current teacher's softmax) or 'student'
_C.SUPERNET.PROBE_FORWARD = 'per_entry'  # teacher selection: 'per_entry' (original: each entry's probe its own train-mode BN batch) or 'batched' (all probes one batch)
_C.SUPERNET.TEACHER_PROB_COUNTS_FIXED = True  # HOW_TO_PROB 'teacher': True (original) also counts the two fixed stages as op 0; False: searchable layers only
_C.SUPERNET.PROBE_SOURCE = 'rank'  # board probes with several processes: 'rank' (original: each process stores its own batch's first SLICE images and P_j, and picks its teacher from them) or 'rank0' (rank 0's, broadcast: every process picks the same teacher)
_C.SUPERNET.BOARD_FLOPS = 'flops_est'  # board admission, ties, board.json and log: 'flops_est' (original: FlopsEst, ptflops counts of the whole path at 224 px) or 'budget' (the budget rule's measure)
_C.SUPERNET.PROBE_CPU_CHANNELS_LAST = False  # teacher selection's scores on the CPU: False (original's arithmetic: the probes' own layout, NCHW unless CHANNELS_LAST) or True (channels_last: oneDNN's depthwise kernels run several times faster; rounding may swap two entries scoring that close)
_C.SUPERNET.BN_RECALIBRATION_BATCHES = 0  # re-estimate BN stats of board paths on N train batches before validating them
_C.SUPERNET.EVAL_BOARD = True  # validate every board path each epoch
# Switches of issue 23 (README's table of switches; configs/train_recommended.yaml turns them on).
_C.SUPERNET.BOARD_ADMISSION = 'train_batch'  # score a student must show to join the board: 'train_batch' (original: prec1 on the batch it just stepped on) or 'val_batch' (prec1 on a fixed seeded held-out val batch of BATCH_SIZE images, BN statistics the path's own on it)
_C.SUPERNET.ZERO_INIT_RESIDUAL = False  # False (original): every op's last BN starts at weight 1; True: residual searchable ops start as the identity (last BN weight 0), so untrained ops add nothing (docs/own_data.md)
_C.SUPERNET.SAMPLE_WITHIN_BUDGET = False  # False (original): the sampler trains paths outside FLOPS_MINIMUM..MAXIMUM (budget's measure) too; True: such paths are redrawn, as under a latency budget
_C.SUPERNET.FINAL_PICK_SAMPLES = 0  # final pick: 0 = the best validated board path (ours; the original has none); N = also N random paths within the budget, all BN re-estimated (lib/search/final_pick.py)
_C.SUPERNET.FINAL_PICK_BN_BATCHES = 4  # FINAL_PICK_SAMPLES > 0 or FINAL_PICK evolution: training batches re-estimating each candidate's BN statistics
_C.SUPERNET.FINAL_PICK = 'board'  # final pick: 'board' (the best validated board path, or with FINAL_PICK_SAMPLES also sampled ones) or 'evolution' (an evolutionary search over the trained supernet from the board's paths, SUPERNET.EVOLUTION; lib/search/evolution.py)
_C.SUPERNET.EVOLUTION = CN()  # FINAL_PICK evolution (and tools/evolution_search.py): every candidate scored by val prec@1 with BN re-estimated
_C.SUPERNET.EVOLUTION.POPULATION = 50  # paths of generation 0: the board's paths within the budget, then random ones within it
_C.SUPERNET.EVOLUTION.GENERATIONS = 20  # generations bred after generation 0
_C.SUPERNET.EVOLUTION.PARENTS = 10  # the best paths scored so far, which breed each generation
_C.SUPERNET.EVOLUTION.MUTATIONS = 25  # children by mutation per generation
_C.SUPERNET.EVOLUTION.CROSSOVERS = 25  # children by crossover per generation
_C.SUPERNET.EVOLUTION.MUTATION_PROB = 0.1  # chance that a mutation redraws a layer's op

# Keys a resumed run may set differently from the checkpoint's config (AUTO_RESUME): the length of the
# run, where files are, logging, worker processes, keys no script reads, and LR and CLIP_GRAD (to continue a
# diverged run more gently; a new LR scales the whole rest of the schedule). Any other difference is an
# error naming the keys: the resumed run would silently train another recipe than the one it continues.
RESUME_MAY_CHANGE = (
    'AUTO_RESUME', 'OVERWRITE', 'RESUME_PATH', 'OUTPUT', 'MODEL', 'DATA_DIR', 'SAVE_PATH', 'EPOCHS',
    'LOG_INTERVAL', 'VERBOSE', 'RECOVERY_INTERVAL', 'SIGTERM_GRACE', 'CHECKPOINT_HIST', 'WORKERS', 'NUM_GPU',
    'LOCAL_RANK', 'LR', 'CLIP_GRAD', 'SUPERNET.FINAL_PICK_SAMPLES', 'SUPERNET.FINAL_PICK_BN_BATCHES',
    'SUPERNET.FINAL_PICK', 'SUPERNET.EVOLUTION.POPULATION', 'SUPERNET.EVOLUTION.GENERATIONS',
    'SUPERNET.EVOLUTION.PARENTS', 'SUPERNET.EVOLUTION.MUTATIONS', 'SUPERNET.EVOLUTION.CROSSOVERS',
    'SUPERNET.EVOLUTION.MUTATION_PROB',
    'DEVICE', 'DIST_BACKEND', 'DIST_INIT_TIMEOUT', 'BENCHMARK_MODE', 'DETERMINISTIC', 'COMPILE', 'SAVE_IMAGES',
    'START_EPOCH',
    'OPTIMIZER', 'DATASET.PIN_MEM', 'DATASET.GENERATE_DEMO', 'DATASET.VAL_BATCH_MUL', 'BATCHNORM.BN_TF',
)


def get_defaults() -> CN:
    return _C.clone()


def _coerce(defaults: CN, tree: dict, prefix: str = '') -> dict:
    """Friendly types before yacs' strict check: ``LR: 1`` is a float, ``LR_NOISE: [30]`` may fill a None."""
    for key, value in tree.items():
        if key not in defaults:
            raise ConfigError(f'unknown config key {prefix}{key}; see lib/config.py for the keys')
        default = defaults[key]
        if isinstance(value, str) and not isinstance(default, str):
            value = _parse_value(value)  # '(0.05, 0.2)' or 'None' as yaml strings
        if isinstance(default, CN):
            if not isinstance(value, dict):
                raise ConfigError(f'{prefix}{key} is a section; give it as a mapping, not {value!r}')
            value = _coerce(default, value, f'{prefix}{key}.')
        elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif default is None or value is None:
            pass  # optional keys: None and a value replace each other freely
        elif isinstance(default, (list, tuple)) and isinstance(value, (list, tuple)):
            value = type(default)(value)
        elif type(value) is not type(default):
            raise ConfigError(f'{prefix}{key} must be {type(default).__name__} (default {default!r}); got {value!r}')
        tree[key] = value
    return tree


def _merge_dict(cfg: CN, tree: dict, source: str) -> None:
    try:
        tree = _coerce(cfg, apply_aliases(tree))
        for key, value in tree.items():
            if isinstance(value, dict):
                cfg[key].merge_from_other_cfg(CN(value))
            else:
                cfg[key] = value
    except ConfigError as err:
        raise ConfigError(f'{source}: {err}') from None


def _load_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f'config file {path!r} not found; pass an existing yaml file with --cfg')
    try:
        with open(path, encoding='utf-8') as f:
            tree = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f'{path}: not valid yaml: {" ".join(str(err).split())}') from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f'config file {path!r} cannot be read ({type(err).__name__}: '
                          f'{getattr(err, "strerror", None) or err}); pass a yaml file with --cfg') from None
    if not isinstance(tree, dict):
        raise ConfigError(f'{path}: a config file must be a mapping of KEY: value')
    # ``_BASE_`` names a yaml file (relative to this one) whose values this one overrides.
    base = tree.pop('_BASE_', None)
    try:
        tree = apply_aliases(tree)  # before layering, so that a file's OUTPUT overrides its base's SAVE_PATH
    except ConfigError as err:
        raise ConfigError(f'{path}: {err}') from None
    if base is not None:
        base_tree = _load_yaml(os.path.join(os.path.dirname(path), base))
        tree = _deep_update(base_tree, tree)
    return tree


def _deep_update(base: dict, over: dict) -> dict:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = value
    return base


def _parse_value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def load_config(cfg_files: Optional[Sequence[str]] = None, opts: Optional[List[str]] = None) -> CN:
    """Defaults <- each yaml file in turn <- ``KEY VALUE`` pairs; returns the frozen config."""
    cfg = get_defaults()
    if isinstance(cfg_files, str):
        cfg_files = [cfg_files]
    for path in cfg_files or []:
        _merge_dict(cfg, _load_yaml(path), path)
    opts = list(opts or [])
    if len(opts) % 2:
        raise ConfigError(f'overrides come in KEY VALUE pairs; got an odd list: {opts}')
    # The command line is one source: MODEL_SELECTION and NET.SELECTION (or OUTPUT and SAVE_PATH) set to
    # different values there is an error, as in one yaml file.
    tree: dict = {}
    for key, text in zip(opts[0::2], opts[1::2]):
        node = tree
        parts = key.split('.')  # aliases are top-level keys: _merge_dict maps them
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f'command-line override {key}: {part} is not a section')
        node[parts[-1]] = _parse_value(text)
    if tree:
        _merge_dict(cfg, tree, 'command-line overrides')
    check_values(cfg)
    warn_unread_keys(cfg, _C)
    cfg.freeze()
    return cfg


def save_config(cfg: CN, path: str) -> None:
    """Write the full config as yaml, atomically."""
    write_text_atomic(cfg.dump(), path)
