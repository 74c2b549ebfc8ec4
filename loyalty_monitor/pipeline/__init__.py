"""The steps of the pipeline DAGs as plain functions, keyed by the run's as-of date. The DAG file
(``dags/loyalty_pipeline.py``) only wires them together; ``loyalty run`` executes that DAG.

- ``runs``: what a run is (DAG ids, its as-of date, daily or event-driven path, the asset filter);
- ``daily``: the daily path's steps (erasures → landing gate → dbt → population → marts gate →
  publish → dispatch);
- ``events``: the event-driven path (a landed batch updates what it touched, in one task);
- ``weekly``: the weekly report DAG's steps;
- ``airflow_setup``: Airflow's environment, Kafka connection, the dbt tasks' profile, manifest and
  vars, and the failure callback;
- ``dbt_reuse``: one parse of the dbt project for the dbt tasks of a run that share a process.

Everything is also importable from here (``pipeline.check_landing``): the DAG file and the
asset watcher's ``apply_function`` name them so.
"""

from loyalty_monitor.pipeline.airflow_setup import (
                                                    airflow_environment,
                                                    dbt_manifest,
                                                    dbt_profile_name,
                                                    dbt_run_environment,
                                                    dbt_run_vars,
                                                    kafka_connection,
                                                    on_failure,
)
from loyalty_monitor.pipeline.daily import (
                                                    apply_erasures,
                                                    build_warehouse,
                                                    check_landing,
                                                    check_marts,
                                                    dbt_environment,
                                                    dispatch_alerts,
                                                    fit_population,
                                                    plan_build,
                                                    publish,
                                                    record_build,
                                                    release_dbt_handle,
)
from loyalty_monitor.pipeline.dbt_reuse import install as reuse_dbt_parse
from loyalty_monitor.pipeline.events import EVENT_MARTS, event_selection, event_update, landed_sources
from loyalty_monitor.pipeline.runs import (
                                                    DAG_ID,
                                                    DAILY_PATH,
                                                    EVENT_PATH,
                                                    KAFKA_CONNECTION_ID,
                                                    REPORT_DAG_ID,
                                                    ConfigurationError,
                                                    QualityGateFailed,
                                                    as_of_date,
                                                    check_run_date,
                                                    is_batch_landed,
                                                    run_path,
                                                    triggering_topics,
)
from loyalty_monitor.pipeline.weekly import NothingPublishedYet, render_weekly_report, send_weekly_digests

__all__ = [
    "DAG_ID", "DAILY_PATH", "EVENT_MARTS", "EVENT_PATH", "KAFKA_CONNECTION_ID", "REPORT_DAG_ID",
    "ConfigurationError", "NothingPublishedYet", "QualityGateFailed", "airflow_environment", "apply_erasures",
    "as_of_date", "build_warehouse", "check_run_date",
    "check_landing", "check_marts", "dbt_environment", "dbt_manifest", "dbt_profile_name",
    "dbt_run_environment", "dbt_run_vars", "dispatch_alerts", "event_selection", "event_update",
    "fit_population", "is_batch_landed", "kafka_connection", "landed_sources", "on_failure", "plan_build",
    "publish", "record_build",
    "release_dbt_handle", "render_weekly_report", "reuse_dbt_parse", "run_path", "send_weekly_digests",
    "triggering_topics",
]
