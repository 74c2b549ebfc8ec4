"""What the DAG adds to dbt's own work: ``python -m bench.bench_run_overhead``.

A daily ``loyalty run`` runs the ``loyalty_pipeline`` DAG in-process: one Airflow task per dbt model
(astronomer-cosmos, each a ``dbt build`` of its model and that model's data tests), the landing and
marts gates, the population step, publish and dispatch. The baseline, measured in the same run on
the same warehouse and date, is ``loyalty warehouse build`` of that date: the same models and data
tests in one dbt invocation, then the population step. Both run in a fresh process, the way a user
or a scheduler starts them, alternating, ``--repeats`` times each, after a first ``loyalty run``
that built the history and migrated Airflow's metadata database (not measured).

Printed: the median seconds of each, their ratio, and what the DAG adds per dbt task
((run - build) / tasks): an upper bound of the per-task overhead, since the difference also holds
what a run pays once (Airflow's start, loading the DAG, the two quality gates, publish, dispatch).
It is the figure per-task overhead (docs/operations.md, "what a daily run costs") moves.
Results: ``bench/results/run_overhead.json`` (``--out``).

    python -m bench.bench_run_overhead [--customers 40] [--months 9] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import run_main
from loyalty_core.settings import load_settings
from loyalty_monitor.generator import generate
from streaming.landing import land_jsonl_offline

RESULTS = Path(__file__).parent / "results" / "run_overhead.json"


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # its output on failure
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return seconds, proc.stdout


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_run_overhead")
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--months", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.customers < 1 or args.months < 1 or args.repeats < 1:
        parser.error("--customers, --months and --repeats must be at least 1")
    loyalty = str(Path(sys.executable).parent / "loyalty")
    end = dt.date.today() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=round(args.months * 30.4))
    with tempfile.TemporaryDirectory(prefix="bench-run-overhead-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = load_settings(data_dir=data_dir, bootstrap_servers="")
        print(f"bench_run_overhead: {args.customers} customers over {args.months} months, as of {end}", flush=True)
        generated = generate(Path(tmp) / "generated", customers=args.customers, start=start.isoformat(),
                             end=end.isoformat(), seed=7)
        land_jsonl_offline(settings, generated.touchpoints_file, generated.customers_file)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "AIRFLOW"))}
        env.update({"LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_ALERT_CHANNELS": "file",
                    "LOYALTY_TASK_RETRIES": "0"})
        run = [loyalty, "run", "--as-of", end.isoformat()]
        build = [loyalty, "warehouse", "build", "--as-of", end.isoformat()]
        first, out = _timed(run, env)
        tasks = sum(1 for line in out.splitlines() if line.startswith("    dbt_build."))
        if tasks == 0:
            raise SystemExit(f"no dbt task in the output of {' '.join(run)}:\n{out[-3000:]}")
        print(f"  first run (builds the history, migrates Airflow's database; not compared): {first:.0f} s, "
              f"{tasks} dbt tasks", flush=True)
        runs, builds = [], []
        for n in range(1, args.repeats + 1):
            builds.append(_timed(build, env)[0])
            runs.append(_timed(run, env)[0])
            print(f"  [{n}/{args.repeats}] loyalty warehouse build {builds[-1]:.1f} s, loyalty run {runs[-1]:.1f} s",
                  flush=True)
    run_s, build_s = statistics.median(runs), statistics.median(builds)
    per_task = (run_s - build_s) / tasks
    print(f"  median: loyalty run {run_s:.1f} s / loyalty warehouse build {build_s:.1f} s "
          f"= ratio {run_s / build_s:.2f}")
    print(f"  the DAG beyond dbt: {run_s - build_s:.1f} s, at most {per_task:.2f} s per dbt task ({tasks} tasks; "
          "the run's one-off costs are in it too)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "customers": args.customers, "months": args.months, "dbt_tasks": tasks, "first_run_s": round(first, 1),
        "run_s": [round(s, 1) for s in runs], "build_s": [round(s, 1) for s in builds],
        "ratio_run_to_build": round(run_s / build_s, 3), "dag_seconds_per_task_at_most": round(per_task, 3),
        "load_average": os.getloadavg()[0]}, indent=2) + "\n")
    print(f"  results: {args.out}")
    return 0


if __name__ == "__main__":
    run_main(lambda: main(sys.argv[1:]))
