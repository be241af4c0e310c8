"""What a path costs, in one named measure: the interface of the search's cost tables.

Four tables price a path of the search space, each under the name of what it counts:

    name            unit     table
    'macs'          MMACs    ``lib.search.macs_table.MacsTable``: real MACs of the child network at the search resolution
    'budget_flops'  MFLOPs   ``lib.search.flops.BudgetFlops``: the budget rule's per-op table at 224 px, divided by the
                             rule's resolution scale (the measure the FLOPs budget sizes the space with)
    'flops_est'     MFLOPs   ``lib.search.flops_est.WholePathTable``: the original's FlopsEst count of the whole path
    'latency_ms'    ms       ``lib.latency.table.LatencyTable``: the latency a table measured on a device predicts

Which measure is the budget's and which the board's is decided in one place, ``lib.search.measures``.
"""
from typing import Protocol, Tuple, runtime_checkable

from lib.models.paths import Path



@runtime_checkable
class PathCost(Protocol):
    """A measure of a path: ``cost(path)`` in ``unit``; ``name`` says what it counts."""
    name: str
    unit: str

    def cost(self, path: Path) -> float: ...


@runtime_checkable
class SpaceCost(PathCost, Protocol):
    """A measure bound to one search space, which also knows the cheapest and the dearest of its paths."""

    def cost_range(self) -> Tuple[float, float]: ...
