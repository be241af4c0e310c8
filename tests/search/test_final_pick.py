"""The final pick's candidates (lib.search.final_pick): sampled paths within the budget, and the choice."""
from lib.search.final_pick import Candidate, best_candidate, sampled_paths


def test_sampled_paths_are_distinct_within_the_budget_and_the_same_for_a_seed():
    def within(path):
        return sum(op for stage in path for op in stage) <= 6
    paths = sampled_paths((1, 2, 1, 1, 1), 6, seed=3, count=8, within=within)
    assert len(paths) == 8 and len(set(paths)) == 8 and all(within(p) for p in paths)
    assert paths == sampled_paths((1, 2, 1, 1, 1), 6, seed=3, count=8, within=within)
    assert paths != sampled_paths((1, 2, 1, 1, 1), 6, seed=4, count=8, within=within)


def test_a_space_with_fewer_paths_than_asked_gives_them_all_and_a_budget_none_meets_gives_none():
    assert len(sampled_paths((1, 1, 1, 1, 1), 2, seed=0, count=100, within=lambda p: True)) == 32
    assert sampled_paths((1, 1, 1, 1, 1), 6, seed=0, count=4, within=lambda p: False) == []


def test_the_best_val_prec1_wins_then_fewer_flops_then_the_board():
    def candidate(val, flops, source):
        return Candidate(path=((0,),), board_cost=flops, macs=1.0, params=1.0, val_prec1=val, prec1=None, source=source)
    low, best, cheaper, board = (candidate(50, 1, 'board'), candidate(70, 9, 'sampled'), candidate(70, 8, 'sampled'),
                                 candidate(70, 8, 'board'))
    assert best_candidate([low, best]) is best
    assert best_candidate([low, best, cheaper]) is cheaper
    assert best_candidate([cheaper, board]) is board
    assert best_candidate([]) is None
