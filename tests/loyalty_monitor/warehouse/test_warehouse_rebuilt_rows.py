"""What keeps a daily run cheap stays honest: its data tests check every row the run wrote,
`dbt test` alone checks all rows, and the new as-of date does not make dbt re-parse the project.

A daily run rewrites a few days of the big customer-day tables, so its data tests check only the
rows it rewrote (macros/rebuilt_rows.sql). Here the history is built to a cut date, then a later
landing with new days and events sent late about days before the cut is built incrementally: every
row that run added or changed must satisfy the predicate its tests used, and that predicate must
reach back to the earliest late event. A duplicate planted on an old day is found by `dbt test`.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from warehouse_history import land, land_as_partition, make_history, split_by_send_order, warehouse_settings

from loyalty_monitor import warehouse

START, CUT, END = "2026-01-01", dt.date(2026, 6, 20), "2026-07-31"
# incremental models and the column their rebuilt rows are recognised by
INCREMENTAL = ("stg_landing__touchpoints", "fct_touchpoints", "int_customer_days", "fct_dialogue_daily",
               "fct_customer_health_daily", "int_alert_flags", "fct_loyalty_matrix")


@pytest.fixture(scope="module")
def daily_run(tmp_path_factory):
    history = make_history(tmp_path_factory.mktemp("history"), customers=60, start=START, end=END, seed=11)
    parts = tmp_path_factory.mktemp("parts")
    split_by_send_order(history.touchpoints, parts / "tp1.jsonl", parts / "tp2.jsonl", "occurred_at", CUT)
    split_by_send_order(history.customers, parts / "cu1.jsonl", parts / "cu2.jsonl", "updated_at", CUT)
    settings = warehouse_settings(tmp_path_factory.mktemp("warehouse") / "data",
                                  incremental={"landing_overlap_seconds": 0})
    land(settings, parts / "tp1.jsonl", parts / "cu1.jsonl")
    warehouse.build(settings, as_of=CUT)

    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema before_daily")
    for table in INCREMENTAL:
        con.execute(f"create table before_daily.{table} as select * from build.{table}")
    con.close()

    land_as_partition(settings, tmp_path_factory.mktemp("scratch"), parts / "tp2.jsonl", parts / "cu2.jsonl",
                      partition=1)
    result = warehouse.build(settings, as_of=END)
    return settings, result


def _ledger(con) -> dict[str, tuple[str, str]]:
    return {model: (invocation, rows) for model, invocation, rows in
            con.execute("select model_name, invocation_id, rebuilt_rows from build.dbt_rebuilt_rows").fetchall()}


def test_every_row_a_daily_run_writes_is_tested(daily_run):
    settings, result = daily_run
    assert result.success
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        ledger = _ledger(con)
        assert set(INCREMENTAL) <= set(ledger), "each incremental model records the rows it rewrites"
        assert len({invocation for invocation, _ in ledger.values()}) == 1, "all from the daily run"
        for table in INCREMENTAL:
            predicate = ledger[table][1]
            written, untested = con.execute(f"""
                select count(*), count(*) filter (where not coalesce({predicate}, false))
                from (select * from build.{table} except select * from before_daily.{table}) as written
            """).fetchone()
            assert written > 0, f"{table}: the daily run should have written rows"
            assert untested == 0, f"{table}: {untested} written rows lie outside its tests' filter {predicate}"
        # the late events reach back before the cut: so do the days the health tests check
        earliest_late = con.execute("""
            select min(event_date) from build.fct_touchpoints
            where landed_at > (select max(landed_at) from before_daily.fct_touchpoints)
        """).fetchone()[0]
        assert earliest_late < CUT
        tested_from = con.execute(
            f"select min(as_of_date) from build.fct_customer_health_daily "
            f"where {ledger['fct_customer_health_daily'][1]}").fetchone()[0]
        assert tested_from <= earliest_late
        # and the checked range is a few days, not the history (the point of the filter)
        assert tested_from > dt.date.fromisoformat(START)
    finally:
        con.close()


def test_daily_run_tests_use_the_recorded_filter(daily_run):
    settings, _ = daily_run
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    predicate = _ledger(con)["fct_customer_health_daily"][1]
    con.close()
    mart = '"build"."fct_customer_health_daily"'
    compiled = [path.read_text() for path in (settings.data_dir / "dbt-target" / "run").rglob("*.sql")
                if path.parent.name.endswith(".yml") and mart in path.read_text()]
    assert len(compiled) >= 10, "the health mart's data tests ran"
    for sql in compiled:
        assert f"from {mart} where ({predicate})" in " ".join(sql.split()).replace('"warehouse".', "")


def test_dbt_test_alone_checks_every_row(daily_run):
    settings, _ = daily_run
    con = duckdb.connect(str(settings.warehouse))
    con.execute("""
        insert into build.fct_customer_health_daily
        select * from build.fct_customer_health_daily
        where as_of_date = (select min(as_of_date) from build.fct_customer_health_daily) limit 1
    """)
    con.close()
    result = warehouse.run_dbt(settings, ["test", "--select", "fct_customer_health_daily",
                                          "--exclude", "test_type:unit"], as_of=END)
    failed = sorted(node.name for node in result.failures)
    assert not result.success
    # the duplicate is a second row for that day, so the series is no longer one row per day either
    assert failed == ["dense_daily_series_fct_customer_health_daily_as_of_date__customer_id",
                      "unique_combination_fct_customer_health_daily_customer_id__as_of_date"], failed


def test_a_gap_in_the_daily_series_is_found(daily_run):
    """The full build reads "n days ago" as "n rows back": a missing day must fail a test."""
    settings, _ = daily_run
    con = duckdb.connect(str(settings.warehouse))
    con.execute("""
        delete from build.int_customer_days
        where (customer_id, as_of_date) in (
            select customer_id, min(as_of_date) + 10 from build.int_customer_days group by customer_id limit 1)
    """)
    con.close()
    result = warehouse.run_dbt(settings, ["test", "--select", "int_customer_days",
                                          "--exclude", "test_type:unit"], as_of=END)
    assert [node.name for node in result.failures] == [
        "dense_daily_series_int_customer_days_as_of_date__customer_id"]


def test_a_daily_run_reuses_the_parsed_project(daily_run):
    """The as-of date changes every day; it must not make dbt parse the whole project again."""
    settings, _ = daily_run
    log = (settings.data_dir / "logs" / "dbt" / "dbt.log").read_text(encoding="utf-8")
    assert log.count("Running with dbt=") >= 2, "a first build, then the daily run at a later as-of date"
    assert "config vars, config profile, or config target have changed" not in log
    assert "Partial parsing enabled" in log
