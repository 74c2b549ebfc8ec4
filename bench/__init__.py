"""Benchmarks: each prints its measurements as ratios against a baseline measured in the same run.

Run one with ``python -m bench.bench_ingest`` (each accepts ``--help``), or all with ``make bench``.
They are not tests: this machine is shared and noisy, so nothing here asserts a time.
"""

# sizes and counts: the same argparse type as the CLI's (a whole number of at least 1, or a usage error)
from loyalty_monitor.cli._common import positive_int

__all__ = ["positive_int"]
