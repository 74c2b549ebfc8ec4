"""Quality-gate cost for one day of data on a long history: ``python -m bench.bench_quality [--events N]``.

Builds (once, cached under bench/results/) a landing zone from the generator: N events over 18
months ending yesterday, landed with ``land_jsonl_offline`` except the last day, which is landed
afterwards as "the new data of a run". Then, in one process and on the same machine:

- baseline: that day's incremental ``warehouse.build`` (dbt) after the history was built (with the
  landing-overlap margin at 0, as a streaming consumer's daily run: bench/history_settings.py);
- measured: ``validate_landing`` (only the new day's files; history is read for event-id
  conflicts, the volume band and known customers) plus ``validate_marts`` of the built day.

Prints the gate time as a ratio to the dbt time (target: at most 0.5), with the GX context
already open (a long-lived worker) and, separately, the cold cost of a fresh ``loyalty validate``
process (imports included). Without the warehouse part (no ``loyalty_monitor.warehouse.build``),
it measures validation alone and says so. Nothing here asserts a time: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from bench import positive_int, run_main
from bench.history_settings import settings_for_history_bench

TARGET_RATIO = 0.5
ROOT = Path(__file__).resolve().parent.parent
_OCCURRED = re.compile(r'"occurred_at"\s*:\s*"([^"]+)"')


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _split_last_day(source: Path, history: Path, day_file: Path, last_day: date) -> tuple[int, int]:
    """Split the generator's touchpoints into the history and the last day (by UTC occurred_at)."""
    kept = new = 0
    with source.open("rb") as src, history.open("wb") as hist, day_file.open("wb") as day:
        for line in src:
            match = _OCCURRED.search(line.decode("utf-8", "replace"))
            on_day = False
            if match:
                try:
                    stamp = datetime.fromisoformat(match.group(1).replace("z", "Z"))
                    on_day = stamp.tzinfo is not None and stamp.astimezone(timezone.utc).date() == last_day
                except ValueError:
                    on_day = False
            if on_day:
                day.write(line)
                new += 1
            else:
                hist.write(line)
                kept += 1
    return kept, new


def _warehouse():
    try:
        from loyalty_monitor import warehouse
    except ImportError:
        return None
    return warehouse if hasattr(warehouse, "build") else None


def prepare(work: Path, events: int, fresh: bool) -> dict:
    """Generate and land the history once; returns the recorded layout."""
    from loyalty_monitor.generator import generate
    from streaming.landing import land_jsonl_offline

    marker = work / "prepared.json"
    if marker.exists() and not fresh:
        return json.loads(marker.read_text())
    if work.exists():
        import shutil
        shutil.rmtree(work)
    work.mkdir(parents=True)
    last_day = datetime.now(timezone.utc).date() - timedelta(days=1)
    gen = work / "generated"
    _say(f"generating ~{events:,} events ending {last_day} ...")
    summary = generate(gen, end=last_day, target_events=events, seed=7)
    _say(f"generated {summary.touchpoint_lines:,} touchpoint lines, {summary.customers:,} customers "
         f"in {summary.seconds:.0f}s")
    history, day_file = work / "history.jsonl", work / "last_day.jsonl"
    kept, new = _split_last_day(summary.touchpoints_file, history, day_file, last_day)
    _say(f"split: {kept:,} history lines, {new:,} lines on {last_day}")
    settings = settings_for_history_bench(work / "data")
    started = time.perf_counter()
    landed = land_jsonl_offline(settings, history, summary.customers_file)
    _say(f"landed history: {landed['touchpoints'].landed:,} touchpoints in "
         f"{time.perf_counter() - started:.0f}s")
    info = {"events": events, "last_day": str(last_day), "history_lines": kept, "day_lines": new,
            "day_file": str(day_file), "data_dir": str(work / "data"), "history_built": False}
    marker.write_text(json.dumps(info, indent=1))
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive_int, default=10_000_000, help="history size (default 10M)")
    parser.add_argument("--work", type=Path, default=None,
                        help="work directory (default bench/results/quality-<events>)")
    parser.add_argument("--fresh", action="store_true", help="regenerate even if cached")
    parser.add_argument("--no-dbt", action="store_true",
                        help="skip dbt (measure how validation scales with history alone)")
    args = parser.parse_args()
    work = args.work or ROOT / "bench" / "results" / f"quality-{args.events}"
    info = prepare(work, args.events, args.fresh)

    from expectations.gate import validate_landing, validate_marts
    from streaming.landing import land_offline_file

    settings = settings_for_history_bench(Path(info["data_dir"]))
    last_day = date.fromisoformat(info["last_day"])
    warehouse = None if args.no_dbt else _warehouse()
    marker = work / "prepared.json"

    if not info.get("history_validated"):
        _say("validating the whole history once (the first run of a new gate) ...")
        started = time.perf_counter()
        first = validate_landing(settings, now=datetime.combine(last_day, datetime.min.time(), timezone.utc))
        _say(f"history validated in {time.perf_counter() - started:.1f}s: "
             f"{'passed' if first.passed else 'FAILED'}; {sum(first.rows.values()):,} rows")
        for finding in first.critical_failures + first.warnings:
            _say(f"  {finding.line()}")
        info["history_validated"] = True
        marker.write_text(json.dumps(info, indent=1))
    if warehouse and not info.get("history_built"):
        _say(f"dbt: building the history up to {last_day - timedelta(days=1)} (full) ...")
        started = time.perf_counter()
        warehouse.build(settings, as_of=last_day - timedelta(days=1), full_refresh=True)
        _say(f"history built in {time.perf_counter() - started:.0f}s")
        info["history_built"] = True
        marker.write_text(json.dumps(info, indent=1))

    # The new day arrives. A rerun of the bench re-lands the same file names (a replay).
    landed = land_offline_file(settings, "touchpoint", Path(info["day_file"]))
    _say(f"landed the new day {last_day}: {landed.landed:,} touchpoints in {len(landed.files)} file(s)")
    run_now = datetime.now(timezone.utc)

    # Warm: the GX context is opened once per process (as in a long-lived worker); open it first.
    from expectations.context import open_context
    started = time.perf_counter()
    open_context(settings)
    context_s = time.perf_counter() - started

    started = time.perf_counter()
    landing = validate_landing(settings, now=run_now)
    landing_s = time.perf_counter() - started
    _say(f"landing gate: {landing_s:.2f}s, {'passed' if landing.passed else 'FAILED'}, rows {landing.rows}")
    for finding in landing.critical_failures + landing.warnings:
        _say(f"  {finding.line()}")

    results = {"events": info["events"], "day": str(last_day), "day_touchpoints": landed.landed,
               "gx_context_open_s": round(context_s, 3), "landing_gate_s": round(landing_s, 3)}
    if warehouse:
        started = time.perf_counter()
        warehouse.build(settings, as_of=last_day)
        dbt_s = time.perf_counter() - started
        _say(f"dbt incremental build of {last_day}: {dbt_s:.2f}s")
        started = time.perf_counter()
        marts = validate_marts(settings, last_day)
        marts_s = time.perf_counter() - started
        _say(f"marts gate: {marts_s:.2f}s, {'passed' if marts.passed else 'FAILED'}, rows {marts.rows}")
        for finding in marts.critical_failures + marts.warnings:
            _say(f"  {finding.line()}")
        ratio = (landing_s + marts_s) / dbt_s
        results.update(dbt_incremental_s=round(dbt_s, 3), marts_gate_s=round(marts_s, 3),
                       ratio_gate_to_dbt=round(ratio, 3))
    else:
        _say("no dbt run (--no-dbt, or loyalty_monitor.warehouse.build missing): validation alone, no ratio")

    # Cold: a fresh `loyalty validate` process (imports GX and opens the context itself).
    env = {**os.environ, "LOYALTY_DATA_DIR": info["data_dir"]}
    started = time.perf_counter()
    cold = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "validate", "--stage", "landing",
                           "--dates", str(last_day), "--no-notify", "--format", "json"],
                          env=env, capture_output=True, text=True, cwd=ROOT)
    results["cold_cli_landing_s"] = round(time.perf_counter() - started, 3)
    results["cold_cli_exit"] = cold.returncode

    print("\nresults:")
    for key, value in results.items():
        print(f"  {key:24} {value}")
    if "ratio_gate_to_dbt" in results:
        verdict = "meets" if results["ratio_gate_to_dbt"] <= TARGET_RATIO else "MISSES"
        print(f"\nquality gate / incremental dbt run = {results['ratio_gate_to_dbt']:.3f} "
              f"({verdict} the target of at most {TARGET_RATIO})")
    out = ROOT / "bench" / "results" / f"bench_quality-{info['events']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    run_main(main)
