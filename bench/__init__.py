"""doa's benchmarks: scripts (``python bench/bench_X.py``) and commands (``python -m bench``).

A package so that ``mypy bench`` checks its modules under one name each (``bench.peers_run``
imports ``bench.peers_workload``); the scripts that import ``bench_codec`` from their own
directory still run as scripts.
"""
