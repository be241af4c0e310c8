"""The search session of a run, built from the config in an order that fails early.

Order: search space from the FLOPs budget (an infeasible budget, or one no path of its space meets, fails here,
before any work), the latency budget when there is one (its table and its feasibility, also before any work),
MACs table, data at the search resolution, the step's parts (``lib.search.parts``: supernet + SyncBN, device, memory format;
meta-matching network, board, loss, optimizer, linear LR schedule, AMP scaler), path sampler, checkpoint
saver, resume.
"""
from dataclasses import dataclass, fields
from typing import Optional, Tuple

from lib.checkpoint.format import search_space_record
from lib.checkpoint.restore import load_search_state
from lib.data.loaders import check_data_folders
from lib.engine.runtime import seed_everything
from lib.models import ops
from lib.search.admission import admission_batch
from lib.search.budget_paths import check_budget_has_paths
from lib.search.flops import SearchSpace, build_search_space
from lib.search.latency_budget import LatencyBudget, latency_budget
from lib.search.macs_table import MacsTable, build_macs_table
from lib.search.measures import search_budget
from lib.search.parts import SearchParts, build_search_parts, check_search_config
from lib.search.sampler import PathSampler, sampler_from_config
from lib.search.sampling_budget import SamplingBudget, check_sampling_budget
from lib.train.session import TrainingSession, build_loaders, build_records, build_saver, resume_session


@dataclass(kw_only=True)
class SearchSession(TrainingSession, SearchParts):
    """The step's parts plus the run's: loaders, path sampler, checkpoint saver, records, resume point."""
    path_sampler: PathSampler


# ---- the session --------------------------------------------------------------------------------
def log_search_space(logger, space: SearchSpace, table: MacsTable, cfg,
                     latency: Optional[LatencyBudget] = None) -> None:
    low, high = table.macs_range()
    logger.info('search space for FLOPs budget %g..%g MFLOPs%s: layers per searchable stage %s, resolution '
                '%d px, %d ops per layer (%s)', cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM,
                ' (layers as SUPERNET.SEARCH_LAYERS gives them)' if cfg.SUPERNET.SEARCH_LAYERS else '',
                list(space.layers_per_stage), space.resolution, table.num_ops,
                ', '.join(ops.op_name(i) for i in range(table.num_ops)))
    if latency is not None:
        fastest, slowest = latency.table.range_ms()
        logger.info('latency budget %s (it decides the board, the sampler and the final pick; FLOPs are reported '
                    'beside it): paths of this space are predicted at %.4g..%.4g ms, about %.1f%% of them '
                    'within the budget; %s', latency.text(), fastest, slowest, 100 * latency.within_fraction(),
                    latency.describe())
    budget_low, budget_high = space.budget_flops_range()
    logger.info('paths of this space cost %.2f..%.2f MFLOPs in the budget\'s measure (%s, budget scale %.4g), '
                '%.2f..%.2f M real MACs at %d px and %.2f..%.2f M params', budget_low, budget_high,
                space.op_costs.source, space.budget_scale, low, high, space.resolution,
                table.fixed_params + sum(min(layer) for stage in table.op_params for layer in stage),
                table.fixed_params + sum(max(layer) for stage in table.op_params for layer in stage))
    if cfg.DATASET.IMAGE_SIZE and cfg.DATASET.IMAGE_SIZE != space.resolution:
        logger.warning('DATASET.IMAGE_SIZE %d is ignored by the search: the FLOPs budget sets the resolution '
                       '(%d px)', cfg.DATASET.IMAGE_SIZE, space.resolution)


def checked_budget(cfg) -> Tuple[SearchSpace, Optional[LatencyBudget], Optional[SamplingBudget]]:
    """The search space, latency budget and sampling budget of ``cfg``, or the one error that refuses them: an
    infeasible FLOPs budget or one that no path of its space meets, a latency table of another space, an
    infeasible latency budget, a FLOPs budget that SUPERNET.SAMPLE_WITHIN_BUDGET cannot sample, a bad search
    setting. train.py runs it before the run folder exists, and the session is built from it."""
    space = build_search_space(cfg)
    if cfg.SUPERNET.BUDGET_MEASURE == 'flops':
        check_budget_has_paths(space, cfg.SUPERNET.FLOPS_MINIMUM, cfg.SUPERNET.FLOPS_MAXIMUM)
    latency = latency_budget(cfg, space)
    sampling = check_sampling_budget(cfg, search_budget(cfg, space, latency), ops.NUM_OPS)
    check_search_config(cfg)
    return space, latency, sampling


def preflight(cfg) -> None:
    """What the set-up would refuse, checked before the run folder exists: the FLOPs or latency budget and the
    search settings, the data folders (train.py's preflight; tools/miniature.py checks its searches with it
    before starting any)."""
    checked_budget(cfg)
    check_data_folders(cfg)


def build_session(run) -> SearchSession:
    cfg, dist_ctx, logger = run.cfg, run.dist, run.logger
    space, latency, sampling = checked_budget(cfg)
    table = build_macs_table(cfg, space)
    if dist_ctx.is_main:
        log_search_space(logger, space, table, cfg, latency)
        if sampling is not None and sampling.fraction is not None:  # a latency budget's share: log_search_space
            logger.info('SUPERNET.SAMPLE_WITHIN_BUDGET: paths outside %s are redrawn; about %.1f%% of the paths '
                        'HOW_TO_PROB %s draws lie within it', sampling.name, 100 * sampling.fraction,
                        cfg.SUPERNET.HOW_TO_PROB)
    train_loader, val_loader, steps_per_epoch = build_loaders(cfg, space.resolution, dist_ctx)
    parts = build_search_parts(cfg, total_steps=cfg.EPOCHS * steps_per_epoch, dist_ctx=dist_ctx, space=space,
                               macs_table=table, latency=latency, admission_batch=admission_batch(cfg, val_loader))
    seed_everything(cfg.SEED + dist_ctx.rank)  # the same weights everywhere, each rank its own augmentation
    path_sampler = sampler_from_config(cfg, space.layers_per_stage, parts.supernet.num_ops, seed=cfg.SEED,
                                       board_paths=parts.board.paths,
                                       accept=None if sampling is None else sampling.within,
                                       budget_text=None if sampling is None else sampling.text)
    saver = build_saver(run)

    def restore_search_state(checkpoint, source):
        load_search_state(checkpoint, source, search_space=search_space_record(space), supernet=parts.supernet,
                          mmn=parts.mmn, board=parts.board, path_sampler=path_sampler, device=dist_ctx.device,
                          rank=dist_ctx.rank)
    resume = resume_session(run, saver, model=parts.supernet, optimizer=parts.optimizer, scheduler=parts.scheduler,
                            scaler=parts.scaler, ema=None, steps_per_epoch=steps_per_epoch,
                            restore_first=restore_search_state,
                            lr_groups=(0, 1))  # a new LR on resume: the supernet's groups; META_LR stays

    global_batch = cfg.DATASET.BATCH_SIZE * dist_ctx.world_size
    logger.info('%d epochs of %d steps (%d images per step over %d process(es)); %s, LR %g -> 0 linearly '
                'per step, META_LR %g', cfg.EPOCHS, steps_per_epoch, global_batch, dist_ctx.world_size,
                type(parts.optimizer).__name__, cfg.LR, cfg.META_LR)
    return SearchSession(
        **{field.name: getattr(parts, field.name) for field in fields(SearchParts)}, run_dir=run.run_dir,
        logger=logger, path_sampler=path_sampler, train_loader=train_loader, val_loader=val_loader,
        steps_per_epoch=steps_per_epoch, num_epochs=cfg.EPOCHS, saver=saver, resume=resume, **build_records(run))
