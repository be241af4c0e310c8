"""The budget a sampled path must meet, if any: the search's sampler, its epoch's random validation path and
the final pick's sampled candidates draw again a path outside it.

Under a latency budget (SUPERNET.BUDGET_MEASURE latency) always. Under a FLOPs budget only with
SUPERNET.SAMPLE_WITHIN_BUDGET True: the original trains every path of the space its budget sized, and its
per-op table sizes the space loosely (for the 0-43 budget most paths of the space lie above 43 MFLOPs in the
budget's measure), so by default the supernet spends most steps on paths the final pick cannot take. The
measure is the final pick's (the search budget's, ``lib.search.measures``): FLOPS_MINIMUM..FLOPS_MAXIMUM in the
budget rule's measure.
"""
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

from lib.errors import ConfigError
from lib.models.paths import Path
from lib.search.sampler import sampler_from_config

FRACTION_DRAWS = 20000  # sampler draws that estimate how much of the space lies within the budget
MIN_FRACTION = 1e-3  # below this share of drawn paths within the budget, each step would redraw thousands of times


class SamplingBudgetError(ConfigError):
    """SUPERNET.SAMPLE_WITHIN_BUDGET with a FLOPs budget that no path of the space meets."""


@dataclass(frozen=True)
class SamplingBudget:
    within: Callable[[Path], bool]
    name: str  # which budget, in words (for the log)
    fix: str  # how to widen it (for the sampler's error message)
    fraction: Optional[float] = None  # share of drawn paths within it, once check_sampling_budget has measured it

    @property
    def text(self) -> str:
        return f'{self.name}; {self.fix}'

    def within_fraction(self, cfg, layers_per_stage: Sequence[int], num_ops: int,
                        draws: int = FRACTION_DRAWS) -> float:
        """Share of the paths that cfg's sampler (SUPERNET.HOW_TO_PROB; 'teacher' with an empty board) draws
        within the budget, an estimate from its own seeded generator (for the log and the feasibility check)."""
        sampler = sampler_from_config(cfg, layers_per_stage, num_ops, seed=0, board_paths=lambda: [])
        return sum(self.within(sampler.sample()) for _ in range(draws)) / draws


def sampling_budget(budget) -> Optional[SamplingBudget]:
    """The budget sampled paths must meet (None: every path of the space, the original under a FLOPs budget);
    ``budget``: the search's (``lib.search.measures.search_budget``)."""
    if not budget.keeps_sampler:
        return None
    return SamplingBudget(budget.within, budget.sampling_name, budget.sampling_fix)


def check_sampling_budget(cfg, budget, num_ops: int) -> Optional[SamplingBudget]:
    """``sampling_budget``, refused when the sampler could not draw a path of it (before any work)."""
    sampling = sampling_budget(budget)
    if sampling is None or budget.feasibility_checked:  # a latency budget's: lib.search.latency_budget
        return sampling
    space = budget.space
    low, high = space.budget_flops_range()
    sn = cfg.SUPERNET
    fraction = sampling.within_fraction(cfg, space.layers_per_stage, num_ops)
    if high < sn.FLOPS_MINIMUM or low > sn.FLOPS_MAXIMUM or fraction < MIN_FRACTION:
        raise SamplingBudgetError(
            f'SUPERNET.SAMPLE_WITHIN_BUDGET True, but fewer than {MIN_FRACTION:g} of the paths that '
            f'SUPERNET.HOW_TO_PROB {sn.HOW_TO_PROB!r} draws lie within the FLOPs budget '
            f'{sn.FLOPS_MINIMUM:g}..{sn.FLOPS_MAXIMUM:g} MFLOPs (the space\'s paths cost {low:.2f}..{high:.2f} in the '
            f'budget\'s measure; measured on {FRACTION_DRAWS} drawn paths); sample '
            "with HOW_TO_PROB 'even' or 'fair', widen the budget or set SUPERNET.SAMPLE_WITHIN_BUDGET False")
    return replace(sampling, fraction=fraction)
