"""Quarantine rows, not runs (issue 12), end to end through the steps the ``loyalty_pipeline`` DAG
calls (loyalty_monitor.pipeline), with a real generated history, real landing files, real Great
Expectations, real dbt on a real DuckDB file and the file alert channel.

A day arrives with two bad rows among good ones: an order with a negative amount (a producer bug)
and a call of a customer whose master data has not landed yet (this deployment tolerates no
unknown customer). Both are set aside; the rest of the day is built, published and alerted, and
the data engineers are told. The master data lands, the call is released and is in the published
marts after the next run, incrementally exactly as a full rebuild has it; the order, accepted as
it is, follows on the run after.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from quality_builders import customer_record, land_customers, land_touchpoints, touchpoint_record
from warehouse_history import land, make_history, warehouse_settings

from expectations import gate, quarantine
from loyalty_monitor import pipeline, warehouse

pytestmark = [pytest.mark.faults, pytest.mark.slow]

START, DAY = dt.date(2025, 9, 1), dt.date(2026, 2, 27)
NEWCOMER = "C9NEW1"
UTC = dt.timezone.utc
COMPARED = ("stg_landing__touchpoints", "fct_touchpoints", "int_customer_days", "fct_customer_health_daily",
            "dim_customers")


def run_day(settings, as_of: dt.date) -> dict:
    """The DAG's steps for one day, in its order (apply_erasures aside)."""
    landing = pipeline.check_landing(settings, as_of)
    plan = pipeline.plan_build(settings)
    pipeline.build_warehouse(settings, as_of)
    pipeline.record_build(settings, plan)
    pipeline.fit_population(settings, as_of, plan)
    pipeline.check_marts(settings, as_of)
    pipeline.publish(settings, as_of)
    return {"landing": landing, "dispatch": pipeline.dispatch_alerts(settings, as_of)}


def published_events(settings) -> dict[str, dict]:
    rows = warehouse.query(settings, "select event_id, customer_id, amount, landed_at "
                                     "from published.fct_touchpoints where event_date = ?", [DAY])
    return {r["event_id"]: r for r in rows}


def notices(settings) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((settings.data_dir / "alerts" / "outbox")
                                                        .glob("data-engineers-*.json"))]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("quarantine")
    settings = warehouse_settings(root / "data")
    settings = settings.replace(quality={"unknown_customer_tolerance": 0.0, "unknown_customer_floor_rows": 0})
    history = make_history(root / "generated", customers=15, start=START.isoformat(),
                           end=(DAY - dt.timedelta(days=1)).isoformat(), seed=12)
    land(settings, history.touchpoints, history.customers)  # landed now
    active = [c["customer_id"] for c in history.truth["customers"] if not c.get("deleted")]
    at = dt.datetime.combine(DAY, dt.time(9), UTC)
    good = [touchpoint_record(f"Q-{n:03d}", kind, at + dt.timedelta(minutes=n), customer)
            for n, (customer, kind) in enumerate((c, k) for c in active[:10] for k in ("call", "email"))]
    # a late-reported complaint left open past its deadline: an alert of the day
    good.append(touchpoint_record("Q-COMPLAINT", "complaint", at - dt.timedelta(days=10), active[1],
                                  payload={"severity": "high", "resolved": False}))
    bad_order = touchpoint_record("Q-ORDER", "order", at, active[0])
    newcomer_call = touchpoint_record("Q-NEWCOMER", "call", at, NEWCOMER)
    records = good + [bad_order, newcomer_call]
    # landed an hour before the history's offline load: a release must reach the incremental models
    # through the quarantine, not because the row happens to be newer than their watermark
    land_touchpoints(settings, records, rows_patch={len(good): {"amount": -5400.0}},
                     landed_at=dt.datetime.now(UTC) - dt.timedelta(hours=1))
    first = run_day(settings, DAY)
    return {"settings": settings, "good": [r["event_id"] for r in good], "first": first,
            "complained": active[1]}


def test_bad_rows_are_quarantined_and_the_rest_of_the_day_is_built_published_and_alerted(world):
    settings, first = world["settings"], world["first"]
    landing = first["landing"]
    assert landing["passed"] and landing["critical_failures"] == [], landing
    assert landing["quarantined_rows"] == 2 and len(landing["quarantined"]) == 2, landing

    rows = {r["event_id"]: r for r in quarantine.listing(settings)}
    assert set(rows) == {"Q-ORDER", "Q-NEWCOMER"}
    order, call = rows["Q-ORDER"], rows["Q-NEWCOMER"]
    assert order["expectation"] == "landed_touchpoints.expect_column_values_to_be_between on amount"
    assert "cannot be negative" in order["reason"] and order["original"]["amount"] == -5400.0
    assert call["expectation"] == "landed_touchpoints.expect_column_values_to_not_be_in_set on customer_id"
    assert "unknown to master data" in call["reason"] and call["original"]["customer_id"] == NEWCOMER

    events = published_events(settings)
    assert set(world["good"]) - {"Q-COMPLAINT"} <= set(events), "the good rows of the day are published"
    assert "Q-ORDER" not in events and "Q-NEWCOMER" not in events
    complaint = warehouse.query(settings, "select alert_id from published.fct_churn_alerts "
                                          "where rule = 'open_high_complaint' and customer_id = ?",
                                [world["complained"]])
    assert complaint, "the day's alert was built"
    dispatch = first["dispatch"]
    assert dispatch["sent"] >= 1 and dispatch["failed"] == 0, dispatch  # and sent
    sent = warehouse.query(settings, "select status from ops.alert_state where alert_id = ?",
                           [complaint[0]["alert_id"]])
    assert sent and {r["status"] for r in sent} == {"sent"}, sent
    (notice,) = [n for n in notices(settings) if "quarantined" in n["subject"]]
    assert "2 row(s) quarantined, the run goes on" in notice["subject"]
    assert "loyalty validate --quarantined" in notice["text"]


def test_a_released_row_is_in_the_warehouse_after_the_next_run_as_a_full_rebuild_has_it(world):
    settings = world["settings"]
    ids = {r["event_id"]: r["quarantine_id"] for r in quarantine.listing(settings)}
    land_customers(settings, [customer_record(NEWCOMER, updated_at="2026-02-20T08:00:00Z")])  # the fix
    decision = gate.release_rows(settings, None, f"master data of {NEWCOMER} landed", by="anna")
    assert decision.changed == [ids["Q-NEWCOMER"]]
    assert "cannot be negative" in decision.still_failing[ids["Q-ORDER"]]

    second = run_day(settings, DAY)
    assert second["landing"]["passed"] and second["landing"]["quarantined_rows"] == 0
    events = published_events(settings)
    assert events["Q-NEWCOMER"]["customer_id"] == NEWCOMER and "Q-ORDER" not in events
    (released,) = quarantine.listing(settings, status="released")
    # In the warehouse it landed when it was let in: what made the incremental models take it.
    assert events["Q-NEWCOMER"]["landed_at"].replace(tzinfo=UTC) >= \
        dt.datetime.fromisoformat(released["released_at"]).replace(microsecond=0) - dt.timedelta(seconds=1)
    customers = warehouse.query(settings, "select customer_id from published.dim_customers where customer_id = ?",
                                [NEWCOMER])
    assert customers == [{"customer_id": NEWCOMER}]
    health = warehouse.query(settings, "select count(*) as days from published.fct_customer_health_daily "
                                       "where customer_id = ?", [NEWCOMER])
    assert health[0]["days"] >= 1

    # The incremental run equals a full rebuild of the same inputs (the quarantine included).
    incremental = {table: _rows(settings, table) for table in COMPARED}
    warehouse.build(settings, as_of=DAY, full_refresh=True)
    for table, rows in incremental.items():
        assert _rows(settings, table) == rows, f"{table}: incremental differs from full refresh"


def test_an_accepted_row_goes_in_on_the_run_after(world):
    settings = world["settings"]
    (held,) = quarantine.listing(settings)
    assert held["event_id"] == "Q-ORDER"
    decision = gate.accept_rows(settings, [held["quarantine_id"]], "a credit note booked as an order; finance agrees",
                                by="ben")
    assert decision.changed == [held["quarantine_id"]]
    run_day(settings, DAY)
    assert published_events(settings)["Q-ORDER"]["amount"] == -5400.0
    assert quarantine.held_keys(settings).empty


def _rows(settings, table: str) -> list[tuple]:
    con = warehouse.connect(settings)
    try:
        return con.execute(f"select * from build.{table} order by all").fetchall()
    finally:
        con.close()
