"""The real ``loyalty_pipeline`` DAG, end to end, with ``dag.test()`` on a real broker.

One generated history (40 customers, 9 months) is produced to the session's Tansu broker and
landed by the real consumer; then the DAG runs in-process (the same path as ``loyalty run``) with
dbt on a real DuckDB file, Great Expectations, and delivery to a real aiosmtpd server and a real
HTTP webhook that answers 500 twice before it accepts anything.

The scenarios share that history and run in this order: a landing defect stops the run (no
customer alert, the data engineers hear about it); the fixed data runs through and alerts reach
each customer's account manager; a rerun of the same date sends nothing new.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
from pathlib import Path

import pytest
from alerting_servers import SmtpServer, WebhookServer, airflow_test_environment

airflow_test_environment()

import pipeline_world  # noqa: E402
from pipeline_world import loyalty  # noqa: E402

from loyalty_core.settings import PROJECT_ROOT  # noqa: E402
from loyalty_monitor import pipeline, stack  # noqa: E402

# real DAG runs (dag.test) of a generated history: minutes of set-up
pytestmark = pytest.mark.slow

END = dt.date(2026, 2, 28)
START = dt.date(2025, 6, 1)
CAP = 1  # small, so that the generated history's alerts meet the weekly cap
WINDOW_DAYS = 45  # the drift model opens this history's last cases in January and February


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
        yield {"settings": settings, "smtp": smtp, "hook": hook, "managers": managers}


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

        @hookimpl(trylast=True)
        def on_task_instance_running(self, previous_state, task_instance) -> None:
            self.frozen.append(gc.get_freeze_count())

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
    return outcomes


def test_failed_quality_gate_sends_no_customer_alert_and_tells_the_data_engineers(world, failed_gate_run):
    assert [(o.state, o.failed_tasks) for o in failed_gate_run] == [("failed", ["check_landing"])]
    assert am_mail(world) == [] and churn_hooks(world) == []
    notice = oncall_mail(world)
    assert len(notice) == 1
    assert "quality gate failed" in notice[0].message["Subject"]
    assert "department" in notice[0].text and "warp drive" in notice[0].text


def test_a_model_that_fails_fails_its_task_publishes_nothing_and_tells_the_data_engineers(world, failed_model_run):
    outcomes, mails = failed_model_run
    task = "dbt_build.int_breaks_at_run_time_model_build"
    assert [(o.state, o.failed_tasks) for o in outcomes] == [("failed", [task])]
    assert [m.rcpt_tos for m in mails] == [["oncall@example.com"]]  # no account manager hears of it
    assert f"task {task} failed" in mails[0].message["Subject"]
    assert "int_breaks_at_run_time" in mails[0].text and "not a number" in mails[0].text
    assert f"loyalty run --as-of {END}" in mails[0].text
    import duckdb

    from loyalty_monitor import warehouse

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


def test_alerts_reach_each_account_manager_by_smtp_and_webhook(world, good_run):
    assert [o.state for o in good_run] == ["success"]
    mails = am_mail(world)
    assert mails, f"the generated history should raise alerts in its last {WINDOW_DAYS} days"
    for mail in mails:
        text = mail.text
        customer_id = text.split("(", 1)[1].split(")", 1)[0]
        assert mail.rcpt_tos == [world["managers"][customer_id]]
        assert "Why:\n  - " in text and "What to do next: " in text and "At stake: " in text
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
    from loyalty_monitor import warehouse
    runs = warehouse.pipeline_runs(world["settings"])
    assert [r["published_by"] for r in runs] == [f"loyalty_pipeline {END}"] * 2
    assert {r["as_of_date"] for r in runs} == {END}


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


def test_weekly_report_dag_renders_the_leadership_report(world, good_run):
    monday = END + dt.timedelta(days=(7 - END.weekday()) % 7 or 7)
    outcomes = stack.run_dates(world["settings"], [monday], dag_id=pipeline.REPORT_DAG_ID)
    assert [o.state for o in outcomes] == ["success"]
    report = world["settings"].data_dir / "reports" / f"loyalty-report-{monday - dt.timedelta(days=1)}.html"
    assert report.exists() and "<html" in report.read_text()[:500].lower()


def _published_and_alert_state(settings) -> dict[str, list[tuple]]:
    from loyalty_monitor import warehouse

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
    from loyalty_monitor import warehouse

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
