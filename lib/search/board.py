"""The prioritized board: the best student paths seen so far, each with a probe for teacher matching.

Admission rule (the original's ``isUpdate``, implemented exactly; ``worst`` is the last entry):
    admit  if  len(board) < pool_size
           or  prec1 > worst.prec1 + acc_gap
           or  (prec1 > worst.prec1 and board_cost < worst.board_cost)
All comparisons are strict. After an admission the board is re-sorted and, when it holds more than
``pool_size`` entries, the last one (the worst) is dropped.

Order: the original's, by an explicit key: prec1, then board cost, then the path (compared as lists), all
descending. The original sorted whole tuples (prec1, prec1, flops, path, tensors...) in reverse, so on
equal prec1 the *larger* cost ranks first, and a full tie went on to compare tensors and crashed; here a
full tie keeps the older entry first (stable sort).

``board_cost`` is the path in the board's measure (``board_measure`` of the search's budget,
``lib.search.measures``): under the FLOPs budget SUPERNET.BOARD_FLOPS, by default the original's own, its
``FlopsEst`` count of the whole path at 224 px (``lib.search.flops_est``); under a latency budget the predicted ms.
``macs`` are the child network's real MACs at the search resolution, for reports only. A board saved before
issue 24 named the board cost ``flops``; ``from_state`` reads either key.

Entries hold plain numbers, tuples and detached tensors only, so the board never keeps an autograd
graph alive, and its ``state_dict`` loads with ``torch.load(weights_only=True)``.
"""
from dataclasses import dataclass, replace
from typing import Iterator, List, Optional, Sequence

import torch

from lib.errors import ConfigError
from lib.models.paths import Path, normalize_path


@dataclass(eq=False, kw_only=True)
class BoardEntry:
    """One board path. ``probe_images`` [SLICE, C, H, W] are the first SLICE images of the batch the
    path was trained on; ``probe_probs`` [SLICE, num_classes] the path's own softmax output on them.
    Tensors stay on the training device but are detached (and copied, so that a slice of the batch
    does not keep the whole batch alive)."""
    path: Path
    prec1: float
    board_cost: float  # in the board's measure
    probe_images: torch.Tensor
    probe_probs: torch.Tensor
    params: Optional[float] = None
    macs: Optional[float] = None
    val_prec1: Optional[float] = None

    def __post_init__(self):
        self.path = normalize_path(self.path)
        self.prec1 = float(self.prec1)
        self.board_cost = float(self.board_cost)
        self.macs = None if self.macs is None else float(self.macs)
        self.params = None if self.params is None else float(self.params)
        self.val_prec1 = None if self.val_prec1 is None else float(self.val_prec1)
        if not isinstance(self.probe_images, torch.Tensor) or not isinstance(self.probe_probs, torch.Tensor):
            raise TypeError('probe_images and probe_probs of a BoardEntry must be tensors')
        if self.probe_probs.dim() != 2 or self.probe_images.shape[0] != self.probe_probs.shape[0]:
            raise ValueError(
                f'probe_probs must be [SLICE, num_classes] with the same SLICE as probe_images; got '
                f'images {tuple(self.probe_images.shape)} and probs {tuple(self.probe_probs.shape)}')
        self.probe_images = self.probe_images.detach().clone()
        self.probe_probs = self.probe_probs.detach().clone()

    def sort_key(self) -> tuple:
        """Ascending order of this key is the original's descending tuple order (the paths of one board
        share their layout, so negated ops order them as the original's reversed list comparison)."""
        return (-self.prec1, -self.board_cost, tuple(tuple(-op for op in stage) for stage in self.path))

    def to_state(self) -> dict:
        return {
            'path': [list(stage) for stage in self.path],
            'prec1': self.prec1,
            'board_cost': self.board_cost,
            'params': self.params,
            'macs': self.macs,
            'val_prec1': self.val_prec1,
            'probe_images': self.probe_images,
            'probe_probs': self.probe_probs,
        }

    def to(self, device=None, dtype: Optional[torch.dtype] = None, channels_last: bool = False) -> 'BoardEntry':
        """A copy with the probe tensors on ``device``, floating ``dtype`` (None: kept), the images channels-last
        if asked."""
        images = self.probe_images.to(device=device, dtype=dtype)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return replace(self, probe_images=images, probe_probs=self.probe_probs.to(device=device, dtype=dtype))

    @classmethod
    def from_state(cls, state: dict, device=None) -> 'BoardEntry':
        images, probs = state['probe_images'], state['probe_probs']
        if device is not None:
            images, probs = images.to(device), probs.to(device)
        board_cost = state['board_cost'] if 'board_cost' in state else state['flops']  # 'flops': before issue 24
        return cls(path=state['path'], prec1=state['prec1'], board_cost=board_cost,
                   params=state['params'], macs=state.get('macs'), val_prec1=state['val_prec1'],
                   probe_images=images, probe_probs=probs)


class PrioritizedBoard:
    """The best ``pool_size`` paths by train prec1 (ties: the original's order); see the module docstring.
    ``entries``: the board starts holding exactly these (at most ``pool_size``), in the board's order."""

    def __init__(self, pool_size: int, acc_gap: float, entries: Sequence[BoardEntry] = ()):
        if int(pool_size) < 1:
            raise ConfigError(f'pool_size (SUPERNET.POOL_SIZE) must be >= 1; got {pool_size}')
        if float(acc_gap) < 0:
            raise ConfigError(f'acc_gap (ACC_GAP) must be >= 0; got {acc_gap}')
        self.pool_size = int(pool_size)
        self.acc_gap = float(acc_gap)
        self._entries: List[BoardEntry] = []
        self._hold(entries)

    def _hold(self, entries: Sequence[BoardEntry]) -> None:
        entries = list(entries)
        if any(not isinstance(entry, BoardEntry) for entry in entries):
            raise TypeError('a board holds BoardEntry objects only')
        if len(entries) > self.pool_size:
            raise ValueError(f'{len(entries)} board entries are more than pool_size {self.pool_size} '
                             f'(SUPERNET.POOL_SIZE)')
        self._entries = sorted(entries, key=BoardEntry.sort_key)

    # --- admission -------------------------------------------------------------------------------
    def would_admit(self, prec1: float, board_cost: float) -> bool:
        """Whether a path with these numbers would enter (lets the caller skip building an entry)."""
        if len(self._entries) < self.pool_size:
            return True
        worst = self._entries[-1]
        prec1, board_cost = float(prec1), float(board_cost)
        if prec1 > worst.prec1 + self.acc_gap:
            return True
        return prec1 > worst.prec1 and board_cost < worst.board_cost

    def offer(self, entry: BoardEntry) -> bool:
        """Admit ``entry`` if the rule allows; evict the worst beyond ``pool_size``. True if admitted."""
        if not isinstance(entry, BoardEntry):
            raise TypeError(f'offer() takes a BoardEntry; got {type(entry).__name__}')
        if not self.would_admit(entry.prec1, entry.board_cost):
            return False
        self._entries.append(entry)
        self._entries.sort(key=BoardEntry.sort_key)
        del self._entries[self.pool_size:]
        return True

    def record_val_prec1(self, index: int, val_prec1: float) -> None:
        self._entries[index].val_prec1 = float(val_prec1)

    # --- access ----------------------------------------------------------------------------------
    def best(self) -> BoardEntry:
        if not self._entries:
            raise IndexError('the prioritized board is empty: no best path yet')
        return self._entries[0]

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[BoardEntry]:
        return iter(list(self._entries))

    def __getitem__(self, index: int) -> BoardEntry:
        return self._entries[index]

    def paths(self) -> List[Path]:
        return [entry.path for entry in self._entries]

    def to_rows(self) -> List[dict]:
        """JSON-ready rows for board.json."""
        return [{'path': [list(stage) for stage in entry.path], 'prec1': entry.prec1,
                 'val_prec1': entry.val_prec1, 'board_cost': entry.board_cost, 'macs': entry.macs, 'params': entry.params}
                for entry in self._entries]

    # --- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain python and tensors only (loads with torch.load(weights_only=True))."""
        return {'pool_size': self.pool_size, 'acc_gap': self.acc_gap,
                'entries': [entry.to_state() for entry in self._entries]}

    def probe_state(self) -> List[dict]:
        """The entries' probe tensors (on the CPU), best first: what differs between ranks under
        SUPERNET.PROBE_SOURCE 'rank', where each process keeps the probes of its own batches."""
        return [{'probe_images': entry.probe_images.cpu(), 'probe_probs': entry.probe_probs.cpu()}
                for entry in self._entries]

    def load_probes(self, probes: Sequence[dict], device=None) -> None:
        """Put back this rank's probes (``probe_state`` of this rank, saved with the board)."""
        if len(probes) != len(self._entries):
            raise ValueError(f'{len(probes)} saved probes for a board of {len(self._entries)} entries')
        for entry, probe in zip(self._entries, probes):
            images, probs = probe['probe_images'], probe['probe_probs']
            entry.probe_images = images.to(device) if device is not None else images
            entry.probe_probs = probs.to(device) if device is not None else probs

    def load_state_dict(self, state: dict, device=None) -> None:
        """Restore a board saved by ``state_dict``; ``device`` moves the probe tensors."""
        if state['pool_size'] != self.pool_size or float(state['acc_gap']) != self.acc_gap:
            raise ValueError(
                f'the saved board has pool_size={state["pool_size"]}, acc_gap={state["acc_gap"]} but '
                f'this run uses pool_size={self.pool_size}, acc_gap={self.acc_gap}; resume with the '
                f'same SUPERNET.POOL_SIZE and ACC_GAP')
        self._hold([BoardEntry.from_state(entry, device) for entry in state['entries']])
