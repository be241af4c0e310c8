"""The meta-matching network, teacher selection from the prioritized board, and the distillation loss.

Notation (docs/algorithm.md): W = the student path's parameters, rho = the meta-matching network (MMN)
parameters, delta_j = softmax(student(X_j)) - P_j for board entry j with probe images X_j and stored
probabilities P_j, s_j = MMN(delta_j), KD weight m = sigmoid(-s_teacher). The MMN's second-order update is
``lib.search.meta_update``.

Teacher selection, as the defaults run it (the original's behaviour): the student runs over each entry's
probe images in its own forward (SUPERNET.PROBE_FORWARD 'per_entry'), in the mode the caller left it in
(train mode during the search), keeping its graph (SUPERNET.DETACH_KD_WEIGHT False in a distillation step,
SUPERNET.META_INNER_GRAD 'full' in a meta-matching update): m keeps its graph to the MMN and, through the
chosen entry's probe forward, to W; the other entries' graphs are freed after scoring. In train mode BN
normalizes each probe with its own batch statistics and updates its running statistics once per entry, as the
original's selection did; the probes are training images, so these are small extra training batches for the
running statistics. The alternatives: 'batched' runs all probes in one forward (one BN batch, one update);
DETACH_KD_WEIGHT True / META_INNER_GRAD 'detached' run the probes under torch.no_grad() with a constant m.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.errors import ConfigError
from lib.search.board import BoardEntry, PrioritizedBoard

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
    """The chosen board entry. ``weight`` is the KD weight m (0-d tensor; with its graph when chosen with
    ``differentiable_weight``); ``scores`` [N] and ``delta`` (the chosen entry's [slice, num_classes] difference,
    detached) exist only for 'meta' picking."""
    index: int
    entry: BoardEntry
    weight: torch.Tensor
    scores: Optional[torch.Tensor] = None
    delta: Optional[torch.Tensor] = None

    @property
    def path(self):
        return self.entry.path


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    """softmax in at least float32 (logits may be half precision under autocast)."""
    return torch.softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


def _probe_delta(probs: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    probs = probs.reshape(stored.shape[0], stored.shape[1], -1)
    if probs.shape != stored.shape:
        raise ValueError(f'the student outputs {probs.shape[-1]} classes but the board probes hold '
                         f'{stored.shape[-1]}; the board belongs to a different dataset')
    return probs - stored.to(probs.dtype)


def probe_deltas(student: nn.Module, path, board: PrioritizedBoard, *, per_entry: bool = False,
                 with_grad: bool = False) -> List[torch.Tensor]:
    """softmax(student(X_j)) - P_j for every board entry j, each [slice, num_classes].

    ``per_entry`` (SUPERNET.PROBE_FORWARD 'per_entry', the original): one forward per entry, so that in
    train mode BN normalizes each entry's probe with its own statistics and updates its running
    statistics once per entry. Otherwise one forward over all probes concatenated (one batch for BN).
    ``with_grad``: the forwards keep their graphs (the original: the KD weight is not detached, so the
    student also learns through its probe forward)."""
    entries = list(board)
    slice_sizes = {entry.probe_images.shape[0] for entry in entries}
    if len(slice_sizes) != 1:
        raise ValueError(f'board probes have different slice sizes {sorted(slice_sizes)}; '
                         f'every entry must hold SUPERNET.SLICE images')
    with torch.set_grad_enabled(with_grad):
        if per_entry:
            return [_probe_delta(_probabilities(student(entry.probe_images, path)), entry.probe_probs[None])[0]
                    for entry in entries]
        images = torch.cat([entry.probe_images for entry in entries])
        stored = torch.stack([entry.probe_probs for entry in entries])
        return list(_probe_delta(_probabilities(student(images, path)), stored).unbind(0))


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
    deltas = probe_deltas(student, path, board, per_entry=per_entry, with_grad=differentiable_weight)
    with torch.no_grad():
        scores = mmn(torch.stack([delta.detach() for delta in deltas]))
    index = int(torch.argmax(scores))
    if differentiable_weight:  # only the chosen entry's graph is kept; the others are freed here
        weight = torch.sigmoid(-mmn(deltas[index]))
    else:
        weight = torch.sigmoid(-scores[index])
    return TeacherChoice(index=index, entry=board[index], weight=weight, scores=scores,
                         delta=deltas[index].detach())


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
