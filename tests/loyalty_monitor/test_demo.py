"""The main job, `loyalty demo`, at a reduced size, as a real subprocess; then its outputs on disk.

The demo starts its own embedded broker (not the session one), as a newcomer's run does. It runs
twice:

1. A clean run: warehouse with published marts, Data Docs, alert outbox, report and printed summary
   are checked, and headless Chromium opens the report (built by the real pipeline: no network, no
   console errors, every section with data). The broker is left running (``--keep-broker``).
2. A rerun over the first run's leftovers (a live broker, a warehouse, an outbox), on the same
   history with every customer name and every customer's last note turned hostile (``<script>``,
   HTML): the rerun must succeed, and the report must show the markup as text and execute nothing.

Both runs are watched for the processes they start (Python's audit hooks, installed in every Python
process of the run by a ``sitecustomize`` module on PYTHONPATH): the demo calls the library
functions of ``loyalty produce``, ``consume`` and ``run`` in its own process and must never start the
``loyalty`` command (by its executable or as ``python -m loyalty_monitor.cli``), while the broker
it starts is seen, so the watch itself is known to work.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml
from report_browser import PROBES, SECTIONS, assert_self_contained, visit
from report_fixtures import EVIL_NAME, EVIL_NOTE

from loyalty_core.settings import PROJECT_ROOT, load_settings
from loyalty_monitor import broker
from loyalty_monitor.demo import INPUT_DIR, REPORT_FILE
from loyalty_monitor.generator import CUSTOMERS_FILE, GROUND_TRUTH_FILE, TOUCHPOINTS_FILE

#: A fixed end keeps the run reproducible: alerts fall in the dispatch window, whatever today is.
CUSTOMERS, MONTHS, END = 40, 6, "2026-06-30"


def small_history_scoring(data_dir: Path) -> Path:
    """The shipped scoring file with risk cases opening at a lower probability and a four-week
    dispatch window, as the other small-history tests do: 40 customers over six months carry too
    little evidence for the default's few, sure cases, and the demo must have alerts to deliver."""
    scoring = yaml.safe_load((PROJECT_ROOT / "config" / "scoring.yml").read_text())
    scoring["risk_cases"].update(open_probability=0.15, close_probability=0.08)
    scoring["alerts"]["dispatch_window_days"] = 28
    path = data_dir.parent / "scoring-small-history.yml"
    path.write_text(yaml.safe_dump(scoring, sort_keys=False))
    return path


#: Installed in every Python process of a demo run: appends each process it starts (subprocess,
#: exec, spawn, system) as a JSON line to $DEMO_SPAWN_LOG.
SPAWN_AUDIT = """
import json, os, sys

#: audit event -> position of the command line in its arguments
COMMAND_AT = {"subprocess.Popen": 1, "os.exec": 1, "os.posix_spawn": 1, "os.spawn": 2, "os.system": 0}

def _record(event, args):
    if event in COMMAND_AT:
        argv = args[COMMAND_AT[event]] or ()
        argv = [argv] if isinstance(argv, (str, bytes, os.PathLike)) else list(argv)
        with open(os.environ["DEMO_SPAWN_LOG"], "a") as log:
            log.write(json.dumps({"pid": os.getpid(), "event": event,
                                  "argv": [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in argv]}) + "\\n")

if os.environ.get("DEMO_SPAWN_LOG"):
    sys.addaudithook(_record)
"""


def spawn_watch(data_dir: Path) -> tuple[Path, Path]:
    """(directory holding the audit ``sitecustomize``, the spawn log it writes)."""
    watch = data_dir.parent / "spawn-watch"
    watch.mkdir(exist_ok=True)
    (watch / "sitecustomize.py").write_text(SPAWN_AUDIT)
    log = watch / "spawns.jsonl"
    log.unlink(missing_ok=True)
    return watch, log


def starts_the_cli(argv: list[str]) -> bool:
    return bool(argv) and (Path(argv[0]).name == "loyalty" or any("loyalty_monitor.cli" in a for a in argv))


def run_demo(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """``loyalty demo`` as a user runs it; fails if it started the ``loyalty`` command itself."""
    watch, spawn_log = spawn_watch(data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_DATA_DIR=str(data_dir), COLUMNS="200",
               LOYALTY_SCORING_FILE=str(small_history_scoring(data_dir)), DEMO_SPAWN_LOG=str(spawn_log),
               PYTHONPATH=os.pathsep.join(p for p in (str(watch), env.get("PYTHONPATH")) if p))
    done = subprocess.run([str(Path(sys.executable).parent / "loyalty"), "demo", "--customers", str(CUSTOMERS),
                           "--months", str(MONTHS), "--end", END, *extra],
                          capture_output=True, text=True, timeout=900, env=env)
    spawned = [json.loads(line) for line in spawn_log.read_text().splitlines()] if spawn_log.exists() else []
    assert any(Path(s["argv"][0]).name == "tansu" for s in spawned if s["argv"]), \
        f"the spawn watch saw no broker start: {spawned}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert not [s for s in spawned if starts_the_cli(s["argv"])], f"the demo started the loyalty CLI: {spawned}"
    return done


def make_history_hostile(input_dir: Path) -> None:
    """Every customer's name and last note carry markup; the generator's parameters stay the same."""
    end = json.loads((input_dir / GROUND_TRUTH_FILE).read_text())["generator"]["end"]
    lines, ids = [], set()
    for line in (input_dir / CUSTOMERS_FILE).read_text().splitlines():
        record = json.loads(line)
        if "name" in record:
            record["name"] = f"{EVIL_NAME} #{record['customer_id']}"
            ids.add(record["customer_id"])
        lines.append(json.dumps(record))
    (input_dir / CUSTOMERS_FILE).write_text("\n".join(lines) + "\n")
    with (input_dir / TOUCHPOINTS_FILE).open("a") as fh:
        for n, customer_id in enumerate(sorted(ids)):
            fh.write(json.dumps({
                "schema_version": 1, "event_id": f"hostile-{n}", "event_type": "email",
                "occurred_at": f"{end}T15:00:00Z", "customer_id": customer_id, "department": "sales",
                "direction": "outbound", "note": EVIL_NOTE, "payload": {},
            }) + "\n")


@pytest.mark.slow
def test_demo_runs_end_to_end_and_reruns_over_its_leftovers(data_dir: Path, tmp_path: Path, artifacts_dir,
                                                            request: pytest.FixtureRequest):
    settings = load_settings(data_dir=data_dir)
    request.addfinalizer(lambda: broker.stop(settings))  # never leave a kept broker behind on failure
    done = run_demo(data_dir, "--keep-broker")
    out = done.stdout
    assert done.returncode == 0, f"{out[-5000:]}\n{done.stderr[-3000:]}"
    for step in ("start the embedded Kafka broker", "produce the history to Kafka",
                 "consume: land the events as Parquet", "run the pipeline DAG", "write the leadership report"):
        assert f"✓ {step}" in out, step
    assert "✗ " not in out and ": unavailable" not in out and "skipped (needs" not in out
    # it ends by saying how to open the web app, with a working sign-in link for one manager
    from loyalty_monitor import access as auth

    link = out.split("Open the web app: `loyalty web`", 1)[1].split(" with ", 1)[1].split()[0]
    assert auth.email_from_link(settings, link.split("token=", 1)[1])

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        customers = con.execute("select count(*) from published.dim_customers").fetchone()[0]
        health_days = con.execute("select count(distinct as_of_date) from published.fct_customer_health_daily"
                                  ).fetchone()[0]
        statuses = dict(con.execute(
            "select status, count(*) from published.fct_customer_health_daily "
            "where as_of_date = (select max(as_of_date) from published.fct_customer_health_daily) "
            "group by 1").fetchall())
        alerts = con.execute("select count(*) from published.fct_churn_alerts").fetchone()[0]
        kinds = dict(con.execute(
            "select case when alert_kind = 'action_needed' then 'action needed' when rule = 'went_silent' "
            "then 'may already have left' else 'churn risk' end, count(*) from published.fct_churn_alerts "
            "group by 1 order by 1").fetchall())
        sent = con.execute("select count(*) from ops.alert_state where status = 'sent'").fetchone()[0]
        expired = con.execute("select count(*) from ops.alert_state where status = 'expired'").fetchone()[0]
    finally:
        con.close()
    assert 0 < customers <= CUSTOMERS
    assert health_days > 150  # the daily series covers the whole history, not just the last day
    assert alerts > 0
    # The printed summary tells the same numbers the warehouse holds.
    assert (f"Red ▲ {statuses.get('red', 0)}, Yellow ◆ {statuses.get('yellow', 0)}, "
            f"Green ● {statuses.get('green', 0)}") in out
    assert f"Alerts raised over the history: {alerts} (" + ", ".join(f"{k} {v}" for k, v in kinds.items()) in out
    assert "Top values at risk (open alerts):" in out and "  1. " in out
    # It explains what it prints: the report's own summary, why alerts expired in a one-shot
    # backfill, why fewer customers than generated are in the warehouse.
    assert "The report in short:" in out and "  - Red " in out
    if expired:
        assert "Expired alerts: the demo builds the whole 6-month history in one run" in out
    if customers < CUSTOMERS:
        assert f"Customers: {CUSTOMERS} generated, {customers} in the warehouse" in out

    report = data_dir / "reports" / REPORT_FILE
    assert str(report) in out
    data_docs = data_dir / "quality" / "data_docs" / "index.html"
    assert data_docs.is_file() and str(data_docs) in out
    assert str(data_docs.with_name("gate_runs.html")) in out  # the offline gate-runs page is linked
    docs_page = visit(data_docs, tmp_path / "chromium", probes={
        "rows": "document.querySelectorAll('table.offline-table tbody tr').length"})
    assert all(u.startswith("file://") for u in docs_page.requests), docs_page.requests
    assert docs_page.probes["rows"] >= 5  # Data Docs list the validations offline
    outbox = data_dir / "alerts" / "outbox"
    assert sent >= 1, "no alert due in the dispatch window of the pinned history"
    assert sum(1 for p in outbox.rglob("*") if p.is_file()) >= sent, "sent alerts missing from the file sink"

    page = visit(report, tmp_path / "chromium", screenshot=artifacts_dir / "report-demo.png", probes=PROBES)
    assert_self_contained(page, report)
    for section in SECTIONS:
        assert f'<section id="{section}"' in page.dom, section
    assert "No data." not in page.probes["text"]  # the pipeline publishes every mart the report reads
    # and copied its quality-gate runs into the warehouse, where the report reads them
    assert "No quality runs recorded" not in page.probes["text"] and "quality-gate runs" in page.probes["text"]

    # The broker was kept: the rerun must stop it and start clean, over the warehouse and outbox.
    kept = broker.read_state(settings)
    assert kept is not None and kept.alive()
    make_history_hostile(data_dir / INPUT_DIR)
    again = run_demo(data_dir)
    assert again.returncode == 0, f"{again.stdout[-5000:]}\n{again.stderr[-3000:]}"
    assert "reused the history" in again.stdout
    assert "stopped the previous demo's broker" in again.stdout
    assert not kept.alive()
    assert not settings.broker_state_file.exists()  # and this run stopped its own broker

    page = visit(report, tmp_path / "chromium", screenshot=artifacts_dir / "report-demo-hostile.png",
                 probes=PROBES)
    assert_self_contained(page, report)
    assert page.probes["not_pwned"] is True
    assert page.probes["injected_elements"] == 0
    assert html.escape(EVIL_NAME, quote=False) in page.dom
    assert EVIL_NAME in page.probes["text"]
    assert EVIL_NOTE in page.probes["text"]
