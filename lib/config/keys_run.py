"""The config keys of a run as a whole: its folders, resuming, logging, processes and devices, precision, and
the board's admission gap (the top-level keys before DATASET). One ``Key`` each: see ``lib.config.spec``."""
from lib.config.spec import Key

RUN_KEYS = (
    # ---- run --------------------------------------------------------------------------------------
    Key('AUTO_RESUME', False, "continue from RESUME_PATH, else from the run folder's newest good checkpoint",
        rule='True or False; not True together with OVERWRITE', resume=True),
    # A run folder that holds another run's outputs (checkpoints, summary.csv, board.json, results) is
    # never overwritten silently: without AUTO_RESUME the run stops with an error, unless OVERWRITE is True,
    # which deletes that run's outputs first (checkpoints, logs, tensorboard/, results) and says so.
    Key('OVERWRITE', False, 'True: start afresh in a run folder holding another run, deleting its outputs',
        rule='True or False; not True together with AUTO_RESUME', resume=True),
    Key('DATA_DIR', './data/imagenet', 'ImageFolder root holding train/ and val/', resume=True),
    Key('MODEL', 'cream', 'run name: the run folder is SAVE_PATH/MODEL', resume=True),
    Key('RESUME_PATH', '', 'checkpoint to resume (train/retrain) or to evaluate (test)', resume=True),
    Key('SAVE_PATH', './output', "parent folder of the run folders (the original's key; OUTPUT is an alias)",
        resume=True, aliases=('OUTPUT',)),
    Key('SEED', 42, 'base seed; each rank adds its rank for data augmentation',
        check=(lambda v: 0 <= v < 2 ** 63,
               '0 or more and below 2**63 (a 64-bit seed, with room for the rank added to it)')),
    Key('LOG_INTERVAL', 50, 'steps between progress lines', check=(lambda v: v >= 1, 'at least 1'), resume=True),
    Key('RECOVERY_INTERVAL', 0, 'steps between recovery checkpoints (0: only at epoch ends); >= 0',
        check=(lambda v: v >= 0, '0 (recovery only at epoch ends) or more steps'), resume=True),
    # SIGTERM (SLURM preemption, Kubernetes, torchrun) stops training at the next step boundary with a recovery
    # checkpoint; the process exits within this many seconds of the signal in any case. Keep it below the time the
    # scheduler waits before SIGKILL (30 s for SLURM's KillWait, Kubernetes' grace period and torchrun).
    Key('SIGTERM_GRACE', 25.0,
        "seconds from SIGTERM to the exit at the latest (the stop's recovery checkpoint within them)",
        check=(lambda v: v > 0, 'a positive number of seconds'), resume=True),
    Key('WORKERS', 4, 'data loader worker processes per training process',
        check=(lambda v: v >= 0, '0 (load in the main process) or more'), resume=True),
    Key('NUM_GPU', 1, 'original key, not read: the world size comes from the launcher', resume=True,
        unread='the launcher decides the number of processes'),
    Key('SAVE_IMAGES', False, 'original key, not read (nor by the original)', resume=True,
        unread='the original did not read it either'),
    Key('AMP', False, 'mixed precision (native torch.autocast)'),
    Key('AMP_DTYPE', 'bfloat16', "'bfloat16' or 'float16' (float16 uses a GradScaler)",
        choices=('bfloat16', 'float16')),
    Key('APEX', False,
        'retrain: NVIDIA apex (amp O1 + apex DDP) instead of native AMP/DDP, needs apex installed; the search warns '
        'and runs native'),
    Key('CHANNELS_LAST', False, 'NHWC memory format for model and batches (faster on tensor cores)'),
    Key('COMPILE', False,
        'torch.compile the network (retrain/test); the search warns and runs eagerly (every path is another graph)',
        resume=True),
    Key('DETERMINISTIC', False, 'deterministic algorithms, for exact resume checks', resume=True),
    Key('DEVICE', 'auto', "'auto' (cuda if available), 'cuda' or 'cpu'", choices=('auto', 'cpu', 'cuda'), resume=True),
    Key('DIST_BACKEND', 'auto', "'auto' (nccl on GPUs, gloo on the CPU), 'nccl' or 'gloo'",
        choices=('auto', 'nccl', 'gloo'), resume=True),
    Key('DIST_INIT_TIMEOUT', 1800.0,
        'seconds every process waits for all ranks to join the job, then one error naming the missing; > 0',
        check=(lambda v: v > 0, 'a positive number of seconds'), resume=True),
    Key('EVAL_METRICS', 'prec1', "metric ranking checkpoints: 'prec1' or 'loss'", choices=('prec1', 'loss')),
    Key('TTA', 0, 'test-time augmentation: 0 off, 1 average with the horizontally flipped image',
        check=(lambda v: v in (0, 1), '0 or 1')),
    Key('LOCAL_RANK', 0, 'original key, not read: filled from the launcher into the saved config.yaml', resume=True,
        unread='the launcher sets it'),
    Key('VERBOSE', False, 'debug-level logging', resume=True),
    Key('ACC_GAP', 5, 'board admission: prec1 must beat the worst entry by this many points',
        check=(lambda v: v >= 0, '0 or more points')),
    Key('CLIP_GRAD', 0.0, 'gradient clipping norm (0: off)', check=(lambda v: v >= 0, '0 (off) or a positive norm'),
        resume=True),
    Key('CHECKPOINT_HIST', 3, 'keep this many best checkpoints by EVAL_METRICS', check=(lambda v: v >= 0, '0 or more'),
        resume=True),
    Key('BENCHMARK_MODE', False, 'cudnn.benchmark', resume=True),
)
