"""Latency on the user's own device: a per-op latency table of a search space (``table``), measured part by part
(``parts``, ``runtimes``, ``timing``, ``measure``); lib/experiments/latency_check.py checks its predictions against
whole networks. tools/latency_table.py drives them; a search can take the table as its budget's measure."""
