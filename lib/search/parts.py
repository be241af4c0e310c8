"""What one search step reads (``SearchParts``), built in memory from a config: no run folder, data or log file.

``lib.search.step.search_step`` and ``run_meta_update`` take these parts; a ``SearchSession`` (``lib.search.builder``)
is these parts plus the run's loaders, records and path sampler, and ``build_session`` makes them here. One step
for any budget, e.g. a distillation step on a board of two given paths:

    cfg = load_config('configs/train.yaml', ['SUPERNET.FLOPS_MAXIMUM', '43', 'DATASET.NUM_CLASSES', '10'])
    parts = build_search_parts(cfg, total_steps=1000, board_entries=[BoardEntry(...), BoardEntry(...)])
    sums = search_step(parts, path, images, target, epoch=cfg.SUPERNET.META_STA_EPOCH + 1)

Order: search space (from the budget, unless given), FLOPs table, supernet (+ SyncBN, device, dtype, memory
format), meta-matching network, board, loss, optimizer, linear LR schedule, AMP scaler.
"""
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
from timm.layers import convert_sync_batchnorm
from timm.loss import LabelSmoothingCrossEntropy

from lib.comm import broadcast_tensors_
from lib.engine.distributed import DistContext
from lib.engine.precision import grad_scaler
from lib.engine.runtime import seed_everything
from lib.errors import CreamError
from lib.models import ops
from lib.models.supernet import SuperNet
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.flops import SearchSpace, build_search_space
from lib.search.latency_budget import LatencyBudget, latency_budget
from lib.search.macs_table import MacsTable, build_macs_table
from lib.search.measures import SearchBudget, search_budget
from lib.search.meta_matching import MetaMatchingNetwork
from lib.train.schedule import LinearToZero

# SGD flavours of the original's create_optimizer_supernet: name -> nesterov.
_SGD_OPTIMIZERS = {'sgd': True, 'nesterov': True, 'momentum': False}

logger = logging.getLogger('cream.search')


class SearchConfigError(CreamError, ValueError):
    """A config value the search cannot use; the message names the key and the fix."""


@dataclass(kw_only=True)
class SearchParts:
    """The state one search step reads and changes."""
    cfg: Any
    dist: DistContext
    space: SearchSpace
    macs_table: MacsTable
    supernet: SuperNet
    mmn: MetaMatchingNetwork
    board: PrioritizedBoard
    optimizer: torch.optim.Optimizer
    scheduler: LinearToZero
    scaler: torch.amp.GradScaler
    loss_fn: Any
    local_bn_group: Any = None  # a one-rank process group when SyncBN is on (see unsynced_bn)
    latency: Optional[LatencyBudget] = None  # SUPERNET.BUDGET_MEASURE latency: the board's and budget's measure
    admission_batch: Optional[Tuple[torch.Tensor, torch.Tensor]] = None  # BOARD_ADMISSION val_batch: held-out batch

    @property
    def budget(self) -> SearchBudget:
        """Which measure decides what (``lib.search.measures``): the budget's and the board's; derived from the
        space and the latency budget each time, so that it follows them."""
        return search_budget(self.cfg, self.space, self.latency)

    def board_cost(self, path) -> float:
        """``path`` in the board's measure: SUPERNET.BOARD_FLOPS, or under a latency budget the predicted ms."""
        return self.budget.board_measure.cost(path)


def build_search_parts(cfg, *, total_steps: int, dist_ctx: Optional[DistContext] = None,
                       space: Optional[SearchSpace] = None, macs_table: Optional[MacsTable] = None,
                       board_entries: Sequence[BoardEntry] = (), dtype: Optional[torch.dtype] = None,
                       latency: Optional[LatencyBudget] = None,
                       admission_batch: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> SearchParts:
    """The parts of a search with config ``cfg`` whose LR falls to 0 over ``total_steps`` optimizer steps.

    ``dist_ctx``: the process group and device (default: one process on the CPU). ``space``: the searchable layers
    and resolution (default: those of cfg's FLOPs budget); ``macs_table`` prices paths in it (default: counted at
    its resolution). ``board_entries``: the board holds exactly these (moved to the device). ``dtype``: e.g.
    torch.float64 for the supernet, the MMN and the probe tensors. ``latency``: the latency budget (default: the
    one cfg's SUPERNET.BUDGET_MEASURE latency names; None under a FLOPs budget). ``admission_batch``: the held-out
    (images, targets) of SUPERNET.BOARD_ADMISSION 'val_batch' (``lib.search.admission``). Weights depend on SEED
    only."""
    dist_ctx = dist_ctx or DistContext()
    device = dist_ctx.device
    space = space or build_search_space(cfg)  # an infeasible budget raises FlopsBudgetError here
    latency = latency or latency_budget(cfg, space)  # a wrong table or an infeasible latency budget raises here
    check_search_config(cfg)
    loss_fn = build_loss(cfg)
    macs_table = macs_table or build_macs_table(cfg, space)

    # Counting FLOPs builds (randomly initialized) modules: seed here so that the weights depend on SEED only.
    seed_everything(cfg.SEED)
    norm_layer = ops.make_norm_layer(cfg.BATCHNORM.BN_MOMENTUM, cfg.BATCHNORM.BN_EPS)
    supernet = SuperNet(space.layers_per_stage, num_classes=cfg.DATASET.NUM_CLASSES,
                        drop_rate=cfg.NET.DROPOUT_RATE, norm_layer=norm_layer, global_pool=cfg.NET.GP,
                        zero_init_residual=cfg.SUPERNET.ZERO_INIT_RESIDUAL)
    mmn = MetaMatchingNetwork(cfg.SUPERNET.SLICE, cfg.DATASET.NUM_CLASSES)
    local_bn_group = None
    if cfg.BATCHNORM.SYNC_BN:
        if dist_ctx.distributed and device.type == 'cuda':
            supernet = convert_sync_batchnorm(supernet)
            local_bn_group = one_rank_group(dist_ctx)
            logger.info('converted BatchNorm layers to synchronized BatchNorm')
        else:
            logger.info('BATCHNORM.SYNC_BN ignored: it applies to distributed runs on GPUs only')
    supernet.to(device=device, dtype=dtype).train()
    mmn.to(device=device, dtype=dtype).train()
    if dist_ctx.distributed:  # same seed on every rank already; this makes it independent of init order
        broadcast_tensors_(list(supernet.state_dict().values()) + list(mmn.state_dict().values()))
    if cfg.CHANNELS_LAST:
        supernet.to(memory_format=torch.channels_last)
    if cfg.COMPILE:
        logger.warning('COMPILE is not applied to the supernet: every sampled path is another graph, so '
                       'torch.compile would recompile for most steps')
    if cfg.APEX:
        logger.warning('APEX is not used by the search: it runs native DDP and AMP (AMP True); apex serves '
                       'retrain.py only')
    if dist_ctx.is_main:
        logger.info('supernet: %.2f M parameters in all; meta-matching network: %d inputs (SLICE %d x %d '
                    'classes)', sum(p.numel() for p in supernet.parameters()) / 1e6,
                    mmn.linear.in_features, cfg.SUPERNET.SLICE, cfg.DATASET.NUM_CLASSES)

    entries = [entry.to(device, dtype, channels_last=cfg.CHANNELS_LAST) for entry in board_entries]
    board = PrioritizedBoard(cfg.SUPERNET.POOL_SIZE, cfg.ACC_GAP, entries=entries)
    optimizer = build_search_optimizer(cfg, supernet, mmn)
    return SearchParts(cfg=cfg, dist=dist_ctx, space=space, macs_table=macs_table, supernet=supernet, mmn=mmn,
                       board=board, optimizer=optimizer, scheduler=build_linear_schedule(optimizer, total_steps),
                       scaler=grad_scaler(device, cfg.AMP, cfg.AMP_DTYPE), loss_fn=loss_fn,
                       local_bn_group=local_bn_group, latency=latency, admission_batch=admission_batch)


def check_search_config(cfg) -> None:
    """The values the step cannot use, before any work."""
    if 2 * cfg.SUPERNET.SLICE > cfg.DATASET.BATCH_SIZE:
        raise SearchConfigError(f'DATASET.BATCH_SIZE {cfg.DATASET.BATCH_SIZE} is smaller than 2 x SUPERNET.SLICE '
                                f'({2 * cfg.SUPERNET.SLICE}), which the meta-matching update splits off '
                                'each batch; raise the batch size or lower SUPERNET.SLICE')
    if cfg.AUGMENTATION.MIXUP > 0 or cfg.AUGMENTATION.CUTMIX > 0:
        raise SearchConfigError('the supernet search does not use mixup/cutmix (neither did the original): set '
                                'AUGMENTATION.MIXUP 0 and AUGMENTATION.CUTMIX 0 for train.py')


# ---- optimisation -------------------------------------------------------------------------------
def search_param_groups(supernet: nn.Module, mmn: nn.Module, lr: float, meta_lr: float,
                        weight_decay: float) -> List[dict]:
    """The original's four groups: supernet weights with decay, supernet biases and norm weights without,
    both at LR; the meta-matching network at META_LR without decay."""
    decay, no_decay = [], []
    for name, param in supernet.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 or name.endswith('.bias') else decay).append(param)
    meta = [param for param in mmn.parameters() if param.requires_grad]
    return [
        {'params': no_decay, 'weight_decay': 0.0, 'lr': lr},
        {'params': decay, 'weight_decay': weight_decay, 'lr': lr},
        {'params': meta, 'weight_decay': 0.0, 'lr': meta_lr},
    ]


def build_search_optimizer(cfg, supernet: nn.Module, mmn: nn.Module) -> torch.optim.Optimizer:
    """SGD (OPT sgd/nesterov: Nesterov momentum; momentum: plain momentum) over ``search_param_groups``;
    any other OPT is built by timm over the same groups. Not torch's fused SGD: each step updates another
    subset of parameters, and its kernel fails on a mix of new and existing momentum buffers."""
    groups = search_param_groups(supernet, mmn, cfg.LR, cfg.META_LR, cfg.WEIGHT_DECAY)
    name = cfg.OPT.lower()
    if name in _SGD_OPTIMIZERS:
        return torch.optim.SGD(groups, lr=cfg.LR, momentum=cfg.MOMENTUM, nesterov=_SGD_OPTIMIZERS[name])
    from timm.optim import create_optimizer_v2
    return create_optimizer_v2(groups, opt=cfg.OPT, lr=cfg.LR, weight_decay=0.0, momentum=cfg.MOMENTUM,
                               eps=cfg.OPT_EPS)


def build_linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> LinearToZero:
    """Every group's LR falls linearly from its initial value to 0 over ``total_steps`` optimizer steps
    (EPOCHS x the real steps per epoch; the original assumed 1.28M images). Step it once per step."""
    if total_steps < 1:
        raise SearchConfigError(f'the search has {total_steps} steps in all; set EPOCHS >= 1')
    return LinearToZero(optimizer, total_steps)


def build_loss(cfg) -> nn.Module:
    """Cross entropy, with AUGMENTATION.SMOOTHING label smoothing."""
    if cfg.AUGMENTATION.SMOOTHING > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.AUGMENTATION.SMOOTHING)
    return nn.CrossEntropyLoss()


# ---- distributed helpers ------------------------------------------------------------------------
def one_rank_group(dist_ctx: DistContext):
    """This rank's one-member process group (every rank must call this together)."""
    groups = [dist.new_group([rank]) for rank in range(dist_ctx.world_size)]
    return groups[dist_ctx.rank]


@contextlib.contextmanager
def unsynced_bn(model: nn.Module, group):
    """SyncBatchNorm layers normalize with this rank's statistics only, inside the block.

    For the teacher-selection probes (identical on every rank: syncing them is wasted traffic) and the
    meta-matching update (per-rank slices, and its probe replay needs the forward-mode derivative that plain
    batch norm has and the synchronized kernels lack; with one rank SyncBatchNorm runs plain batch norm).
    No-op when ``group`` is None."""
    if group is None:
        yield
        return
    layers = [m for m in model.modules() if isinstance(m, nn.SyncBatchNorm)]
    saved = [m.process_group for m in layers]
    for m in layers:
        m.process_group = group
    try:
        yield
    finally:
        for m, pg in zip(layers, saved):
            m.process_group = pg
