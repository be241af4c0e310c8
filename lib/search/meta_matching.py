"""Teacher selection from the prioritized board and the meta-matching network's second-order update.

Notation (docs/algorithm.md): W = the student path's parameters, rho = the meta-matching network (MMN)
parameters, delta_j = softmax(student(X_j)) - P_j for board entry j with probe images X_j and stored
probabilities P_j, s_j = MMN(delta_j), KD weight m = sigmoid(-s_teacher).

The student's forwards over the board's probes (and their BN statistics) are lib.search.probes'.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from lib.comm import all_reduce_mean_
from lib.errors import ConfigError
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.probes import chosen_probe_delta, probabilities, probe_deltas

PICK_METHODS = ('top1', 'meta')
TOP1_KD_WEIGHT = 0.5


class MetaMatchingNetwork(nn.Module):
    """One linear layer from the flattened [slice, num_classes] probability difference to a score."""

    def __init__(self, slice_size: int, num_classes: int):
        super().__init__()
        if slice_size < 1 or num_classes < 1:
            raise ValueError(f'slice_size and num_classes must be >= 1; got {slice_size}, {num_classes}')
        self.slice_size = int(slice_size)
        self.num_classes = int(num_classes)
        self.linear = nn.Linear(self.slice_size * self.num_classes, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The original's meta layer sat inside the supernet and got the TF-style linear init there:
        # uniform(+-1/sqrt(fan_out)) with fan_out = 1 output, zero bias.
        nn.init.uniform_(self.linear.weight, -1.0, 1.0)
        nn.init.zeros_(self.linear.bias)

    def forward(self, delta: torch.Tensor) -> torch.Tensor:
        """[slice, num_classes] -> scalar score; [N, slice, num_classes] -> [N] scores."""
        expected = (self.slice_size, self.num_classes)
        if delta.dim() not in (2, 3) or tuple(delta.shape[-2:]) != expected:
            raise ValueError(f'the meta-matching network takes [slice, num_classes] = {list(expected)} '
                             f'(optionally batched); got {list(delta.shape)}')
        flat = delta.reshape(*delta.shape[:-2], -1).to(self.linear.weight.dtype)
        # Scores in the weights' precision even when the caller runs under autocast: they pick the teacher.
        with torch.autocast(device_type=flat.device.type, enabled=False):
            return self.linear(flat).squeeze(-1)


@dataclass
class TeacherChoice:
    """The chosen board entry. ``weight`` is the KD weight m (0-d tensor, no grad); ``scores`` [N] and
    ``delta`` (the chosen entry's [slice, num_classes] difference) exist only for 'meta' picking."""
    index: int
    entry: BoardEntry
    weight: torch.Tensor
    scores: Optional[torch.Tensor] = None
    delta: Optional[torch.Tensor] = None

    @property
    def path(self):
        return self.entry.path


def select_teacher(student: nn.Module, path, board: PrioritizedBoard, pick_method: str,
                   mmn: Optional[MetaMatchingNetwork] = None, *, per_entry: bool = False,
                   differentiable_weight: bool = False) -> TeacherChoice:
    """Pick a teacher for the student ``path``: 'top1' -> the board's best, m = 0.5; 'meta' -> argmax
    of the MMN scores, m = sigmoid(-score of the chosen teacher) (the original took the last entry's
    score: a bug). ``differentiable_weight`` (SUPERNET.DETACH_KD_WEIGHT False, the original): m keeps
    its graph to the MMN and, through the chosen entry's probe forward, to the student path."""
    if len(board) == 0:
        raise ValueError('cannot select a teacher from an empty board')
    if pick_method == 'top1':
        best = board.best()
        weight = torch.tensor(TOP1_KD_WEIGHT, device=best.probe_probs.device)
        return TeacherChoice(index=0, entry=best, weight=weight)
    if pick_method != 'meta':
        raise ConfigError(f'SUPERNET.PICK_METHOD must be one of {PICK_METHODS}; got {pick_method!r}')
    if mmn is None:
        raise ValueError("pick_method 'meta' needs the meta-matching network (mmn=...)")
    # 'per_entry' scores every entry in one grouped forward without a graph; 'batched' keeps the graph of its one
    # forward when m needs it.
    probes = probe_deltas(student, path, board, per_entry=per_entry,
                          with_grad=differentiable_weight and not per_entry)
    with torch.no_grad():
        scores = mmn(probes.deltas.detach())
    index = int(torch.argmax(scores))  # a host sync: the teacher's path decides which blocks run
    delta = probes.deltas[index]
    if per_entry:  # the chosen entry's own forward (with its graph when m keeps one): delta and m as before,
        with torch.set_grad_enabled(differentiable_weight):  # bit for bit; its BN update is counted already
            delta = chosen_probe_delta(student, path, board[index], probes.rng_state(index))
            weight = torch.sigmoid(-mmn(delta))
    elif differentiable_weight:
        weight = torch.sigmoid(-mmn(delta))
    else:
        weight = torch.sigmoid(-scores[index])
    return TeacherChoice(index=index, entry=board[index], weight=weight, scores=scores, delta=delta.detach())


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross entropy against soft targets, mean over the batch."""
    return torch.sum(-target_probs * F.log_softmax(logits, dim=-1), dim=-1).mean()


@dataclass
class DistillationLoss:
    loss: torch.Tensor
    kd: torch.Tensor
    ce: torch.Tensor


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      m, ce_loss_fn: Callable, detach_weight: bool = True) -> DistillationLoss:
    """loss = (m * KD + (2 - m) * CE) / 2, KD = soft cross entropy against softmax(teacher logits).
    ``detach_weight`` (SUPERNET.DETACH_KD_WEIGHT True): m is a constant and the MMN learns only in the
    meta-matching update; False (the original): the loss's gradient reaches whatever m depends on."""
    if detach_weight and isinstance(m, torch.Tensor):
        m = m.detach()
    kd = soft_cross_entropy(student_logits, torch.softmax(teacher_logits.detach(), dim=-1))
    ce = ce_loss_fn(student_logits, targets)
    return DistillationLoss(loss=(m * kd + (2 - m) * ce) / 2, kd=kd, ce=ce)


# --- the meta-matching update ----------------------------------------------------------------------

def inner_kd_loss(supernet: nn.Module, path, params: Dict[str, torch.Tensor], x_train: torch.Tensor,
                  teacher_probs: torch.Tensor, m) -> torch.Tensor:
    """kd(W, rho) = m(rho) * KD(student(x_train; W), teacher_probs), W given functionally."""
    logits = functional_call(supernet, params, (x_train, path))
    return m * soft_cross_entropy(logits, teacher_probs)


def simulated_step(params: Dict[str, torch.Tensor], grads: Sequence[torch.Tensor],
                   lr: float) -> Dict[str, torch.Tensor]:
    """W' = W - lr * g, out of place (a descent step)."""
    return {name: param - lr * grad for (name, param), grad in zip(params.items(), grads)}


@dataclass
class MetaGradient:
    meta_grads: List[torch.Tensor]      # dL_val/drho, one per MMN parameter (detached)
    student_grads: List[torch.Tensor]   # g = dkd/dW = m * dKD/dW at W (detached), one per path parameter
    params: List[nn.Parameter]          # the path parameters W, in the order of student_grads
    kd_loss: torch.Tensor
    val_loss: torch.Tensor
    kd_weight: torch.Tensor


def meta_gradient(supernet: nn.Module, path, teacher: TeacherChoice, mmn: MetaMatchingNetwork,
                  x_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, inner_lr: float,
                  val_loss_fn: Callable = F.cross_entropy) -> MetaGradient:
    """dL_val/drho with L_val(rho) = val_loss_fn(student(x_val; W'(rho)), y_val),
    W'(rho) = W - lr * g, g = dkd/dW, kd = m(rho) * KD(student(x_train; W), teacher probs).

    rho enters the inner step only through the scalar m, so g = m * h with h = dKD/dW independent of
    rho, and exactly
        dL_val/drho = -lr * <dL_val/dW' at W', h> * dm/drho.
    This is what backpropagating through ``autograd.grad(kd, W, create_graph=True)`` computes, at the
    cost of two first-order backward passes instead of a double backward through the network (which
    on CPU runs depthwise convs one channel at a time, and which torch's hardsigmoid, the SE gate of
    the real supernet, does not implement at all). W is never modified: W' is fed functionally.
    No optimizer step."""
    if teacher.delta is None:
        raise ValueError("the meta-matching update needs a teacher chosen with pick_method 'meta'")
    named_params = supernet.path_parameters(path)
    params = {name: param for name, param in named_params.items() if param.requires_grad}
    with torch.no_grad():
        teacher_probs = probabilities(supernet(x_train, teacher.path))
    kd_weight = torch.sigmoid(-mmn(teacher.delta.detach()))  # differentiable in rho only
    m = kd_weight.detach()
    unweighted_kd = inner_kd_loss(supernet, path, params, x_train, teacher_probs, 1.0)
    kd_grads = torch.autograd.grad(unweighted_kd, list(params.values()), allow_unused=True)
    # A listed parameter the forward does not reach has gradient zero, so W' = W for it.
    kd_grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params.values(), kd_grads)]
    student_grads = [m * g for g in kd_grads]
    with torch.no_grad():
        updated = simulated_step(params, student_grads, inner_lr)
    updated = {name: tensor.requires_grad_() for name, tensor in updated.items()}
    val_loss = val_loss_fn(functional_call(supernet, updated, (x_val, path)), y_val)
    val_grads = torch.autograd.grad(val_loss, list(updated.values()), allow_unused=True)
    inner_product = sum((torch.sum(v * h) for v, h in zip(val_grads, kd_grads) if v is not None),
                        torch.zeros((), dtype=kd_weight.dtype, device=kd_weight.device))
    dval_dm = -inner_lr * inner_product
    meta_grads = torch.autograd.grad(kd_weight, list(mmn.parameters()), grad_outputs=dval_dm.to(kd_weight))
    return MetaGradient(meta_grads=[g.detach() for g in meta_grads], student_grads=student_grads,
                        params=list(params.values()), kd_loss=(m * unweighted_kd).detach(),
                        val_loss=val_loss.detach(), kd_weight=m)


def _step_with_grads(params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor],
                     optimizer: torch.optim.Optimizer, max_grad_norm: float, keep_zero_grads: bool = False) -> float:
    """Step ``optimizer`` with the given gradients of ``params`` clipped to ``max_grad_norm``; afterwards
    ``params`` hold no gradient.

    ``keep_zero_grads`` False: every other parameter of the optimizer has its gradient dropped first, so
    it does not move. True (SUPERNET.STEP_ONLY_PATH False, the original on PyTorch 1.2, whose zero_grad
    zeroed gradients): the others keep zero gradients and take the step too (weight decay, momentum)."""
    optimizer.zero_grad(set_to_none=not keep_zero_grads)
    for param, grad in zip(params, grads):
        param.grad = grad
    norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    for param in params:  # the original deleted these gradients after its step
        param.grad = None
    if not keep_zero_grads:
        optimizer.zero_grad(set_to_none=True)
    return float(norm)


def meta_update(supernet: nn.Module, path, teacher: TeacherChoice, mmn: MetaMatchingNetwork,
                x: torch.Tensor, y: torch.Tensor, slice_size: int, inner_lr: float,
                meta_optimizer: torch.optim.Optimizer,
                student_optimizer: Optional[torch.optim.Optimizer] = None,
                val_loss_fn: Callable = F.cross_entropy, max_grad_norm: float = 1.0,
                keep_zero_grads: bool = False) -> dict:
    """The second-order meta-matching update (docs/algorithm.md), for PICK_METHOD 'meta' only.

    x_t = x[:S]; x_v, y_v = x[S:2S], y[S:2S]. Computes dL_val/drho (see ``meta_gradient``), averages
    it over ranks, clips it to ``max_grad_norm`` and steps only rho with ``meta_optimizer``. Then, as
    the original, the student takes its own step with g = dkd/dW (averaged over ranks, clipped) using
    ``student_optimizer`` (the search's optimizer; skipped when None); the original took the student's
    step first, then the MMN's, each a full optimizer step. ``keep_zero_grads``: see ``_step_with_grads``.
    Call this before the step's own backward. Run it outside autocast: second-order gradients in half
    precision are not reliable."""
    if x.shape[0] < 2 * slice_size:
        raise ConfigError(f'the meta-matching update needs a batch of at least 2 * SUPERNET.SLICE = '
                         f'{2 * slice_size} images; got {x.shape[0]}')
    x_train = x[:slice_size]
    x_val, y_val = x[slice_size:2 * slice_size], y[slice_size:2 * slice_size]
    result = meta_gradient(supernet, path, teacher, mmn, x_train, x_val, y_val, inner_lr, val_loss_fn)
    all_reduce_mean_(result.meta_grads)
    all_reduce_mean_(result.student_grads)
    student_grad_norm = None
    if student_optimizer is not None:
        student_grad_norm = _step_with_grads(result.params, result.student_grads, student_optimizer,
                                             max_grad_norm, keep_zero_grads)
    meta_grad_norm = _step_with_grads(list(mmn.parameters()), result.meta_grads, meta_optimizer,
                                      max_grad_norm, keep_zero_grads)
    return {'kd_loss': float(result.kd_loss), 'val_loss': float(result.val_loss),
            'kd_weight': float(result.kd_weight), 'meta_grad_norm': meta_grad_norm,
            'student_grad_norm': student_grad_norm, 'teacher_index': teacher.index}
