"""Small, deterministic contract-v1 messages for tests, benchmarks and smoke checks.

This is not the generator (``loyalty generate`` writes realistic histories); it makes valid
messages fast and a corpus of bad ones, each labelled with the error code the consumer must give.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

_TYPES = [
    ("call", "reception", {"answered": True, "duration_s": 125.5, "transferred": False, "resolved": True}),
    ("email", "sales", {}),
    ("meeting", "sales", {"duration_s": 3600}),
    ("service_visit", "service", {"resolved": True, "first_time_fix": False}),
    ("dunning_contact", "finance", {"stage": "reminder", "amount_overdue": 1200.0, "days_overdue": 14,
                                     "invoice_id": "INV-1"}),
    ("complaint", "support", {"severity": "high", "resolved": False}),
    ("survey_response", "support", {"nps_score": 9, "comment": "helpful"}),
    ("order", "sales", {"amount": 5400.0, "currency": "DKK", "product_line": "pumps"}),
]

BASE_TIME = datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=1)))


def touchpoint(i: int, customers: int = 500, days: int = 3, **overrides: Any) -> dict[str, Any]:
    """The i-th valid touchpoint: unique event_id, spread over ``days`` event dates."""
    event_type, department, payload = _TYPES[i % len(_TYPES)]
    record: dict[str, Any] = {
        "schema_version": 1,
        "event_id": f"E{i:09d}",
        "event_type": event_type,
        "occurred_at": (BASE_TIME + timedelta(days=i % days, seconds=i % 3600)).isoformat(),
        "customer_id": f"C{i % customers:05d}",
        "department": department,
        "employee_id": f"EMP{i % 40:03d}",
        "contact_role": "decision_maker",
        "source": "samples",
        "payload": dict(payload),
    }
    if event_type in ("call", "email", "meeting"):
        record["direction"] = "inbound" if i % 2 else "outbound"
    record.update(overrides)
    return record


def customer(i: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema_version": 1,
        "customer_id": f"C{i:05d}",
        "name": f"Customer {i} A/S",
        "segment": ("key", "growth", "standard")[i % 3],
        "country": "DK",
        "account_manager": {"id": f"AM{i % 7}", "name": f"Manager {i % 7}",
                            "email": f"am{i % 7}@example.com"},
        "annual_potential": 100000.0 + i,
        "currency": "DKK",
        "updated_at": "2026-03-01T08:00:00Z",
    }
    record.update(overrides)
    return record


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


def touchpoint_messages(n: int, start: int = 0, **kwargs: Any) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) pairs of n valid touchpoints."""
    for i in range(start, start + n):
        record = touchpoint(i, **kwargs)
        yield record["customer_id"].encode(), encode(record)


def bad_touchpoints(max_bytes: int) -> list[tuple[str, str, bytes | None, bytes | None]]:
    """At least 20 kinds of bad touchpoint messages: (label, expected error code, key, value)."""
    def tp(**overrides: Any) -> dict[str, Any]:
        return touchpoint(7, **overrides)

    def without(field: str) -> dict[str, Any]:
        record = tp()
        del record[field]
        return record

    key = b"C00007"
    corpus: list[tuple[str, str, bytes | None, dict | bytes | None]] = [
        ("latin-1 bytes", "not_utf8", key, "Kunde Åse æøå".encode("latin-1")),
        ("truncated utf-8", "not_utf8", key, encode(tp())[:-3] + b"\xc3"),
        ("not json", "not_json", key, b"this is not json"),
        ("truncated json", "not_json", key, encode(tp())[:40]),
        ("empty value", "not_json", key, b""),
        ("json array", "not_object", key, b"[1, 2, 3]"),
        ("json string", "not_object", key, b'"hello"'),
        ("json number", "not_object", key, b"42"),
        ("null value on touchpoints", "null_value", key, None),
        ("oversized", "oversized", key, b'{"pad": "' + b"x" * (max_bytes + 10) + b'"}'),
        ("missing event_id", "schema_violation", key, without("event_id")),
        ("missing payload", "schema_violation", key, without("payload")),
        ("schema_version 2", "schema_violation", key, tp(schema_version=2)),
        ("unknown event_type", "schema_violation", key, tp(event_type="fax")),
        ("unknown department", "schema_violation", key, tp(department="legal")),
        ("call without direction", "schema_violation", key,
         {k: v for k, v in touchpoint(0).items() if k != "direction"}),
        ("call payload without answered", "schema_violation", b"C00000",
         touchpoint(0, payload={"duration_s": 5})),
        ("nps out of range", "schema_violation", b"C00006", touchpoint(6, payload={"nps_score": 11})),
        ("negative order amount", "schema_violation", key,
         tp(payload={"amount": -1, "currency": "DKK", "product_line": "x"})),
        ("note too long", "schema_violation", key, tp(note="n" * 5000)),
        ("empty event_id", "schema_violation", key, tp(event_id="")),
        ("payload is a list", "schema_violation", key, tp(payload=[1])),
        ("timestamp without offset", "schema_violation", key, tp(occurred_at="2026-03-01T09:00:00")),
        ("impossible date", "bad_timestamp", key, tp(occurred_at="2026-02-30T09:00:00Z")),
        ("key mismatch", "key_mismatch", b"C99999", tp()),
        ("non-utf8 key", "key_mismatch", b"\xff\xfe", tp()),
        ("lone surrogate in note", "unlandable", key, b'{"schema_version":1,"event_id":"E-sur",'
         b'"event_type":"email","direction":"inbound","occurred_at":"2026-03-01T09:00:00Z",'
         b'"customer_id":"C00007","department":"sales","payload":{},"note":"\\ud800"}'),
        ("timestamp out of range after UTC shift", "bad_timestamp", key,
         tp(occurred_at="0001-01-01T00:00:00+01:00")),
    ]
    out = []
    for label, code, k, value in corpus:
        if isinstance(value, dict):
            value = encode(value)
        out.append((label, code, k, value))
    return out
