"""Landing-zone data for the quality-gate tests: real Parquet files in the layout and with the
columns of docs/design.md "Landing zone" (streaming.landing's schemas, paths and atomic writer),
with defects injected after flattening, where a contract check upstream would not stop them."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable

import pyarrow as pa

from loyalty_core.contract import EVENT_TYPES, parse_timestamp
from loyalty_core.landing_zone import CASE_EVENT_SCHEMA, CUSTOMER_SCHEMA, TOUCHPOINT_SCHEMA, LandingZone
from loyalty_core.settings import Settings
from streaming.landing import case_event_row, relative_path

UTC = timezone.utc
_offsets = itertools.count(0, 100_000)

_PAYLOADS: dict[str, tuple[str, dict[str, Any]]] = {
    "call": ("reception", {"answered": True, "duration_s": 95.0, "transferred": False, "resolved": True}),
    "email": ("sales", {}),
    "meeting": ("sales", {"duration_s": 3600}),
    "service_visit": ("service", {"resolved": True, "first_time_fix": True}),
    "dunning_contact": ("finance", {"stage": "reminder", "amount_overdue": 1200.0, "days_overdue": 14}),
    "complaint": ("support", {"severity": "medium", "resolved": False}),
    "survey_response": ("support", {"nps_score": 8, "comment": "fine"}),
    "order": ("sales", {"amount": 5400.0, "currency": "DKK", "product_line": "pumps"}),
    "opportunity": ("sales", {"opportunity_id": "OPP-1", "account_manager_id": "AM1", "status": "open",
                              "pipeline_stage": "proposal", "stated_probability": 0.4, "amount": 20000.0,
                              "currency": "DKK", "expected_close_date": "2026-12-31"}),
}


def customer_ids(count: int) -> list[str]:
    return [f"C{i:05d}" for i in range(count)]


def customer_record(customer_id: str, **overrides: Any) -> dict[str, Any]:
    number = int(customer_id[1:]) if customer_id[1:].isdigit() else 0
    record = {
        "schema_version": 1, "customer_id": customer_id, "name": f"Customer {customer_id} A/S",
        "segment": ("key", "growth", "standard")[number % 3], "country": "DK",
        "account_manager": {"id": f"AM{number % 5}", "name": f"Manager {number % 5}",
                            "email": f"am{number % 5}@example.com"},
        "annual_potential": 250_000.0, "currency": "DKK", "updated_at": "2026-01-05T08:00:00Z",
    }
    record.update(overrides)
    return record


def touchpoint_record(event_id: str, event_type: str, occurred_at: datetime, customer_id: str,
                      **overrides: Any) -> dict[str, Any]:
    department, payload = _PAYLOADS[event_type]
    record = {
        "schema_version": 1, "event_id": event_id, "event_type": event_type,
        "occurred_at": occurred_at.isoformat(), "customer_id": customer_id, "department": department,
        "employee_id": "EMP001", "contact_role": "decision_maker", "source": "tests",
        "payload": dict(payload),
    }
    if event_type in ("call", "email", "meeting"):
        record["direction"] = "outbound"
    record.update(overrides)
    return record


_NAMES = TOUCHPOINT_SCHEMA.names
#: design.md: payload fields are flattened into the columns between `source` and `payload_json`.
_PAYLOAD_COLUMNS = _NAMES[_NAMES.index("source") + 1:_NAMES.index("payload_json")]


def _lineage(settings_topic: str, offset: int, landed_at: datetime) -> dict[str, Any]:
    return {"kafka_topic": settings_topic, "kafka_partition": 0, "kafka_offset": offset,
            "kafka_timestamp": None, "landed_at": landed_at}


def flat_touchpoint(record: dict[str, Any], topic: str, offset: int, landed_at: datetime) -> dict[str, Any]:
    """A contract touchpoint as a landing row (design.md columns, payload flattened)."""
    occurred = parse_timestamp(record["occurred_at"])
    payload = record.get("payload") or {}
    row = {k: record.get(k) for k in ("event_id", "schema_version", "event_type", "customer_id",
                                      "department", "direction", "employee_id", "contact_role",
                                      "note", "source")}
    row.update(occurred_at=occurred, occurred_at_raw=record["occurred_at"], event_date=occurred.date(),
               payload_json=json.dumps(payload), extra_json=None)
    row.update({name: payload.get(name) for name in _PAYLOAD_COLUMNS})
    row.update(_lineage(topic, offset, landed_at))
    return row


def flat_customer(record: dict[str, Any], topic: str, offset: int, landed_at: datetime) -> dict[str, Any]:
    updated = parse_timestamp(record["updated_at"])
    manager = record["account_manager"]
    row = {k: record.get(k) for k in ("customer_id", "schema_version", "name", "segment", "country",
                                      "annual_potential", "currency")}
    row.update(is_deleted=False, account_manager_id=manager["id"], account_manager_name=manager["name"],
               account_manager_email=manager["email"], updated_at=updated, event_date=updated.date(),
               extra_json=None)
    row.update(_lineage(topic, offset, landed_at))
    return row


def day_of_touchpoints(day: date, per_type: int | dict[str, int], customers: list[str],
                       prefix: str | None = None) -> list[dict[str, Any]]:
    """Valid touchpoint records of one day: ``per_type`` events of each event type."""
    counts = per_type if isinstance(per_type, dict) else {t: per_type for t in EVENT_TYPES}
    prefix = prefix or f"E{day:%Y%m%d}"
    records = []
    number = 0
    for event_type, count in counts.items():
        for _ in range(count):
            at = datetime.combine(day, time(8), UTC) + timedelta(seconds=37 * number)
            records.append(touchpoint_record(f"{prefix}-{number:06d}", event_type, at,
                                             customers[number % len(customers)]))
            number += 1
    return records


def land_touchpoints(settings: Settings, records: Iterable[dict[str, Any]],
                     rows_patch: dict[int, dict[str, Any]] | None = None,
                     landed_at: datetime | None = None) -> list[str]:
    """Flatten and land records (one file per event date); ``rows_patch`` overrides flat columns
    of the given row numbers after flattening (defects the contract would have caught)."""
    landed_at = landed_at or datetime.now(UTC)
    first = next(_offsets)
    rows = [flat_touchpoint(r, settings.topic_touchpoints, first + i, landed_at)
            for i, r in enumerate(records)]
    for index, patch in (rows_patch or {}).items():
        rows[index].update(patch)
    return _write(settings, "touchpoints", rows, TOUCHPOINT_SCHEMA, first)


def land_customers(settings: Settings, records: Iterable[dict[str, Any]],
                   rows_patch: dict[int, dict[str, Any]] | None = None) -> list[str]:
    landed_at = datetime.now(UTC)
    first = next(_offsets)
    rows = [flat_customer(r, settings.topic_customers, first + i, landed_at)
            for i, r in enumerate(records)]
    for index, patch in (rows_patch or {}).items():
        rows[index].update(patch)
    return _write(settings, "customers", rows, CUSTOMER_SCHEMA, first)


def case_event_record(event_id: str, event_type: str, occurred_at: datetime, case_id: str, customer_id: str,
                      **payload: Any) -> dict[str, Any]:
    """A contract-1.2 case event (docs/event-contract.md "Case events")."""
    defaults = {"snooze": {"until": (occurred_at.date() + timedelta(days=14)).isoformat(), "reason": "on leave"},
                "close": {"outcome": "saved"}, "feedback": {"verdict": "real_risk"}}.get(event_type, {})
    return {"schema_version": 1, "event_id": event_id, "event_type": event_type,
            "occurred_at": occurred_at.isoformat(), "case_id": case_id, "customer_id": customer_id,
            "actor": "am1@example.com", "source": "tests", "payload": {**defaults, **payload}}


def land_case_events(settings: Settings, records: Iterable[dict[str, Any]],
                     rows_patch: dict[int, dict[str, Any]] | None = None,
                     landed_at: datetime | None = None) -> list[str]:
    """Flatten case events as the consumer does (streaming.landing.case_event_row) and land them;
    ``rows_patch`` overrides flat columns after flattening (defects the contract would have caught)."""
    landed_at = landed_at or datetime.now(UTC)
    first = next(_offsets)
    names = CASE_EVENT_SCHEMA.names
    rows = [dict(zip(names, case_event_row(r, (settings.topic_case_events, 0, first + i, None, landed_at))))
            for i, r in enumerate(records)]
    for index, patch in (rows_patch or {}).items():
        rows[index].update(patch)
    return _write(settings, "case_events", rows, CASE_EVENT_SCHEMA, first)


def _write(settings: Settings, dataset: str, rows: list[dict[str, Any]], schema: pa.Schema,
           first: int) -> list[str]:
    zone = LandingZone.from_settings(settings)
    by_date: dict[date, list[dict[str, Any]]] = {}
    for row in rows:
        by_date.setdefault(row["event_date"], []).append(row)
    written = []
    for day, day_rows in sorted(by_date.items()):
        path = relative_path(dataset, day, 0, first, first + len(rows) - 1)
        written.append(zone.write_table(path, pa.Table.from_pylist(day_rows, schema=schema)))
    return written
