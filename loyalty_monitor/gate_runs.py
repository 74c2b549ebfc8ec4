"""The quality gate's runs in the warehouse: ``ops.quality_runs``, what the leadership report reads.

The gate records each run in ``<data_dir>/quality/runs.jsonl`` (``loyalty_core.landing_zone``).
After every gate run the pipeline (and ``loyalty validate``) copies the runs the warehouse does not
have yet into ``ops.quality_runs``, one row per run with the declared columns below, on whichever
engine the warehouse runs. Copying what is missing, keyed by ``run_id``, makes the step idempotent
and self-healing: a run that could not be recorded (the warehouse was unreachable, or on DuckDB did
not exist yet before the first build) is recorded by the next one. Nothing is lost meanwhile: the
run file keeps every run.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from loyalty_core.landing_zone import quality_runs
from loyalty_core.marts import engine_of, open_marts
from loyalty_core.settings import Settings

log = logging.getLogger("loyalty.quality")

TABLE = "ops.quality_runs"

#: The declared columns, in order, with their portable types (the report reads these).
COLUMNS: dict[str, str] = {
    "run_id": "varchar",          # the gate's run id (its Data Docs pages carry it)
    "stage": "varchar",           # landing | marts
    "started_at": "timestamp",    # UTC
    "passed": "boolean",          # false: a critical expectation failed, the run stopped before publish
    "critical": "integer",        # failed critical expectations
    "warnings": "integer",        # failed warning expectations
    "quarantined_rows": "bigint",  # landed rows set aside (the run went on without them)
    "first_failure": "varchar",   # the first critical finding, in words
    "scope_start": "date",        # the earliest and latest day of data the run judged (event
    "scope_end": "date",          # dates, volume days, the marts' as-of date)
    "duration_s": "double precision",
}


def as_row(record: dict[str, Any]) -> dict[str, Any]:
    """One run record (a line of runs.jsonl, ``GateResult.to_dict()``) as a row of the table."""
    started = dt.datetime.fromisoformat(str(record["started_at"]))
    if started.tzinfo is not None:
        started = started.astimezone(dt.timezone.utc).replace(tzinfo=None)
    critical = record.get("critical_failures") or []
    days = scope_dates(record.get("scope"))
    return {
        "run_id": str(record["run_id"]),
        "stage": record.get("stage"),
        "started_at": started,
        "passed": bool(record.get("passed")),
        "critical": len(critical),
        "warnings": len(record.get("warnings") or []),
        "quarantined_rows": int(record.get("quarantined_rows") or 0),
        "first_failure": finding_text(critical[0]) if critical else None,
        "scope_start": min(days) if days else None,
        "scope_end": max(days) if days else None,
        "duration_s": float(record.get("duration_s") or 0.0),
    }


def scope_dates(scope: Any) -> list[dt.date]:
    """The ISO dates named anywhere in a gate run's scope (event dates, volume dates, as-of)."""
    found: list[dt.date] = []
    values = scope.values() if isinstance(scope, dict) else scope if isinstance(scope, list) else [scope]
    for value in values:
        if isinstance(value, (dict, list)):
            found += scope_dates(value)
        elif isinstance(value, str) and len(value) >= 10:
            try:
                found.append(dt.date.fromisoformat(value[:10]))
            except ValueError:
                pass
    return found


def finding_text(finding: Any) -> str:
    if isinstance(finding, dict):
        column = f" on {finding['column']}" if finding.get("column") else ""
        return f"{finding.get('suite', '')}: {finding.get('expectation', '')}{column}: {finding.get('observed', '')}"
    return str(finding)


def record(settings: Settings) -> int:
    """Copy the gate runs ``ops.quality_runs`` lacks into it; the number of runs copied.

    On DuckDB, nothing before the warehouse file exists (creating it here would give the marts
    gate an empty warehouse to judge): the first build's marts gate records the runs so far."""
    records = quality_runs(settings)
    if not records or (engine_of(settings) == "duckdb" and not settings.warehouse.exists()):
        return 0
    rows = []
    for run in records:
        try:
            rows.append(as_row(run))
        except (KeyError, TypeError, ValueError) as exc:  # a damaged line: said, and the rest recorded
            log.warning("gate run record not copied to %s (%s): %.200s", TABLE, exc, run)
    with open_marts(settings, read_only=False) as con:
        con.execute("create schema if not exists ops")
        con.execute(f"create table if not exists {TABLE} ("
                    + ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items()) + ")")
        known = {r["run_id"] for r in con.query(f"select run_id from {TABLE}")}
        new = [row for row in rows if row["run_id"] not in known]
        con.executemany(f"insert into {TABLE} ({', '.join(COLUMNS)}) values ({', '.join('?' for _ in COLUMNS)})",
                        [[row[name] for name in COLUMNS] for row in new])
    return len(new)


def record_quietly(settings: Settings) -> int:
    """:func:`record` for the pipeline: a warehouse that cannot take the record does not change the
    gate's verdict; it is logged, and the next gate run records what is missing."""
    try:
        return record(settings)
    except Exception as exc:  # noqa: BLE001 - any engine's driver error: the run file keeps the run
        log.warning("gate runs not copied to the warehouse's %s yet (the next run copies them): %s", TABLE, exc)
        return 0
