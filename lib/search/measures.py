"""Which measure of a path decides what in a search, chosen in one place (``search_budget``) and asked by the rest.

The search's budget says which measure is the budget's (``measure``: which paths lie within ``minimum..maximum``:
the final pick, and the sampler where ``keeps_sampler``) and which the board's (``board_measure``: admission and
ties), each a ``lib.search.path_cost.PathCost``:

    SUPERNET.BUDGET_MEASURE flops (the original)  ``FlopsBudget``: 'budget_flops'; board: SUPERNET.BOARD_FLOPS
                                                   ('flops_est', the original's, or 'budget_flops')
    SUPERNET.BUDGET_MEASURE latency              ``LatencyBudget``: 'latency_ms' for both; FLOPs reported beside

Each budget also words what the log, board.json and best_arch.yaml say of it, so that no other module asks which
kind of budget it runs under.
"""
import dataclasses
from typing import Dict, Optional, Protocol, Sequence, Union

from lib.models.paths import Path
from lib.search.flops import SearchSpace
from lib.search.flops_budget import FlopsBudget
from lib.search.latency_budget import LatencyBudget
from lib.search.path_cost import PathCost, SpaceCost



class SearchBudget(Protocol):
    """What the search asks of its budget (``FlopsBudget``, ``LatencyBudget``)."""
    space: SearchSpace
    keeps_sampler: bool  # the sampler redraws paths outside the budget
    feasibility_checked: bool  # its own builder refused a budget the sampler cannot draw within
    pick_words: str  # the final pick's budget, in words
    sampling_name: str  # the sampler's budget, in words
    sampling_fix: str  # how to widen it

    @property
    def measure(self) -> SpaceCost: ...
    @property
    def board_measure(self) -> PathCost: ...
    @property
    def minimum(self) -> float: ...
    @property
    def maximum(self) -> float: ...
    def within(self, path: Path) -> bool: ...
    def text(self) -> str: ...
    def record(self) -> dict: ...
    def measures_text(self) -> str: ...
    def columns(self, board_cost: float, path: Path) -> Dict[str, float]: ...
    def board_header(self) -> str: ...
    def lead_text(self, path: Path, sep: str) -> str: ...
    def pick_text(self, path: Path) -> str: ...
    def best_arch_lines(self, path: Path, board_cost: float, arch_file: str) -> str: ...
    def outside_warning(self, costs: Sequence[float], file_name: str) -> str: ...


def search_budget(cfg, space: SearchSpace, latency: Optional[LatencyBudget] = None) -> Union[FlopsBudget, LatencyBudget]:
    """The budget of a search of ``space``: ``latency`` (``lib.search.latency_budget.latency_budget``) when there is
    one, else cfg's FLOPs budget."""
    if latency is not None:
        return dataclasses.replace(latency, space=space)
    sn = cfg.SUPERNET
    return FlopsBudget(space, float(sn.FLOPS_MINIMUM), float(sn.FLOPS_MAXIMUM), bool(sn.SAMPLE_WITHIN_BUDGET))
