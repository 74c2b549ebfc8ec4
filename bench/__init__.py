"""Benchmarks: each prints its measurements as ratios against a baseline measured in the same run.

Run one with ``python -m bench.bench_ingest`` (each accepts ``--help``), or all with ``make bench``.
They are not tests: this machine is shared and noisy, so nothing here asserts a time.
"""
