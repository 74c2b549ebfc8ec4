"""Generator throughput and memory: ``python -m bench.bench_generator [--events N]``.

Prints, measured in the same run on the same machine:
- lines written per second by ``loyalty_monitor.generator.generate`` (target: at least 100,000/s),
  as a ratio against a baseline that only serialises equally many touchpoint-shaped records with
  ``json.dumps`` and writes them (no simulation at all: the cost of the output alone);
- peak RSS of a run with N events against one with N/5 events: the generator streams, so memory
  follows the number of customers' state, not the number of events (target: ratio well under 5).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import positive_int, run_main

TARGET_LINES_PER_S = 100_000
START, END = "2025-01-01", "2026-06-30"


def run_generator(out: Path, events: int) -> dict:
    from loyalty_monitor.generator import generate

    started, cpu_started = time.perf_counter(), time.process_time()
    summary = generate(out, start=START, end=END, seed=1, target_events=events)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    return {"lines": summary.touchpoint_lines, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_json_baseline(out: Path, lines: int) -> tuple[float, float]:
    """(wall, CPU) seconds to json.dumps and write ``lines`` touchpoint-shaped records: output alone."""
    rng = random.Random(1)
    started, cpu_started = time.perf_counter(), time.process_time()
    with (out / "baseline.jsonl").open("w", encoding="utf-8", buffering=1 << 20) as fh:
        for n in range(lines):
            record = {"schema_version": 1, "event_id": f"00000000-0000-4000-8000-{n:012x}",
                      "event_type": "call", "occurred_at": "2025-03-04T10:15:00+01:00",
                      "customer_id": f"C{n % 10_000:06d}", "department": "sales", "direction": "outbound",
                      "employee_id": "AM01", "contact_role": "decision_maker", "source": "crm",
                      "payload": {"answered": True, "duration_s": int(rng.random() * 1500),
                                  "transferred": False, "resolved": True}}
            fh.write(json.dumps(record) + "\n")
    return time.perf_counter() - started, time.process_time() - cpu_started


def child(events: int) -> None:
    """Run one generation in this (fresh) process and print its numbers as JSON."""
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp:
        print(json.dumps(run_generator(Path(tmp), events)))


def measure_in_child(events: int) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.bench_generator", "--child", str(events)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive_int, default=1_000_000, help="valid events in the large run")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return 0

    print(f"generator bench: {args.events:,} events over {START}..{END} (each size in a fresh process)",
          flush=True)
    small = measure_in_child(max(1, args.events // 5))
    large = measure_in_child(args.events)
    with tempfile.TemporaryDirectory(prefix="bench-generator-") as tmp:
        baseline_s, baseline_cpu_s = run_json_baseline(Path(tmp), large["lines"])
    n = large["lines"]
    rate, cpu_rate = n / large["seconds"], n / large["cpu_seconds"]
    baseline_rate, baseline_cpu_rate = n / baseline_s, n / baseline_cpu_s
    # CPU time is printed too: on a shared machine wall time mostly measures the neighbours
    print(f"generate:           {n:>12,} lines in {large['seconds']:6.1f} s wall = {rate:>10,.0f} lines/s; "
          f"{cpu_rate:>10,.0f} lines per CPU second")
    print(f"json.dumps + write: {n:>12,} lines in {baseline_s:6.1f} s wall = {baseline_rate:>10,.0f} lines/s; "
          f"{baseline_cpu_rate:>10,.0f} lines per CPU second")
    print(f"ratio generate / json.dumps-only baseline: {rate / baseline_rate:.2f} (wall), "
          f"{cpu_rate / baseline_cpu_rate:.2f} (CPU)")
    print(f"ratio generate / target of {TARGET_LINES_PER_S:,} lines/s: {rate / TARGET_LINES_PER_S:.2f} (wall), "
          f"{cpu_rate / TARGET_LINES_PER_S:.2f} (per CPU second)")
    print(f"peak RSS: {small['peak_rss_mb']:.0f} MB for {small['lines']:,} lines, "
          f"{large['peak_rss_mb']:.0f} MB for {large['lines']:,} lines; "
          f"ratio {large['peak_rss_mb'] / small['peak_rss_mb']:.2f} for {large['lines'] / small['lines']:.1f}x the events")
    return 0


if __name__ == "__main__":
    run_main(main)
