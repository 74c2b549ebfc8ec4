"""The contract's extreme valid values go through the whole dbt build: no cast in the warehouse
may fail on a value the contract accepts (one such message would otherwise stop every later daily
run for every customer). A customer with every bound at its limit sits next to an ordinary one;
both are built, scored and published."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
from warehouse_history import land, warehouse_settings

from loyalty_core.contract import EARLIEST_INSTANT, decode
from loyalty_monitor import warehouse

AS_OF = dt.date(2026, 6, 30)
LONG_ID = "X" * 256
MAX_MONEY = 1_000_000_000_000


def _events() -> list[dict]:
    def event(n: int, customer: str, day: str, event_type: str, department: str, payload: dict, **extra) -> dict:
        return {"schema_version": 1, "event_id": f"{LONG_ID[:250]}{n:06d}", "event_type": event_type,
                "occurred_at": day, "customer_id": customer, "department": department,
                "contact_role": "executive", "note": "ü" * 4096, "source": "s" * 256,
                "employee_id": "e" * 256, "payload": payload, **extra}

    extreme, ordinary = LONG_ID, "C000001"
    events = [
        event(1, extreme, EARLIEST_INSTANT.isoformat(), "order", "sales",
              {"amount": MAX_MONEY, "currency": "EUR", "product_line": "p" * 256}, direction="inbound"),
        event(2, extreme, "2026-06-01T09:00:00+14:00", "order", "sales",
              {"amount": MAX_MONEY, "currency": "EUR", "product_line": "pumps"}, direction="inbound"),
        event(3, extreme, "2026-06-02T09:00:00-12:00", "dunning_contact", "finance",
              {"stage": "final_notice", "amount_overdue": MAX_MONEY, "days_overdue": 36500,
               "invoice_id": "i" * 256}),
        event(4, extreme, "2026-06-03T09:00:00Z", "call", "sales",
              {"answered": True, "duration_s": 604800}, direction="outbound"),
        event(5, extreme, "2026-06-04T09:00:00Z", "meeting", "management", {"duration_s": 604800},
              direction="outbound"),
        event(6, extreme, "2026-06-05T09:00:00Z", "survey_response", "support",
              {"nps_score": 0, "comment": "c" * 4096}),
        event(7, extreme, "2026-06-06T09:00:00Z", "complaint", "support", {"severity": "high"}),
        event(8, extreme, "2026-06-07T09:00:00Z", "service_visit", "service", {"resolved": False}),
    ]
    for k in range(40):  # an ordinary customer, so the portfolio has a rhythm
        day = dt.date(2026, 1, 5) + dt.timedelta(days=4 * k)
        events.append(event(100 + k, ordinary, f"{day}T10:00:00+01:00", "call", "sales",
                            {"answered": True, "duration_s": 300}, direction="outbound"))
    return events


def _customers() -> list[dict]:
    manager = {"id": "A" * 256, "name": "n" * 256, "email": ("m" * 300) + "@example.com"}
    return [{"schema_version": 1, "customer_id": LONG_ID, "name": "N" * 512, "segment": "key", "country": "DE",
             "account_manager": manager, "annual_potential": MAX_MONEY, "currency": "EUR",
             "updated_at": EARLIEST_INSTANT.isoformat()},
            {"schema_version": 1, "customer_id": "C000001", "name": "Ordinary GmbH", "segment": "standard",
             "country": "DE", "account_manager": {"id": "AM01", "name": "Ann", "email": "ann@example.com"},
             "annual_potential": 50000, "currency": "EUR", "updated_at": "2026-01-01T00:00:00Z"}]


def test_extreme_valid_values_build_score_and_publish(tmp_path):
    events, customers = _events(), _customers()
    for record in events:  # every one of them is valid under the contract
        assert decode("touchpoint", record["customer_id"].encode(), json.dumps(record).encode()).ok, record["event_id"]
    for record in customers:
        assert decode("customer", record["customer_id"].encode(), json.dumps(record).encode()).ok
    (tmp_path / "tp.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "cu.jsonl").write_text("".join(json.dumps(c) + "\n" for c in customers))
    settings = warehouse_settings(tmp_path / "data")
    land(settings, tmp_path / "tp.jsonl", tmp_path / "cu.jsonl")
    result = warehouse.build(settings, as_of=AS_OF, full_refresh=True)
    assert result.success
    warehouse.build(settings, as_of=AS_OF + dt.timedelta(days=1))  # and a daily run after it
    warehouse.publish(settings)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        rows = dict(con.execute("select customer_id, count(*) from published.fct_customer_health_daily "
                                "group by customer_id").fetchall())
        value = con.execute("select max(value_at_stake) from published.fct_customer_health_daily "
                            "where customer_id = ?", [LONG_ID]).fetchone()[0]
        drift = con.execute("select count(*) from build.int_drift_days where customer_id = 'C000001'").fetchone()[0]
    finally:
        con.close()
    assert set(rows) == {LONG_ID, "C000001"} and rows["C000001"] > 150
    assert rows[LONG_ID] == (AS_OF + dt.timedelta(days=1) - EARLIEST_INSTANT.date()).days + 1  # from 2000 on
    assert float(value) >= MAX_MONEY
    assert drift > 150
