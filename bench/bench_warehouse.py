"""Warehouse build time and memory: ``python -m bench.bench_warehouse [--events N [N ...]]``.

For each size (default 1M, 3M, 10M and 20M touchpoint events), a generated 12-month history
(``loyalty_monitor.generator``, landed with the real landing code
``streaming.landing.land_jsonl_offline``) is landed up to a cut date and the warehouse is built
from scratch (``warehouse.build(full_refresh=True)``: every model and data test, unit tests
excluded as in production). Then one more day of events (plus the events sent late about earlier
days) is landed and the daily incremental run is timed, and printed as a ratio to the full refresh
measured in the same run. Targets: the daily run costs at most 10 % of a full refresh at 10M
events; the full refresh at 10M events peaks at no more than 6 GiB of RSS and 10 GiB of spill.

Each build runs in a child process of its own, so that its peak RSS is its own (the kernel's
high-water mark of that process, ``ru_maxrss``) and not that of an earlier, larger build. While it
runs, the parent samples the child's RSS and the size of DuckDB's spill directory
(``<warehouse>.tmp``) twice a second; the dbt nodes' finishing times attribute the peaks to nodes.
The build uses the settings a user gets (``duckdb_memory_limit``, ``customer_batch_rows``), unless
overridden with ``LOYALTY_*`` variables (docs/warehouse.md "Performance").

The generator scales the number of customers with the events (over the same 12 months), so the
day's data grows with the size too. Whether a daily run's cost follows the day's data or the length
of the history shows with ``--months``: ``--events 2000000 --months 24`` has about the customers
(and the day's data) of 1M events over 12 months, and twice the history.

The landing-overlap safety margin is set to 0 (bench/history_settings.py says why).
Results are merged by size (events and months) into bench/results/warehouse.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from bench import positive_int, run_main
from bench.history_settings import settings_for_history_bench, written_history_bench_settings

CUT = dt.date(2026, 6, 30)
MONTHS = 12  # history length: 2025-07-02 to CUT
TARGET_RATIO = 0.10
TARGET_EVENTS = 10_000_000  # the size the targets are set for
TARGET_RSS_GIB, TARGET_SPILL_GIB = 6.0, 10.0
DEFAULT_SIZES = [1_000_000, 3_000_000, 10_000_000, 20_000_000]
RESULTS = Path(__file__).parent / "results" / "warehouse.json"
GIB = 1024 ** 3


def _start(months: int) -> dt.date:
    """The first day of a history of `months` months that ends at CUT (12: 2025-07-02)."""
    return CUT - dt.timedelta(days=round(months * 365.25 / 12) - 2)


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

    from loyalty_core.settings import load_settings
    from streaming.landing import land_jsonl_offline

    staging = load_settings(data_dir=scratch, landing_url="", warehouse_path="")
    land_jsonl_offline(staging, touchpoints, customers)
    for path in Path(staging.landing).rglob("*.parquet"):
        relative = path.relative_to(staging.landing)
        target = Path(settings.landing) / relative.with_name(path.name.replace("-p000-", f"-p{partition:03d}-"))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), target)


# --- one build in a child process, watched -------------------------------------------------------

def _child_build(data_dir: str, as_of: str, full_refresh: bool, queue) -> None:
    """Runs in the child: one ``warehouse.build``, its nodes and its own peak RSS to the parent."""
    import resource

    from loyalty_monitor import warehouse

    # the scoring file the parent wrote when the run began: rewriting it from config/scoring.yml
    # here would turn the daily run into a full refresh if that file changed during a long run
    settings = written_history_bench_settings(Path(data_dir), landing_url="", warehouse_path="")

    def on_node(node) -> None:
        queue.put(("node", node.name, node.resource_type, node.status, node.seconds, time.time()))

    try:
        result = warehouse.build(settings, as_of=as_of, full_refresh=full_refresh, on_node=on_node,
                                 raise_on_failure=False)
        error = None if result.success else (result.error or "; ".join(
            f"{n.name}: {n.message}" for n in result.failures))
    except Exception as exc:  # reported by the parent
        error = f"{type(exc).__name__}: {exc}"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    queue.put(("done", error, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime))


def _rss_and_cpu(pid: int) -> tuple[int, float]:
    """Resident bytes and CPU seconds so far of a process (dbt runs in-process: the child is the
    whole build)."""
    rss, cpu = 0, 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    except (OSError, IndexError, ValueError):
        pass
    return rss, cpu


def _dir_bytes(directory: Path) -> int:
    try:
        return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    except OSError:  # a spill file removed while listing
        return -1


def watched_build(settings, as_of: dt.date, full_refresh: bool) -> dict:
    """Run one build in a child process; return its time, peak RSS and spill, and its nodes."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    spill_dir = Path(str(settings.warehouse) + ".tmp")
    samples: list[tuple[float, int, int, float]] = []
    started = time.time()
    child = ctx.Process(target=_child_build, args=(str(settings.data_dir), as_of.isoformat(), full_refresh, queue))
    child.start()
    nodes, done = [], None
    last_spill = 0
    while done is None:
        while not queue.empty():
            item = queue.get()
            if item[0] == "node":
                nodes.append(item[1:])
            else:
                done = item
        if done is None and not child.is_alive():
            while not queue.empty():  # the last messages may arrive after the exit
                item = queue.get()
                nodes.append(item[1:]) if item[0] == "node" else None
                done = item if item[0] == "done" else done
            if done is None:
                done = ("done", f"the build process died (exit code {child.exitcode})", 0, 0.0)
            break
        spill = _dir_bytes(spill_dir)
        last_spill = spill if spill >= 0 else last_spill
        rss, cpu = _rss_and_cpu(child.pid)
        samples.append((time.time(), rss, last_spill, cpu))
        time.sleep(0.5)
    child.join()
    seconds = time.time() - started
    _, error, peak_rss, cpu_seconds = done
    if error:
        raise RuntimeError(f"build failed: {error}")

    def peaks(start: float, end: float) -> tuple[float, float, float]:
        inside = [s for s in samples if start - 0.5 <= s[0] <= end + 0.5] or [(0, 0, 0, 0.0)]
        return (round(max(s[1] for s in inside) / GIB, 2), round(max(s[2] for s in inside) / GIB, 2),
                round(inside[-1][3] - inside[0][3], 1))

    per_node = []
    for name, kind, status, node_seconds, finished in nodes:
        rss, spill, cpu = peaks(finished - node_seconds, finished)
        per_node.append({"name": name, "type": kind, "seconds": round(node_seconds, 2), "cpu_s": cpu,
                         "peak_rss_gib": rss, "peak_spill_gib": spill})
    per_node.sort(key=lambda n: n["seconds"], reverse=True)
    return {"seconds": round(seconds, 2), "cpu_s": round(cpu_seconds, 1), "peak_rss_gib": round(max(peak_rss, max((s[1] for s in samples), default=0)) / GIB, 2),
            "peak_spill_gib": round(max((s[2] for s in samples), default=0) / GIB, 2),
            "models_s": round(sum(n["seconds"] for n in per_node if n["type"] == "model"), 2),
            "tests_s": round(sum(n["seconds"] for n in per_node if n["type"] == "test"), 2),
            "nodes": per_node}


def _timed(label: str, fn):
    print(f"  {label} ...", end="", flush=True)
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    print(f" {seconds:.1f}s", flush=True)
    return value, seconds


def _print_build(label: str, build: dict) -> None:
    print(f"  {label}: {build['seconds']:.1f}s ({build['cpu_s']:.0f} CPU s), peak RSS {build['peak_rss_gib']:.2f} GiB, "
          f"peak spill {build['peak_spill_gib']:.2f} GiB", flush=True)
    shown = build["nodes"][:6]
    shown += [n for n in sorted(build["nodes"], key=lambda n: n["peak_rss_gib"], reverse=True)[:3] if n not in shown]
    for node in shown:
        print(f"      {node['name']:<40} {node['seconds']:7.1f}s ({node['cpu_s']:6.1f} CPU s)  RSS "
              f"{node['peak_rss_gib']:5.2f} GiB  spill {node['peak_spill_gib']:5.2f} GiB", flush=True)


def prepare(events: int, work: Path, months: int = MONTHS) -> dict:
    """Generate and land the history up to CUT; keep the next day's lines for the daily run."""
    from loyalty_monitor.generator import generate
    from streaming.landing import land_jsonl_offline

    history = work / "history"
    summary, _ = _timed("generate", lambda: generate(history, start=_start(months), end=CUT + dt.timedelta(days=1),
                                                      seed=1, target_events=events))
    _split(summary.touchpoints_file, work / "tp1.jsonl", work / "tp2.jsonl", "occurred_at")
    _split(summary.customers_file, work / "cu1.jsonl", work / "cu2.jsonl", "updated_at")
    settings = _settings(work / "data")
    _timed("land history", lambda: land_jsonl_offline(settings, work / "tp1.jsonl", work / "cu1.jsonl"))
    # the JSON Lines are landed now: free their disk space for DuckDB's spill files (10M events
    # are about 7 GB of JSON)
    for path in (summary.touchpoints_file, work / "tp1.jsonl", work / "cu1.jsonl"):
        path.unlink()
    prepared = {"touchpoint_lines": summary.touchpoint_lines, "customers": summary.customers}
    (work / "prepared.json").write_text(json.dumps(prepared))
    return prepared


def run_size(events: int, work: Path, daily: bool = True, months: int = MONTHS) -> dict:
    from loyalty_monitor import warehouse

    print(f"\n{events:,} events, {months} months", flush=True)
    marker = work / "prepared.json"
    prepared = json.loads(marker.read_text()) if marker.exists() else prepare(events, work, months)
    settings = _settings(work / "data")
    for leftover in (settings.warehouse, Path(str(settings.warehouse) + ".wal"),
                     Path(str(settings.warehouse) + ".scoring")):
        leftover.unlink(missing_ok=True)
    full = watched_build(settings, CUT, full_refresh=True)
    _print_build("full refresh", full)
    con = warehouse.connect(settings)
    rows = {t: con.execute(f"select count(*) from build.{t}").fetchone()[0]
            for t in ("fct_touchpoints", "fct_customer_health_daily", "fct_churn_alerts")}
    con.close()
    out = {"events": events, "months": months, **prepared, "rows": rows,
           "full_refresh_s": full["seconds"], "full_refresh_cpu_s": full["cpu_s"],
           "full_refresh_peak_rss_gib": full["peak_rss_gib"],
           "full_refresh_peak_spill_gib": full["peak_spill_gib"],
           "full_refresh_models_s": full["models_s"], "full_refresh_tests_s": full["tests_s"],
           "full_refresh_dbt_nodes": len(full["nodes"]),
           "full_refresh_slowest_nodes": full["nodes"][:8]}
    if daily:
        day_lines = sum(1 for _ in (work / "tp2.jsonl").open(encoding="utf-8"))
        _timed("land one more day", lambda: _land_as_partition(settings, work / "scratch", work / "tp2.jsonl",
                                                                work / "cu2.jsonl", partition=1))
        run = watched_build(settings, CUT + dt.timedelta(days=1), full_refresh=False)
        _print_build("daily incremental run", run)
        out.update(daily_lines=day_lines, daily_s=run["seconds"], daily_cpu_s=run["cpu_s"], daily_ratio=round(run["seconds"] / full["seconds"], 3),
                   daily_peak_rss_gib=run["peak_rss_gib"], daily_peak_spill_gib=run["peak_spill_gib"],
                   daily_models_s=run["models_s"], daily_tests_s=run["tests_s"],
                   daily_slowest_nodes=run["nodes"][:8])
    return out


def _machine() -> dict:
    from loyalty_core.settings import load_settings

    settings = load_settings()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, check=False).stdout.strip()
    except OSError:
        commit = ""
    memory = next((int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0)
    return {"commit": commit, "cpus": os.cpu_count(), "memory_gib": round(memory / GIB, 1),
            "python": platform.python_version(),
            "duckdb_memory_limit": settings.duckdb_memory_limit,
            "customer_batch_rows": getattr(settings, "customer_batch_rows", None),
            "measured": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=positive_int, nargs="+", default=DEFAULT_SIZES,
                        help="history sizes in touchpoint events (default: 1M, 3M, 10M and 20M)")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep each size's landed history in WORK/<events> and reuse it when there "
                             "(the daily day is landed again only into a fresh copy: see --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data (prints where)")
    parser.add_argument("--months", type=positive_int, default=MONTHS,
                        help="history length in months (default 12); --events are the events of the whole "
                             "history, so 2M events over 24 months have the customers of 1M over 12")
    parser.add_argument("--no-daily", action="store_true", help="full refresh only")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to merge the results")
    args = parser.parse_args(argv)
    sizes = sorted(args.events)
    machine = _machine()
    results = []
    for events in sizes:
        if args.work:
            work = args.work / (str(events) if args.months == MONTHS else f"{events}-{args.months}m")
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(tempfile.mkdtemp(prefix=f"bench-warehouse-{events}-"))
        try:
            if args.work and (work / "data" / "landing").exists() and not args.no_daily:
                _drop_daily_landing(work)
            results.append({**run_size(events, work, daily=not args.no_daily, months=args.months), "machine": machine})
        finally:
            if args.keep or args.work:
                print(f"  data kept in {work}")
            else:
                import shutil
                shutil.rmtree(work, ignore_errors=True)
    print("\nwarehouse builds")
    for r in results:
        verdict = ""
        if r["events"] >= TARGET_EVENTS:
            fits = r["full_refresh_peak_rss_gib"] <= TARGET_RSS_GIB and r["full_refresh_peak_spill_gib"] <= TARGET_SPILL_GIB
            verdict = "OK" if fits else "ABOVE TARGET"
            verdict = f" (target RSS <= {TARGET_RSS_GIB:g} GiB, spill <= {TARGET_SPILL_GIB:g} GiB: {verdict})"
        print(f"  {r['events']:>12,} events ({r['months']} months): full refresh {r['full_refresh_s']:8.1f}s, "
              f"RSS {r['full_refresh_peak_rss_gib']:.2f} GiB, spill {r['full_refresh_peak_spill_gib']:.2f} GiB "
              f"({r['rows']['fct_customer_health_daily']:,} customer-days){verdict}")
    for r in results:
        if "daily_s" not in r:
            continue
        verdict = "OK" if r["daily_ratio"] <= TARGET_RATIO else "ABOVE TARGET"
        if r["events"] < TARGET_EVENTS:
            verdict += f" (the target is set for {TARGET_EVENTS:,} events)"
        print(f"  daily incremental run at {r['events']:,} events, {r['months']} months ({r['daily_lines']:,} new lines): "
              f"{r['daily_s']:.1f}s = {r['daily_ratio']:.3f} x full refresh, RSS {r['daily_peak_rss_gib']:.2f} GiB "
              f"(target <= {TARGET_RATIO}) {verdict}")
    _merge_results(args.results, results)
    return 0


def _drop_daily_landing(work: Path) -> None:
    """A kept history is reused: remove the day a previous run landed on top of it (partition 1)."""
    for path in (work / "data" / "landing").rglob("*-p001-*.parquet"):
        path.unlink()


def _merge_results(path: Path, results: list[dict]) -> None:
    """Results by size: a run of some sizes replaces those and keeps the others."""
    previous = []
    if path.exists():
        try:
            previous = json.loads(path.read_text())
        except ValueError:
            previous = []
    def key(r: dict) -> tuple[int, int]:
        return r.get("events", 0), r.get("months", MONTHS)

    measured = {key(r) for r in results}
    merged = [r for r in previous if key(r) not in measured] + results
    merged.sort(key=key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    run_main(main)
