"""The student's forwards over the board's probe images, which teacher selection scores.

delta_j = softmax(student(X_j)) - P_j for board entry j (docs/algorithm.md). The student runs in whatever mode
the caller left it in: train mode during the search, as the original, so BN normalises with batch statistics
and updates its running statistics (the probes are training images: more small training batches).

SUPERNET.PROBE_FORWARD 'per_entry' (the original): each entry's probe is a batch of its own, normalised with its
own statistics, and the running statistics take one update per entry, in board order. All entries still run in
one forward: ``lib.models.grouped_bn`` gives each entry's images their own batch statistics and updates the
running statistics in closed form, as one forward per entry would (the head's dropout, if any, draws its noise
entry by entry, and its random state before each entry is kept). Where the KD weight keeps its graph, only the
chosen entry's delta needs one: ``chosen_probe_delta`` runs that entry's forward again, with its graph, the same
batch statistics and dropout noise, and no second running-statistics update. 'batched': one forward over all
probes concatenated (one BN batch, one update).
"""
from typing import List, NamedTuple, Optional

import torch
import torch.nn as nn

from lib.models.grouped_bn import grouped_batch_norm, replayed_rng
from lib.models.supernet import SuperNet, frozen_running_stats
from lib.search.board import BoardEntry, PrioritizedBoard


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """softmax in at least float32 (logits may be half precision under autocast)."""
    return torch.softmax(logits, dim=-1, dtype=torch.promote_types(logits.dtype, torch.float32))


def _probe_delta(probs: torch.Tensor, stored: torch.Tensor) -> torch.Tensor:
    probs = probs.reshape(stored.shape[0], stored.shape[1], -1)
    if probs.shape != stored.shape:
        raise ValueError(f'the student outputs {probs.shape[-1]} classes but the board probes hold '
                         f'{stored.shape[-1]}; the board belongs to a different dataset')
    return probs - stored.to(probs.dtype)


def layers_run(student: nn.Module, path):
    """The BN and dropout layers the forward of ``path`` runs, so that the BN and dropout swaps visit those layers
    only (a supernet holds six ops per layer; its list per path is cached); any other student whole."""
    if isinstance(student, SuperNet):
        return [*student.path_bn_layers(path), student.head_drop]
    return student


class ProbeDeltas(NamedTuple):
    deltas: torch.Tensor  # [entries, slice, num_classes]
    rng_states: list      # 'per_entry': the random state before each entry's dropout noise (empty: no dropout)

    def rng_state(self, index: int) -> Optional[torch.Tensor]:
        return self.rng_states[index] if self.rng_states else None


def probe_deltas(student: nn.Module, path, board: PrioritizedBoard, *, per_entry: bool = False,
                 with_grad: bool = False, cpu_channels_last: bool = False) -> ProbeDeltas:
    """delta_j for every board entry j, in board order, from one forward: ``per_entry`` (SUPERNET.PROBE_FORWARD
    'per_entry') with each entry's own BN statistics, else with those of all probes together. ``with_grad``: the
    forward keeps its graph. ``cpu_channels_last`` (SUPERNET.PROBE_CPU_CHANNELS_LAST): a forward without a graph
    on the CPU runs in channels_last (see below); False (the original's arithmetic): in the probes' own layout."""
    entries = list(board)
    slice_sizes = {entry.probe_images.shape[0] for entry in entries}
    if len(slice_sizes) != 1:
        raise ValueError(f'board probes have different slice sizes {sorted(slice_sizes)}; '
                         f'every entry must hold SUPERNET.SLICE images')
    images = torch.cat([entry.probe_images for entry in entries])
    if cpu_channels_last and not with_grad and images.device.type == 'cpu':
        # Scores only: on the CPU, oneDNN's depthwise convolutions run several times faster in channels_last
        # than in the default layout; the numbers differ by float rounding (the layout of the kernels' sums), so
        # two entries scoring that close may swap: off by default.
        images = images.contiguous(memory_format=torch.channels_last)
    stored = torch.stack([entry.probe_probs for entry in entries])
    rng_states: List[torch.Tensor] = []
    with torch.set_grad_enabled(with_grad):
        if per_entry:
            with grouped_batch_norm(layers_run(student, path), len(entries)) as rng_states:
                logits = student(images, path)
        else:
            logits = student(images, path)
        return ProbeDeltas(_probe_delta(probabilities(logits), stored), rng_states)


def chosen_probe_delta(student: nn.Module, path, entry: BoardEntry, rng_state=None, layers=None) -> torch.Tensor:
    """The chosen entry's delta again, by the entry's own forward (with its graph where gradients are enabled),
    after ``probe_deltas(per_entry=True)`` scored it: BN normalises with the probe's own statistics and leaves the
    running statistics alone (already updated); ``rng_state`` (``ProbeDeltas.rng_state``) replays the entry's
    dropout noise, and the random state ends where it was. The same kernels on the same images as one forward per
    entry: delta, m and their gradients come out bit for bit as there. ``layers``: the BN layers the forward
    runs (default ``layers_run``; a wrapper of the supernet passes the supernet's)."""
    layers = layers_run(student, path) if layers is None else layers
    with frozen_running_stats(layers), replayed_rng(rng_state, entry.probe_images.device):
        logits = student(entry.probe_images, path)
    return _probe_delta(probabilities(logits), entry.probe_probs[None])[0]
