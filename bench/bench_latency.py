"""Event-to-alert latency on the real scheduler: ``python -m bench.bench_latency``.

A high-severity complaint is produced to Kafka at t0; the bench measures when its account manager's
notification lands in the file sink (``<data_dir>/alerts/outbox``), through the real parts that
`loyalty up` starts: the landing consumer (flush, batch-landed notice), Airflow's triggerer (the
asset watcher on ``loyalty.batches-landed``), the scheduler and the LocalExecutor running the
``loyalty_pipeline`` DAG's event path (``event_update``: erasures, landing gate, dbt, marts gate,
publish, dispatch, in one task). The alert is rule ``new_high_complaint`` (config/scoring.yml): a high-severity
complaint is the event an account manager must hear of at once.

Method (docs/operations.md, "Event-to-alert latency"):

1. set-up, not measured: a generated history (``--customers``, ``--months``, ending yesterday) is
   produced and landed, and ``loyalty run`` builds the warehouse for yesterday; then ``loyalty up``
   starts the stack in the same private data directory (``--data-dir``, default a temporary one;
   Airflow on ``--port``), the DAGs are unpaused, and the stack is warmed: the runs the watcher and
   the schedule start at once, then ``--warm-up`` measured-but-discarded complaints;
2. ``--events`` complaints, one at a time, each for a different customer (past the warm-up, with
   no open high-severity complaint or complaint alert, spread over the account managers): produce
   at t0, wait for the alert's JSON in the outbox (its mtime is the arrival), wait for the DAG run
   to finish; the next event only when the stack is idle again;
3. where the time went, per event: the consumer's ``batch_committed`` log line (flush and
   notice), the asset event's timestamp (watcher), the DAG run's queued and start times, the task
   instance's start and end (``event_update``) from Airflow's metadata database, and the seconds of
   each step inside it (its XCom ``event_update``).

The weekly cap (``alerts.max_per_manager_per_week``) is lifted in the bench's copy of scoring.yml:
it decides whether an alert is sent, not how fast. The machine's load average is recorded with
every event: the numbers are only comparable at similar load.

When the environment disables Python's bytecode cache (``PYTHONDONTWRITEBYTECODE``, as on some
shared development machines whose virtualenv holds no compiled files), every task process compiles
Airflow, dbt and Great Expectations from source again; the bench then gives the stack a private
cache (``PYTHONPYCACHEPREFIX`` under the data directory) as any installed virtualenv has one, and
says so in the results.

Results: ``bench/results/latency.json`` (``--out``). Exit 1 if an alert did not arrive.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import positive_int, run_main
from loyalty_core.settings import PROJECT_ROOT

RESULTS = Path(__file__).parent / "results" / "latency.json"
TARGET_P95_S = 60.0
RULE = "new_high_complaint"
#: The event path's steps in event_update's XCom, in order.
STEPS = ("erasures", "landing_gate", "plan", "dbt", "population", "marts_gate", "publish", "dispatch")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _loyalty() -> str:
    return str(Path(sys.executable).with_name("loyalty"))


def _airflow() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def _epoch(value: str | None) -> float | None:
    """An Airflow metadata timestamp (UTC, 'YYYY-MM-DD HH:MM:SS[.ffffff]' with or without offset)."""
    if not value:
        return None
    text = str(value).replace("T", " ")
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Bench:
    def __init__(self, args: argparse.Namespace, data_dir: Path):
        self.args = args
        self.data_dir = data_dir
        self.log = lambda *a: print(*a, flush=True)
        scoring = data_dir / "scoring.yml"
        shipped = (PROJECT_ROOT / "config" / "scoring.yml").read_text()
        if "max_per_manager_per_week: 3" not in shipped:
            raise SystemExit("config/scoring.yml no longer has max_per_manager_per_week: 3; update the bench")
        data_dir.mkdir(parents=True, exist_ok=True)
        scoring.write_text(shipped.replace("max_per_manager_per_week: 3", "max_per_manager_per_week: 100000"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOYALTY_", "AIRFLOW"))}
        self.bytecode_cache = None
        if env.pop("PYTHONDONTWRITEBYTECODE", None):
            self.bytecode_cache = str(args.pycache)
            env.setdefault("PYTHONPYCACHEPREFIX", self.bytecode_cache)
        # A busy shared host can take longer than Airflow's 30 s to import the DAG file; a DAG that
        # times out is dropped, which measures nothing.
        env["AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT"] = "300"
        env["AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT"] = "300"
        env.update({"LOYALTY_DATA_DIR": str(data_dir), "LOYALTY_SCORING_FILE": str(scoring),
                    "LOYALTY_WEB_PORT": str(_free_port()), "LOYALTY_TASK_RETRY_DELAY_S": "5"})
        if args.flush_s is not None:
            env["LOYALTY_BATCH_MAX_WAIT_S"] = str(args.flush_s)
        if args.poll_timeout_s is not None:
            env["LOYALTY_ASSET_WATCHER_POLL_TIMEOUT_S"] = str(args.poll_timeout_s)
        self.env = env
        self.loads: list[list[float]] = []

    # --- plumbing ---------------------------------------------------------------------------
    def run(self, *argv: str, timeout: float = 3600, quiet: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(argv), env={**self.env, **(env or {})}, capture_output=quiet, text=True,
                              timeout=timeout, cwd=str(PROJECT_ROOT))
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n"
                               f"{(proc.stdout or '')[-2000:]}\n{(proc.stderr or '')[-2000:]}")
        return proc

    def settings(self):
        from loyalty_core.settings import load_settings

        saved = dict(os.environ)
        try:
            os.environ.clear()
            os.environ.update(self.env)
            return load_settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def airflow_db(self) -> sqlite3.Connection:
        path = self.data_dir / "airflow" / "airflow.db"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        con.row_factory = sqlite3.Row
        return con

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        for attempt in range(20):
            try:
                with self.airflow_db() as con:
                    return con.execute(sql, params).fetchall()
            except sqlite3.OperationalError:  # busy or not yet created
                if attempt == 19:
                    raise
                time.sleep(0.5)
        return []

    # --- set-up -----------------------------------------------------------------------------
    def set_up(self) -> dict[str, Any]:
        args, started = self.args, time.monotonic()
        end = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        start = end - dt.timedelta(days=round(args.months * 30.44)) + dt.timedelta(days=1)
        gen = self.data_dir / "generated"
        self.log(f"set-up: {args.customers} customers, {start} to {end}, in {self.data_dir}")
        self.run(_loyalty(), "generate", "--customers", str(args.customers), "--start", start.isoformat(),
                 "--end", end.isoformat(), "--seed", str(args.seed), "--out", str(gen))
        self.run(_loyalty(), "broker", "start")
        self.run(_loyalty(), "produce", str(gen / "customers.jsonl"), "--topic", "customers")
        self.run(_loyalty(), "produce", str(gen / "touchpoints.jsonl"), "--topic", "touchpoints")
        # The set-up's backlog lands in large batches; on a busy host one can take longer than the
        # group's short poll interval, and a consumer evicted mid-batch starts it again for ever.
        self.run(_loyalty(), "consume", "--until-idle",
                 env={"LOYALTY_MAX_POLL_INTERVAL_MS": "300000", "LOYALTY_BATCH_MAX_RECORDS": "5000"})
        built = time.monotonic()
        self.log(f"set-up: `loyalty run --as-of {end}` (the first build of the warehouse) ...")
        self.run(_loyalty(), "run", "--as-of", end.isoformat())
        build_s = time.monotonic() - built
        self.log(f"set-up: warehouse built in {build_s:.0f} s; `loyalty up --port {args.port}` ...")
        self.run(_loyalty(), "up", "--port", str(args.port))
        # `loyalty run` registered the DAGs paused (dag.test); `loyalty up` creates only new ones
        # unpaused: unpause them, as an operator does once.
        from loyalty_monitor import pipeline

        airflow_env = pipeline.airflow_environment(self.settings())
        for dag_id in ("loyalty_pipeline", "loyalty_weekly_report"):
            self.wait_for_dag(dag_id)
            self.run(_airflow(), "dags", "unpause", dag_id, timeout=300, env=airflow_env)
        return {"history_start": start.isoformat(), "history_end": end.isoformat(),
                "first_build_s": round(build_s, 1), "set_up_s": round(time.monotonic() - started, 1)}

    def wait_for_dag(self, dag_id: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.query("select 1 from dag where dag_id = ?", (dag_id,)):
                    return
            except sqlite3.OperationalError:
                pass
            time.sleep(2)
        raise RuntimeError(f"Airflow did not register {dag_id} within {timeout:.0f} s")

    def wait_idle(self, timeout: float, since: float = 0.0) -> None:
        """Until no loyalty_pipeline run is queued or running (and none is about to be created)."""
        deadline = time.monotonic() + timeout
        quiet_since = None
        while time.monotonic() < deadline:
            busy = self.query("select count(*) from dag_run where dag_id = 'loyalty_pipeline' "
                              "and state in ('queued', 'running')")[0][0]
            queued = self.query("select count(*) from asset_dag_run_queue where target_dag_id = 'loyalty_pipeline'")[0][0]
            if busy == 0 and queued == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 5:
                    return
            else:
                quiet_since = None
            time.sleep(1)
        raise RuntimeError(f"the pipeline was still busy after {timeout:.0f} s")

    def pick_customers(self, count: int) -> list[dict[str, Any]]:
        """Customers past the warm-up, with a manager's address, no open high-severity complaint and
        no open complaint alert on the last built day, round-robin over the account managers."""
        from loyalty_monitor import warehouse

        settings = self.settings()
        rows = warehouse.query(settings, f"""
            with last as (select max(as_of_date) as day from build.int_alert_flags)
            select c.customer_id, c.account_manager_id, c.account_manager_email
            from published.dim_customers c
            join build.int_alert_flags f on f.customer_id = c.customer_id and f.as_of_date = (select day from last)
            join published.fct_customer_health_daily h
              on h.customer_id = c.customer_id and h.as_of_date = (select day from last)
            where f.past_warmup and h.open_high_complaint_days is null and c.account_manager_email is not null
              and c.customer_id not in (select customer_id from published.fct_churn_alerts
                                        where rule = '{RULE}' and episode_end_date is null)
            order by c.account_manager_id, c.customer_id""")
        by_manager: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_manager.setdefault(row["account_manager_id"], []).append(row)
        picked: list[dict[str, Any]] = []
        while len(picked) < count and any(by_manager.values()):
            for queue in by_manager.values():
                if queue and len(picked) < count:
                    picked.append(queue.pop(0))
        if len(picked) < count:
            raise RuntimeError(f"only {len(picked)} customers qualify; use more --customers")
        return picked

    # --- one event --------------------------------------------------------------------------
    def produce_complaint(self, producer: Any, topic: str, customer_id: str) -> float:
        now = dt.datetime.now(dt.timezone.utc)
        event = {"schema_version": 1, "event_id": str(uuid.uuid4()), "event_type": "complaint",
                 "occurred_at": now.isoformat(), "customer_id": customer_id, "department": "support",
                 "direction": "inbound", "employee_id": "SP01", "contact_role": "user", "source": "helpdesk",
                 "note": "Machine down since this morning, third time this month",
                 "payload": {"severity": "high", "resolved": False}}
        t0 = time.time()
        producer.send(topic, key=customer_id.encode(), value=json.dumps(event).encode())
        producer.flush()
        return t0

    def wait_for_alert(self, customer_id: str, t0: float, timeout: float) -> tuple[float | None, str | None]:
        outbox = self.data_dir / "alerts" / "outbox"
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while time.monotonic() < deadline:
            for path in outbox.glob("*.json") if outbox.exists() else []:
                if path.name in seen:
                    continue
                try:
                    stat = path.stat()
                    if stat.st_mtime < t0:
                        seen.add(path.name)
                        continue
                    body = json.loads(path.read_text())
                except (OSError, ValueError):
                    continue  # being written: read it again on the next pass
                seen.add(path.name)
                for alert in body.get("alerts") or []:
                    if alert.get("customer_id") == customer_id and alert.get("rule") == RULE:
                        return stat.st_mtime, path.name
            time.sleep(0.1)
        return None, None

    def consumer_batch(self, t0: float) -> dict[str, Any] | None:
        """The consumer's first batch_committed line after t0 (its time: flush done, notice sent)."""
        log_file = self.data_dir / "run" / "consumer.log"
        for line in log_file.read_text(errors="replace").splitlines():
            if '"batch_committed"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            at = dt.datetime.fromisoformat(entry["ts"]).timestamp()
            if at >= t0:
                return {"at": at, "seconds": entry.get("seconds"), "stages": entry.get("stages"),
                        "reason": entry.get("reason")}
        return None

    def airflow_times(self, t0: float) -> dict[str, Any]:
        out: dict[str, Any] = {}
        events = [r for r in self.query("select timestamp from asset_event order by id")
                  if (_epoch(r["timestamp"]) or 0) >= t0]
        out["asset_event_at"] = _epoch(events[0]["timestamp"]) if events else None
        runs = [r for r in self.query("select run_id, run_type, state, queued_at, start_date, end_date from dag_run "
                                      "where dag_id = 'loyalty_pipeline' order by id")
                if (_epoch(r["queued_at"]) or 0) >= t0]
        if not runs:
            return out
        run = runs[0]
        out.update({"run_id": run["run_id"], "run_type": run["run_type"], "run_state": run["state"],
                    "run_queued_at": _epoch(run["queued_at"]), "run_start_at": _epoch(run["start_date"]),
                    "run_end_at": _epoch(run["end_date"])})
        tasks = {}
        for ti in self.query("select task_id, state, queued_dttm, start_date, end_date from task_instance "
                             "where dag_id = 'loyalty_pipeline' and run_id = ?", (run["run_id"],)):
            tasks[ti["task_id"]] = {"state": ti["state"], "queued_at": _epoch(ti["queued_dttm"]),
                                    "start_at": _epoch(ti["start_date"]), "end_at": _epoch(ti["end_date"])}
        out["tasks"] = tasks
        xcom = self.query("select value from xcom where dag_id = 'loyalty_pipeline' and run_id = ? "
                          "and task_id = 'event_update' and key = 'event_update'", (run["run_id"],))
        if xcom:
            value = xcom[0]["value"]
            try:
                out["event_update"] = json.loads(value if isinstance(value, str) else bytes(value).decode())
            except (ValueError, UnicodeDecodeError):
                out["event_update"] = None
        return out

    def wait_run_done(self, t0: float, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        times: dict[str, Any] = {}
        while time.monotonic() < deadline:
            times = self.airflow_times(t0)
            if times.get("run_end_at") and times.get("run_state") in ("success", "failed"):
                if times.get("event_update") is not None or times.get("run_state") == "failed":
                    return times
            time.sleep(1)
        return times

    def one_event(self, producer: Any, topic: str, customer: dict[str, Any], number: str) -> dict[str, Any]:
        self.wait_idle(self.args.timeout_s)
        load = list(os.getloadavg())
        customer_id = customer["customer_id"]
        t0 = self.produce_complaint(producer, topic, customer_id)
        arrived, file_name = self.wait_for_alert(customer_id, t0, self.args.timeout_s)
        times = self.wait_run_done(t0, self.args.timeout_s)
        batch = self.consumer_batch(t0)
        record: dict[str, Any] = {"event": number, "customer_id": customer_id,
                                  "account_manager_id": customer["account_manager_id"], "t0": t0,
                                  "load_avg_1_5_15": [round(x, 2) for x in load],
                                  "latency_s": round(arrived - t0, 2) if arrived else None, "alert_file": file_name,
                                  "consumer_batch": batch, "airflow": times}
        record["segments"] = segments(t0, arrived, batch, times)
        self.loads.append(load)
        shown = f"{record['latency_s']:.1f} s" if arrived else "NO ALERT"
        self.log(f"  event {number} {customer_id}: {shown} (load {load[0]:.1f}); "
                 + ", ".join(f"{k} {v:.1f}" for k, v in record["segments"].items() if v is not None))
        return record

    def tear_down(self) -> None:
        subprocess.run([_loyalty(), "down"], env=self.env, capture_output=True, text=True, timeout=300)


def segments(t0: float, arrived: float | None, batch: dict | None, times: dict[str, Any]) -> dict[str, float | None]:
    """Where one event's time went, in seconds, in the order the event passes the parts."""
    tasks = times.get("tasks") or {}
    update = tasks.get("event_update") or {}
    steps = ((times.get("event_update") or {}).get("steps")) or {}

    def gap(a: float | None, b: float | None) -> float | None:
        return round(b - a, 2) if a is not None and b is not None else None

    landed = batch["at"] if batch else None
    out: dict[str, float | None] = {
        "consumer_flush": gap(t0, landed),                                  # produce -> batch committed, notice sent
        "asset_watcher": gap(landed, times.get("asset_event_at")),          # notice -> asset event
        "dag_run_created": gap(times.get("asset_event_at"), times.get("run_queued_at")),
        "dag_start": gap(times.get("run_queued_at"), update.get("start_at")),  # run queued -> its task runs
    }
    for step in STEPS:
        out[step] = round(float(steps[step]), 2) if step in steps else None
    inside = sum(float(v) for v in steps.values()) if steps else None
    if inside is not None and update.get("start_at") is not None and update.get("end_at") is not None:
        # process start, DAG parse and imports of the task, and what follows dispatch
        out["event_task_overhead"] = round(update["end_at"] - update["start_at"] - inside, 2)
    out["total_to_alert"] = gap(t0, arrived)
    return out


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [r["latency_s"] for r in records if r["latency_s"] is not None]
    names = list(records[0]["segments"]) if records else []
    medians = {}
    for name in names:
        values = [r["segments"][name] for r in records if r["segments"].get(name) is not None]
        if values:
            medians[name] = {"p50": round(statistics.median(values), 2), "p95": round(percentile(values, 0.95), 2)}
    loads = [r["load_avg_1_5_15"][0] for r in records]
    return {"events": len(records), "delivered": len(latencies),
            "p50_s": round(statistics.median(latencies), 1) if latencies else None,
            "p95_s": round(percentile(latencies, 0.95), 1) if latencies else None,
            "max_s": round(max(latencies), 1) if latencies else None,
            "target_p95_s": TARGET_P95_S, "segments": medians,
            "load_avg_1m": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)} if loads else None}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_latency", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=positive_int, default=300)
    parser.add_argument("--months", type=float, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--events", type=positive_int, default=20, help="measured complaints (default 20)")
    parser.add_argument("--warm-up", type=int, default=2, help="complaints before the measured ones (default 2)")
    parser.add_argument("--port", type=int, default=0, help="Airflow UI port (default: a free one)")
    parser.add_argument("--data-dir", type=Path, default=None, help="private data directory (default: temporary)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running and the data directory")
    parser.add_argument("--timeout-s", type=float, default=1200, help="per event and per wait (default 1200)")
    parser.add_argument("--flush-s", type=float, default=None, help="LOYALTY_BATCH_MAX_WAIT_S for the consumer")
    parser.add_argument("--poll-timeout-s", type=float, default=None,
                        help="LOYALTY_ASSET_WATCHER_POLL_TIMEOUT_S for the asset watcher")
    parser.add_argument("--pycache", type=Path, default=RESULTS.parent / "pycache",
                        help="bytecode cache when PYTHONDONTWRITEBYTECODE is set (default bench/results/pycache)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)
    args.port = args.port or _free_port()
    temporary = args.data_dir is None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-latency-"))
    bench = Bench(args, data_dir)
    settings = bench.settings()
    started_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    records: list[dict[str, Any]] = []
    set_up: dict[str, Any] = {}

    def write_results() -> dict[str, Any]:
        """Written after every event too: a run cut short still leaves what it measured."""
        summary = summarise(records)
        results = {"benchmark": "bench_latency", "started_at": started_at,
                   "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   "complete": len(records) == args.events,
                   "machine": {"cpus": os.cpu_count(), "load_avg_now": [round(x, 2) for x in os.getloadavg()]},
                   "parameters": {"customers": args.customers, "months": args.months, "seed": args.seed,
                                  "events": args.events, "warm_up": args.warm_up,
                                  "consumer_batch_max_wait_s": settings.batch_max_wait_s,
                                  "asset_watcher_poll_timeout_s": settings.asset_watcher_poll_timeout_s,
                                  "asset_watcher_poll_interval_s": settings.asset_watcher_poll_interval_s,
                                  "weekly_cap": "lifted (100000)", "bytecode_cache": bench.bytecode_cache},
                   "set_up": set_up, "summary": summary, "events": records}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
        return summary

    try:
        set_up = bench.set_up()
        bench.log("warming up: the runs the watcher and the schedule start at once ...")
        bench.wait_idle(args.timeout_s * 2)
        customers = bench.pick_customers(args.events + args.warm_up)
        from kafka import KafkaProducer

        producer = KafkaProducer(**settings.kafka_client_config(), acks="all", linger_ms=0)
        for number, customer in enumerate(customers[:args.warm_up], 1):
            bench.one_event(producer, settings.topic_touchpoints, customer, f"warm-up {number}")
        bench.log(f"measuring {args.events} events ...")
        for number, customer in enumerate(customers[args.warm_up:], 1):
            records.append(bench.one_event(producer, settings.topic_touchpoints, customer,
                                           f"{number}/{args.events}"))
            write_results()
        producer.close()
    finally:
        if not args.keep:
            bench.tear_down()
            if temporary:
                shutil.rmtree(data_dir, ignore_errors=True)
    summary = write_results()
    print(f"\nbench_latency: {summary['delivered']}/{summary['events']} alerts delivered; "
          f"p50 {summary['p50_s']} s, p95 {summary['p95_s']} s (target p95 <= {TARGET_P95_S:.0f} s); "
          f"load average (1 min) median {summary['load_avg_1m']['median'] if summary['load_avg_1m'] else '?'}")
    for name, value in summary["segments"].items():
        print(f"  {name:<22} p50 {value['p50']:7.2f} s   p95 {value['p95']:7.2f} s")
    print(f"results: {args.out}")
    return 0 if records and summary["delivered"] == summary["events"] else 1


if __name__ == "__main__":
    run_main(lambda: main(sys.argv[1:]))
