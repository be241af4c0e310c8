"""Throughput benchmarks of the search step and its neighbours on synthetic data (tools/benchmark.py,
tools/profile_step.py): settings, the phases, their result lines."""
