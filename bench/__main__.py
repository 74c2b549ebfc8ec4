"""Run the benchmarks in turn (``make bench``).

    python -m bench                  every benchmark at its full documented size (hours on 2 cores),
                                     alert quality also on its held-out histories
    python -m bench --quick          every benchmark at a size that runs in minutes
    python -m bench ingest warehouse only these (names without the ``bench_`` prefix)

To pass options to one benchmark, run it directly: ``python -m bench.bench_ingest --help``.
"""

from __future__ import annotations

import argparse
import pkgutil
import signal
import subprocess
import sys
from pathlib import Path

_RESULTS = Path(__file__).parent / "results"
# Sizes for --quick: the same measurements, scaled down; results that a full run would write to the
# same file go to a file of their own (a quick run never overwrites the full figures).
QUICK_ARGS = {
    "bench_ingest": ["--events", "100000", "--rss-events", "100000,1000000"],
    "bench_generator": ["--events", "1000000"],
    "bench_warehouse": ["--events", "1000000"],
    "bench_quality": ["--events", "1000000"],
    "bench_alerting": [],
    "bench_alert_quality": ["--quick"],
    "bench_demo": [],
    "bench_bgnbd": [],
    "bench_latency": ["--customers", "120", "--months", "6", "--events", "5", "--warm-up", "1",
                      "--out", str(_RESULTS / "latency_quick.json")],
    "bench_run_overhead": ["--repeats", "1", "--out", str(_RESULTS / "run_overhead_quick.json")],
}
# Full runs only: further runs of a benchmark after its default one.
ALSO_FULL = {
    # the histories no setting was chosen on: the honest figure beside the tuned one
    "bench_alert_quality": [["--holdout"]],
}


def runs(modules: list[str], quick: bool) -> list[tuple[str, list[str]]]:
    """``(module, arguments)`` in the order to run them."""
    if quick:
        return [(name, QUICK_ARGS.get(name, [])) for name in modules]
    return [(name, extra) for name in modules for extra in [[], *ALSO_FULL.get(name, [])]]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="scaled-down sizes that run in minutes")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    args = parser.parse_args()
    here = Path(__file__).parent
    modules = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if args.names:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.names}
        unknown = wanted - set(modules)
        if unknown:
            parser.error(f"no such benchmark: {', '.join(sorted(unknown))} (have: {', '.join(modules)})")
        modules = [m for m in modules if m in wanted]
    failed = []
    running: list[subprocess.Popen] = []
    stopped: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        # SIGTERM to `make bench`: pass it on so the running benchmark cleans up (bench.run_main);
        # the loop below waits for it, then stops (a wait here would deadlock the interrupted one)
        stopped.append(signum)
        for child in running:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    for name, extra in runs(modules, args.quick):
        if stopped:  # between two benchmarks: start no further one
            return 128 + stopped[0]
        print(f"\n=== bench.{name} {' '.join(extra)} ===", flush=True)
        child = subprocess.Popen([sys.executable, "-m", f"bench.{name}", *extra])
        running[:] = [child]
        if stopped:  # it came while the benchmark was being started
            child.terminate()
        code = child.wait()
        if stopped:
            return 128 + stopped[0]
        if code != 0:
            failed.append(" ".join([name, *extra]))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
