"""The steps of the daily path of ``loyalty_pipeline``, keyed by the run's as-of date.

Every step is idempotent for its ``as_of`` date: dbt rebuilds the same tables, publish replaces
the published marts in one transaction, and alert dispatch consults ``ops.alert_state``.

A failed critical quality gate raises :class:`QualityGateFailed`: the run stops before publish
and dispatch (no customer alert goes out on bad data) and the data engineers are told why. Rows
the landing gate set aside in quarantine do not stop it: the data engineers are told how many.

The parts each step drives are imported in the step: the DAG file imports this module when it is
parsed, and parsing must stay light."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from loyalty_core.settings import Settings
from loyalty_monitor.pipeline.runs import DAG_ID, ConfigurationError, QualityGateFailed

log = logging.getLogger(__name__)


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
        "rows": dict(getattr(result, "rows", None) or {}),
    }


def _record_gate_run(settings: Settings) -> None:
    """The gate's runs into the warehouse's ops.quality_runs (the report reads them there), pass or
    fail, before a failure stops the run."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import gate_runs

    release_dbt_handle()
    gate_runs.record_quietly(settings)


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
    for customer_id in report.not_found:  # the id in the log only: the result is kept in Airflow's metadata
        log.warning("the tombstone of customer id %s matched no customer: nothing but the tombstone was landed "
                    "or built under it; if it was meant for another customer, send the tombstone again with the "
                    "right id", ascii(customer_id))
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
    _record_gate_run(settings)
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
    """Whether the dbt tasks must rebuild from scratch: yes when config/scoring.yml or the dbt
    project's SQL changed since the last completed build (past days must be re-scored:
    ``warehouse.build_fingerprint``), as ``warehouse.build`` decides it too.

    On PostgreSQL it first loads the landed files into schema ``landing`` (``warehouse.load``), the
    step the dbt tasks that follow need, as ``warehouse.build`` does it; on DuckDB nothing to load."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    loaded = warehouse.load(settings)
    if loaded is not None:
        log.info("landing zone loaded into PostgreSQL: %s", loaded.summary())

    now = warehouse.build_fingerprint(settings)
    state = warehouse._scoring_state_file(settings)  # shared with `loyalty warehouse build`
    previous = state.read_text().strip() if state.exists() else None
    if previous != now:
        log.info("the scoring or the dbt models changed since the last build (fingerprint %s, was %s): "
                 "full refresh", now, previous)
    return {"full_refresh": previous != now, "scoring_fingerprint": now}


def record_build(settings: Settings, plan: dict[str, Any]) -> None:
    """After the dbt tasks succeeded: remember which scoring the warehouse was built with."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    warehouse._scoring_state_file(settings).write_text(plan["scoring_fingerprint"] + "\n")


def fit_population(settings: Settings, as_of: dt.date, plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """The drift model's population step: BG/NBD parameters and the mixture weights refitted weekly
    or when the scoring changed, and every customer's P(alive) as of the run's day
    (``loyalty_monitor.drift.population``, ``loyalty_monitor.drift.mixture``)."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.drift import population

    release_dbt_handle()
    result = population.refresh(settings, as_of, refit=bool(plan and plan.get("full_refresh")))
    return {"as_of": as_of.isoformat(), "refitted": result.refitted, "customers": result.customers,
            "fits": len(result.fits),
            "mixture_weights": ({name: round(weight, 4) for name, weight in result.mixture.weights.items()}
                                if result.mixture else None)}


def check_marts(settings: Settings, as_of: dt.date) -> dict[str, Any]:
    """Quality gate on the freshly built marts (schema ``build``), before anyone can see them."""
    # the gate loads Great Expectations: not at import
    from expectations.gate import validate_marts

    release_dbt_handle()
    result = validate_marts(settings, as_of, schema="build")
    _record_gate_run(settings)
    return _raise_if_failed(_gate_summary(result, "marts"), as_of)


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

    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting.channels import ChannelConfigError

    release_dbt_handle()
    try:
        result = dispatch(settings, as_of)
    except ChannelConfigError as exc:
        raise ConfigurationError(f"alert dispatch for {as_of}: {exc}. Nothing was sent; fix the setting, "
                                 f"then rerun the date (`loyalty run --as-of {as_of}`)") from exc
    summary = {k: getattr(result, k) for k in ("sent", "failed", "capped", "expired", "already_done", "messages",
                                               "paused", "undeliverable")}
    if result.failed:
        paused = (f" channel {', '.join(result.paused_channels)} paused, {result.paused} deliveries left pending;"
                  if result.paused_channels else "")
        raise AlertDeliveryError(f"{result.failed} alert deliveries failed for {as_of} (recorded in "
                                 f"ops.alert_state; a retry sends only those and the pending ones):{paused} "
                                 + "; ".join(result.errors[:5]))
    return summary
