"""The meta-matching network, teacher selection from the prioritized board, and the distillation loss.

Notation (docs/algorithm.md): W = the student path's parameters, rho = the meta-matching network (MMN)
parameters, delta_j = softmax(student(X_j)) - P_j for board entry j with probe images X_j and stored
probabilities P_j, s_j = MMN(delta_j), KD weight m = sigmoid(-s_teacher). The MMN's second-order update is
``lib.search.meta_update``.

Teacher selection, as the defaults run it (the original's behaviour): the student runs over each entry's
probe images as a train-mode batch of its own (SUPERNET.PROBE_FORWARD 'per_entry': BN normalizes each probe with
its own batch statistics and updates its running statistics once per entry, as the original's one forward per
entry did; the probes are training images, so these are small extra training batches for the running
statistics), all entries in one grouped forward without a graph (lib.search.probes); m keeps its graph
(SUPERNET.DETACH_KD_WEIGHT False in a distillation step, SUPERNET.META_INNER_GRAD 'full' in a meta-matching
update) to the MMN and, through the chosen entry's own probe forward run once more with its graph, to W. The
alternatives: 'batched' runs all probes as one BN batch; DETACH_KD_WEIGHT True / META_INNER_GRAD 'detached' use
a constant m.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from lib.config.table import choices
from lib.errors import ConfigError
from lib.search.board import BoardEntry, PrioritizedBoard
from lib.search.probes import chosen_probe_delta, probe_deltas

PICK_METHODS = choices('SUPERNET.PICK_METHOD')
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
    detached) exist only for 'meta' picking; ``probe_rng_state``: with 'per_entry' probes and dropout, the random
    state before the chosen entry's dropout noise (``lib.search.probes.chosen_probe_delta`` replays it)."""
    index: int
    entry: BoardEntry
    weight: torch.Tensor
    scores: Optional[torch.Tensor] = None
    delta: Optional[torch.Tensor] = None
    probe_rng_state: Optional[torch.Tensor] = None

    @property
    def path(self):
        return self.entry.path


def select_teacher(student: nn.Module, path, board: PrioritizedBoard, pick_method: str,
                   mmn: Optional[MetaMatchingNetwork] = None, *, per_entry: bool = False,
                   differentiable_weight: bool = False, cpu_channels_last: bool = False) -> TeacherChoice:
    """Pick a teacher for the student ``path``: 'top1' -> the board's best, m = 0.5; 'meta' -> argmax
    of the MMN scores, m = sigmoid(-score of the chosen teacher) (the original took the last entry's
    score: a bug). ``differentiable_weight`` (SUPERNET.DETACH_KD_WEIGHT False, the original): m keeps
    its graph to the MMN and, through the chosen entry's probe forward, to the student path.
    ``cpu_channels_last``: see ``lib.search.probes.probe_deltas``."""
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
                          with_grad=differentiable_weight and not per_entry, cpu_channels_last=cpu_channels_last)
    with torch.no_grad():
        scores = mmn(probes.deltas.detach())
    index = int(torch.argmax(scores))  # a host sync: the teacher's path decides which blocks run
    delta, rng_state = probes.deltas[index], probes.rng_state(index)
    if per_entry:  # the chosen entry's own forward (with its graph when m keeps one): delta and m as one forward
        with torch.set_grad_enabled(differentiable_weight):  # per entry gives them, bit for bit; its BN update
            delta = chosen_probe_delta(student, path, board[index], rng_state)  # is counted already
            weight = torch.sigmoid(-mmn(delta))
    elif differentiable_weight:
        weight = torch.sigmoid(-mmn(delta))
    else:
        weight = torch.sigmoid(-scores[index])
    return TeacherChoice(index=index, entry=board[index], weight=weight, scores=scores, delta=delta.detach(),
                         probe_rng_state=rng_state)


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
