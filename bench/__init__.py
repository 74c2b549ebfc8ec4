"""Benchmarks: each prints its measurements as ratios against a baseline measured in the same run.

Run one with ``python -m bench.bench_ingest`` (each accepts ``--help``), or all with ``make bench``.
They are not tests: this machine is shared and noisy, so nothing here asserts a time.
"""

import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn

# sizes and counts: the same argparse type as the CLI's (a whole number of at least 1, or a usage error)
from loyalty_monitor.cli._common import positive_int

__all__ = ["positive_int", "run_main"]


def _exit_on_signal(signum: int, _frame: Any) -> None:
    # once: a second SIGTERM (`timeout` signals the whole group, `python -m bench` passes it on too)
    # must not interrupt the cleanup the first one started
    signal.signal(signum, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def run_main(main: Callable[[], int | None]) -> NoReturn:
    """Run a benchmark's ``main`` so that SIGTERM (a CI timeout, ``kill``) unwinds it as Ctrl-C
    does: its ``with`` and ``finally`` blocks stop the embedded broker and remove its temporary
    directories; killed by the default handler, it left a Tansu process and gigabytes behind."""
    signal.signal(signal.SIGTERM, _exit_on_signal)
    sys.exit(main())
