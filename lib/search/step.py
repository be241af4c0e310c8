"""One step of the search (``search_step``, after ``run_meta_update`` when one is due): the step
``lib.search.epoch`` runs and tools/benchmark.py times. Both take ``SearchParts`` (``lib.search.parts``: built
in memory by ``build_search_parts``; a run's ``SearchSession`` is one).

One training step (docs/algorithm.md): sample the student path (the sampler's own generator: the same path on
every rank) -> every UPDATE_ITER steps the meta-matching update (``run_meta_update``) -> ``search_step``:
loss: CE while the board is empty or epoch <= META_STA_EPOCH, else teacher selection from the board +
distillation -> backward -> average the new gradients over ranks (one coalesced all-reduce; no DDP: only
the path's parameters, and the MMN's while the KD weight keeps its graph, get new gradients, and every rank
runs the same path; other parameters ever sampled hold zero gradients under STEP_ONLY_PATH False, equal on
every rank) -> optimizer step -> LR step
-> after META_STA_EPOCH, offer the student to the board (its prec1 averaged over ranks, on the batch it stepped on
or, SUPERNET.BOARD_ADMISSION 'val_batch', on the held-out batch; rank 0's probe tensors when admitted).

Host syncs per step: none before META_STA_EPOCH except on LOG_INTERVAL steps; after it, the board
decision reads the student's prec1 (one ``.item()``), and teacher selection reads the argmax of the
meta-matching scores (the teacher's path decides which blocks run, so the host must know it).
"""
import logging
from dataclasses import dataclass
from typing import Any, Dict, NamedTuple, Optional

import torch

from lib.comm import all_reduce_mean, all_reduce_mean_, broadcast_tensors_
from lib.engine.precision import autocast
from lib.search.admission import held_out_prec1
from lib.search.board import BoardEntry
from lib.search.meta_matching import distillation_loss, select_teacher
from lib.search.meta_update import meta_update, select_teacher_for_update
from lib.search.parts import SearchConfigError, SearchParts, unsynced_bn
from lib.search.probes import probabilities

logger = logging.getLogger('cream.search')

class SearchSums(NamedTuple):
    """An epoch's running sums (per rank, or over all ranks), in the order of the step's sums tensor."""
    loss: float  # loss * images
    kd: float  # KD loss * images, over the distillation steps
    kd_images: float  # images of the distillation steps
    top1: float  # top-1 hits
    top5: float  # top-5 hits
    images: float
    meta_updates: float


NUM_SUMS = len(SearchSums._fields)
TOP1_SUM = SearchSums._fields.index('top1')  # where the step's top-1 hits sit in its sums tensor


def supernet_lr(optimizer: torch.optim.Optimizer) -> float:
    """The supernet's current LR (group 0; the last group is the meta-matching network at META_LR)."""
    return optimizer.param_groups[0]['lr']


def meta_update_due(cfg, epoch: int, batch_index: int, board_size: int) -> bool:
    """The original's schedule: after META_STA_EPOCH, every UPDATE_ITER batches of an epoch (not its first),
    with a non-empty board; only for UPDATE_2ND and PICK_METHOD 'meta' (top1 picking has no MMN to train)."""
    sn = cfg.SUPERNET
    return (sn.UPDATE_2ND and sn.PICK_METHOD == 'meta' and epoch > sn.META_STA_EPOCH and board_size > 0
            and batch_index > 0 and batch_index % sn.UPDATE_ITER == 0)


def run_meta_update(session: SearchParts, path, images, target, *, epoch: int, step: int) -> Dict[str, Any]:
    """The meta-matching update of a step that is due one (``meta_update_due``), before its ``search_step``.
    SUPERNET.META_INNER_GRAD 'full' (the original): the teacher's probe forward keeps its graph, and the inner
    gradient includes KD * dm/dW; 'detached': m is a constant there."""
    cfg, supernet, sn = session.cfg, session.supernet, session.cfg.SUPERNET
    with unsynced_bn(supernet, session.local_bn_group):
        teacher, replay = select_teacher_for_update(supernet, path, session.board, session.mmn,
                                                    per_entry=sn.PROBE_FORWARD == 'per_entry',
                                                    inner_grad=sn.META_INNER_GRAD,
                                                    cpu_channels_last=sn.PROBE_CPU_CHANNELS_LAST)
        info = meta_update(supernet, path, teacher, session.mmn, images, target, sn.SLICE,
                           inner_lr=meta_inner_lr(cfg, session.optimizer), meta_optimizer=session.optimizer,
                           student_optimizer=session.optimizer, val_loss_fn=session.loss_fn,
                           keep_zero_grads=not sn.STEP_ONLY_PATH, replay=replay)
    logger.info('meta-matching update (epoch %d, step %d): teacher #%d, KD weight %.4f, meta val loss %.4f, '
                'meta grad norm %.4g', epoch, step, info['teacher_index'], info['kd_weight'], info['val_loss'],
                info['meta_grad_norm'])
    return info


def meta_inner_lr(cfg, optimizer: torch.optim.Optimizer) -> float:
    """lr of the simulated step W' = W - lr * g. SUPERNET.META_INNER_LR 'meta' (the original): the meta
    group's current LR (the last group: META_LR times the schedule); 'supernet': the supernet's, the step
    the student really takes with g."""
    if cfg.SUPERNET.META_INNER_LR == 'meta':
        return optimizer.param_groups[-1]['lr']
    return supernet_lr(optimizer)


@dataclass
class StepOutput:
    logits: torch.Tensor
    loss: torch.Tensor
    kd: Optional[torch.Tensor]
    teacher_logits: Optional[torch.Tensor]


def _forward_backward(session: SearchParts, path, images, target, distill: bool) -> StepOutput:
    """Loss, backward, gradient all-reduce, optimizer and LR step."""
    cfg, supernet, optimizer, scaler = session.cfg, session.supernet, session.optimizer, session.scaler
    sn, device = cfg.SUPERNET, session.dist.device
    teacher, teacher_logits = None, None
    # The original's KD weight m carries gradient (SUPERNET.DETACH_KD_WEIGHT False): then the MMN and,
    # through the chosen entry's probe forward, the student path learn from this step's loss too.
    learn_through_m = distill and sn.PICK_METHOD == 'meta' and not sn.DETACH_KD_WEIGHT
    with autocast(device, cfg.AMP, cfg.AMP_DTYPE):
        if distill:  # the probes run in the student's precision; the MMN scores them in float32 regardless
            with unsynced_bn(supernet, session.local_bn_group):
                teacher = select_teacher(supernet, path, session.board, sn.PICK_METHOD, session.mmn,
                                         per_entry=sn.PROBE_FORWARD == 'per_entry',
                                         differentiable_weight=learn_through_m,
                                         cpu_channels_last=sn.PROBE_CPU_CHANNELS_LAST)
        if teacher is None:
            logits = supernet(images, path)
            loss, kd = session.loss_fn(logits, target), None
        else:  # the teacher's logits without gradient; the stem and common leading blocks run once
            logits, teacher_logits = supernet.forward_with_teacher(images, path, teacher.path)
            parts = distillation_loss(logits, teacher_logits, target, teacher.weight, session.loss_fn,
                                      detach_weight=not learn_through_m)
            loss, kd = parts.loss, parts.kd
    # SUPERNET.STEP_ONLY_PATH False (the original on PyTorch 1.2, whose zero_grad zeroed gradients): every
    # parameter that ever had a gradient keeps a zero one, so weight decay and momentum move it every step.
    optimizer.zero_grad(set_to_none=sn.STEP_ONLY_PATH)
    scaler.scale(loss).backward()
    params = list(supernet.path_parameters(path).values())
    if learn_through_m:
        params += list(session.mmn.parameters())
    all_reduce_mean_([p.grad for p in params if p.grad is not None])
    if cfg.CLIP_GRAD > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, cfg.CLIP_GRAD)
    scaler.step(optimizer)
    scaler.update()
    session.scheduler.step()
    return StepOutput(logits.detach(), loss.detach(), None if kd is None else kd.detach(), teacher_logits)


def offer_to_board(session: SearchParts, path, images, out: StepOutput, hits1: torch.Tensor, batch: int) -> bool:
    """Offer the student (its prec1 averaged over ranks) to the board; every rank ends with the same paths."""
    cfg, board, table = session.cfg, session.board, session.macs_table
    if cfg.SUPERNET.BOARD_ADMISSION == 'val_batch':  # the same held-out images for every student
        if session.admission_batch is None:
            raise SearchConfigError("SUPERNET.BOARD_ADMISSION 'val_batch' needs the held-out batch: build the search "
                                    'parts with admission_batch (lib.search.admission.admission_batch)')
        prec1 = all_reduce_mean(held_out_prec1(session.supernet, path, session.admission_batch, amp=cfg.AMP,
                                               amp_dtype=cfg.AMP_DTYPE))
    else:  # the original: the batch the student has just stepped on
        prec1 = all_reduce_mean(hits1 * (100.0 / batch))
    prec1 = prec1.item()  # the step's one host sync for the board (identical on every rank)
    board_cost = session.board_cost(path)  # SUPERNET.BOARD_FLOPS, or under a latency budget the predicted ms
    if not board.would_admit(prec1, board_cost):
        return False
    slice_size = cfg.SUPERNET.SLICE
    # P_j: SUPERNET.PROBE_PROBS 'teacher' (the original) stores the current teacher's softmax on the probe
    # once the board has entries (the first entry always gets the student's); 'student' the student's.
    source = out.logits
    if cfg.SUPERNET.PROBE_PROBS == 'teacher' and out.teacher_logits is not None:
        source = out.teacher_logits
    # Copies (the broadcast writes into them on the other ranks), in the default layout collectives take.
    probe_images = images[:slice_size].detach().clone(memory_format=torch.contiguous_format)
    probe_probs = probabilities(source[:slice_size]).contiguous()  # a float64 network keeps its precision
    # SUPERNET.PROBE_SOURCE 'rank' (the original): each rank keeps its own batch's probe, so each picks its teacher
    # from its own probes (the networks stay equal: gradients are averaged); 'rank0': every rank holds rank 0's.
    if cfg.SUPERNET.PROBE_SOURCE == 'rank0':
        broadcast_tensors_([probe_images, probe_probs], src=0)
    if cfg.CHANNELS_LAST:
        probe_images = probe_images.contiguous(memory_format=torch.channels_last)
    return board.offer(BoardEntry(path=path, prec1=prec1, board_cost=board_cost, macs=table.path_macs(path),
                                  params=table.path_params(path), probe_images=probe_images,
                                  probe_probs=probe_probs))


def step_sums(logits: torch.Tensor, loss: torch.Tensor, kd: Optional[torch.Tensor], target: torch.Tensor,
              meta_updates: int = 0) -> torch.Tensor:
    """The step's entries of the epoch's running sums (``SearchSums``), computed on the device: no host sync."""
    with torch.no_grad():
        one = torch.ones((), dtype=torch.float64, device=logits.device)  # no host->device copies
        n = target.shape[0]
        top = logits.float().topk(min(5, logits.shape[1]), dim=1).indices.eq(target[:, None])
        hits1, hits5 = top[:, 0].sum().double(), top.any(dim=1).sum().double()
        kd_sum = kd.double() * n if kd is not None else one * 0
        return torch.stack([loss.double() * n, kd_sum, one * (n if kd is not None else 0), hits1, hits5, one * n,
                            one * meta_updates])


def search_step(session: SearchParts, path, images, target, *, epoch: int, meta_updates: int = 0) -> torch.Tensor:
    """One training step of the student ``path`` (after the meta-matching update, when one is due): CE while the
    board is empty or ``epoch`` <= META_STA_EPOCH, else teacher selection and distillation; backward, gradient
    all-reduce, optimizer and LR step; after META_STA_EPOCH the board offer. Returns the step's sums (device).
    ``lib.search.epoch`` and tools/benchmark.py both run exactly this."""
    distill_phase = epoch > session.cfg.SUPERNET.META_STA_EPOCH
    distill = distill_phase and len(session.board) > 0
    out = _forward_backward(session, path, images, target, distill)
    sums = step_sums(out.logits, out.loss, out.kd, target, meta_updates)
    if distill_phase:
        offer_to_board(session, path, images, out, sums[TOP1_SUM], target.shape[0])
    return sums
