"""The gate's runs copied into the warehouse (``ops.quality_runs``), and the report's data-quality
section read from there (the pipeline's own recording is covered end to end by test_demo.py, and on
PostgreSQL and Spark by warehouse/test_warehouse_postgres.py)."""

from __future__ import annotations

import datetime as dt
import logging

import duckdb
import pytest

from expectations.gate.records import _record as write_run_record
from expectations.gate.results import Finding, GateResult
from loyalty_core.landing_zone import quality_dir, runs_path
from loyalty_core.settings import load_settings
from loyalty_monitor import gate_runs
from loyalty_monitor.reporting import queries


def _run(run_id: str, started: str, passed: bool = True, stage: str = "landing", scope=None,
         quarantined_rows: int = 0) -> GateResult:
    failures = [] if passed else [Finding("touchpoints_landed", "expect_column_values_to_not_be_null",
                                          "customer_id", "critical", "12 unexpected", examples=[1, 2])]
    return GateResult(stage=stage, passed=passed, critical_failures=failures, warnings=[], docs_path=None,
                      run_id=run_id, started_at=started, duration_s=1.5, scope=scope or {},
                      quarantined_rows=quarantined_rows)


@pytest.fixture()
def settings(data_dir):
    settings = load_settings()
    quality_dir(settings).mkdir(parents=True, exist_ok=True)
    return settings


def _table(settings) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(f"select run_id, stage, started_at, passed, critical, quarantined_rows, first_failure, "
                           f"scope_start, scope_end from {gate_runs.TABLE} order by run_id").fetchall()
    finally:
        con.close()


def test_runs_are_copied_once_each_and_only_into_an_existing_warehouse(settings, caplog):
    write_run_record(settings, _run("landing-1", "2026-06-01T05:00:00+02:00",
                                    scope={"event_dates": ["2026-05-30", "2026-05-31"]}, quarantined_rows=3))
    # Before the first build there is no DuckDB warehouse: recording must not create an empty one
    # (the marts gate would then judge it); the first build's gate records the run.
    assert gate_runs.record(settings) == 0 and not settings.warehouse.exists()

    duckdb.connect(str(settings.warehouse)).close()
    write_run_record(settings, _run("marts-1", "2026-06-01T03:10:00+00:00", passed=False, stage="marts",
                                    scope={"as_of": "2026-05-31", "schema": "build"}))
    assert gate_runs.record(settings) == 2
    assert gate_runs.record(settings) == 0  # idempotent: keyed by run id
    assert _table(settings) == [
        ("landing-1", "landing", dt.datetime(2026, 6, 1, 3, 0), True, 0, 3, None,
         dt.date(2026, 5, 30), dt.date(2026, 5, 31)),
        ("marts-1", "marts", dt.datetime(2026, 6, 1, 3, 10), False, 1, 0,
         "touchpoints_landed: expect_column_values_to_not_be_null on customer_id: 12 unexpected",
         dt.date(2026, 5, 31), dt.date(2026, 5, 31)),
    ]

    # A damaged line is said and skipped; the runs after it are still copied.
    with runs_path(settings).open("a") as fh:
        fh.write('{"run_id": "broken", "started_at": "yesterday"}\n')
    write_run_record(settings, _run("landing-2", "2026-06-02T05:00:00+00:00"))
    with caplog.at_level(logging.WARNING, logger="loyalty.quality"):
        assert gate_runs.record(settings) == 1
    assert "broken" in caplog.text and "not copied" in caplog.text
    assert [r[0] for r in _table(settings)] == ["landing-1", "landing-2", "marts-1"]


def test_a_warehouse_that_cannot_take_the_record_does_not_fail_the_run(settings, caplog):
    write_run_record(settings, _run("landing-1", "2026-06-01T05:00:00+00:00"))
    settings.warehouse.write_text("not a DuckDB file")
    with caplog.at_level(logging.WARNING, logger="loyalty.quality"):
        assert gate_runs.record_quietly(settings) == 0
    assert "the next run copies them" in caplog.text


def test_the_report_counts_the_runs_that_ran_in_or_judged_the_period(settings):
    for run in (_run("in-period", "2026-06-10T05:00:00+00:00"),
                _run("morning-after", "2026-07-01T04:00:00+00:00", passed=False),
                # a backfill on a later day that checked the period's data
                _run("backfill", "2026-09-01T10:00:00+00:00", scope={"event_dates": ["2026-05-01", "2026-08-31"]}),
                _run("before", "2026-05-20T05:00:00+00:00", scope={"as_of": "2026-05-19"}),
                _run("after", "2026-07-05T05:00:00+00:00", scope={"as_of": "2026-07-04"})):
        write_run_record(settings, run)
    duckdb.connect(str(settings.warehouse)).close()
    assert gate_runs.record(settings) == 5

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        status = queries.quality_status(queries.Marts(con), dt.date(2026, 6, 1), dt.date(2026, 6, 30))
    finally:
        con.close()
    assert (status["runs"], status["passed"], status["failed"]) == (3, 2, 1)
    assert [r["run_id"] for r in status["latest"]] == ["backfill", "morning-after", "in-period"]
    assert [r["_outcome"] for r in status["latest"]] == [True, False, True]
    assert status["latest"][1]["first_failure"].startswith("touchpoints_landed: expect_column_values")
    assert status["columns"] == list(queries.QUALITY_COLUMNS)

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        with pytest.raises(queries.MissingData, match="no quality runs recorded in this period"):
            queries.quality_status(queries.Marts(con), dt.date(2025, 1, 1), dt.date(2025, 1, 31))
    finally:
        con.close()
