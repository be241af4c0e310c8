import math

from lib.experiments.ranking import bootstrap_interval, compare, kendall_tau, percentile_of, spearman_rho, top_k_overlap


def test_rank_correlations_of_known_orderings():
    truth = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert math.isclose(kendall_tau(truth, [10, 20, 30, 40, 50]), 1.0)
    assert math.isclose(kendall_tau(truth, [5, 4, 3, 2, 1]), -1.0)
    assert math.isclose(spearman_rho(truth, [1, 4, 9, 16, 25]), 1.0)  # monotone: rank correlation 1
    # one swapped neighbour pair out of 10 pairs: (9 - 1) / 10
    assert math.isclose(kendall_tau(truth, [1, 2, 3, 5, 4]), 0.8)
    assert math.isnan(kendall_tau(truth, [7, 7, 7, 7, 7]))


def test_bootstrap_interval_brackets_the_statistic_and_is_seeded():
    truth = list(range(20))
    scores = [t + (3 if t % 4 == 0 else 0) for t in truth]
    ci = bootstrap_interval(truth, scores, kendall_tau, resamples=200, seed=1)
    assert ci['low'] <= kendall_tau(truth, scores) <= ci['high'] <= 1.0
    assert ci == bootstrap_interval(truth, scores, kendall_tau, resamples=200, seed=1)
    perfect = bootstrap_interval(truth, truth, kendall_tau, resamples=50)
    assert math.isclose(perfect['low'], 1.0) and math.isclose(perfect['high'], 1.0)


def test_top_k_overlap_and_percentile():
    truth = [0.9, 0.8, 0.7, 0.1, 0.2]
    assert top_k_overlap(truth, [5, 4, 3, 2, 1], k=2) == 1.0
    assert top_k_overlap(truth, [1, 2, 3, 5, 4], k=2) == 0.0
    assert top_k_overlap(truth, [5, 1, 4, 2, 3], k=2) == 0.5
    population = [70.0, 80.0, 90.0, 60.0]
    assert percentile_of(95.0, population) == 100.0
    assert percentile_of(50.0, population) == 0.0
    assert percentile_of(80.0, population) == 62.5  # two below, one tie


def test_compare_reports_everything():
    result = compare([1, 2, 3, 4, 5, 6], [4, 3, 2, 1, 6, 5], k=3, resamples=100)
    assert set(result) == {'kendall_tau', 'kendall_tau_ci', 'spearman_rho', 'spearman_rho_ci', 'top3_overlap', 'paths'}
    assert math.isclose(result['kendall_tau'], 1 / 15)  # 8 concordant, 7 discordant pairs
    assert result['top3_overlap'] == 2 / 3 and result['paths'] == 6
