"""The main job's time budget: `loyalty demo` at its default size must finish within 10 minutes.

Runs the demo in a temporary data directory and prints each step's time and share, and the total as a
ratio to the 10-minute target (at most 1.0 passes), plus the leadership report's render time as a
ratio to the pipeline run it reports on (measured in the same run).

    python -m bench.bench_demo [--customers 500] [--months 18]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench import positive_int, run_main
from loyalty_core.settings import load_settings
from loyalty_monitor.demo import run_demo

TARGET_S = 600.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_demo")
    parser.add_argument("--customers", type=positive_int, default=500)
    parser.add_argument("--months", type=positive_int, default=18)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        settings = load_settings(data_dir=Path(tmp), bootstrap_servers="")
        started = time.monotonic()
        summary = run_demo(settings, customers=args.customers, months=args.months)
        total = time.monotonic() - started
    print(f"\nbench_demo: {args.customers} customers over {args.months} months")
    for step in summary.steps:
        print(f"  {step.name[:60]:<60} {step.state:<11} {step.seconds:7.1f} s  {step.seconds / total:6.1%}")
    print(f"  total {total:.0f} s; target {TARGET_S:.0f} s; ratio {total / TARGET_S:.2f} "
          f"({'PASS' if total <= TARGET_S and summary.ok else 'FAIL'})")
    timings = {s.name: s.seconds for s in summary.steps}
    pipeline = next((v for k, v in timings.items() if k.startswith("run the pipeline")), None)
    report = timings.get("write the leadership report")
    if pipeline and report:
        print(f"  report render / pipeline run: {report:.1f} s / {pipeline:.1f} s = {report / pipeline:.3f}")
    return 0 if summary.ok and total <= TARGET_S else 1


if __name__ == "__main__":
    run_main(lambda: main(sys.argv[1:]))
