"""Incremental daily runs give exactly what a full refresh gives.

A generated history is landed in two parts, split in send order: first everything sent up to a cut
date, later the rest, including events sent late about days before the cut and the tombstone. The
warehouse is built up to the cut in two runs (the second adds new days only), once after the late part lands,
and once backfilled to an earlier as-of date and rolled forward again; then every model is
compared, row for row, with a --full-refresh of the same landing zone.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from warehouse_history import history_in_two_landings, land, land_as_partition, snapshot

from loyalty_monitor import warehouse

START, CUT, END = "2026-01-01", dt.date(2026, 6, 20), "2026-07-31"
# Tables compared: every mart and the incremental customer-day state.
COMPARED = ("dim_customers", "fct_touchpoints", "fct_dialogue_daily", "fct_customer_health_daily",
            "fct_loyalty_matrix", "fct_sales_platform", "fct_account_manager_activity", "fct_churn_alerts",
            "fct_churn_risk_cases", "int_risk_case_spans", "int_case_openings", "int_customer_days", "int_drift_days",
            "int_portfolio_days",
            "stg_landing__touchpoints")


def _snapshot(settings) -> dict[str, list[tuple]]:
    return snapshot(settings, COMPARED)


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    return history_in_two_landings(tmp_path_factory, customers=60, seed=11, start=START, end=END, cut=CUT)


def test_incremental_runs_equal_full_refresh(landed):
    history, parts, settings, scratch = landed
    land(settings, parts / "tp1.jsonl", parts / "cu1.jsonl")
    first = warehouse.build(settings, as_of=CUT - dt.timedelta(days=3))  # first build: creates everything
    assert first.success
    warehouse.build(settings, as_of=CUT)  # a daily run: new days only

    land_as_partition(settings, scratch, parts / "tp2.jsonl", parts / "cu2.jsonl", partition=1)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    late = con.execute(f"""
        select count(*) from read_parquet('{settings.landing}/touchpoints/*/*-p001-*.parquet')
        where cast(occurred_at at time zone 'UTC' as date) <= date '{CUT}'
    """).fetchone()[0]
    con.close()
    assert late > 0, "the second landing must carry late events for days already built"

    warehouse.build(settings, as_of=END)                               # late events + new days
    warehouse.build(settings, as_of=dt.date(2026, 7, 20))              # backfill: as-of moves back
    warehouse.build(settings, as_of=END)                               # and forward again
    incremental = _snapshot(settings)

    warehouse.build(settings, as_of=END, full_refresh=True)
    full = _snapshot(settings)

    for table in COMPARED:
        assert len(incremental[table]) == len(full[table]) > 0, table
        assert incremental[table] == full[table], f"{table}: incremental differs from full refresh"
    erased = [r["customer_id"] for r in history.truth["customers"] if r["deleted"]]
    assert erased and not any(row[0] in erased for row in full["fct_customer_health_daily"])


def test_daily_run_rebuilds_only_new_days(landed):
    """A canary written into an old day survives a daily run: old days are not recomputed."""
    _, _, settings, _ = landed  # left by the test above: fully built up to END
    con = duckdb.connect(str(settings.warehouse))
    customer = con.execute("select min(customer_id) from build.fct_dialogue_daily").fetchone()[0]
    con.execute("update build.fct_dialogue_daily set contacts_30d = -1 where customer_id = ? "
                "and as_of_date = date '2026-07-01'", [customer])
    # and into every stored case opening: a daily run computes the openings of new cases only
    openings = con.execute("select count(*) from build.int_case_openings").fetchone()[0]
    con.execute("update build.int_case_openings set drivers = 'canary'")
    con.close()
    next_day = dt.date.fromisoformat(END) + dt.timedelta(days=1)
    warehouse.build(settings, as_of=next_day)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        canary = con.execute("select contacts_30d from build.fct_dialogue_daily where customer_id = ? "
                             "and as_of_date = date '2026-07-01'", [customer]).fetchone()[0]
        days = con.execute("select count(distinct as_of_date), max(as_of_date) from build.fct_dialogue_daily").fetchone()
        kept = con.execute("select count(*) from build.fct_churn_risk_cases where drivers = 'canary'").fetchone()[0]
    finally:
        con.close()
    assert canary == -1, "the daily run recomputed an old day"
    assert openings > 0 and kept == openings, "the daily run recomputed the openings of earlier cases"
    assert days[1] == next_day


def test_as_of_date_ignores_later_events(landed):
    _, _, settings, _ = landed
    warehouse.build(settings, as_of=dt.date(2026, 3, 31))
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        for table, column in (("fct_touchpoints", "event_date"), ("fct_customer_health_daily", "as_of_date"),
                              ("fct_churn_alerts", "alert_date"), ("fct_dialogue_daily", "as_of_date")):
            later = con.execute(f"select count(*) from build.{table} where {column} > date '2026-03-31'").fetchone()[0]
            assert later == 0, table
        assert con.execute("select count(*) from build.fct_customer_health_daily").fetchone()[0] > 0
        open_episodes = con.execute("select count(*) from build.fct_churn_alerts where episode_end_date > date '2026-03-31'").fetchone()[0]
        assert open_episodes == 0
    finally:
        con.close()
