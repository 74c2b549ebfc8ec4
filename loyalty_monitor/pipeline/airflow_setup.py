"""What Airflow needs from the project: its environment and Kafka connection, the dbt profile,
manifest and vars the dbt tasks (astronomer-cosmos) run with, and the failure callback."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Any

from loyalty_core.settings import Settings
from loyalty_monitor.pipeline.daily import dbt_environment
from loyalty_monitor.pipeline.dbt_reuse import PARSE_DIR_ENV, files_digest
from loyalty_monitor.pipeline.runs import KAFKA_CONNECTION_ID, QualityGateFailed, as_of_date

log = logging.getLogger(__name__)


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

    Written under ``<data_dir>/dbt/target`` (never into the repository) with a fingerprint of what
    shaped it: the project's directory and target, dbt's version, its files (names, sizes,
    modification times) and the vars (config/scoring.yml, the contract). A newer file alone would
    miss a deleted model (the DAG would keep a task for it) or another project directory. ``dbt parse`` reads but
    never connects to the warehouse.
    """

    target = dbt_target_dir(settings)
    manifest = target / "manifest.json"
    fingerprint_file = target / "manifest.fingerprint"
    project = settings.dbt_project_dir
    fingerprint = _project_fingerprint(settings)
    if manifest.exists() and fingerprint_file.exists() and fingerprint_file.read_text() == fingerprint:
        return manifest
    # at run time: parsing the DAG file stays light
    from dbt.cli.main import dbtRunner

    log.info("parsing the dbt project %s into %s", project, target)
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.warehouse import environment

    with environment(dbt_environment(settings)):
        # --profile and --target as the tasks pass them (cosmos): dbt's partial parsing compares them
        result = dbtRunner().invoke(["parse", "--project-dir", str(project), "--profiles-dir", str(project),
                                     "--profile", dbt_profile_name(settings), "--target", settings.dbt_target,
                                     "--target-path", str(target), "--quiet",
                                     "--vars", json.dumps(dbt_run_vars(settings), default=str)])
    if not result.success or not manifest.exists():
        raise RuntimeError(f"dbt parse of {project} failed: {result.exception or 'see the dbt log above'}")
    fingerprint_file.write_text(fingerprint)
    return manifest


def dbt_target_dir(settings: Settings) -> Path:
    """Where the DAG's manifest is parsed, and where an in-process run's dbt tasks parse again
    (``dbt_reuse``), so that dbt's partial parsing finds the state of the last parse."""
    return settings.data_dir / "dbt" / "target"


def _project_fingerprint(settings: Settings) -> str:
    """What the parsed graph depends on (not the as-of date: it is not in the vars)."""
    project = settings.dbt_project_dir.resolve()
    return hashlib.sha256(json.dumps(
        {"project": str(project), "target": settings.dbt_target, "dbt": version("dbt-core"),
         "vars": dbt_run_vars(settings), "files": files_digest(project)},
        sort_keys=True, default=str).encode()).hexdigest()


def dbt_run_vars(settings: Settings) -> dict[str, Any]:
    """dbt vars of the dbt tasks: config/scoring.yml and the event contract, without the run's date
    (``dbt_run_environment`` carries it): dbt parses the whole project again when the vars differ
    from its last parse, which a date in them did on every run, in every process."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    values = dict(warehouse.dbt_vars(settings, dt.date(2000, 1, 1)))
    del values["as_of_date"]
    return values


def dbt_run_environment(settings: Settings, as_of: Any) -> dict[str, str]:
    """Environment of the dbt tasks of a run of ``as_of`` (a date, or the template the DAG fills in
    per run): the profile's variables, the date (``LOYALTY_AS_OF_DATE``, read only when dbt executes:
    dbt_project/macros/parameters.sql) and where the tasks of an in-process run parse the project
    (``LOYALTY_DBT_PARSE_DIR``: ``dbt_reuse``)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    return {**dbt_environment(settings),
            warehouse.AS_OF_ENV: as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of),
            PARSE_DIR_ENV: str(dbt_target_dir(settings))}
