"""Student-path sampling (SUPERNET.HOW_TO_PROB): one op per searchable layer.

The sampler owns a ``torch.Generator`` seeded with the same seed on every rank, so all ranks draw the
same path without communicating and the global RNGs stay untouched. Under a latency budget, or a FLOPs budget with
SUPERNET.SAMPLE_WITHIN_BUDGET (``accept``), a path outside the budget is drawn again from the same generator (the
original, under its FLOPs budget, takes every draw: ``accept`` is None there).

'fair' (FairNAS, Chu et al. 2019): a round of ``num_ops`` paths gives every layer a random permutation of the ops,
so that within a round each op of each layer is trained exactly once. The round's permutations and the position in
it are part of ``state_dict``: a resumed run continues the round. Under ``accept`` a rejected path still uses up
its place in the round, so fairness then holds over the paths drawn, not over the paths trained.
"""
import math
from typing import Callable, Iterable, Optional, Sequence, Tuple

import torch

from lib.config.table import choices
from lib.errors import CreamError
from lib.models.paths import Path, random_path, seeded_generator, split_stages

Paths = Iterable[Path]
HOW_TO_PROB_CHOICES = choices('SUPERNET.HOW_TO_PROB')
MAX_DRAWS = 100000  # draws per path under ``accept`` before giving up


class SamplerError(CreamError, ValueError):
    """A sampler setting that cannot describe op probabilities."""


def _check_pre_prob(pre_prob, num_ops: int) -> Tuple[float, ...]:
    if pre_prob is None:
        raise SamplerError("SUPERNET.HOW_TO_PROB 'pre_prob' needs SUPERNET.PRE_PROB: one probability per op")
    probs = tuple(float(p) for p in pre_prob)
    if len(probs) != num_ops:
        raise SamplerError(f'SUPERNET.PRE_PROB has {len(probs)} entries but the supernet has {num_ops} ops; '
                           f'give exactly {num_ops} probabilities')
    if any(p < 0 or not math.isfinite(p) for p in probs) or abs(sum(probs) - 1.0) > 1e-6:
        raise SamplerError(f'SUPERNET.PRE_PROB {probs} must be non-negative and sum to 1 (sums to {sum(probs):.6g})')
    return probs


class PathSampler:
    """Draw student paths: 'even' (uniform), 'pre_prob' (fixed per-op probabilities), 'teacher'
    (op frequencies among the board's paths; uniform while the board is empty) or 'fair' (see the module's
    docstring). ``count_fixed_stages``
    (SUPERNET.TEACHER_PROB_COUNTS_FIXED, the original): the original's board paths held the two fixed
    stages as op 0, so its frequencies count two extra op-0 layers per board path."""

    def __init__(
        self,
        layers_per_stage: Sequence[int],
        num_ops: int,
        how_to_prob: str = 'even',
        pre_prob: Optional[Sequence[float]] = None,
        seed: int = 0,
        board_paths: Optional[Callable[[], Paths]] = None,
        count_fixed_stages: bool = False,
        accept: Optional[Callable[[Path], bool]] = None,
        budget_text: str = 'the latency budget; widen SUPERNET.LATENCY_MINIMUM..LATENCY_MAXIMUM',
    ):
        if how_to_prob not in HOW_TO_PROB_CHOICES:
            raise SamplerError(f'SUPERNET.HOW_TO_PROB is {how_to_prob!r}; '
                               f'choose one of {", ".join(HOW_TO_PROB_CHOICES)}')
        self.layers_per_stage = tuple(int(n) for n in layers_per_stage)
        self.num_ops = int(num_ops)
        self.how_to_prob = how_to_prob
        self.pre_prob = _check_pre_prob(pre_prob, self.num_ops) if how_to_prob == 'pre_prob' else None
        self.board_paths = board_paths
        self.count_fixed_stages = bool(count_fixed_stages)
        self.accept = accept
        self.budget_text = budget_text  # what ``accept`` tests and how to widen it, for the error message
        self.seed = int(seed)
        self.generator = seeded_generator(self.seed)
        self._num_layers = sum(self.layers_per_stage)
        self._fair_round: Optional[torch.Tensor] = None  # 'fair': (layers, num_ops) op permutations of the round
        self._fair_position = 0  # 'fair': paths of the round already drawn

    def op_probabilities(self, board_paths: Optional[Paths] = None) -> Optional[torch.Tensor]:
        """Per-op probabilities of the next draw; None means uniform."""
        if self.how_to_prob == 'pre_prob':
            return torch.tensor(self.pre_prob, dtype=torch.float64)
        if self.how_to_prob in ('even', 'fair'):
            return None
        if board_paths is None:
            if self.board_paths is None:
                raise SamplerError("SUPERNET.HOW_TO_PROB 'teacher' needs the board's paths: pass board_paths")
            board_paths = self.board_paths()
        counts = [0] * self.num_ops
        for path in board_paths:
            for stage in path:
                for op in stage:
                    if not 0 <= op < self.num_ops:
                        raise SamplerError(f'board path {path} has op {op}, outside 0..{self.num_ops - 1}')
                    counts[op] += 1
            if self.count_fixed_stages:
                counts[0] += 2
        total = sum(counts)
        return None if total == 0 else torch.tensor(counts, dtype=torch.float64) / total

    def sample(self, board_paths: Optional[Paths] = None) -> Path:
        """The next path: a tuple with one tuple of op indices per stage (one ``accept`` takes)."""
        probs = self.op_probabilities(board_paths)
        if self.accept is None:
            return self._draw(probs)
        for _ in range(MAX_DRAWS):
            path = self._draw(probs)
            if self.accept(path):
                return path
        raise SamplerError(f'none of {MAX_DRAWS} paths drawn by SUPERNET.HOW_TO_PROB {self.how_to_prob!r} lies within '
                           f'{self.budget_text} or sample evenly')

    def _fair_ops(self) -> torch.Tensor:
        """The next path of the current fair round (a new round, one permutation per layer, when it is used up)."""
        if self._fair_round is None or self._fair_position >= self.num_ops:
            self._fair_round = torch.stack([torch.randperm(self.num_ops, generator=self.generator)
                                            for _ in range(self._num_layers)])
            self._fair_position = 0
        flat = self._fair_round[:, self._fair_position]
        self._fair_position += 1
        return flat

    def _draw(self, probs: Optional[torch.Tensor]) -> Path:
        if self.how_to_prob == 'fair':
            flat = self._fair_ops()
        elif probs is None:
            return random_path(self.layers_per_stage, self.num_ops, self.generator)
        else:
            flat = torch.multinomial(probs, self._num_layers, replacement=True, generator=self.generator)
        return split_stages(flat.tolist(), self.layers_per_stage)

    def state_dict(self) -> dict:
        state = {'generator': self.generator.get_state(), 'seed': self.seed, 'how_to_prob': self.how_to_prob}
        if self.how_to_prob == 'fair':
            state['fair_round'] = None if self._fair_round is None else self._fair_round.clone()
            state['fair_position'] = self._fair_position
        return state

    def load_state_dict(self, state: dict) -> None:
        generator_state = state['generator']
        if not isinstance(generator_state, torch.Tensor):
            raise SamplerError('sampler state_dict must hold the generator state as a tensor under "generator"')
        self.generator.set_state(generator_state.cpu())
        if self.how_to_prob == 'fair':
            if 'fair_position' not in state:
                raise SamplerError("the checkpoint's sampler state has no fair round (a run with another "
                                   'SUPERNET.HOW_TO_PROB saved it); resume with the HOW_TO_PROB it was saved with')
            fair_round = state['fair_round']
            self._fair_round = None if fair_round is None else fair_round.clone().cpu()
            self._fair_position = int(state['fair_position'])


def sampler_from_config(cfg, layers_per_stage: Sequence[int], num_ops: int, *, seed: int,
                        board_paths: Optional[Callable[[], Paths]] = None,
                        accept: Optional[Callable[[Path], bool]] = None, budget_text: Optional[str] = None
                        ) -> PathSampler:
    """The search's student-path sampler as ``cfg.SUPERNET`` sets it up (HOW_TO_PROB, PRE_PROB,
    TEACHER_PROB_COUNTS_FIXED). ``accept``/``budget_text``: the budget a path must meet (``sampling_budget``)."""
    sn = cfg.SUPERNET
    extra = {} if budget_text is None else {'budget_text': budget_text}
    return PathSampler(layers_per_stage, num_ops, how_to_prob=sn.HOW_TO_PROB, pre_prob=sn.PRE_PROB, seed=seed,
                       board_paths=board_paths, count_fixed_stages=sn.TEACHER_PROB_COUNTS_FIXED, accept=accept,
                       **extra)
