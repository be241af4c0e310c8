"""A latency budget (SUPERNET.BUDGET_MEASURE 'latency'): the latency a table measured on the user's device predicts
for a path, and the budget's bounds in ms.

With it, one measure decides everything the FLOPs measures decide otherwise: the board's admission and ties,
the final pick's budget check, and the sampler, which redraws a path outside the budget (so that the supernet
trains, and the board holds, paths the budget allows; under a FLOPs budget the sampler draws from the whole
space, as the original's did, while a latency budget may exclude many paths of a space). board.json, the log and best_arch.yaml report the
predicted ms beside the FLOPs. The table must have been measured for the search's space (layers per stage,
resolution, classes), and the budget must admit a path of it: both are one error before any work.
"""
from dataclasses import dataclass
from typing import ClassVar, Dict, Optional, Sequence

from lib.errors import ConfigError
from lib.latency.table import LatencyTable, load_table
from lib.models.paths import Path, random_path, seeded_generator
from lib.search.flops import SearchSpace
from lib.search.flops_budget import flops_columns_text

FEASIBLE_FRACTION_DRAWS = 20000  # uniform draws that estimate how much of the space lies within the budget


LATENCY_MEASURE = ('predicted_ms: the latency the SUPERNET.LATENCY_TABLE predicts on its device and runtime, which '
                   'decides admission, ties and what lies within the latency budget (SUPERNET.BUDGET_MEASURE latency); '
                   'for reference: ')


class LatencyBudgetError(ConfigError):
    """A latency budget no path of the search space meets."""


@dataclass(frozen=True)
class LatencyBudget:
    """The interface of ``lib.search.measures.SearchBudget``: the table's predicted ms ('latency_ms') is the
    budget's and the board's measure; the FLOPs of ``space`` are reported beside it."""
    table: LatencyTable
    minimum_ms: float
    maximum_ms: float
    space: Optional[SearchSpace] = None  # the search space whose FLOPs the log and the files report beside
    keeps_sampler: ClassVar[bool] = True  # the sampler redraws a path outside the budget
    feasibility_checked: ClassVar[bool] = True  # by ``latency_budget``, before any work
    pick_words: ClassVar[str] = 'latency budget'
    sampling_name: ClassVar[str] = 'the latency budget'
    sampling_fix: ClassVar[str] = 'widen SUPERNET.LATENCY_MINIMUM..LATENCY_MAXIMUM'

    @property
    def measure(self) -> LatencyTable:
        return self.table

    @property
    def board_measure(self) -> LatencyTable:
        return self.table

    @property
    def minimum(self) -> float:
        return self.minimum_ms

    @property
    def maximum(self) -> float:
        return self.maximum_ms

    def predict_ms(self, path: Path) -> float:
        return self.table.predict_ms(path)

    def within(self, path: Path) -> bool:
        return self.minimum_ms <= self.predict_ms(path) <= self.maximum_ms

    def text(self) -> str:
        return f'{self.minimum_ms:g}..{self.maximum_ms:g} ms'

    def describe(self) -> str:
        """Which table predicts, on what, and how (for logs and best_arch.yaml)."""
        how = 'calibrated sum' if self.table.calibration is not None else 'plain sum'
        return f'table {self.table.source}: {self.table.describe()}; {how}'

    def record(self) -> dict:
        """What board.json says about the budget."""
        return {'budget_measure': 'latency', 'latency_budget_ms': [self.minimum_ms, self.maximum_ms],
                'latency_table': self.table.source, 'latency_measured_with': self.table.describe(),
                'latency_calibrated': self.table.calibration is not None}

    # ---- what the log, board.json and best_arch.yaml say --------------------------------------------------
    def measures_text(self) -> str:
        return (LATENCY_MEASURE + flops_columns_text(self.space, decides=False))

    def columns(self, board_cost: float, path: Path) -> Dict[str, float]:
        """board.json's columns of a board path (``board_cost``: the entry's, in ms) before budget_flops_M."""
        return {'predicted_ms': board_cost, 'board_flops_M': self.space.board_flops(path)}

    def board_header(self) -> str:
        return f"the board's measure: predicted latency, {self.describe()}"

    def lead_text(self, path: Path, sep: str) -> str:
        return f'predicted {self.predict_ms(path):.4g} ms{sep}'

    def pick_text(self, path: Path) -> str:
        return f'predicted latency {self.predict_ms(path):.4g} ms (budget {self.text()}), '

    def best_arch_lines(self, path: Path, board_cost: float, arch_file: str) -> str:
        return (f'#   predicted latency {board_cost:.4g} ms (latency budget {self.text()}, which chose it; '
                f'{self.describe()})\n'
                f'#   measure it: python tools/model_info.py --arch {arch_file} --latency {self.table.source}\n'
                f'#   budget FLOPs {self.space.budget_flops(path):.2f}M  board FLOPs {self.space.board_flops(path):.2f}M '
                f'({self.space.board_measure_text})\n')

    def outside_warning(self, costs: Sequence[float], file_name: str) -> str:
        return (f'no board path lies within the latency budget {self.text()} (board paths are predicted at '
                f'{min(costs):.4g}..{max(costs):.4g} ms): {file_name} takes the best board path regardless of latency')

    def within_fraction(self, draws: int = FEASIBLE_FRACTION_DRAWS, seed: int = 0) -> float:
        """Share of uniformly drawn paths within the budget (an estimate; for the log)."""
        generator = seeded_generator(seed)
        num_ops = len(self.table.op_times[0][0])
        layers = self.table.layers_per_stage
        return sum(self.within(random_path(layers, num_ops, generator)) for _ in range(draws)) / draws


def latency_budget(cfg, space) -> Optional[LatencyBudget]:
    """The latency budget of ``cfg`` for ``space`` (None under SUPERNET.BUDGET_MEASURE flops). Refuses a table of
    another space and a budget no path of the space meets."""
    sn = cfg.SUPERNET
    if sn.BUDGET_MEASURE != 'latency':
        return None
    table = load_table(sn.LATENCY_TABLE)
    table.check_space(space.layers_per_stage, space.resolution, cfg.DATASET.NUM_CLASSES)
    budget = LatencyBudget(table, float(sn.LATENCY_MINIMUM), float(sn.LATENCY_MAXIMUM), space)
    fastest, slowest = table.range_ms()
    if fastest > budget.maximum_ms or slowest < budget.minimum_ms:
        raise LatencyBudgetError(
            f'latency budget {budget.text()} is infeasible: the paths of this space ({table.space_text()}) are '
            f'predicted at {fastest:.4g}..{slowest:.4g} ms by {budget.describe()}; set SUPERNET.LATENCY_MAXIMUM >= '
            f'{fastest:.4g} and SUPERNET.LATENCY_MINIMUM <= {slowest:.4g}, or search a smaller or larger space')
    if budget.within_fraction() == 0:
        raise LatencyBudgetError(
            f'latency budget {budget.text()} admits almost no path of this space: none of {FEASIBLE_FRACTION_DRAWS} '
            f'random paths is predicted within it (the space spans {fastest:.4g}..{slowest:.4g} ms by '
            f'{budget.describe()}), so the sampler could not draw one; widen the budget')
    return budget
