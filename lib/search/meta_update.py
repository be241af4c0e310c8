"""The meta-matching network's second-order update (docs/algorithm.md, section 4).

Notation: W = the student path's parameters, rho = the MMN's (weight w, bias b), x_t = the batch's first SLICE
images, (x_v, y_v) the next SLICE; the teacher is chosen from the board as in a distillation step, with probe
difference delta(W) = softmax(student(X_j; W)) - P_j of the chosen entry j, score s = MMN(delta), KD weight
m = sigmoid(-s), KD(W) = soft cross entropy of student(x_t; W) against softmax(teacher(x_t)).

    g = d(m * KD)/dW,   W' = W - lr * g,   L_val(rho) = CE(student(x_v; W'(rho)), y_v)

SUPERNET.META_INNER_GRAD says what g is. 'full' (the original): delta keeps its graph to W (the probe forward
runs with gradient), so g = m * h + KD * dm/dW with h = dKD/dW and dm/dW = m'(s) * J^T w, J = d delta / dW.
'detached': m is a constant in W, g = m * h.

The meta-gradient without a double backward through the network (torch's hardsigmoid, the SE gate, has none,
and depthwise convolutions run it channel by channel on the CPU): with v = dL_val/dW' at W', which does not
depend on rho,

    dL_val/drho = -lr * d/drho <v, g(rho)>,   <v, g(rho)> = m(s) <v, h> + KD * m'(s) * (w . J v)

where J v, the derivative of delta along v, is a forward-mode JVP through a replay of the chosen entry's probe
forward exactly as teacher selection ran it for m's graph (the entry's own probe batch, or all probes under
'batched'; the same dropout masks; train-mode BN with the probe batch's own statistics; running statistics left
alone). Exact, and checked against
central finite differences and against backpropagating through autograd.grad(create_graph=True).
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call, jvp

from lib.comm import all_reduce_mean_
from lib.config.table import choices
from lib.errors import ConfigError
from lib.models.grouped_bn import get_rng_state, replayed_rng
from lib.models.supernet import frozen_running_stats
from lib.search.board import PrioritizedBoard
from lib.search.meta_matching import MetaMatchingNetwork, TeacherChoice, select_teacher, soft_cross_entropy
from lib.search.probes import chosen_probe_delta, layers_run, probe_deltas

INNER_GRADS = choices('SUPERNET.META_INNER_GRAD')


@dataclass
class ProbeReplay:
    """How teacher selection ran the chosen entry's probe forward, to run it again: the board, per-entry or
    batched, the chosen entry, the state of the device's random generator just before selection, and per-entry
    the random state before the chosen entry's dropout noise (``TeacherChoice.probe_rng_state``); both replayed
    by ``lib.models.grouped_bn.replayed_rng``."""
    board: PrioritizedBoard
    per_entry: bool
    index: int
    rng_state: torch.Tensor
    device: torch.device
    entry_rng_state: Optional[torch.Tensor] = None


def select_teacher_for_update(student: nn.Module, path, board: PrioritizedBoard, mmn: MetaMatchingNetwork, *,
                              per_entry: bool, inner_grad: str = 'full', cpu_channels_last: bool = False):
    """(teacher, replay) for the meta-matching update: 'full' keeps m's graph through the chosen entry's probe
    forward and returns its replay; 'detached' runs the probes without gradient (replay None).
    ``cpu_channels_last``: see ``lib.search.probes.probe_deltas``."""
    if inner_grad not in INNER_GRADS:
        raise ConfigError(f'SUPERNET.META_INNER_GRAD must be one of {INNER_GRADS}; got {inner_grad!r}')
    device = next(student.parameters()).device
    state = get_rng_state(device) if inner_grad == 'full' else None
    teacher = select_teacher(student, path, board, 'meta', mmn, per_entry=per_entry,
                             differentiable_weight=inner_grad == 'full', cpu_channels_last=cpu_channels_last)
    replay = None if state is None else ProbeReplay(board, per_entry, teacher.index, state, device,
                                                    teacher.probe_rng_state)
    return teacher, replay


class _FunctionalStudent(nn.Module):
    """The supernet with some tensors swapped in (``torch.func.functional_call``), for the replay."""

    def __init__(self, supernet: nn.Module):
        super().__init__()
        self.supernet = supernet
        self.swapped: Dict[str, torch.Tensor] = {}

    def forward(self, x, path):
        return functional_call(self.supernet, self.swapped, (x, path))


def probe_delta_jvp(supernet: nn.Module, path, replay: ProbeReplay, tangents: Dict[str, torch.Tensor]) -> torch.Tensor:
    """J v: the derivative of the chosen entry's delta along ``tangents`` (path parameter name -> tensor), the probe
    forward replayed as teacher selection ran it. Leaves the RNG and the BN running statistics as they were."""
    student = _FunctionalStudent(supernet)
    primals = {name: param.detach() for name, param in supernet.path_parameters(path).items() if name in tangents}
    layers = layers_run(supernet, path)

    def chosen_delta(swapped):
        student.swapped = swapped
        if replay.per_entry:  # the chosen entry's own forward, the one m's graph runs through (it freezes the
            return chosen_probe_delta(student, path, replay.board[replay.index],  # statistics, replays the noise)
                                      replay.entry_rng_state, layers)
        with frozen_running_stats(layers), replayed_rng(replay.rng_state, replay.device):
            return probe_deltas(student, path, replay.board, with_grad=True).deltas[replay.index]

    _, tangent = jvp(chosen_delta, (primals,), ({name: tangents[name] for name in primals},))
    return tangent


def simulated_step(params: Dict[str, torch.Tensor], grads: Sequence[torch.Tensor],
                   lr: float) -> Dict[str, torch.Tensor]:
    """W' = W - lr * g, out of place (a descent step)."""
    return {name: param - lr * grad for (name, param), grad in zip(params.items(), grads)}


def _grads_or_zeros(output: torch.Tensor, inputs: Sequence[torch.Tensor]) -> List[torch.Tensor]:
    """d output / d inputs; zero for an input the output does not reach."""
    grads = torch.autograd.grad(output, list(inputs), allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


@dataclass
class MetaGradient:
    meta_grads: List[torch.Tensor]      # dL_val/drho, one per MMN parameter (detached)
    student_grads: List[torch.Tensor]   # g at W (detached), one per path parameter
    params: List[nn.Parameter]          # the path parameters W, in the order of student_grads
    kd_loss: torch.Tensor
    val_loss: torch.Tensor
    kd_weight: torch.Tensor


def meta_gradient(supernet: nn.Module, path, teacher: TeacherChoice, mmn: MetaMatchingNetwork,
                  x_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, inner_lr: float,
                  val_loss_fn: Callable = F.cross_entropy, replay: Optional[ProbeReplay] = None) -> MetaGradient:
    """dL_val/drho and g (see the module docstring). ``replay`` given (META_INNER_GRAD 'full'): ``teacher.weight``
    keeps its graph through the chosen entry's probe forward and g includes KD * dm/dW; None ('detached'): g = m * h.
    Forwards in the original's order: the student on x_t, the teacher on x_t (no gradient), the student at W' on x_v.
    W is never modified (W' is fed functionally); no optimizer step."""
    if teacher.delta is None:
        raise ValueError("the meta-matching update needs a teacher chosen with pick_method 'meta'")
    if replay is not None and not teacher.weight.requires_grad:
        raise ValueError('the full inner gradient needs the teacher chosen with its KD weight differentiable '
                         '(select_teacher_for_update)')
    params = {name: param for name, param in supernet.path_parameters(path).items() if param.requires_grad}
    logits = supernet(x_train, path)
    with torch.no_grad():
        teacher_probs = torch.softmax(supernet(x_train, teacher.path), dim=-1)
    kd = soft_cross_entropy(logits, teacher_probs)
    h = _grads_or_zeros(kd, params.values())  # a parameter the forward does not reach: g = 0, W' = W
    kd = kd.detach()
    m = teacher.weight.detach()
    student_grads = [m * dkd for dkd in h]
    if replay is not None:  # + KD * dm/dW, through the chosen entry's probe forward
        dm_dw = _grads_or_zeros(teacher.weight, params.values())
        student_grads = [g + kd * dm for g, dm in zip(student_grads, dm_dw)]
    with torch.no_grad():
        updated = simulated_step(params, student_grads, inner_lr)
    updated = {name: tensor.requires_grad_() for name, tensor in updated.items()}
    val_loss = val_loss_fn(functional_call(supernet, updated, (x_val, path)), y_val)
    v = _grads_or_zeros(val_loss, updated.values())

    # <v, g(rho)> as a function of rho, v and W held fixed.
    v_dot_h = sum((torch.sum(a * b) for a, b in zip(v, h)), torch.zeros((), dtype=kd.dtype, device=kd.device))
    if replay is None:
        score = mmn(teacher.delta)
        inner = torch.sigmoid(-score) * v_dot_h
    else:
        jv = probe_delta_jvp(supernet, path, replay, dict(zip(params, v)))
        score, score_along_v = jvp(mmn, (teacher.delta,), (jv.to(teacher.delta.dtype),))  # s and w . J v
        weight = torch.sigmoid(-score)
        inner = weight * v_dot_h - kd * weight * (1 - weight) * score_along_v  # m'(s) = -m (1 - m)
    meta_grads = torch.autograd.grad(-inner_lr * inner, list(mmn.parameters()))
    return MetaGradient(meta_grads=[g.detach() for g in meta_grads], student_grads=student_grads,
                        params=list(params.values()), kd_loss=m * kd, val_loss=val_loss.detach(), kd_weight=m)


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
                keep_zero_grads: bool = False, replay: Optional[ProbeReplay] = None) -> dict:
    """The second-order meta-matching update, for PICK_METHOD 'meta' only.

    x_t = x[:S]; x_v, y_v = x[S:2S], y[S:2S]. Computes dL_val/drho (see ``meta_gradient``; ``replay``: the full
    inner gradient), averages it over ranks, clips it to ``max_grad_norm`` and steps only rho with
    ``meta_optimizer``. Before that, as the original, the student takes its own step with g (averaged over ranks,
    clipped) using ``student_optimizer`` (the search's optimizer; skipped when None); each a full optimizer step.
    ``keep_zero_grads``: see ``_step_with_grads``. Call this before the step's own backward. Run it outside
    autocast: second-order gradients in half precision are not reliable."""
    if x.shape[0] < 2 * slice_size:
        raise ConfigError(f'the meta-matching update needs a batch of at least 2 * SUPERNET.SLICE = '
                         f'{2 * slice_size} images; got {x.shape[0]}')
    x_train = x[:slice_size]
    x_val, y_val = x[slice_size:2 * slice_size], y[slice_size:2 * slice_size]
    result = meta_gradient(supernet, path, teacher, mmn, x_train, x_val, y_val, inner_lr, val_loss_fn, replay)
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
