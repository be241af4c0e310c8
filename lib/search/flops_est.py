"""The board's FLOPs measure of the original (SUPERNET.BOARD_FLOPS 'flops_est', the default).

The original priced its budget rule with a hard-coded per-op table (``lib.search.flops``), but its board,
its log and its ``get_flops(path)`` used another measure: ``FlopsEst`` (github.com/microsoft/Cream,
Cream/lib/utils/flops_table.py), ptflops counts of its own blocks at 224 px, whole path: stem and head
(``fixed``), stage 0, every searchable layer's chosen op, stage 6. The two differ per op (0.30-0.45 MFLOPs
per layer in stage 1, 0.04-0.06 in stage 5), so at the budget's edge or on equal accuracy the board can
order two paths differently under the two measures.

The numbers below are FlopsEst's table measured on the original's supernet for the budget 0-600 (MFLOPs
and M params; every searchable stage holds four layers there, stage 3 a fifth that is never run). A
layer's cost depends only on its stage and on whether it is the stage's first (stride and channel change)
or a later one, and FlopsEst always counts at 224 px, so these numbers price any search space's paths.
"""
from dataclasses import dataclass
from typing import Sequence, Tuple

Row = Tuple[float, ...]


@dataclass(frozen=True)
class WholePathTable:
    """Costs of a whole path: ``fixed`` (stem + head), stage 0, stage 6, and per searchable stage and op the
    stage's first layer (``first[stage][op]``) and each later layer (``later[stage][op]``); a
    ``lib.search.path_cost.PathCost`` under ``name`` (it prices a path of any space, so it knows no range)."""

    fixed: float
    stage0: float
    final_stage: float
    first: Tuple[Row, ...]
    later: Tuple[Row, ...]
    name: str = 'flops_est'
    unit: str = 'MFLOPs'

    def layer_cost(self, stage: int, layer: int, op: int) -> float:
        """Searchable ``stage`` (0-4), ``layer`` within it, ``op`` index."""
        return (self.first if layer == 0 else self.later)[stage][op]

    def path_cost(self, path: Sequence[Sequence[int]]) -> float:
        searchable = sum(self.layer_cost(s, layer, op) for s, stage in enumerate(path) for layer, op in enumerate(stage))
        return self.fixed + self.stage0 + self.final_stage + searchable

    def cost(self, path: Sequence[Sequence[int]]) -> float:
        return self.path_cost(path)


# FlopsEst (flops_dict / flops_fixed) of the original's 0-600 supernet, MFLOPs at 224 px.
ORIGINAL_FLOPS_EST = WholePathTable(
    fixed=5.861248, stage0=6.222136, final_stage=3.04192,
    first=((22.029488, 32.970504, 25.240752, 37.7874, 30.057648, 45.012744),
           (11.88404, 17.79932, 13.088264, 19.605656, 14.8946, 22.31516),
           (8.22956, 12.340192, 8.73132, 13.092832, 9.48396, 14.221792),
           (12.069232, 18.123432, 13.072752, 19.628712, 14.578032, 21.886632),
           (11.326752, 17.036016, 11.627808, 17.4876, 12.079392, 18.164976)),
    later=((19.121928, 28.612248, 23.938824, 35.837592, 31.164168, 46.675608),
           (11.99276, 17.969312, 13.9998, 20.979872, 17.01036, 25.495712),
           (11.05944, 16.61188, 12.06296, 18.11716, 13.56824, 20.37508),
           (15.692064, 23.574576, 16.896288, 25.380912, 18.702624, 28.090416),
           (15.331008, 23.208288, 15.93312, 24.111456, 16.836288, 25.466208)),
)

# FlopsEst's params_dict / params_fixed of the same supernet, M params.
ORIGINAL_PARAMS_EST = WholePathTable(
    fixed=0.411312, stage0=0.000744, final_stage=0.06208,
    first=((0.005568, 0.009864, 0.006592, 0.0114, 0.008128, 0.013704),
           (0.0122, 0.022872, 0.013736, 0.025176, 0.01604, 0.028632),
           (0.03444, 0.063104, 0.037, 0.066944, 0.04084, 0.072704),
           (0.112272, 0.206712, 0.117392, 0.214392, 0.125072, 0.225912),
           (0.190176, 0.340368, 0.19632, 0.349584, 0.205536, 0.363408)),
    later=((0.010632, 0.020536, 0.012168, 0.02284, 0.014472, 0.026296),
           (0.02796, 0.053424, 0.03052, 0.057264, 0.03436, 0.063024),
           (0.10712, 0.199, 0.11224, 0.20668, 0.11992, 0.2182),
           (0.15312, 0.28488, 0.159264, 0.294096, 0.16848, 0.30792),
           (0.601152, 1.12272, 0.61344, 1.141152, 0.631872, 1.1688)),
    name='params_est', unit='M params',
)
