"""The evolutionary search (lib/search/evolution.py) on a synthetic landscape whose optimum within the budget is
known: it finds it, scores only paths within the budget, each once, counts its evaluations, and an interrupted
run resumes to the same result as an uninterrupted one."""
import itertools
import json

import pytest

from lib.models.paths import path_key
from lib.search.evolution import EvolutionError, EvolutionSettings, evolve

LAYERS, OPS = (2, 2, 2), 6
TARGET = ((5, 5), (4, 0), (5, 3))  # the unconstrained optimum; it costs 22, above the budget
BUDGET = 18  # cost = the sum of the op indices


def cost(path):
    return sum(op for stage in path for op in stage)


def within(path):
    return cost(path) <= BUDGET


def score(path):
    return -sum(abs(op - t) for stage, target in zip(path, TARGET) for op, t in zip(stage, target))


def optimum_within_budget():
    paths = [tuple(tuple(p[i:i + 2]) for i in (0, 2, 4)) for p in itertools.product(range(OPS), repeat=6)]
    best = max(score(p) for p in paths if within(p))
    return best, {p for p in paths if within(p) and score(p) == best}


SETTINGS = EvolutionSettings(population=12, generations=12, parents=4, mutations=8, crossovers=8,
                             mutation_prob=0.3, seed=5)


def counting(function):
    calls = []

    def wrapped(path):
        calls.append(path)
        return function(path)
    return wrapped, calls


def test_it_finds_the_optimum_within_the_budget_and_counts_its_evaluations():
    best_score, optima = optimum_within_budget()
    scorer, calls = counting(score)
    result = evolve(LAYERS, OPS, scorer, within, SETTINGS, cost=cost)
    assert result.best_score == best_score and result.best_path in optima
    assert all(within(p) for p in calls)  # nothing outside the budget was ever scored
    assert len(calls) == len(set(calls)) == result.evaluations <= SETTINGS.max_evaluations
    assert result.evaluations < 6 ** 6 / 10  # far fewer than the space's 46656 paths
    assert [h['evaluations'] for h in result.history] == sorted(h['evaluations'] for h in result.history)
    assert len(result.history) == SETTINGS.generations + 1


def test_a_random_search_of_the_same_evaluations_does_worse_here():
    """The landscape rewards breeding: the same number of uniform draws within the budget misses the optimum."""
    result = evolve(LAYERS, OPS, score, within, SETTINGS, cost=cost)
    only_random = EvolutionSettings(population=result.evaluations, generations=0, parents=1, mutations=0,
                                    crossovers=0, seed=5)
    assert evolve(LAYERS, OPS, score, within, only_random, cost=cost).best_score < result.best_score


def test_start_paths_within_the_budget_join_generation_zero():
    start = [((0, 0), (0, 0), (0, 1)), TARGET]  # the second is outside the budget
    scorer, calls = counting(score)
    evolve(LAYERS, OPS, scorer, within, EvolutionSettings(population=3, generations=0, seed=1), start=start)
    assert calls[0] == start[0] and TARGET not in calls and len(calls) == 3


class Interrupted(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_result(tmp_path):
    whole = evolve(LAYERS, OPS, score, within, SETTINGS, cost=cost, state_file=str(tmp_path / 'whole.json'))
    state = tmp_path / 'state.json'

    def dies_after(n):
        calls = []

        def scorer(path):
            if len(calls) == n:
                raise Interrupted()
            calls.append(path)
            return score(path)
        return scorer
    with pytest.raises(Interrupted):
        evolve(LAYERS, OPS, dies_after(40), within, SETTINGS, cost=cost, state_file=str(state))
    saved = json.loads(state.read_text())
    assert 0 <= saved['generation'] < SETTINGS.generations  # died midway, after a finished generation
    scorer, calls = counting(score)
    resumed = evolve(LAYERS, OPS, scorer, within, SETTINGS, cost=cost, state_file=str(state))
    assert (resumed.best_path, resumed.best_score, resumed.evaluations) == (
        whole.best_path, whole.best_score, whole.evaluations)
    assert resumed.history == whole.history and resumed.scores == whole.scores
    assert not set(map(path_key, calls)) & set(saved['scores'])  # nothing scored before is scored again
    # a finished state: the rerun scores nothing
    scorer, calls = counting(score)
    assert evolve(LAYERS, OPS, scorer, within, SETTINGS, cost=cost, state_file=str(state)).best_path == whole.best_path
    assert calls == []


def test_a_state_of_other_settings_and_an_empty_budget_are_errors(tmp_path):
    state = str(tmp_path / 'state.json')
    evolve(LAYERS, OPS, score, within, EvolutionSettings(population=2, generations=1, parents=1, mutations=1,
                                                         crossovers=1), state_file=state)
    with pytest.raises(EvolutionError, match='other settings'):
        evolve(LAYERS, OPS, score, within, EvolutionSettings(population=3, generations=1), state_file=state)
    with pytest.raises(EvolutionError, match='widen the budget'):
        evolve(LAYERS, OPS, score, lambda p: False, EvolutionSettings(population=2, generations=0))
