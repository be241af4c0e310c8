"""The final pick among sampled paths as well as the board's (SUPERNET.FINAL_PICK_SAMPLES N > 0).

The original has no final pick; ours takes, by default, the best validated board path within the budget
(``lib.search.outputs.choose_final_entry``). The board, though, holds the paths the supernet trained most: with
``PRE_PROB`` sampling, the few ops it favours. In the miniature (docs/miniature.md) its pick
lay below the median of random paths while the supernet's own best-scored random path lay near the top. With
N > 0 the pick also considers N random paths within the budget (uniform, from a generator seeded by SEED alone,
so every rank and every rerun draws the same ones): each of them and each board path within the budget is
validated with its BN statistics re-estimated on SUPERNET.FINAL_PICK_BN_BATCHES training batches (a path's
shared statistics belong to every path that updated them), and the best val prec@1 wins (ties: fewer in the
board's measure). A search without a board (META_STA_EPOCH >= EPOCHS) then still gets a pick.

With SUPERNET.FINAL_PICK 'evolution' an evolutionary search (``lib.search.evolution``, settings SUPERNET.EVOLUTION)
starts from the board's paths within the budget and scores every candidate the same way; its state is saved in the
run folder after each generation (EVOLUTION_STATE_FILE), so a search killed during its final pick continues there.
tools/evolution_search.py runs the same on any finished search folder.
"""
import logging
from dataclasses import dataclass
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from lib.search.evolution import EvolutionResult, EvolutionSettings, evolve
from lib.models.paths import Path, random_path, seeded_generator
from lib.search.sampler import MAX_DRAWS
from lib.search.validate import evaluate_path

logger = logging.getLogger('cream.search')

_SAMPLE_SEED_STRIDE = 7_919  # the sampled candidates' generator: seed SEED * stride + 1 (not a training stream's)
_EVOLUTION_SEED_STRIDE = 104_729  # the evolution's generator: seed SEED * stride + 2 (not a training stream's)
EVOLUTION_STATE_FILE = 'evolution_state.json'


@dataclass(frozen=True)
class Candidate:
    """A path the final pick considered, with what best_arch.yaml reports of it (the fields of a board entry)."""
    path: tuple
    board_cost: float  # in the board's measure (the search budget's board_measure)
    macs: float
    params: float
    val_prec1: float
    prec1: Optional[float]  # train prec1 on the board; None for a sampled path
    source: str  # 'board' or 'sampled'


def sampled_paths(layers_per_stage: Sequence[int], num_ops: int, seed: int, count: int,
                  within: Callable) -> List[Path]:
    """``count`` uniform random paths within the budget (``within(path)``), distinct, in drawing order; fewer when
    20 * ``count`` paths within it repeat (a small space), none when MAX_DRAWS draws in a row miss the budget
    (the board's paths are then the candidates)."""
    generator = seeded_generator((seed * _SAMPLE_SEED_STRIDE + 1) % 2 ** 63)
    paths, within_budget, misses = [], 0, 0
    while len(paths) < count and within_budget < 20 * count and misses < MAX_DRAWS:
        path = random_path(layers_per_stage, num_ops, generator)
        if not within(path):
            misses += 1
            continue
        within_budget, misses = within_budget + 1, 0
        if path not in paths:
            paths.append(path)
    return paths


def best_candidate(candidates: Sequence[Candidate]) -> Optional[Candidate]:
    """The best val prec1; ties go to fewer in the board's measure, then to a board path."""
    if not candidates:
        return None
    return min(candidates, key=lambda c: (-c.val_prec1, c.board_cost, c.source != 'board'))


def pick_with_samples(session, epoch: int) -> Optional[Candidate]:
    """Validate the board paths within the search's budget and SUPERNET.FINAL_PICK_SAMPLES random paths within it,
    each with re-estimated BN statistics; the best of them (see the module docstring)."""
    cfg, space, supernet, table = session.cfg, session.space, session.supernet, session.macs_table
    within = session.budget.within
    board_paths = {entry.path: entry for entry in session.board if within(entry.path)}
    sampled = [p for p in sampled_paths(space.layers_per_stage, supernet.num_ops, cfg.SEED,
                                        cfg.SUPERNET.FINAL_PICK_SAMPLES, within) if p not in board_paths]
    candidates = []
    for source, paths in (('board', list(board_paths)), ('sampled', sampled)):
        for path in paths:
            result = evaluate_path(session, path, epoch=epoch, bn_batches=cfg.SUPERNET.FINAL_PICK_BN_BATCHES,
                                   prefix=f'Final pick: {source} path')
            entry = board_paths.get(path)
            candidates.append(Candidate(path=path, board_cost=session.board_cost(path), macs=table.path_macs(path),
                                        params=table.path_params(path), val_prec1=float(result['prec1']),
                                        prec1=None if entry is None else entry.prec1, source=source))
            logger.info('final pick: %s path %s  val prec1 %.3f (BN re-estimated on %d batches)', source,
                        [list(s) for s in path], result['prec1'], cfg.SUPERNET.FINAL_PICK_BN_BATCHES)
    return best_candidate(candidates)


def evolution_settings(cfg, seed: Optional[int] = None) -> EvolutionSettings:
    """SUPERNET.EVOLUTION's settings, its generator seeded from SEED (or ``seed``)."""
    ev = cfg.SUPERNET.EVOLUTION
    seed = cfg.SEED if seed is None else seed
    return EvolutionSettings(population=ev.POPULATION, generations=ev.GENERATIONS, parents=ev.PARENTS,
                             mutations=ev.MUTATIONS, crossovers=ev.CROSSOVERS, mutation_prob=ev.MUTATION_PROB,
                             seed=(seed * _EVOLUTION_SEED_STRIDE + 2) % 2 ** 63)


def pick_by_evolution(run, *, table, board_cost: Callable, within: Callable, start: Sequence = (),
                      board_prec1: Optional[Dict[tuple, float]] = None, epoch: int, bn_batches: int,
                      settings: EvolutionSettings, state_file: Optional[str], write_state: bool = True,
                      restart_other: bool = False) -> Tuple[Candidate, EvolutionResult]:
    """The evolutionary search's best path as a Candidate, and its result (evaluations, history). ``run``: a search
    session or a loaded run (``lib.experiments.supernet_scores.load_search_run``): what ``evaluate_path`` needs;
    ``table`` prices MACs and params; ``board_cost`` breaks ties; ``within`` is the budget; ``start`` seeds
    generation 0 (``board_prec1`` their train prec1 on the board)."""
    board_prec1 = board_prec1 or {}

    def score(path) -> float:
        result = evaluate_path(run, path, epoch=epoch, bn_batches=bn_batches, prefix='Evolution: path')
        return float(result['prec1'])
    context = {'epoch': int(epoch), 'bn_batches': int(bn_batches)}
    result = evolve(run.space.layers_per_stage, run.supernet.num_ops, score, within, settings, start=start,
                    cost=board_cost, state_file=state_file, write_state=write_state, context=context,
                    restart_other=restart_other)
    path = result.best_path
    best = Candidate(path=path, board_cost=board_cost(path), macs=table.path_macs(path), params=table.path_params(path),
                     val_prec1=result.best_score, prec1=board_prec1.get(path), source='evolution')
    logger.info('final pick by evolution: %s  val prec1 %.3f (BN re-estimated on %d batches), %d paths evaluated',
                [list(s) for s in path], result.best_score, bn_batches, result.evaluations)
    return best, result


def pick_with_evolution(session, epoch: int) -> Candidate:
    """SUPERNET.FINAL_PICK evolution in the search: from the board's paths within the search's budget."""
    cfg, within = session.cfg, session.budget.within
    board = [entry for entry in session.board if within(entry.path)]
    best, _ = pick_by_evolution(
        session, table=session.macs_table, board_cost=session.board_cost, within=within,
        start=[entry.path for entry in board], board_prec1={entry.path: entry.prec1 for entry in board},
        epoch=epoch, bn_batches=cfg.SUPERNET.FINAL_PICK_BN_BATCHES, settings=evolution_settings(cfg),
        state_file=os.path.join(session.run_dir, EVOLUTION_STATE_FILE), write_state=session.dist.is_main,
        restart_other=True)
    return best
