"""Airflow DAGs of Loyalty Monitor. Thin wiring only: every step is a function of loyalty_monitor.pipeline.

``loyalty_pipeline`` runs daily (silence is the main churn signal: time alone must be able to raise
an alert) AND whenever the consumer announces a landed batch on Kafka (an asset watcher with the
apache-kafka provider's message-queue trigger). Two paths, each idempotent for the run's as-of date;
the first task, ``event_update`` (a branch), takes one:

- event (a landed batch; or conf ``{"path": "event"}``): event_update does the whole update itself,
  in one task, for what the batch touched: dbt builds only the models between the batch's landing
  source and the marts alerts read (``pipeline.event_selection``), so a new high-severity complaint
  reaches its account manager within a minute (docs/operations.md, "Event-to-alert latency"); the
  daily path's tasks are skipped.
- daily (scheduled, manual, backfill runs): event_update hands over at once to apply_erasures
  (tombstones: erase the customer everywhere) -> check_landing -> plan_build (full refresh when
  scoring.yml changed) -> dbt_build (one task per dbt model, astronomer-cosmos) -> record_build
  -> fit_population (the drift model's BG/NBD step) -> check_marts -> publish -> dispatch_alerts;
  every model, every mart.

``loyalty_weekly_report`` renders the leadership report every Monday for the week before.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.apache.kafka.triggers.msg_queue import KafkaMessageQueueTrigger
from airflow.sdk import (
    Asset,
    AssetOrTimeSchedule,
    AssetWatcher,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    dag,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

from loyalty_monitor import pipeline
from loyalty_core.settings import load_settings

# Whatever the scheduler's own umask, what the pipeline writes (warehouse, outbox, reports) is its
# owner's only: it holds customer names, notes and account managers' e-mail addresses.
os.umask(0o077)
settings = load_settings()
# The dbt tasks of a run that share a process (loyalty run, dag.test) parse the project once.
pipeline.reuse_dbt_parse()

# The URI names the topic, not the broker address: the embedded broker's port changes with every
# `loyalty up`, and an asset's identity must not.
batches_landed = Asset(
    name="loyalty_batches_landed",
    uri=f"kafka://loyalty-monitor/{settings.topic_batches}",
    watchers=[AssetWatcher(
        name="loyalty_batches_landed_watcher",
        trigger=KafkaMessageQueueTrigger(
            topics=[settings.topic_batches],
            kafka_config_id=pipeline.KAFKA_CONNECTION_ID,
            apply_function="loyalty_monitor.pipeline.is_batch_landed",
            # How long one poll waits for a message (it returns at once when one comes), and the
            # pause after a message that starts no run: settings, so latency can be traded for load.
            poll_timeout=settings.asset_watcher_poll_timeout_s,
            poll_interval=settings.asset_watcher_poll_interval_s,
        ),
    )],
)


def as_of() -> dt.date:
    """Scheduled runs compute their logical date; event-driven runs (no logical date) the day they run."""
    context = get_current_context()
    return pipeline.as_of_date(context.get("logical_date") or context["dag_run"].run_after)


def notify_failure(context) -> None:
    ti = context["ti"]
    pipeline.on_failure(
        load_settings(), dag_id=ti.dag_id, task_id=ti.task_id,
        logical_date=context.get("logical_date") or context["dag_run"].run_after,
        error=context.get("exception"), try_number=ti.try_number, log_url=getattr(ti, "log_url", None))


default_args = {
    "owner": "data-engineering",
    "retries": settings.task_retries,
    "retry_delay": dt.timedelta(seconds=settings.task_retry_delay_s),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(seconds=settings.task_max_retry_delay_s),
    "execution_timeout": dt.timedelta(seconds=settings.task_timeout_s),
    "on_failure_callback": notify_failure,
}


def gate(step, *args):
    """A failed quality gate fails the task at once (no retry: the data, not the weather, is wrong);
    so does a step that cannot run as configured (an alert channel without its URL)."""
    try:
        return step(load_settings(), *args)
    except (pipeline.QualityGateFailed, pipeline.ConfigurationError) as exc:
        raise AirflowFailException(str(exc)) from exc


@dag(
    dag_id=pipeline.DAG_ID,
    schedule=AssetOrTimeSchedule(
        timetable=CronDataIntervalTimetable(settings.pipeline_schedule, timezone="UTC"), assets=batches_landed),
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,  # one writer of the DuckDB warehouse at a time ...
    max_active_tasks=1,  # ... also within a run: two dbt tasks at once would both open the DuckDB file
    dagrun_timeout=dt.timedelta(seconds=settings.dagrun_timeout_s),
    default_args=default_args,
    doc_md=__doc__,
    tags=["loyalty"],
)
def loyalty_pipeline():
    @task.branch
    def event_update() -> list[str]:
        """A landed batch: the whole update here, in one task, for what the batch touched; nothing
        follows (the daily path is skipped). Any other run: hand over to the daily path (every
        model, one task each). One task, not a branch and then the update: on a busy host every task
        costs seconds of scheduling, process start and imports, and this path is about seconds."""
        context = get_current_context()
        dag_run = context["dag_run"]
        gate(pipeline.check_run_date, as_of())  # a future date must not reach dispatch (it expires alerts)
        if pipeline.run_path(dag_run.run_type, dag_run.conf) != pipeline.EVENT_PATH:
            return ["apply_erasures"]
        summary = gate(pipeline.event_update, as_of(), pipeline.triggering_topics(context))
        context["ti"].xcom_push(key="event_update", value=summary)
        return []

    @task
    def apply_erasures() -> dict:
        return pipeline.apply_erasures(load_settings(), as_of())

    @task
    def check_landing() -> dict:
        return gate(pipeline.check_landing, as_of())

    @task
    def plan_build() -> dict:
        return pipeline.plan_build(load_settings())

    @task
    def record_build(plan: dict) -> None:
        pipeline.record_build(load_settings(), plan)

    dbt_build = DbtTaskGroup(
        group_id="dbt_build",
        project_config=ProjectConfig(
            dbt_project_path=settings.dbt_project_dir,
            manifest_path=pipeline.dbt_manifest(settings),
            # The run's date goes in the environment, not the vars: dbt then keeps its last parse.
            # dag_run.logical_date: a run without one (Airflow 3: asset-triggered, or triggered
            # without a date) has no `logical_date` in the template context at all.
            env_vars=pipeline.dbt_run_environment(settings, "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"),
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name=pipeline.dbt_profile_name(settings), target_name=settings.dbt_target,
            profiles_yml_filepath=settings.dbt_project_dir / "profiles.yml"),
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                         invocation_mode=InvocationMode.DBT_RUNNER),
        # Each model task runs `dbt build` (model + its tests); a test spanning two models (e.g. a
        # relationship) gets its own task after both, instead of failing before its second parent exists.
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, test_behavior=TestBehavior.BUILD,
                                   should_detach_multiple_parents_tests=True, emit_datasets=False),
        operator_args={
            "vars": pipeline.dbt_run_vars(settings),
            # dbt unit tests pin scores for the shipped scoring.yml: they belong to the test suite.
            "exclude": ["test_type:unit"],
            # No manifest.json / run_results.json per task: each task runs in a temporary copy of
            # the project that is deleted afterwards, nothing reads them, and writing the 2 MB
            # manifest twice took 0.4 s of every task's 1.2 s (partial parsing still works; cosmos's
            # OpenLineage extraction, which reads them, has nothing to read: no lineage is emitted
            # here, the OpenLineage provider is not installed). No debug log file either: it went
            # into the same deleted copy (3 MB a run, a tenth of each task's time); dbt's own
            # output still reaches the task's log.
            "dbt_cmd_global_flags": ["--no-write-json", "--log-level-file", "none"],
            "full_refresh": "{{ ti.xcom_pull(task_ids='plan_build')['full_refresh'] }}",
        },
        default_args=default_args,
    )

    @task
    def fit_population(plan: dict) -> dict:
        return pipeline.fit_population(load_settings(), as_of(), plan)

    @task
    def check_marts() -> dict:
        return gate(pipeline.check_marts, as_of())

    @task
    def publish() -> None:
        pipeline.publish(load_settings(), as_of())

    @task
    def dispatch_alerts() -> dict:
        return gate(pipeline.dispatch_alerts, as_of())

    plan = plan_build()
    (event_update() >> apply_erasures() >> check_landing() >> plan >> dbt_build >> record_build(plan)
     >> fit_population(plan) >> check_marts() >> publish() >> dispatch_alerts())

loyalty_pipeline()


@dag(
    dag_id=pipeline.REPORT_DAG_ID,
    schedule=CronTriggerTimetable(settings.weekly_report_schedule, timezone="UTC"),  # Mondays: the week that just ended
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(seconds=settings.dagrun_timeout_s),
    default_args=default_args,
    tags=["loyalty"],
)
def loyalty_weekly_report():
    # Before the first publish there is nothing to report: skipped, not failed (no page at night).
    @task
    def render_report() -> str:
        try:
            return pipeline.render_weekly_report(load_settings(), as_of() - dt.timedelta(days=1))
        except pipeline.NothingPublishedYet as exc:
            raise AirflowSkipException(str(exc)) from exc

    @task
    def send_weekly_digests() -> dict:
        try:
            return pipeline.send_weekly_digests(load_settings(), as_of() - dt.timedelta(days=1))
        except pipeline.NothingPublishedYet as exc:
            raise AirflowSkipException(str(exc)) from exc

    render_report()
    send_weekly_digests()


loyalty_weekly_report()
