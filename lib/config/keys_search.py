"""The config keys of the supernet search (SUPERNET): the board, the budget, path sampling, the meta-matching
network, the fidelity switches and the final pick. One ``Key`` each: see ``lib.config.spec``."""
from lib.config.spec import Key

SEARCH_KEYS = (
    # ---- supernet search --------------------------------------------------------------------------
    Key('SUPERNET.UPDATE_ITER', 1300, 'steps between meta-matching updates',
        check=(lambda v: v >= 1, 'at least 1 (steps between meta-matching updates)')),
    Key('SUPERNET.SLICE', 4, 'probe images per board entry; meta train/val slices',
        check=(lambda v: v >= 1, 'at least 1'), rule='at least 1; the search needs 2 x SLICE <= DATASET.BATCH_SIZE'),
    Key('SUPERNET.POOL_SIZE', 10, 'prioritized board size',
        check=(lambda v: v >= 1, 'at least 1 (paths on the board)')),
    Key('SUPERNET.RESUNIT', False,
        'original key; True (its residual-bottleneck op) is refused: no child network could be built from it',
        rule='False (the op is refused: no child network could be built from it)'),
    Key('SUPERNET.DIL_CONV', False,
        "original key; True (its 'dilated' ops, undilated in fact) is refused: no child network could be built from "
        'them', rule='False (the ops are refused: no child network could be built from them)'),
    Key('SUPERNET.UPDATE_2ND', True, 'second-order meta update (False: skip meta updates)'),
    Key('SUPERNET.FLOPS_MAXIMUM', 600, 'FLOPs budget, MFLOPs', check=(lambda v: v > 0, 'positive MFLOPs'),
        rule='positive MFLOPs, not below FLOPS_MINIMUM; some path of its space within the budget',
        aliases=('FLOPS_MAXIMUM',)),
    Key('SUPERNET.FLOPS_MINIMUM', 0, 'lower end of the FLOPs budget, MFLOPs',
        check=(lambda v: v >= 0, '0 or more MFLOPs'), aliases=('FLOPS_MINIMUM',)),
    # A latency budget on the user's own device instead (docs/latency.md): the board, its ties,
    # the final pick, the sampler (paths outside the budget are redrawn), best_arch.yaml, board.json and the log
    # use the latency a table measured with tools/latency_table.py predicts. The space's layers come from SEARCH_LAYERS
    # when given, else from the FLOPs budget above as always; its resolution from RESOLUTION or that budget.
    Key('SUPERNET.BUDGET_MEASURE', 'flops', "'flops' (FLOPS_MINIMUM/MAXIMUM, the original) or 'latency' (LATENCY_*)",
        choices=('flops', 'latency')),
    Key('SUPERNET.LATENCY_TABLE', '', "BUDGET_MEASURE latency: the table's JSON file (tools/latency_table.py measure)",
        rule='a table file of tools/latency_table.py; needed with BUDGET_MEASURE latency'),
    Key('SUPERNET.LATENCY_MINIMUM', 0.0, 'BUDGET_MEASURE latency: lower end of the budget, ms (predicted)',
        check=(lambda v: v >= 0, '0 or more ms')),
    Key('SUPERNET.LATENCY_MAXIMUM', 0.0, 'BUDGET_MEASURE latency: upper end of the budget, ms (predicted)',
        check=(lambda v: v >= 0, '0 or more ms')),
    Key('SUPERNET.SEARCH_LAYERS', [],
        "BUDGET_MEASURE latency: layers per searchable stage, e.g. [1, 2, 2, 2, 1]; []: FLOPs budget's",
        rule='[] or 5 positive layer counts; only with BUDGET_MEASURE latency'),
    Key('SUPERNET.RESOLUTION', 0,
        "search resolution in px: 0 = the one the budget rule picks (the original's); N overrides it (e.g. small "
        "images); the budget's measure stays the rule's",
        check=(lambda v: v == 0 or v >= 32, "0 (the budget rule's) or at least 32 px")),
    Key('SUPERNET.PICK_METHOD', 'meta', "teacher choice: 'meta' (meta-matching network) or 'top1'",
        choices=('meta', 'top1')),
    Key('SUPERNET.META_STA_EPOCH', 20, 'plain training up to this epoch; distillation and board after',
        check=(lambda v: v >= 0, '0 or more')),
    Key('SUPERNET.HOW_TO_PROB', 'pre_prob',
        "path sampling: 'even', 'pre_prob', 'teacher' or 'fair' (FairNAS: each round of num_ops paths trains every op "
        'of every layer once)', choices=('even', 'pre_prob', 'teacher', 'fair')),
    Key('SUPERNET.PRE_PROB', (0.05, 0.2, 0.05, 0.5, 0.05, 0.15), "op probabilities for 'pre_prob'"),
    # Fidelity switches: each default is the original code's behaviour; the alternative is our correction
    # (docs/differences.md; configs/train_corrected.yaml turns them all).
    Key('SUPERNET.FLOPS_TABLE', 'original',
        "per-op costs sizing the space and measuring the budget: 'original' (the original's table) or 'counted' (thop "
        'counts of our blocks)', choices=('original', 'counted')),
    Key('SUPERNET.STEP_ONLY_PATH', False,
        'False (original, PyTorch 1.2 zero_grad): every parameter ever sampled keeps weight decay and momentum each '
        'step; True: only the sampled path moves'),
    Key('SUPERNET.DETACH_KD_WEIGHT', False,
        'False (original): the KD weight m keeps its graph, so the MMN (and the student via its probe) learn from '
        'every distillation step; True: only in meta updates'),
    Key('SUPERNET.META_INNER_GRAD', 'full',
        "meta update's inner gradient g: 'full' (original: the probe forward keeps its graph, g = d(m*KD)/dW includes "
        "KD*dm/dW) or 'detached' (m a constant in W: g = m*dKD/dW)", choices=('full', 'detached')),
    Key('SUPERNET.META_INNER_LR', 'meta',
        "lr of the meta step's simulated update W - lr*g: 'meta' (original: the meta group's current LR) or 'supernet'",
        choices=('meta', 'supernet')),
    Key('SUPERNET.PROBE_PROBS', 'teacher',
        "board P_j once the board has entries: 'teacher' (original: the current teacher's softmax) or 'student'",
        choices=('teacher', 'student')),
    Key('SUPERNET.PROBE_FORWARD', 'per_entry',
        "teacher selection: 'per_entry' (original: each entry's probe its own train-mode BN batch) or 'batched' (all "
        'probes one batch)', choices=('per_entry', 'batched')),
    Key('SUPERNET.TEACHER_PROB_COUNTS_FIXED', True,
        "HOW_TO_PROB 'teacher': True (original) also counts the two fixed stages as op 0; False: searchable layers "
        'only'),
    Key('SUPERNET.PROBE_SOURCE', 'rank',
        "board probes with several processes: 'rank' (original: each process stores its own batch's first SLICE images"
        " and P_j, and picks its teacher from them) or 'rank0' (rank 0's, broadcast: every process picks the same "
        'teacher)', choices=('rank', 'rank0')),
    Key('SUPERNET.BOARD_FLOPS', 'flops_est',
        "board admission, ties, board.json and log: 'flops_est' (original: FlopsEst, ptflops counts of the whole path "
        "at 224 px) or 'budget' (the budget rule's measure)", choices=('flops_est', 'budget')),
    Key('SUPERNET.PROBE_CPU_CHANNELS_LAST', False,
        "teacher selection's scores on the CPU: False (original's arithmetic: the probes' own layout, NCHW unless "
        "CHANNELS_LAST) or True (channels_last: oneDNN's depthwise kernels run several times faster; rounding may swap "
        'two entries scoring that close)'),
    Key('SUPERNET.BN_RECALIBRATION_BATCHES', 0,
        're-estimate BN stats of board paths on N train batches before validating them',
        check=(lambda v: v >= 0, '0 (off) or more batches')),
    Key('SUPERNET.EVAL_BOARD', True, 'validate every board path each epoch'),
    # Switches of issue 23 (README's table of switches; configs/train_recommended.yaml turns them on).
    Key('SUPERNET.BOARD_ADMISSION', 'train_batch',
        "score a student must show to join the board: 'train_batch' (original: prec1 on the batch it just stepped on) "
        "or 'val_batch' (prec1 on a fixed seeded held-out val batch of BATCH_SIZE images, BN statistics the path's own"
        ' on it)', choices=('train_batch', 'val_batch')),
    Key('SUPERNET.ZERO_INIT_RESIDUAL', False,
        "False (original): every op's last BN starts at weight 1; True: residual searchable ops start as the identity "
        '(last BN weight 0), so untrained ops add nothing (docs/own_data.md)'),
    Key('SUPERNET.SAMPLE_WITHIN_BUDGET', False,
        "False (original): the sampler trains paths outside FLOPS_MINIMUM..MAXIMUM (budget's measure) too; True: such "
        'paths are redrawn, as under a latency budget'),
    Key('SUPERNET.FINAL_PICK_SAMPLES', 0,
        'final pick: 0 = the best validated board path (ours; the original has none); N = also N random paths within '
        'the budget, all BN re-estimated (lib/search/final_pick.py)',
        check=(lambda v: v >= 0, '0 (the board alone) or more sampled paths'), resume=True),
    Key('SUPERNET.FINAL_PICK_BN_BATCHES', 4,
        "FINAL_PICK_SAMPLES > 0 or FINAL_PICK evolution: training batches re-estimating each candidate's BN statistics",
        check=(lambda v: v >= 1, 'at least 1 batch'), resume=True),
    Key('SUPERNET.FINAL_PICK', 'board',
        "final pick: 'board' (the best validated board path, or with FINAL_PICK_SAMPLES also sampled ones) or "
        "'evolution' (an evolutionary search over the trained supernet from the board's paths, SUPERNET.EVOLUTION; "
        'lib/search/evolution.py)', choices=('board', 'evolution'), resume=True),
    # SUPERNET.EVOLUTION: FINAL_PICK evolution (and tools/evolution_search.py): every candidate scored by val prec@1
    # with BN re-estimated
    Key('SUPERNET.EVOLUTION.POPULATION', 50,
        "paths of generation 0: the board's paths within the budget, then random ones within it",
        check=(lambda v: v >= 1, 'at least 1 path'), resume=True),
    Key('SUPERNET.EVOLUTION.GENERATIONS', 20, 'generations bred after generation 0',
        check=(lambda v: v >= 0, '0 (generation 0 alone) or more'), resume=True),
    Key('SUPERNET.EVOLUTION.PARENTS', 10, 'the best paths scored so far, which breed each generation',
        check=(lambda v: v >= 1, 'at least 1 path'), resume=True),
    Key('SUPERNET.EVOLUTION.MUTATIONS', 25, 'children by mutation per generation',
        check=(lambda v: v >= 0, '0 or more children'), resume=True),
    Key('SUPERNET.EVOLUTION.CROSSOVERS', 25, 'children by crossover per generation',
        check=(lambda v: v >= 0, '0 or more children'), resume=True),
    Key('SUPERNET.EVOLUTION.MUTATION_PROB', 0.1, "chance that a mutation redraws a layer's op",
        check=(lambda v: 0 < v <= 1, 'a probability in (0, 1]'), resume=True),
)
