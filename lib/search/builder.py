"""Everything a search needs, built from the config in an order that fails early.

Order: search space from the FLOPs budget (an infeasible budget fails here, before any work), FLOPs
table, supernet (+ SyncBN, device, memory format), meta-matching network, board, path sampler, data
at the search resolution, loss, optimizer, linear LR schedule, AMP scaler, checkpoint saver, resume.
"""
import contextlib
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist
import torch.nn as nn
from timm.layers import convert_sync_batchnorm
from timm.loss import LabelSmoothingCrossEntropy

from lib.checkpoint.format import search_space_record
from lib.checkpoint.restore import load_search_state
from lib.comm import broadcast_tensors_
from lib.engine.distributed import DistContext
from lib.engine.precision import grad_scaler
from lib.engine.runtime import seed_everything
from lib.errors import CreamError
from lib.models import ops
from lib.models.supernet import SuperNet
from lib.search.board import PrioritizedBoard
from lib.search.flops import SearchSpace, build_search_space
from lib.search.macs_table import FlopsTable, build_flops_table
from lib.search.meta_matching import MetaMatchingNetwork
from lib.search.sampler import PathSampler
from lib.train.session import TrainingSession, build_loaders, build_records, build_saver, resume_session

# SGD flavours of the original's create_optimizer_supernet: name -> nesterov.
_SGD_OPTIMIZERS = {'sgd': True, 'nesterov': True, 'momentum': False}


class SearchConfigError(CreamError, ValueError):
    """A config value the search cannot use; the message names the key and the fix."""


@dataclass
class SearchSession(TrainingSession):
    space: SearchSpace
    flops_table: FlopsTable
    supernet: SuperNet
    mmn: MetaMatchingNetwork
    board: PrioritizedBoard
    path_sampler: PathSampler
    local_bn_group: Any = None  # a one-rank process group when SyncBN is on (see unsynced_bn)


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


def linear_to_zero(total_steps: int):
    def factor(step: int) -> float:
        return max(0.0, 1.0 - step / total_steps)
    return factor


def build_linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Every group's LR falls linearly from its initial value to 0 over ``total_steps`` optimizer steps
    (EPOCHS x the real steps per epoch; the original assumed 1.28M images). Step it once per step."""
    if total_steps < 1:
        raise SearchConfigError(f'the search has {total_steps} steps in all; set EPOCHS >= 1')
    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear_to_zero(total_steps))


def build_loss(cfg) -> nn.Module:
    aug = cfg.AUGMENTATION
    if aug.MIXUP > 0 or aug.CUTMIX > 0:
        raise SearchConfigError('the supernet search does not use mixup/cutmix (neither did the original): set '
                                'AUGMENTATION.MIXUP 0 and AUGMENTATION.CUTMIX 0 for train.py')
    if aug.SMOOTHING > 0:
        return LabelSmoothingCrossEntropy(smoothing=aug.SMOOTHING)
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
    meta-matching update (per-rank slices, and its second-order gradient needs the double-backward that
    plain batch norm has and the synchronized kernels lack). No-op when ``group`` is None."""
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


# ---- the session --------------------------------------------------------------------------------
def log_search_space(logger, space: SearchSpace, table: FlopsTable, cfg) -> None:
    low, high = table.flops_range()
    logger.info('search space for FLOPs budget %g..%g MFLOPs: layers per searchable stage %s, resolution '
                '%d px, %d ops per layer (%s)', cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM,
                list(space.layers_per_stage), space.resolution, table.num_ops,
                ', '.join(ops.op_name(i) for i in range(table.num_ops)))
    budget_low, budget_high = space.budget_flops_range()
    logger.info('paths of this space cost %.2f..%.2f MFLOPs in the budget\'s measure (%s, budget scale %.4g), '
                '%.2f..%.2f M real MACs at %d px and %.2f..%.2f M params', budget_low, budget_high,
                space.op_costs.source, space.budget_scale, low, high, space.resolution,
                table.fixed_params + sum(min(layer) for stage in table.op_params for layer in stage),
                table.fixed_params + sum(max(layer) for stage in table.op_params for layer in stage))
    if cfg.DATASET.IMAGE_SIZE and cfg.DATASET.IMAGE_SIZE != space.resolution:
        logger.warning('DATASET.IMAGE_SIZE %d is ignored by the search: the FLOPs budget sets the resolution '
                       '(%d px)', cfg.DATASET.IMAGE_SIZE, space.resolution)


def build_session(run) -> SearchSession:
    cfg, dist_ctx, logger = run.cfg, run.dist, run.logger
    device = dist_ctx.device
    space = build_search_space(cfg)  # an infeasible budget raises FlopsBudgetError here
    loss_fn = build_loss(cfg)
    if 2 * cfg.SUPERNET.SLICE > cfg.DATASET.BATCH_SIZE:
        raise SearchConfigError(f'DATASET.BATCH_SIZE {cfg.DATASET.BATCH_SIZE} is smaller than 2 x SUPERNET.SLICE '
                                f'({2 * cfg.SUPERNET.SLICE}), which the meta-matching update splits off '
                                'each batch; raise the batch size or lower SUPERNET.SLICE')
    table = build_flops_table(cfg, space)
    if dist_ctx.is_main:
        log_search_space(logger, space, table, cfg)

    # Counting FLOPs built (and randomly initialized) modules, more of them on a first call (cached
    # after): seed again so the supernet's initial weights depend on SEED only.
    seed_everything(cfg.SEED)
    norm_layer = ops.make_norm_layer(cfg.BATCHNORM.BN_MOMENTUM, cfg.BATCHNORM.BN_EPS)
    supernet = SuperNet(space.layers_per_stage, num_classes=cfg.DATASET.NUM_CLASSES,
                        drop_rate=cfg.NET.DROPOUT_RATE, norm_layer=norm_layer, global_pool=cfg.NET.GP)
    mmn = MetaMatchingNetwork(cfg.SUPERNET.SLICE, cfg.DATASET.NUM_CLASSES)
    local_bn_group = None
    if cfg.BATCHNORM.SYNC_BN:
        if dist_ctx.distributed and device.type == 'cuda':
            supernet = convert_sync_batchnorm(supernet)
            local_bn_group = one_rank_group(dist_ctx)
            logger.info('converted BatchNorm layers to synchronized BatchNorm')
        else:
            logger.info('BATCHNORM.SYNC_BN ignored: it applies to distributed runs on GPUs only')
    supernet.to(device)
    mmn.to(device)
    if dist_ctx.distributed:  # same seed on every rank already; this makes it independent of init order
        broadcast_tensors_(list(supernet.state_dict().values()) + list(mmn.state_dict().values()))
    if cfg.CHANNELS_LAST:
        supernet.to(memory_format=torch.channels_last)
    if cfg.COMPILE:
        logger.warning('COMPILE is not applied to the supernet: every sampled path is another graph, so '
                       'torch.compile would recompile for most steps')
    if dist_ctx.is_main:
        logger.info('supernet: %.2f M parameters in all; meta-matching network: %d inputs (SLICE %d x %d '
                    'classes)', sum(p.numel() for p in supernet.parameters()) / 1e6,
                    mmn.linear.in_features, cfg.SUPERNET.SLICE, cfg.DATASET.NUM_CLASSES)

    seed_everything(cfg.SEED + dist_ctx.rank)  # the same weights everywhere, each rank its own augmentation
    board = PrioritizedBoard(cfg.SUPERNET.POOL_SIZE, cfg.ACC_GAP)
    path_sampler = PathSampler(space.layers_per_stage, supernet.num_ops, how_to_prob=cfg.SUPERNET.HOW_TO_PROB,
                               pre_prob=cfg.SUPERNET.PRE_PROB, seed=cfg.SEED, board_paths=board.paths,
                               count_fixed_stages=cfg.SUPERNET.TEACHER_PROB_COUNTS_FIXED)

    train_loader, val_loader, steps_per_epoch = build_loaders(cfg, space.resolution, dist_ctx)

    optimizer = build_search_optimizer(cfg, supernet, mmn)
    scheduler = build_linear_schedule(optimizer, cfg.EPOCHS * steps_per_epoch)
    scaler = grad_scaler(device, cfg.AMP, cfg.AMP_DTYPE)
    saver = build_saver(run)

    def restore_search_state(checkpoint, source):
        load_search_state(checkpoint, source, search_space=search_space_record(space), supernet=supernet, mmn=mmn,
                          board=board, path_sampler=path_sampler, device=device, rank=dist_ctx.rank)
    resume = resume_session(run, saver, model=supernet, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                            ema=None, steps_per_epoch=steps_per_epoch, restore_first=restore_search_state)

    global_batch = cfg.DATASET.BATCH_SIZE * dist_ctx.world_size
    logger.info('%d epochs of %d steps (%d images per step over %d process(es)); %s, LR %g -> 0 linearly '
                'per step, META_LR %g', cfg.EPOCHS, steps_per_epoch, global_batch, dist_ctx.world_size,
                type(optimizer).__name__, cfg.LR, cfg.META_LR)
    return SearchSession(
        cfg=cfg, dist=dist_ctx, run_dir=run.run_dir, logger=logger, space=space, flops_table=table,
        supernet=supernet, mmn=mmn, board=board, path_sampler=path_sampler, train_loader=train_loader,
        val_loader=val_loader, loss_fn=loss_fn, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
        steps_per_epoch=steps_per_epoch, num_epochs=cfg.EPOCHS, saver=saver, resume=resume, **build_records(run),
        local_bn_group=local_bn_group)
