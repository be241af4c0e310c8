"""Experiments on whether the search works: a small real data set, stand-alone ground truth, the supernet's
ranking against it, and the miniature ablation that runs them together."""
