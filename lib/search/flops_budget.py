"""The FLOPs budget (SUPERNET.BUDGET_MEASURE flops, the original): FLOPS_MINIMUM..FLOPS_MAXIMUM in the budget rule's
measure ('budget_flops', ``lib.search.flops.BudgetFlops``); the board's measure is SUPERNET.BOARD_FLOPS
('flops_est' by default, or 'budget_flops'). It has the interface of ``lib.search.measures.SearchBudget``, as
``lib.search.latency_budget.LatencyBudget`` has, and words what the log, board.json and best_arch.yaml say of it."""
from dataclasses import dataclass
from typing import ClassVar, Dict, Sequence

from lib.models.paths import Path
from lib.search.flops import SearchSpace
from lib.search.path_cost import PathCost, SpaceCost



def flops_columns_text(space: SearchSpace, decides: bool) -> str:
    """What board.json's FLOPs and MACs columns count (``decides``: the FLOPs measures decide the search)."""
    return (f'board_flops_M: MFLOPs in the board\'s measure (SUPERNET.BOARD_FLOPS: {space.board_measure_text})'
            f'{", which decides admission and ties" if decides else ""}; budget_flops_M: MFLOPs in the FLOPs budget\'s '
            'measure (the searchable layers priced by the SUPERNET.FLOPS_TABLE per-op table at 224 px, divided by the '
            f'budget rule\'s resolution scale){", which decides what lies within the budget" if decides else ""}; '
            'macs_M: real multiply-accumulates (M) of the child network at the search resolution')


@dataclass(frozen=True)
class FlopsBudget:
    space: SearchSpace
    minimum: float
    maximum: float
    keeps_sampler: bool = False  # SUPERNET.SAMPLE_WITHIN_BUDGET: the sampler redraws paths outside the budget
    feasibility_checked: ClassVar[bool] = False  # whether the sampler can draw within it is sampling_budget's check
    pick_words: ClassVar[str] = "budget in the budget's measure"
    sampling_fix: ClassVar[str] = 'widen SUPERNET.FLOPS_MINIMUM..FLOPS_MAXIMUM, set SUPERNET.SAMPLE_WITHIN_BUDGET False'

    @property
    def measure(self) -> SpaceCost:
        return self.space.budget_measure

    @property
    def board_measure(self) -> PathCost:
        return self.space.board_measure

    def within(self, path: Path) -> bool:
        return self.minimum <= self.measure.cost(path) <= self.maximum

    def text(self) -> str:
        return f'{self.minimum:g}..{self.maximum:g} MFLOPs'

    @property
    def sampling_name(self) -> str:
        return f"the FLOPs budget {self.text()} (the budget's measure)"

    # ---- what the log, board.json and best_arch.yaml say --------------------------------------------------
    def record(self) -> dict:
        return {}  # board.json's flops_budget_M is written under either budget

    def measures_text(self) -> str:
        return flops_columns_text(self.space, decides=True)

    def columns(self, board_cost: float, path: Path) -> Dict[str, float]:
        """board.json's columns of a board path (``board_cost``: the entry's) before budget_flops_M."""
        return {'board_flops_M': board_cost}

    def board_header(self) -> str:
        return f'board FLOPs: {self.space.board_measure_text}'

    def lead_text(self, path: Path, sep: str) -> str:
        return ''  # the FLOPs follow in every line anyway

    def pick_text(self, path: Path) -> str:
        return ''

    def best_arch_lines(self, path: Path, board_cost: float, arch_file: str) -> str:
        return (f'#   budget FLOPs {self.space.budget_flops(path):.2f}M (the FLOPs budget\'s measure, which '
                f'chose it)  board FLOPs {board_cost:.2f}M ({self.space.board_measure_text})\n')

    def outside_warning(self, costs: Sequence[float], file_name: str) -> str:
        return (f'no board path lies within the FLOPs budget {self.minimum:g}..{self.maximum:g} MFLOPs (board paths '
                f'cost {min(costs):.2f}..{max(costs):.2f} in the budget\'s measure): {file_name} takes the best board '
                'path regardless of FLOPs')
