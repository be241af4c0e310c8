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
from typing import Optional

from lib.errors import ConfigError
from lib.latency.table import LatencyTable, load_table
from lib.models.paths import Path, random_path, seeded_generator

FEASIBLE_FRACTION_DRAWS = 20000  # uniform draws that estimate how much of the space lies within the budget


class LatencyBudgetError(ConfigError):
    """A latency budget no path of the search space meets."""


@dataclass(frozen=True)
class LatencyBudget:
    table: LatencyTable
    minimum_ms: float
    maximum_ms: float

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
    budget = LatencyBudget(table, float(sn.LATENCY_MINIMUM), float(sn.LATENCY_MAXIMUM))
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
