"""Benchmarks: each prints its measurements as ratios against a baseline measured in the same run.

Run one with ``python -m bench.bench_ingest`` (each accepts ``--help``), or all with ``make bench``.
They are not tests: this machine is shared and noisy, so nothing here asserts a time.
"""

import argparse


def positive_int(text: str) -> int:
    """An argparse type for sizes and counts: a whole number of at least 1, or a clear usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
