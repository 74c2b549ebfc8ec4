"""Warehouse build times: ``python -m bench.bench_warehouse [--events N [N ...]]``.

For each size, a generated 12-month history (``loyalty_monitor.generator``, the real landing code
``streaming.landing.land_jsonl_offline``) is landed up to a cut date and the warehouse is built
from scratch (``warehouse.build(full_refresh=True)``: every model and data test, unit tests
excluded as in production). Then one more day of events (plus the events sent late about earlier
days) is landed and the daily incremental run is timed, and printed as a ratio to the full refresh
measured in the same run, with the dbt nodes that took longest. Target: the daily run costs at
most 10 % of a full refresh.

The landing-overlap safety margin is set to 0 (bench/history_settings.py says why).
Results are also written to bench/results/warehouse.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.history_settings import settings_for_history_bench

START, CUT = "2025-07-02", dt.date(2026, 6, 30)
TARGET_RATIO = 0.10
TARGET_EVENTS = 10_000_000  # the size the target is set for
RESULTS = Path(__file__).parent / "results" / "warehouse.json"


def _settings(data_dir: Path):
    return settings_for_history_bench(data_dir, landing_url="", warehouse_path="")


def _split(source: Path, first: Path, second: Path, key: str) -> None:
    """Send order: everything before the first line dated after CUT, then the rest."""
    cut = CUT.isoformat()
    with source.open(encoding="utf-8") as src, first.open("w", encoding="utf-8") as a, \
            second.open("w", encoding="utf-8") as b:
        target = a
        for line in src:
            if target is a:
                try:
                    value = json.loads(line).get(key)
                except (ValueError, AttributeError):
                    value = None
                if isinstance(value, str) and value[:10] > cut:
                    target = b
            target.write(line)


def _land_as_partition(settings, scratch: Path, touchpoints: Path, customers: Path, partition: int) -> None:
    import shutil

    from loyalty_monitor.settings import load_settings
    from streaming.landing import land_jsonl_offline

    staging = load_settings(data_dir=scratch, landing_url="", warehouse_path="")
    land_jsonl_offline(staging, touchpoints, customers)
    for path in Path(staging.landing).rglob("*.parquet"):
        relative = path.relative_to(staging.landing)
        target = Path(settings.landing) / relative.with_name(path.name.replace("-p000-", f"-p{partition:03d}-"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)


class _SpillWatch:
    """Samples the size of DuckDB's spill directory (<warehouse>.tmp) once a second: the disk a
    build needs beyond the database file."""

    def __init__(self, warehouse_path: Path):
        import threading

        self.directory = Path(str(warehouse_path) + ".tmp")
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                size = sum(p.stat().st_size for p in self.directory.rglob("*") if p.is_file())
            except OSError:  # a spill file removed while listing
                continue
            self.peak_bytes = max(self.peak_bytes, size)

    def __enter__(self) -> "_SpillWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _peak_rss_gib() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2, 2)  # ru_maxrss is in KiB on Linux


def _timed(label: str, fn):
    print(f"  {label} ...", end="", flush=True)
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    print(f" {seconds:.1f}s", flush=True)
    return value, seconds


def run_size(events: int, work: Path, daily: bool) -> dict:
    from loyalty_monitor import warehouse
    from loyalty_monitor.generator import generate
    from streaming.landing import land_jsonl_offline

    print(f"\n{events:,} events", flush=True)
    history = work / "history"
    summary, _ = _timed("generate", lambda: generate(history, start=START, end=CUT + dt.timedelta(days=1),
                                                      seed=1, target_events=events))
    _split(summary.touchpoints_file, work / "tp1.jsonl", work / "tp2.jsonl", "occurred_at")
    _split(summary.customers_file, work / "cu1.jsonl", work / "cu2.jsonl", "updated_at")
    settings = _settings(work / "data")
    _timed("land history", lambda: land_jsonl_offline(settings, work / "tp1.jsonl", work / "cu1.jsonl"))
    # the JSON Lines are landed now: free their disk space for DuckDB's spill files (10M events
    # are about 7 GB of JSON)
    for path in (summary.touchpoints_file, work / "tp1.jsonl", work / "cu1.jsonl"):
        path.unlink()
    with _SpillWatch(Path(settings.warehouse)) as spill:
        result, full_seconds = _timed("full refresh build",
                                      lambda: warehouse.build(settings, as_of=CUT, full_refresh=True))
    print(f"    peak spill {spill.peak_bytes / 1024 ** 3:.1f} GiB, peak RSS so far {_peak_rss_gib():.1f} GiB", flush=True)
    con = warehouse.connect(settings)
    rows = {t: con.execute(f"select count(*) from build.{t}").fetchone()[0]
            for t in ("fct_touchpoints", "fct_customer_health_daily", "fct_churn_alerts")}
    con.close()
    out = {"events": events, "touchpoint_lines": summary.touchpoint_lines, "customers": summary.customers,
           "full_refresh_s": round(full_seconds, 2), "rows": rows, "dbt_nodes": len(result.nodes),
           "full_refresh_peak_spill_gib": round(spill.peak_bytes / 1024 ** 3, 2),
           "peak_rss_gib_after_full_refresh": _peak_rss_gib(),
           "full_refresh_slowest_nodes_s": {n.name: round(n.seconds, 2)
                                            for n in sorted(result.nodes, key=lambda n: n.seconds, reverse=True)[:6]}}
    if daily:
        day_lines = sum(1 for _ in (work / "tp2.jsonl").open(encoding="utf-8"))
        _timed("land one more day", lambda: _land_as_partition(settings, work / "scratch", work / "tp2.jsonl",
                                                                work / "cu2.jsonl", partition=1))
        daily_result, daily_seconds = _timed("incremental daily build",
                                             lambda: warehouse.build(settings, as_of=CUT + dt.timedelta(days=1)))
        nodes = sorted(daily_result.nodes, key=lambda n: n.seconds, reverse=True)
        out.update(daily_lines=day_lines, daily_incremental_s=round(daily_seconds, 2),
                   daily_ratio=round(daily_seconds / full_seconds, 3),
                   daily_models_s=round(sum(n.seconds for n in nodes if n.resource_type == "model"), 2),
                   daily_tests_s=round(sum(n.seconds for n in nodes if n.resource_type == "test"), 2),
                   daily_slowest_nodes_s={n.name: round(n.seconds, 2) for n in nodes[:8]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 10_000_000],
                        help="history sizes in touchpoint events (default: 1M and 10M)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data (prints where)")
    args, _ = parser.parse_known_args(argv)
    sizes = sorted(args.events)
    results = []
    for events in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-warehouse-{events}-"))
        try:
            results.append(run_size(events, work, daily=True))
        finally:
            if args.keep:
                print(f"  data kept in {work}")
            else:
                import shutil
                shutil.rmtree(work, ignore_errors=True)
    print("\nwarehouse build times")
    for r in results:
        print(f"  {r['events']:>12,} events: full refresh {r['full_refresh_s']:8.1f}s "
              f"({r['rows']['fct_customer_health_daily']:,} customer-days, {r['rows']['fct_churn_alerts']:,} alert episodes)")
    for r in results:
        verdict = "OK" if r["daily_ratio"] <= TARGET_RATIO else "ABOVE TARGET"
        if r["events"] < TARGET_EVENTS:
            verdict += f" (the target is set for {TARGET_EVENTS:,} events)"
        print(f"  daily incremental run at {r['events']:,} events ({r['daily_lines']:,} new lines): "
              f"{r['daily_incremental_s']:.1f}s = {r['daily_ratio']:.3f} x full refresh "
              f"(target <= {TARGET_RATIO}) {verdict}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
