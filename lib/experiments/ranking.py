"""How well one ordering of paths agrees with another: rank correlations with bootstrap intervals, top-k
overlap, and where a chosen path falls among the stand-alone results. Plain numbers in, plain numbers out."""
import math
import warnings
from typing import Dict, Optional, Sequence

import numpy as np
from scipy import stats


def kendall_tau(truth: Sequence[float], scores: Sequence[float]) -> float:
    """Kendall's tau-b of ``scores`` against ``truth`` (nan when either is constant)."""
    with warnings.catch_warnings():  # constant input: nan, said by the value
        warnings.simplefilter('ignore', stats.ConstantInputWarning)
        return float(stats.kendalltau(truth, scores).statistic)


def spearman_rho(truth: Sequence[float], scores: Sequence[float]) -> float:
    """Spearman's rho of ``scores`` against ``truth`` (nan when either is constant)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', stats.ConstantInputWarning)
        return float(stats.spearmanr(truth, scores).statistic)


def bootstrap_interval(truth: Sequence[float], scores: Sequence[float], statistic=kendall_tau,
                       resamples: int = 1000, level: float = 0.9, seed: int = 0) -> Dict[str, float]:
    """The ``level`` percentile interval of ``statistic`` over ``resamples`` resamplings of the paths (with
    replacement; resamples where it is undefined are dropped)."""
    truth, scores = np.asarray(truth, dtype=float), np.asarray(scores, dtype=float)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(truth), len(truth))
        value = statistic(truth[pick], scores[pick])
        if math.isfinite(value):
            values.append(value)
    if not values:
        return {'low': math.nan, 'high': math.nan}
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return {'low': float(low), 'high': float(high)}


def top_k_overlap(truth: Sequence[float], scores: Sequence[float], k: int) -> float:
    """Share of the ``k`` best paths by ``truth`` that are also among the ``k`` best by ``scores``
    (ties broken by position)."""
    k = min(k, len(truth))
    best_truth = set(np.argsort(-np.asarray(truth, dtype=float), kind='stable')[:k].tolist())
    best_scores = set(np.argsort(-np.asarray(scores, dtype=float), kind='stable')[:k].tolist())
    return len(best_truth & best_scores) / k


def percentile_of(value: float, population: Sequence[float]) -> float:
    """Percent of ``population`` strictly below ``value``, plus half of the ties (0: worst, 100: best)."""
    population = np.asarray(population, dtype=float)
    below = float(np.sum(population < value)) + 0.5 * float(np.sum(population == value))
    return 100.0 * below / len(population)


def compare(truth: Sequence[float], scores: Sequence[float], k: int = 5, resamples: int = 1000,
            seed: int = 0) -> Dict[str, Optional[float]]:
    """Kendall's tau and Spearman's rho with 90% bootstrap intervals, and the top-``k`` overlap."""
    return {'kendall_tau': kendall_tau(truth, scores),
            'kendall_tau_ci': bootstrap_interval(truth, scores, kendall_tau, resamples, seed=seed),
            'spearman_rho': spearman_rho(truth, scores),
            'spearman_rho_ci': bootstrap_interval(truth, scores, spearman_rho, resamples, seed=seed),
            f'top{k}_overlap': top_k_overlap(truth, scores, k), 'paths': len(truth)}
