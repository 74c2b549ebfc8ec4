"""The steps of the ``loyalty_pipeline`` DAG as plain functions, keyed by the run's logical date.

Every step is idempotent for its ``as_of`` date: dbt rebuilds the same tables, publish replaces
the published marts in one transaction, and alert dispatch consults ``ops.alert_state``. The DAG
file (``dags/loyalty_pipeline.py``) only wires these together; ``loyalty run`` executes that DAG.

A failed critical quality gate raises :class:`QualityGateFailed`: the run stops before publish
and dispatch (no customer alert goes out on bad data) and the data engineers are told why. Rows
the landing gate set aside in quarantine do not stop it: the data engineers are told how many.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

from loyalty_core.dates import parse_as_of
from loyalty_core.settings import Settings

log = logging.getLogger(__name__)

DAG_ID = "loyalty_pipeline"
REPORT_DAG_ID = "loyalty_weekly_report"
#: Airflow connection the asset watcher's Kafka trigger uses (defined from settings by
#: ``airflow_environment()``, or by operators in Airflow's own secrets backend).
KAFKA_CONNECTION_ID = "loyalty_kafka"


class QualityGateFailed(RuntimeError):
    """Critical data-quality checks failed: nothing is published and no alert is sent."""


def as_of_date(logical_date: Any) -> dt.date:
    """The business date a run computes: the logical date's UTC calendar day (today when None)."""
    return parse_as_of(logical_date)


def _finding(finding: Any) -> str:
    return finding.line() if hasattr(finding, "line") else str(finding)


def _gate_summary(result: Any, what: str) -> dict[str, Any]:
    return {
        "gate": what,
        "passed": bool(result.passed),
        "critical_failures": [_finding(f) for f in (result.critical_failures or [])],
        "warnings": [_finding(w) for w in (result.warnings or [])],
        "docs_path": str(result.docs_path) if getattr(result, "docs_path", None) else None,
        # Rows that failed a row-level critical expectation, set aside: the run goes on without them.
        "quarantined": [_finding(q) for q in (getattr(result, "quarantined", None) or [])],
        "quarantined_rows": int(getattr(result, "quarantined_rows", 0) or 0),
    }


def _raise_if_failed(summary: dict[str, Any], as_of: dt.date) -> dict[str, Any]:
    if summary["passed"]:
        if summary["warnings"]:
            log.warning("%s quality gate for %s passed with %d warnings: %s", summary["gate"], as_of,
                        len(summary["warnings"]), "; ".join(summary["warnings"][:5]))
        return summary
    failures = summary["critical_failures"] or ["(the gate reported failure without details)"]
    detail = "; ".join(failures[:10]) + (f"; and {len(failures) - 10} more" if len(failures) > 10 else "")
    docs = f" Data docs: {summary['docs_path']}" if summary["docs_path"] else ""
    raise QualityGateFailed(f"{summary['gate']} quality gate failed for {as_of}: {detail}.{docs}")


def apply_erasures(settings: Settings, as_of: dt.date) -> dict[str, Any]:
    """First step of every run: erase the customers whose tombstone has landed, everywhere the
    project stores data, and erase again what of an erased customer landed since
    (``loyalty_monitor.erasure``). Before the gate and dbt, so neither ever reads erased rows.
    The result names customers only by keyed hash (it is kept in Airflow's metadata)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import erasure

    release_dbt_handle()
    report = erasure.apply_erasures(settings, requested_by=f"{DAG_ID} {as_of.isoformat()}")
    if report.erasures:
        log.info("%s", report.summary())
    return {"erased": report.customers, "erasures": [e["erasure_id"] for e in report.erasures],
            "notes": report.notes}


def check_landing(settings: Settings, as_of: dt.date) -> dict[str, Any]:
    """Quality gate on the landed Parquet data, before dbt reads it."""
    from expectations.gate import quarantine_notice, validate_landing  # loads Great Expectations: not at DAG parse
    from loyalty_monitor.alerting import notify_data_engineers  # with the gate: only when a run checks data

    # The gate judges a day's volume only once the day is over: for a past as-of date (backfill,
    # `loyalty run --as-of`) that is the end of that day, not the wall clock.
    end_of_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(0), tzinfo=dt.timezone.utc)
    now = min(dt.datetime.now(dt.timezone.utc), end_of_day)
    result = validate_landing(settings, now=now)
    if result.passed and result.quarantine_ids:  # rows set aside: the run goes on, engineers hear of it
        log.warning("landing quality gate for %s set %d row(s) aside in quarantine", as_of,
                    len(result.quarantine_ids))
        notify_data_engineers(settings, *quarantine_notice(result))
    return _raise_if_failed(_gate_summary(result, "landing"), as_of)


def dbt_environment(settings: Settings) -> dict[str, str]:
    """Environment that dbt_project/profiles.yml reads (defined by the warehouse module)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    return warehouse.dbt_env(settings)


def build_warehouse(settings: Settings, as_of: dt.date, select: str | None = None) -> Any:
    """dbt build into schema ``build`` (the DAG runs one task per model instead; this is for scripts)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    return warehouse.build(settings, as_of, select=select)


def release_dbt_handle() -> None:
    """dbt-duckdb keeps the warehouse open after an in-process run (``loyalty run``); DuckDB then
    refuses this process's other connections to the file. Close it before the steps that read."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    warehouse.release_duckdb()


def plan_build(settings: Settings) -> dict[str, Any]:
    """Whether the dbt tasks must rebuild from scratch: yes when config/scoring.yml changed since the
    last completed build (past days must be re-scored), as ``warehouse.build`` decides it too.

    On PostgreSQL it first loads the landed files into schema ``landing`` (``warehouse.load``), the
    step the dbt tasks that follow need, as ``warehouse.build`` does it; on DuckDB nothing to load."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import scoring, warehouse

    loaded = warehouse.load(settings)
    if loaded is not None:
        log.info("landing zone loaded into PostgreSQL: %s", loaded.summary())

    now = scoring.fingerprint(scoring.load_scoring(settings.scoring_file))
    state = warehouse._scoring_state_file(settings)  # shared with `loyalty warehouse build`
    previous = state.read_text().strip() if state.exists() else None
    if previous != now:
        log.info("scoring fingerprint %s differs from the last build's (%s): full refresh", now, previous)
    return {"full_refresh": previous != now, "scoring_fingerprint": now}


def record_build(settings: Settings, plan: dict[str, Any]) -> None:
    """After the dbt tasks succeeded: remember which scoring the warehouse was built with."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    warehouse._scoring_state_file(settings).write_text(plan["scoring_fingerprint"] + "\n")


def fit_population(settings: Settings, as_of: dt.date, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """The drift model's population step: BG/NBD parameters refitted weekly or when the scoring
    changed, and every customer's P(alive) as of the run's day (``loyalty_monitor.drift.population``)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.drift import population

    release_dbt_handle()
    result = population.refresh(settings, as_of, refit=bool(plan and plan.get("full_refresh")))
    return {"as_of": as_of.isoformat(), "refitted": result.refitted, "customers": result.customers,
            "fits": len(result.fits)}


def check_marts(settings: Settings, as_of: dt.date) -> dict[str, Any]:
    """Quality gate on the freshly built marts (schema ``build``), before anyone can see them."""
    # the gate loads Great Expectations: not at import
    from expectations.gate import validate_marts

    release_dbt_handle()
    return _raise_if_failed(_gate_summary(validate_marts(settings, as_of, schema="build"), "marts"), as_of)


def publish(settings: Settings, as_of: dt.date) -> Any:
    """Copy the checked marts into schema ``published`` (one transaction)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    release_dbt_handle()
    result = warehouse.publish(settings, published_by=f"loyalty_pipeline {as_of.isoformat()}")
    log.info("published the marts of %s", as_of)
    return result


def dispatch_alerts(settings: Settings, as_of: dt.date) -> dict[str, Any]:
    """Send the due churn alerts; raise (after recording) if some could not be delivered."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting import AlertDeliveryError

    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting import dispatch_alerts as dispatch

    release_dbt_handle()
    result = dispatch(settings, as_of)
    summary = {k: getattr(result, k) for k in ("sent", "failed", "capped", "expired", "already_done", "messages",
                                               "paused", "undeliverable")}
    if result.failed:
        paused = (f" channel {', '.join(result.paused_channels)} paused, {result.paused} deliveries left pending;"
                  if result.paused_channels else "")
        raise AlertDeliveryError(f"{result.failed} alert deliveries failed for {as_of} (recorded in "
                                 f"ops.alert_state; a retry sends only those and the pending ones):{paused} "
                                 + "; ".join(result.errors[:5]))
    return summary


# --- the event-driven path ------------------------------------------------------------------------

#: What an event-driven run refreshes: the marts alert dispatch and the account managers' web app
#: read (docs/design.md "Alerts"), with everything upstream of them that the new events touch. The
#: other marts (loyalty matrix, sales platform, activity, forecast audit, feedback) are the daily
#: run's: their incremental models catch up on their own watermarks then.
EVENT_MARTS = ("dim_customers", "fct_touchpoints", "fct_dialogue_daily", "fct_customer_health_daily",
               "fct_churn_alerts", "fct_case_lifecycle")
#: How a run knows it is event-driven without an asset event (a manual trigger, ``dag.test``):
#: ``{"path": "event", "topics": [...]}`` in the run's conf.
EVENT_PATH, DAILY_PATH = "event", "daily"


def run_path(run_type: Any, conf: dict[str, Any] | None = None) -> str:
    """Which path a DAG run takes: ``event`` for a run the asset watcher started (a landed batch)
    or one whose conf asks for it, ``daily`` for every other (scheduled, manual, backfill)."""
    wanted = (conf or {}).get("path")
    if wanted in (EVENT_PATH, DAILY_PATH):
        return wanted
    return EVENT_PATH if str(getattr(run_type, "value", run_type)) == "asset_triggered" else DAILY_PATH


def landed_sources(settings: Settings, topics: list[str] | None) -> list[str]:
    """The dbt sources (tables of source ``landing``) the landed batches of ``topics`` wrote; all of
    them when the topics are unknown (a manual run, an unknown topic): never less than was touched."""
    tables = {settings.topic_touchpoints: "touchpoints", settings.topic_customers: "customers",
              settings.topic_case_events: "case_events"}
    every = sorted(set(tables.values()))
    if not topics or any(topic not in tables for topic in topics):
        return every
    return sorted({tables[topic] for topic in topics})


def event_selection(sources: list[str]) -> list[str]:
    """dbt ``--select`` arguments of an event-driven run: the models downstream of the touched
    sources that the alert marts (``EVENT_MARTS``) are built from, and those marts. Intersections
    (``A+,+B``), one per source and mart; dbt takes the union of the arguments. Their tests come
    with them (``dbt build``)."""
    return [f"source:landing.{source}+,+{mart}" for source in sources for mart in EVENT_MARTS]


def triggering_topics(context: Any) -> list[str] | None:
    """The topics of the batch-landed messages that started this run (the asset watcher's events,
    ``is_batch_landed``'s payload), else the run conf's ``topics``; None when neither says."""
    topics: set[str] = set()
    try:
        accessor = context.get("triggering_asset_events") or {}
        for events in accessor.values():
            for event in events:
                payload = (getattr(event, "extra", None) or {}).get("payload") or {}
                if isinstance(payload, dict) and payload.get("topic"):
                    topics.add(str(payload["topic"]))
                else:
                    return None  # an event without a topic: do not guess what it touched
    except Exception as exc:  # noqa: BLE001 - unknown topics mean "build for every source"
        log.warning("could not read the triggering asset events: %s", exc)
        return None
    if topics:
        return sorted(topics)
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    listed = conf.get("topics")
    return [str(t) for t in listed] if isinstance(listed, list) and listed else None


def event_update(settings: Settings, as_of: dt.date, topics: list[str] | None = None) -> dict[str, Any]:
    """The event-driven run in one task: what the daily run's tasks do, for what the new batches
    touched, in one process (a task costs seconds of process start and imports on a busy host,
    and the daily run has dozens).

    erasures -> landing gate (the new files) -> dbt build of ``event_selection`` in one invocation
    (incremental: only customers with new events are rebuilt, and on the first run of a day every
    customer's new day) -> population step -> marts gate -> publish -> dispatch. When the scoring
    changed since the last build, the build is the daily run's full refresh instead (nothing is
    selected then). Returns what each step took (seconds), for the latency benchmark and the log.
    """

    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    steps: dict[str, float] = {}

    def timed(name: str, step, *args):
        started = time.monotonic()
        try:
            return step(*args)
        finally:
            steps[name] = round(time.monotonic() - started, 3)

    erased = timed("erasures", apply_erasures, settings, as_of)
    timed("landing_gate", check_landing, settings, as_of)
    plan = timed("plan", plan_build, settings)
    sources = landed_sources(settings, topics)
    select = None if plan["full_refresh"] else event_selection(sources)
    result = timed("dbt", warehouse.build, settings, as_of, plan["full_refresh"],
                   " ".join(select) if select else None)
    if plan["full_refresh"]:
        record_build(settings, plan)
    population = timed("population", fit_population, settings, as_of, plan)
    timed("marts_gate", check_marts, settings, as_of)
    timed("publish", publish, settings, as_of)
    dispatched = timed("dispatch", dispatch_alerts, settings, as_of)
    summary = {"as_of": as_of.isoformat(), "topics": topics, "sources": sources, "select": select,
               "full_refresh": plan["full_refresh"], "dbt_nodes": len(result.nodes),
               "dbt_models": sum(1 for n in result.nodes if n.resource_type == "model"),
               "erased": erased["erased"], "population": population, "dispatch": dispatched, "steps": steps}
    log.info("event-driven run as of %s: %s; dbt %d nodes (%s); steps %s", as_of, ", ".join(sources),
             summary["dbt_nodes"], "full refresh" if plan["full_refresh"] else "selected", steps)
    return summary


def render_weekly_report(settings: Settings, period_end: dt.date) -> str:
    """The leadership report up to ``period_end`` (its default window: the 12 weeks before), as a file
    ``<data_dir>/reports/loyalty-report-<period_end>.html``; a rerun overwrites the same file."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.reporting import render_report

    out = settings.data_dir / "reports" / f"loyalty-report-{period_end.isoformat()}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    return str(render_report(settings, out, period_end=period_end))


def send_weekly_digests(settings: Settings, week_end: dt.date) -> dict[str, Any]:
    """Each account manager's weekly digest for the ISO week holding ``week_end`` (alerting/weekly.py),
    once per manager and week; raise (after recording) if some could not be delivered."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting import AlertDeliveryError

    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting.weekly import send_weekly_digests as send

    result = send(settings, week_end)
    if result.failed:
        raise AlertDeliveryError(f"{result.failed} weekly digests failed for {result.week} (recorded in "
                                 f"ops.alert_state; a retry sends only those): " + "; ".join(result.errors[:5]))
    return {"week": result.week, "sent": result.sent, "already_done": result.already_done,
            "skipped": result.skipped}


def on_failure(settings: Settings, *, dag_id: str, task_id: str, logical_date: Any, error: BaseException | None,
               try_number: int | None = None, log_url: str | None = None) -> list[dict[str, Any]]:
    """Tell the data engineers that a task failed for good (after its retries). Never raises."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting import notify_data_engineers

    as_of = as_of_date(logical_date)
    # Airflow sees the gate's failure wrapped (AirflowFailException, so that it is not retried).
    if isinstance(error, QualityGateFailed) or isinstance(getattr(error, "__cause__", None), QualityGateFailed):
        subject = f"{dag_id} {as_of}: quality gate failed, nothing published, no alerts sent"
    else:
        subject = f"{dag_id} {as_of}: task {task_id} failed"
    lines = [
        f"DAG: {dag_id}", f"Task: {task_id}", f"Logical date: {logical_date} (as of {as_of})",
        f"Attempt: {try_number}" if try_number else None,
        f"Error: {type(error).__name__}: {error}" if error else "Error: (not reported by Airflow)",
        f"Log: {log_url}" if log_url else None,
        "",
        "Fix the cause, then rerun the date: `loyalty run --as-of " + as_of.isoformat() + "` "
        "(or clear the task in the Airflow UI). Reruns never send an alert twice.",
    ]
    try:
        return notify_data_engineers(settings, subject, "\n".join(line for line in lines if line is not None))
    except Exception:  # noqa: BLE001 - a failure callback must never fail itself
        log.exception("could not notify the data engineers about %s.%s", dag_id, task_id)
        return []


def kafka_connection(settings: Settings) -> dict[str, Any]:
    """The Airflow connection (JSON form) for the asset watcher's Kafka consumer."""
    extra = settings.confluent_client_config()
    extra.update({"group.id": f"{settings.consumer_group}-airflow-watcher", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False,
                  # Kept short like the consumer's: a group's first join waits for the rebalance timeout.
                  "max.poll.interval.ms": settings.max_poll_interval_ms,
                  "session.timeout.ms": settings.session_timeout_ms})
    return {"conn_type": "kafka", "extra": extra}


def airflow_environment(settings: Settings, airflow_home: Path | None = None) -> dict[str, str]:
    """Environment for Airflow processes of this project (standalone, dag.test, the CLI)."""
    # at run time: parsing the DAG file stays light
    from loyalty_core.settings import PROJECT_ROOT

    home = airflow_home or settings.data_dir / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",  # no phoning home from a customer-data pipeline
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        f"AIRFLOW_CONN_{KAFKA_CONNECTION_ID.upper()}": json.dumps(kafka_connection(settings)),
        "LOYALTY_DATA_DIR": str(settings.data_dir),
    }


def is_batch_landed(message: Any) -> Any:
    """Asset-watcher filter: a "batch landed" message (design.md) with records starts a run.

    Returns the parsed message (truthy) to fire the event, or None to keep waiting. A malformed
    message is logged and ignored here: the consumer wrote it, the data itself is in the landing zone.
    """
    try:
        value = message.value()
        body = json.loads(value) if value else None
    except (ValueError, TypeError) as exc:
        log.warning("ignoring a malformed batch-landed message: %s", exc)
        return None
    if not isinstance(body, dict) or "batch_id" not in body:
        log.warning("ignoring a batch-landed message without batch_id: %r", str(body)[:200])
        return None
    return {"batch_id": body["batch_id"], "topic": body.get("topic"),
            "event_dates": body.get("event_dates") or [], "records": body.get("records")}


def dbt_profile_name(settings: Settings) -> str:
    """The ``profile:`` of dbt_project/dbt_project.yml (the one place it is named)."""
    # at run time: parsing the DAG file stays light
    import yaml

    project_file = settings.dbt_project_dir / "dbt_project.yml"
    try:
        return str(yaml.safe_load(project_file.read_text())["profile"])
    except (OSError, KeyError, TypeError) as exc:
        raise RuntimeError(f"cannot read the dbt profile name from {project_file}: {exc}") from exc


def dbt_manifest(settings: Settings) -> Path:
    """dbt's manifest.json for the DAG's one-task-per-model rendering; re-parsed when the project changed.

    Written under ``<data_dir>/dbt/target`` (never into the repository). ``dbt parse`` reads but
    never connects to the warehouse.
    """

    target = settings.data_dir / "dbt" / "target"
    manifest = target / "manifest.json"
    project = settings.dbt_project_dir
    sources = [p for p in project.rglob("*") if p.is_file() and p.suffix in {".sql", ".yml", ".yaml", ".csv", ".md"}
               and "target" not in p.relative_to(project).parts and "dbt_packages" not in p.relative_to(project).parts]
    newest = max((p.stat().st_mtime for p in sources), default=0.0)
    if manifest.exists() and manifest.stat().st_mtime >= newest:
        return manifest
    # at run time: parsing the DAG file stays light
    from dbt.cli.main import dbtRunner

    log.info("parsing the dbt project %s into %s", project, target)
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.warehouse import environment

    with environment(dbt_environment(settings)):
        result = dbtRunner().invoke(["parse", "--project-dir", str(project), "--profiles-dir", str(project),
                                     "--target", settings.dbt_target, "--target-path", str(target), "--quiet",
                                     "--vars", json.dumps(dbt_run_vars(settings, dt.date.today()), default=str)])
    if not result.success or not manifest.exists():
        raise RuntimeError(f"dbt parse of {project} failed: {result.exception or 'see the dbt log above'}")
    return manifest


def dbt_run_vars(settings: Settings, as_of: Any) -> dict[str, Any]:
    """dbt vars for a run of ``as_of`` (a date, or a template string the DAG fills in per run)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    values = dict(warehouse.dbt_vars(settings, dt.date(2000, 1, 1)))
    values["as_of_date"] = as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of)
    return values
