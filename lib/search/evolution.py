"""An evolutionary search over paths (population, mutation, crossover), as Single Path One-Shot's (Guo et al.
2020) searches a trained supernet: any score function, any budget test; resumable.

Generation 0 is the given start paths (e.g. the board's) within the budget, filled up to POPULATION with uniform
random paths within it. Each later generation breeds from the PARENTS best paths scored so far: MUTATIONS
children, each a parent with every layer's op redrawn with probability MUTATION_PROB, and CROSSOVERS children,
each layer's op taken from one of two parents at random; children outside the budget, or already scored, are
redrawn (a bounded number of tries, then random paths within the budget fill the generation). Every distinct path
is scored once; the best score wins (ties: the lower ``cost``, then the path's order).

After every generation the state (the scores so far, the parents, the generator's state) is written atomically
to ``state_file``; a rerun with the same settings continues from the last finished generation and ends with the
same result as an uninterrupted run.
"""
import json
import logging
import os
import random
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from lib.errors import ConfigError
from lib.fileio import write_json_atomic
from lib.models.paths import Path, key_path, path_key

logger = logging.getLogger('cream.search')
TRIES_PER_CHILD = 50  # redraws of a child outside the budget or already scored before a random path replaces it
RANDOM_DRAWS = 100_000  # uniform draws for a random path within the budget before the budget counts as empty


class EvolutionError(ConfigError):
    """An evolutionary search that cannot run: no path within the budget, or a state file of other settings."""


@dataclass(frozen=True)
class EvolutionSettings:
    population: int = 50  # paths of generation 0
    generations: int = 20  # generations after generation 0
    parents: int = 10  # the best paths so far, which breed the next generation
    mutations: int = 25  # children by mutation per generation
    crossovers: int = 25  # children by crossover per generation
    mutation_prob: float = 0.1  # chance that a mutation redraws a layer's op
    seed: int = 0

    @property
    def max_evaluations(self) -> int:
        return self.population + self.generations * (self.mutations + self.crossovers)


@dataclass
class EvolutionResult:
    best_path: Path
    best_score: float
    evaluations: int  # distinct paths scored (the score function's calls)
    history: List[dict] = field(default_factory=list)  # per generation: best score so far, evaluations so far
    scores: Dict[str, float] = field(default_factory=dict)  # every scored path (key) -> score

    def report(self) -> dict:
        return {'best_path': [list(s) for s in self.best_path], 'best_score': self.best_score,
                'evaluations': self.evaluations, 'history': self.history}


class _Breeder:
    """Draws new paths of the space (random, mutated, crossed) from one seeded generator."""

    def __init__(self, layers_per_stage: Sequence[int], num_ops: int, rng: random.Random):
        self.layers_per_stage, self.num_ops, self.rng = tuple(layers_per_stage), num_ops, rng

    def random(self) -> Path:
        return tuple(tuple(self.rng.randrange(self.num_ops) for _ in range(n)) for n in self.layers_per_stage)

    def mutate(self, parent: Path, prob: float) -> Path:
        return tuple(tuple(self.rng.randrange(self.num_ops) if self.rng.random() < prob else op for op in stage)
                     for stage in parent)

    def cross(self, mother: Path, father: Path) -> Path:
        return tuple(tuple(a if self.rng.random() < 0.5 else b for a, b in zip(sm, sf))
                     for sm, sf in zip(mother, father))


def _random_within(breeder: _Breeder, within: Callable, avoid) -> Optional[Path]:
    """A uniform random path within the budget and not in ``avoid`` (None when none turns up)."""
    for _ in range(RANDOM_DRAWS):
        path = breeder.random()
        if within(path) and path_key(path) not in avoid:
            return path
    return None


def _children(breeder: _Breeder, make: Callable[[], Path], count: int, within: Callable, taken: set) -> List[Path]:
    """``count`` new paths from ``make()``, each within the budget and not in ``taken`` (redrawn, then random)."""
    children = []
    for _ in range(count):
        child = None
        for _ in range(TRIES_PER_CHILD):
            candidate = make()
            if within(candidate) and path_key(candidate) not in taken:
                child = candidate
                break
        if child is None:
            child = _random_within(breeder, within, taken)
        if child is None:  # the budget holds no path left unscored: the space is exhausted
            break
        taken.add(path_key(child))
        children.append(child)
    return children


def _ranked(scores: Dict[str, float], cost: Callable) -> List[str]:
    return sorted(scores, key=lambda k: (-scores[k], cost(key_path(k)), k))


def _load_state(state_file: Optional[str], settings: EvolutionSettings, context: dict,
                restart_other: bool) -> Optional[dict]:
    """The saved state of the same search (settings and context), else None (``restart_other``) or an error."""
    if not state_file or not os.path.isfile(state_file):
        return None
    with open(state_file) as f:
        state = json.load(f)
    saved = {'settings': state.get('settings'), 'context': state.get('context', {})}
    if saved != {'settings': asdict(settings), 'context': context}:
        if restart_other:
            logger.info('evolution: %s is of another search (%s); starting afresh', state_file, saved)
            return None
        raise EvolutionError(f'{state_file} holds an evolutionary search with other settings ({saved}, now '
                             f'{ {"settings": asdict(settings), "context": context} }); delete it to start afresh, '
                             'or rerun with its settings')
    return state


def _rng_state(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def evolve(layers_per_stage: Sequence[int], num_ops: int, score: Callable[[Path], float],
           within: Callable[[Path], bool], settings: EvolutionSettings, *, start: Sequence[Path] = (),
           cost: Callable[[Path], float] = lambda p: 0.0,
           state_file: Optional[str] = None, write_state: bool = True, context: Optional[dict] = None,
           restart_other: bool = False) -> EvolutionResult:
    """The evolutionary search of the module docstring; ``score(path)`` higher is better, ``within(path)`` the
    budget, ``cost(path)`` breaks ties. ``state_file``: resume from and save to it (``write_state`` False: only
    read, e.g. on ranks other than the writing one). ``context``: what else the scores depend on (e.g. the
    supernet's epoch), saved with the state; a state of other settings or context is an error, or with
    ``restart_other`` ignored."""
    context = dict(context or {})
    state = _load_state(state_file, settings, context, restart_other)
    rng = random.Random(settings.seed)
    breeder = _Breeder(layers_per_stage, num_ops, rng)
    if state is None:
        scores: Dict[str, float] = {}
        history: List[dict] = []
        done = -1
        first = [tuple(tuple(int(op) for op in s) for s in p) for p in start]
        population = list(dict.fromkeys(p for p in first if within(p)))[:settings.population]
        taken = {path_key(p) for p in population}
        while len(population) < settings.population:
            path = _random_within(breeder, within, taken)
            if path is None:
                break
            taken.add(path_key(path))
            population.append(path)
        if not population:
            raise EvolutionError(f'none of {RANDOM_DRAWS} random paths lies within the budget, and no start path does: '
                                 'widen the budget (SUPERNET.FLOPS_MINIMUM/MAXIMUM or LATENCY_MINIMUM/MAXIMUM)')
    else:
        scores = {k: float(v) for k, v in state['scores'].items()}
        history, done = state['history'], state['generation']
        version, internal, gauss = state['rng']
        rng.setstate((version, tuple(internal), gauss))
        population = None

    for generation in range(done + 1, settings.generations + 1):
        if generation > 0:
            parents = [key_path(k) for k in _ranked(scores, cost)[:settings.parents]]
            taken = set(scores)
            population = _children(breeder, lambda: breeder.mutate(rng.choice(parents), settings.mutation_prob),
                                   settings.mutations, within, taken)
            population += _children(breeder, lambda: breeder.cross(rng.choice(parents), rng.choice(parents)),
                                    settings.crossovers, within, taken)
        for path in population:
            scores[path_key(path)] = float(score(path))
        best = _ranked(scores, cost)[0]
        history.append({'generation': generation, 'new_paths': len(population), 'evaluations': len(scores),
                        'best_score': scores[best], 'best_path': best})
        logger.info('evolution: generation %d/%d, %d new paths, %d scored, best %.3f %s', generation,
                    settings.generations, len(population), len(scores), scores[best], best)
        if state_file and write_state:
            write_json_atomic({'settings': asdict(settings), 'context': context, 'generation': generation,
                               'scores': scores, 'history': history, 'rng': _rng_state(rng)}, state_file)
    best = _ranked(scores, cost)[0]
    return EvolutionResult(best_path=key_path(best), best_score=scores[best], evaluations=len(scores),
                           history=history, scores=scores)
