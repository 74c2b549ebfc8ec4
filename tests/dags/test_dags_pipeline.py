"""The real ``loyalty_pipeline`` DAG, end to end, with ``dag.test()`` on a real broker.

One generated history (40 customers, 9 months) is produced to the session's Tansu broker and
landed by the real consumer; then the DAG runs in-process (the same path as ``loyalty run``) with
dbt on a real DuckDB file, Great Expectations, and delivery to a real aiosmtpd server, a real
HTTP webhook that answers 500 twice before it accepts anything, and the file sink.

The scenarios share that history (each pipeline run of it takes a minute) and run in this order: a
landing defect stops the run (no customer alert, the data engineers hear about it); a model that
fails at run time stops it too; the fixed data runs through and alerts reach each customer's
account manager; a rerun of the same date sends nothing new; a broken mart stops publish.

Then the event-driven path: a high-severity complaint for one customer is produced and landed, and
the DAG runs the way the asset watcher's run does (``event_update`` does the update, the daily path
is skipped; conf ``{"path": "event"}`` stands in for the asset event that ``dag.test`` cannot
deliver). Checked: the alert (rule ``new_high_complaint``) is in the file sink, addressed to that
customer's manager, and sent once; the daily path's tasks were skipped; the marts the event path
rebuilt equal a full refresh of the same landing zone; and after the next daily run every mart does.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import uuid
from pathlib import Path

import pytest
from alerting_servers import SmtpServer, WebhookServer, airflow_test_environment

airflow_test_environment()

import pipeline_world  # noqa: E402
from pipeline_world import loyalty  # noqa: E402
from warehouse_history import snapshot as build_snapshot  # noqa: E402

from loyalty_core.settings import PROJECT_ROOT  # noqa: E402
from loyalty_monitor import pipeline, stack, warehouse  # noqa: E402

# real DAG runs (dag.test) of a generated history: minutes of set-up
pytestmark = pytest.mark.slow

END = dt.date(2026, 2, 28)
START = dt.date(2025, 6, 1)
CAP = 1  # small, so that the generated history's alerts meet the weekly cap
WINDOW_DAYS = 45  # the drift model opens this history's last cases in January and February
#: Every mart, and the incremental state the alert rules read (the event path's comparison).
MARTS = ("dim_customers", "fct_touchpoints", "fct_dialogue_daily", "fct_customer_health_daily",
         "fct_loyalty_matrix", "fct_sales_platform", "fct_account_manager_activity", "fct_churn_alerts",
         "fct_churn_risk_cases", "fct_case_lifecycle", "int_alert_flags")


@pytest.fixture(scope="module")
def world(broker, tmp_path_factory):
    """History landed on the real broker; SMTP and webhook servers; settings wired to all of them."""
    root = tmp_path_factory.mktemp("pipeline")
    data_dir = root / "data"
    data_dir.mkdir()
    scoring = root / "scoring.yml"
    shipped = (PROJECT_ROOT / "config" / "scoring.yml").read_text()
    assert "max_per_manager_per_week: 3" in shipped and "dispatch_window_days: 7" in shipped
    scoring.write_text(shipped.replace("max_per_manager_per_week: 3", f"max_per_manager_per_week: {CAP}")
                       .replace("dispatch_window_days: 7", f"dispatch_window_days: {WINDOW_DAYS}"))
    suffix = f"{os.getpid()}-pipeline"
    with SmtpServer() as smtp, WebhookServer(fail_first=2) as hook, pytest.MonkeyPatch.context() as mp:
        settings, child_env = pipeline_world.enter(
            mp, broker, data_dir, scoring, suffix, LOYALTY_ALERT_CHANNELS="smtp,webhook,file",
            LOYALTY_SMTP_HOST="127.0.0.1", LOYALTY_SMTP_PORT=str(smtp.port),
            LOYALTY_WEBHOOK_URL=hook.url + "/alerts", LOYALTY_DATA_ENGINEER_EMAILS="oncall@example.com")
        gen = root / "generated"
        loyalty(child_env, "generate", "--customers", "40", "--seed", "7", "--start", START.isoformat(), "--end",
                END.isoformat(), "--out", str(gen))
        loyalty(child_env, "produce", str(gen / "customers.jsonl"), "--topic", settings.topic_customers)
        loyalty(child_env, "produce", str(gen / "touchpoints.jsonl"), "--topic", settings.topic_touchpoints)
        loyalty(child_env, "consume", "--until-idle")
        managers = {}
        for line in (gen / "customers.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record.get("account_manager"):
                managers[record["customer_id"]] = record["account_manager"]["email"]
        yield {"settings": settings, "env": child_env, "smtp": smtp, "hook": hook, "managers": managers}


def am_mail(world):
    return [m for m in world["smtp"].inbox if m.rcpt_tos != ["oncall@example.com"]]


def churn_hooks(world):
    return [r for r in world["hook"].received if r["json"]["kind"] == "churn_alert"]


def oncall_mail(world):
    return [m for m in world["smtp"].inbox if m.rcpt_tos == ["oncall@example.com"]]


def inject_landing_defect(settings) -> list[Path]:
    """Copies of the last landed files whose touchpoints name a department the contract does not
    know (critical): a whole batch of bad rows stops the run (a few would be set aside in quarantine)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    bad = []
    for number, source in enumerate(sorted(Path(settings.landing, "touchpoints").rglob("*.parquet"))[-7:]):
        table = pq.read_table(source)
        column = table.schema.get_field_index("department")
        table = table.set_column(column, table.schema.field(column),
                                 pa.array(["warp drive"] * table.num_rows, type=table.schema.field(column).type))
        bad.append(source.with_name(f"touchpoints-p000-{999999999990 - number:012d}-999999999999.parquet"))
        pq.write_table(table, bad[-1])
    return bad


@pytest.fixture(scope="module")
def failed_gate_run(world):
    settings = world["settings"]
    bad = inject_landing_defect(settings)
    outcomes = stack.run_dates(settings, [END])
    for path in bad:
        path.unlink()
    return outcomes


@pytest.fixture(scope="module")
def failed_model_run(world, failed_gate_run, tmp_path_factory):
    """The same date with a copy of the dbt project in which one model fails at run time: its task
    fails, the run stops before publishing, and the data engineers hear which model and why."""
    import shutil

    project = tmp_path_factory.mktemp("broken") / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    (project / "models" / "intermediate" / "int_breaks_at_run_time.sql").write_text(
        "{{ config(materialized='table') }}\n"
        "select cast('not a number' as integer) as broken from {{ ref('int_touchpoints') }}\n")
    mails_before = len(world["smtp"].inbox)
    outcomes = stack.run_dates(world["settings"].replace(dbt_project_dir=project), [END])
    return outcomes, world["smtp"].inbox[mails_before:]


@pytest.fixture(scope="module")
def good_run(world, failed_gate_run, failed_model_run):
    from airflow.listeners import hookimpl  # Airflow's hook marker, for the spy below
    from airflow.sdk.listener import get_listener_manager  # the manager the task runner calls

    class FreezeSpy:
        """What the garbage collector holds frozen as each task starts, after the run's own listener."""

        def __init__(self) -> None:
            self.frozen: list[int] = []
            self.as_of_env: dict[str, str | None] = {}  # the dbt tasks' date variable in this process, per task

        @hookimpl(trylast=True)
        def on_task_instance_running(self, previous_state, task_instance) -> None:
            self.frozen.append(gc.get_freeze_count())
            self.as_of_env[task_instance.task_id] = os.environ.get(warehouse.AS_OF_ENV)

    hook = world["hook"]
    with hook.lock:  # the webhook answers 500 to the first two alert deliveries of this run
        hook.requests, hook.received[:] = 0, []
    spy = FreezeSpy()
    get_listener_manager().add_listener(spy)
    try:
        outcomes = stack.run_dates(world["settings"], [END])
    finally:
        get_listener_manager().pm.unregister(spy)
    world["frozen_at_task_start"] = spy.frozen
    world["as_of_env_at_task_start"] = spy.as_of_env
    return outcomes


def test_failed_quality_gate_sends_no_customer_alert_and_tells_the_data_engineers(world, failed_gate_run):
    assert [(o.state, o.failed_tasks) for o in failed_gate_run] == [("failed", ["check_landing"])]
    assert am_mail(world) == [] and churn_hooks(world) == []
    notice = oncall_mail(world)
    assert len(notice) == 1
    assert "quality gate failed" in notice[0].message["Subject"]
    assert "department" in notice[0].text and "warp drive" in notice[0].text
    # the console of `loyalty run` says why the date stopped and how to rerun it, not only which task
    assert "warp drive" in failed_gate_run[0].errors["check_landing"]
    said = stack.run_failure(world["settings"], [END, END + dt.timedelta(days=1)], failed_gate_run)
    assert f"stopped at {END}: failed\n  check_landing: landing quality gate failed" in said and "warp drive" in said
    assert said.endswith(f"rerun: loyalty run --start {END} --end {END + dt.timedelta(days=1)} "
                         "(1 later date(s) were not run)"), said


def test_a_model_that_fails_fails_its_task_publishes_nothing_and_tells_the_data_engineers(world, failed_model_run):
    outcomes, mails = failed_model_run
    task = "dbt_build.int_breaks_at_run_time_model_build"
    assert [(o.state, o.failed_tasks) for o in outcomes] == [("failed", [task])]
    assert [m.rcpt_tos for m in mails] == [["oncall@example.com"]]  # no account manager hears of it
    assert f"task {task} failed" in mails[0].message["Subject"]
    assert "int_breaks_at_run_time" in mails[0].text and "not a number" in mails[0].text
    assert f"loyalty run --as-of {END}" in mails[0].text
    import duckdb

    warehouse.release_duckdb()
    con = duckdb.connect(str(world["settings"].warehouse), read_only=True)
    try:  # both failed runs stopped before publish: the published schema is still empty
        assert con.execute("select count(*) from information_schema.tables where table_schema = 'published'"
                           ).fetchone()[0] == 0
    finally:
        con.close()


def test_in_process_runs_record_their_real_start_and_end(world, good_run):
    """dag.test() starts a run "at" its logical date; the UI then showed a run of a past date as
    lasting days. `loyalty run` records the wall-clock start and end instead."""
    from airflow.models.dagrun import DagRun  # Airflow's metadata DB of this module's runs
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == pipeline.DAG_ID).all()
        spans = [(run.run_id, run.start_date, run.end_date) for run in runs]
    assert spans  # dag.test() replaces the run of the same logical date: the good run's
    now = dt.datetime.now(dt.timezone.utc)
    for run_id, start, end in spans:
        assert dt.timedelta(0) < end - start < dt.timedelta(hours=1), (run_id, start, end)
        assert dt.timedelta(0) < now - start < dt.timedelta(hours=3), (run_id, start)


def test_an_in_process_run_leaves_the_garbage_collector_as_it_found_it(world, good_run):
    """Each task of an in-process run freezes what is alive (cosmos's gc.collect() after every dbt
    task then walks only what that task made); when the run is done, nothing stays frozen and the
    listener that froze is gone, so the caller's cycles are collected again."""
    from airflow.sdk.listener import get_listener_manager  # the manager the task runner calls

    assert [o.state for o in good_run] == ["success"]
    frozen = world["frozen_at_task_start"]
    assert len(frozen) > 50 and min(frozen) > 100_000, frozen[:5]  # every task started frozen
    assert gc.get_freeze_count() == 0
    assert not [p for p in get_listener_manager().pm.get_plugins() if type(p).__name__ == "FreezeBeforeEachTask"]


def test_the_dbt_tasks_leave_out_cosmos_steps_that_serve_nothing_and_keep_their_environment(world, good_run):
    """The dbt tasks run on the manifest pipeline.dbt_reuse parsed: cosmos's copy of its
    partial-parse cache into each task's project copy is left out, and so is its OpenLineage
    extraction, which nothing reads without Airflow's OpenLineage provider and which copied each
    task's environment (the run's date, ...) into this process's, where the next tasks found it."""
    from cosmos.operators.local import AbstractDbtLocalBase  # what the dbt tasks run

    from loyalty_monitor.pipeline import dbt_reuse

    assert [o.state for o in good_run] == ["success"]
    seen = world["as_of_env_at_task_start"]
    assert {"dbt_build.fct_churn_alerts_model_build", "record_build", "check_marts", "publish"} <= set(seen)
    assert set(seen.values()) == {None}, {t: v for t, v in seen.items() if v}  # no task found a dbt task's date
    assert not dbt_reuse.lineage_is_emitted()
    task_env = {"TASK_ONLY_VARIABLE": "1"}
    assert AbstractDbtLocalBase.calculate_openlineage_events_completes(
        type("Task", (), {"emit_datasets": False})(), task_env, world["settings"].data_dir) is False
    assert "TASK_ONLY_VARIABLE" not in os.environ


def test_alerts_reach_each_account_manager_by_smtp_and_webhook(world, good_run):
    assert [o.state for o in good_run] == ["success"]
    mails = am_mail(world)
    assert mails, f"the generated history should raise alerts in its last {WINDOW_DAYS} days"
    for mail in mails:
        text = mail.text
        customer_id = text.split("(", 1)[1].split(")", 1)[0]
        assert mail.rcpt_tos == [world["managers"][customer_id]]
        assert "Why (as of 20" in text and "):\n  - " in text and "What to do next: " in text and "At stake: " in text
        assert "<li>" in mail.html
    hook = world["hook"]
    assert hook.requests == len(hook.received) + 2  # the first two answers were HTTP 500
    keys = [r["headers"]["Idempotency-Key"] for r in hook.received]
    assert len(keys) == len(set(keys)) == len(mails)  # every alert exactly once, despite the 500s
    for request in hook.received:
        body = request["json"]
        assert body["recipient"]["account_manager_email"] == world["managers"][body["alerts"][0]["customer_id"]]
        assert body["alerts"][0]["drivers"] and body["alerts"][0]["suggested_action"]


def test_weekly_cap_holds_and_capped_alerts_are_listed_lowest_value_first(world, good_run):
    from loyalty_monitor.alerting import list_alerts

    rows = list_alerts(world["settings"])
    sent = [r for r in rows if r["status"] == "sent" and r["channel"] == "smtp"]
    per_week: dict[tuple, int] = {}
    for r in sent:
        key = (r["recipient"], r["alert_date"].isocalendar()[:2])
        per_week[key] = per_week.get(key, 0) + 1
    assert per_week and max(per_week.values()) <= CAP
    capped = [r["value_at_stake"] for r in list_alerts(world["settings"], status="capped")]
    assert capped == sorted(capped)
    assert {r["status"] for r in rows} <= {"sent", "capped", "expired", "pending"}


def test_rerun_of_the_same_date_sends_nothing_new(world, good_run):
    before_mail, before_hook = len(world["smtp"].inbox), len(world["hook"].received)
    # the warehouse is unchanged, so the dbt tasks are marked done: the rerun redoes the gates,
    # publish and dispatch (where a second notification would come from)
    again = stack.run_dates(world["settings"], [END], skip_tasks=r"dbt_build\..*")
    assert [o.state for o in again] == ["success"]
    assert len(world["smtp"].inbox) == before_mail and len(world["hook"].received) == before_hook
    # each successful run recorded its publish (the failed-gate run published nothing)
    runs = warehouse.pipeline_runs(world["settings"])
    assert [r["published_by"] for r in runs] == [f"loyalty_pipeline {END}"] * 2
    assert {r["as_of_date"] for r in runs} == {END}


def test_an_alert_channel_without_its_url_fails_dispatch_at_once_naming_the_setting(world, good_run):
    """A setting, not the weather: the dispatch task fails on its first attempt (it retried for
    minutes, with the same error each time) and the console says which variable is missing."""
    from airflow.listeners import hookimpl  # Airflow's hook marker, for the spy below

    # Airflow's listener manager, as the good_run fixture uses it
    from airflow.sdk.listener import get_listener_manager

    class Attempts:
        def __init__(self):
            self.dispatch = 0

        @hookimpl
        def on_task_instance_running(self, previous_state, task_instance) -> None:
            self.dispatch += task_instance.task_id == "dispatch_alerts"

    settings = world["settings"].replace(alert_channels="slack", slack_webhook_url="", task_retries=2,
                                         task_retry_delay_s=5.0)
    spy = Attempts()
    get_listener_manager().add_listener(spy)
    try:
        outcomes = stack.run_dates(settings, [END], skip_tasks=r"^(?!dispatch_alerts$).*")
    finally:
        get_listener_manager().pm.unregister(spy)
    assert [(o.state, o.failed_tasks) for o in outcomes] == [("failed", ["dispatch_alerts"])]
    assert spy.dispatch == 1
    assert "needs LOYALTY_SLACK_WEBHOOK_URL" in outcomes[0].errors["dispatch_alerts"]
    assert f"loyalty run --as-of {END}" in outcomes[0].errors["dispatch_alerts"]


def test_dag_is_wired_for_schedule_events_retries_and_per_model_tasks(world):
    dag = stack.load_dag()
    timetable = dag.timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    watcher = timetable.asset_condition.watchers[0]
    assert watcher.trigger.kwargs["topics"] == [world["settings"].topic_batches]
    assert watcher.trigger.kwargs["kafka_config_id"] == pipeline.KAFKA_CONNECTION_ID
    ids = set(dag.task_ids)
    assert {"check_landing", "check_marts", "publish", "dispatch_alerts"} <= ids
    models = [t for t in ids if t.startswith("dbt_build.")]
    assert any("fct_churn_alerts" in t for t in models) and len(models) >= 5
    assert dag.default_args["retry_exponential_backoff"] and dag.default_args["on_failure_callback"]
    # deadlines: every task (the dbt tasks too) and the run as a whole
    assert dag.dagrun_timeout == dt.timedelta(seconds=world["settings"].dagrun_timeout_s)
    assert all(task.execution_timeout == dt.timedelta(seconds=world["settings"].task_timeout_s)
               for task in dag.tasks), [t.task_id for t in dag.tasks if not t.execution_timeout]


def test_a_run_date_in_the_future_or_before_any_event_is_refused_and_the_dag_asks_first():
    """User trial: `loyalty run --as-of 2027-03-01` scored days nobody had lived and expired, for
    good, the alerts of November; the run as of the right day then sent nothing. The CLI, run_dates
    and the DAG's first task (a manual trigger in the UI) refuse such a date."""
    from loyalty_core.settings import load_settings

    settings = load_settings()
    today = dt.datetime.now(dt.timezone.utc).date()
    for fine in (today, today + dt.timedelta(days=1), dt.date(2000, 1, 1)):
        pipeline.check_run_date(settings, fine)
    with pytest.raises(pipeline.ConfigurationError, match=r"as-of date .* is in the future \(today is "):
        pipeline.check_run_date(settings, today + dt.timedelta(days=2))
    with pytest.raises(pipeline.ConfigurationError, match="before the earliest event date"):
        pipeline.check_run_date(settings, dt.date(1999, 12, 31))
    with pytest.raises(pipeline.ConfigurationError, match="in the future"):
        stack.run_dates(settings, [today, today + dt.timedelta(days=400)])
    dag_file = (PROJECT_ROOT / "dags" / "loyalty_pipeline.py").read_text()
    first = dag_file[dag_file.index("def event_update"):dag_file.index("def apply_erasures")]
    assert "gate(pipeline.check_run_date, as_of())" in first


def test_weekly_report_dag_renders_the_leadership_report(world, good_run):
    monday = END + dt.timedelta(days=(7 - END.weekday()) % 7 or 7)
    outcomes = stack.run_dates(world["settings"], [monday], dag_id=pipeline.REPORT_DAG_ID)
    assert [o.state for o in outcomes] == ["success"]
    report = world["settings"].data_dir / "reports" / f"loyalty-report-{monday - dt.timedelta(days=1)}.html"
    assert report.exists() and "<html" in report.read_text()[:500].lower()


def test_weekly_report_dag_skips_its_steps_before_anything_is_published(world, tmp_path):
    """A new installation's first Monday, before any daily run: no report, no digest, no failure and
    no page to the data engineers (tests/loyalty_monitor/test_pipeline.py: the reason given)."""
    fresh = world["settings"].replace(data_dir=tmp_path / "data")
    fresh.data_dir.mkdir()
    oncall_before = len(oncall_mail(world))
    outcomes = stack.run_dates(fresh, [dt.date(2026, 3, 2)], dag_id=pipeline.REPORT_DAG_ID)
    assert [(o.state, o.failed_tasks, o.skipped_tasks) for o in outcomes] == [
        ("success", [], ["render_report", "send_weekly_digests"])]
    assert not (fresh.data_dir / "reports").exists() and not fresh.warehouse.exists()
    assert len(oncall_mail(world)) == oncall_before


def _published_and_alert_state(settings) -> dict[str, list[tuple]]:
    warehouse.release_duckdb()  # the in-process dag.test leaves dbt's handle open
    with warehouse.connect(settings, read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'published' "
            "order by table_name").fetchall()]
        snapshot = {t: sorted(map(repr, con.execute(f'select * from published."{t}"').fetchall())) for t in tables}
        snapshot["ops.alert_state"] = sorted(map(repr, con.execute("select * from ops.alert_state").fetchall()))
    return snapshot


def test_a_failed_marts_gate_leaves_published_marts_and_alert_state_exactly_as_they_were(world, good_run):
    """dbt has rebuilt `build` with a critical defect: the gate stops publish and dispatch."""
    settings = world["settings"]
    before = _published_and_alert_state(settings)
    assert before["fct_churn_alerts"] and before["ops.alert_state"]
    mail_before, hooks_before = len(world["smtp"].inbox), len(churn_hooks(world))
    warehouse.release_duckdb()
    with warehouse.connect(settings, read_only=False) as con:  # a broken model: scores above 100
        con.execute("update build.fct_customer_health_daily set health_score = 150 "
                    "where as_of_date = (select max(as_of_date) from build.fct_customer_health_daily)")
    try:
        outcomes = stack.run_dates(settings, [END], skip_tasks=r"dbt_build\..*")
        assert [(o.state, o.failed_tasks) for o in outcomes] == [("failed", ["check_marts"])]
        assert _published_and_alert_state(settings) == before
        new_mail = world["smtp"].inbox[mail_before:]
        assert [m.rcpt_tos for m in new_mail] == [["oncall@example.com"]]  # only the data engineers
        assert len(churn_hooks(world)) == hooks_before  # no customer alert by webhook either
    finally:
        warehouse.release_duckdb()
        with warehouse.connect(settings, read_only=False) as con:
            con.execute("create or replace table build.fct_customer_health_daily as "
                        "select * from published.fct_customer_health_daily")


# --- the event-driven path, on the same world after the daily runs above -----------------------------

def snapshot(settings, tables) -> dict[str, list[tuple]]:
    warehouse.release_duckdb()  # the in-process dag.test leaves dbt's handle open
    return build_snapshot(settings, tables)


def outbox_alerts(settings) -> list[dict]:
    outbox = settings.data_dir / "alerts" / "outbox"
    return [json.loads(p.read_text()) for p in sorted(outbox.glob("*.json"))] if outbox.exists() else []


@pytest.fixture(scope="module")
def complaint(world, good_run):
    """A high-severity complaint for a customer without one open, whose manager still has room under
    the weekly cap in the complaint's week (the cap decides whether an alert is sent, not which path
    sends it), landed, then the event path."""
    from loyalty_monitor.alerting import list_alerts

    settings = world["settings"]
    week = END.isocalendar()[:2]
    full = {r["recipient"] for r in list_alerts(settings) if r["status"] in ("sent", "failed")
            and r["alert_date"] is not None and r["alert_date"].isocalendar()[:2] == week}
    warehouse.release_duckdb()
    rows = warehouse.query(settings, """
        select c.customer_id, c.account_manager_email
        from published.dim_customers c
        join build.int_alert_flags f on f.customer_id = c.customer_id and f.as_of_date = ?
        join published.fct_customer_health_daily h on h.customer_id = c.customer_id and h.as_of_date = ?
        where f.past_warmup and h.open_high_complaint_days is null and c.account_manager_email is not null
          and c.customer_id not in (select customer_id from published.fct_churn_alerts
                                    where rule = 'new_high_complaint' and episode_end_date is null)
        order by c.customer_id""", [END, END])
    customer = next(r for r in rows if r["account_manager_email"] not in full)
    before = outbox_alerts(settings)
    event = {"schema_version": 1, "event_id": str(uuid.uuid4()), "event_type": "complaint",
             "occurred_at": f"{END}T11:30:00+01:00", "customer_id": customer["customer_id"],
             "department": "support", "direction": "inbound", "employee_id": "SP01", "contact_role": "user",
             "source": "helpdesk", "note": "Machine down again", "payload": {"severity": "high", "resolved": False}}
    lines = settings.data_dir / "complaint.jsonl"
    lines.write_text(json.dumps(event) + "\n")
    loyalty(world["env"], "produce", str(lines), "--topic", settings.topic_touchpoints)
    loyalty(world["env"], "consume", "--until-idle")
    outcomes = stack.run_dates(settings, [END], conf={"path": pipeline.EVENT_PATH,
                                                     "topics": [settings.topic_touchpoints]})
    return {"customer": customer, "before": before, "outcomes": outcomes,
            "after_event": snapshot(settings, MARTS)}


def test_a_new_high_severity_complaint_reaches_its_account_manager_through_the_event_path(world, complaint):
    settings = world["settings"]
    assert [o.state for o in complaint["outcomes"]] == ["success"], complaint["outcomes"]
    customer = complaint["customer"]
    new = [a for a in outbox_alerts(settings) if a not in complaint["before"]]
    for_customer = [a for a in new if any(x["customer_id"] == customer["customer_id"] for x in a["alerts"])]
    assert len(for_customer) == 1, new
    (message,) = for_customer
    assert message["to"] == [customer["account_manager_email"]]
    (alert,) = message["alerts"]
    assert alert["rule"] == "new_high_complaint" and alert["severity"] == "high"
    assert str(alert["alert_date"])[:10] == END.isoformat()
    assert "complaint" in message["text"] and "today" in message["text"]

    # the event path ran, the daily path's tasks (every dbt model task) did not
    from airflow.models import DagRun

    run = max(DagRun.find(dag_id=pipeline.DAG_ID, run_id=None), key=lambda r: r.id)  # the newest: runs of one date tie in find()'s order
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states["event_update"] == "success", states
    daily = [t for t in states if t != "event_update"]
    assert daily and all(states[t] == "skipped" for t in daily), states

    # a rerun of the event path sends nothing twice
    again = stack.run_dates(settings, [END], conf={"path": pipeline.EVENT_PATH})
    assert [o.state for o in again] == ["success"]
    assert [a for a in outbox_alerts(settings) if a not in complaint["before"]] == new


def test_event_selection_is_every_model_between_the_touched_source_and_the_alert_marts(world):
    """dbt's own graph: the selection holds exactly the models downstream of the source AND upstream
    of a mart the event path serves (so nothing an alert needs is left stale), and no other."""
    settings = world["settings"]
    manifest = json.loads(pipeline.dbt_manifest(settings).read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    parents = {k: set(v["depends_on"]["nodes"]) for k, v in models.items()}

    def upstream(node: str) -> set[str]:
        seen, todo = set(), [node]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    by_name = {v["name"]: k for k, v in models.items()}
    for source in pipeline.landed_sources(settings, None):
        source_id = next(s for s in manifest["sources"] if s.endswith(f".landing.{source}"))
        below = {k for k in models if source_id in upstream(k)}
        serving = set()
        for mart in pipeline.EVENT_MARTS:
            serving |= upstream(by_name[mart]) | {by_name[mart]}
        expected = sorted(models[k]["name"] for k in below & serving)
        listed = warehouse.run_dbt(settings, ["ls", "--resource-type", "model", "--output", "name",
                                              "--select", *pipeline.event_selection([source])])
        assert listed.success, listed.error
        got = sorted(listed.listed)
        assert got == expected, source
    touchpoints = pipeline.event_selection(["touchpoints"])
    assert all("fct_loyalty_matrix" not in s for s in touchpoints)
    # a batch of an unknown topic, or none named: every source
    assert pipeline.landed_sources(settings, ["elsewhere"]) == pipeline.landed_sources(settings, None)
    assert pipeline.landed_sources(settings, [settings.topic_case_events]) == ["case_events"]


def test_run_path_event_for_asset_runs_and_conf_daily_otherwise():
    assert pipeline.run_path("asset_triggered", None) == pipeline.EVENT_PATH
    assert pipeline.run_path("scheduled", {}) == pipeline.DAILY_PATH
    assert pipeline.run_path("manual", None) == pipeline.DAILY_PATH
    assert pipeline.run_path("manual", {"path": "event"}) == pipeline.EVENT_PATH
    assert pipeline.run_path("asset_triggered", {"path": "daily"}) == pipeline.DAILY_PATH


def test_the_event_paths_marts_equal_a_full_refresh_and_the_next_daily_run_completes_the_rest(world, complaint):
    settings = world["settings"]
    after_event = complaint["after_event"]
    daily = stack.run_dates(settings, [END])
    assert [o.state for o in daily] == ["success"], daily
    after_daily = snapshot(settings, MARTS)
    warehouse.build(settings, as_of=END, full_refresh=True)
    full = snapshot(settings, MARTS)
    rebuilt = [m for m in MARTS if m in pipeline.EVENT_MARTS or m == "int_alert_flags"]
    for table in rebuilt:
        assert after_event[table] == full[table], f"{table}: the event path differs from a full refresh"
    for table in MARTS:
        assert len(after_daily[table]) == len(full[table]) > 0, table
        assert after_daily[table] == full[table], f"{table}: event + daily runs differ from a full refresh"
    customer = complaint["customer"]["customer_id"]
    assert any(row[1] == customer for row in full["fct_churn_alerts"] if "new_high_complaint" in row)
