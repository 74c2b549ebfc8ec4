"""The event contract v1: one JSON Schema (``events.v1.schema.json``) and the decoding rules.

``decode(kind, key, value)`` turns raw Kafka bytes into a validated record or a machine-readable
error. It never raises for bad input: bad input is data, routed to the dead-letter topic.
This module imports nothing of the project.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import fastjsonschema

SCHEMA_PATH = Path(__file__).with_name("events.v1.schema.json")
SCHEMA_VERSION = 1
#: The contract's revision within v1 (the schema's ``x-contract-version``): 1.1 added the
#: ``opportunity`` event type, 1.2 the case events (a new kind on its own topic). Minor revisions
#: only add (a type, an optional field, a kind), so a v1.0 producer stays valid and messages keep
#: ``schema_version`` 1.
CONTRACT_VERSION = "1.2"
MAX_NOTE_CHARS = 4096
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576
#: The instants an event may carry: not before EARLIEST_INSTANT, not later than the receiver's clock
#: plus MAX_CLOCK_SKEW. A year-0001 or year-9999 event is a producer's bug; the warehouse would
#: otherwise build a daily series from it (hundreds of thousands of rows for one customer).
#: These are the defaults; an installation sets its own window (settings ``earliest_event_date``,
#: ``max_clock_skew_hours``) and passes it as a ``TimeWindow``.
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_CLOCK_SKEW = timedelta(days=1)


@dataclass(frozen=True)
class TimeWindow:
    """The accepted instants: ``[earliest, receiver's now + max_skew]``."""

    earliest: datetime = EARLIEST_INSTANT
    max_skew: timedelta = MAX_CLOCK_SKEW

    def __post_init__(self) -> None:
        if self.earliest.tzinfo is None:
            raise ValueError("TimeWindow.earliest needs a UTC offset")
        if self.max_skew < timedelta(0):
            raise ValueError("TimeWindow.max_skew must not be negative")


DEFAULT_WINDOW = TimeWindow()
#: Longest key (customer_id, event_id, a tombstone's key): the schema's identifier maxLength.
IDENTIFIER_MAX_CHARS = 256

Kind = Literal["touchpoint", "customer", "case_event"]

#: Where each enumeration of the contract sits in the schema (``$defs`` path of the property with
#: the ``enum``). The constants below, the quality suites, the generator, config/scoring.yml's
#: validation and dbt (var ``contract``: ``loyalty_monitor.warehouse.dbt_vars``) all read the values
#: from the schema through ``enumeration``, so a contract change is made in the schema file only.
ENUMERATIONS: dict[str, tuple[str, ...]] = {
    "event_types": ("touchpoint", "properties", "event_type"),
    "departments": ("touchpoint", "properties", "department"),
    "contact_roles": ("touchpoint", "properties", "contact_role"),
    "dunning_stages": ("dunningPayload", "properties", "stage"),
    "severities": ("complaintPayload", "properties", "severity"),
    "opportunity_statuses": ("opportunityPayload", "properties", "status"),
    "segments": ("customer", "properties", "segment"),
    "case_event_types": ("case_event", "properties", "event_type"),
    "close_outcomes": ("closePayload", "properties", "outcome"),
    "feedback_verdicts": ("feedbackPayload", "properties", "verdict"),
}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def enumeration(name: str) -> tuple[str, ...]:
    """The values of the contract's enumeration ``name`` (a key of ``ENUMERATIONS``), in the
    schema's order; ``null`` (an optional property's "not given") is left out."""
    node: Any = schema()["$defs"]
    for part in ENUMERATIONS[name]:
        node = node[part]
    return tuple(value for value in node["enum"] if value is not None)


def enumerations() -> dict[str, list[str]]:
    """Every enumeration by name (what dbt receives as var ``contract``)."""
    return {name: list(enumeration(name)) for name in ENUMERATIONS}


EVENT_TYPES = enumeration("event_types")
#: Contract 1.1: an opportunity's status; ``won`` and ``lost`` close it.
OPPORTUNITY_STATUSES = enumeration("opportunity_statuses")
DEPARTMENTS = enumeration("departments")
CONTACT_ROLES = enumeration("contact_roles")
SEGMENTS = enumeration("segments")
DUNNING_STAGES = enumeration("dunning_stages")
SEVERITIES = enumeration("severities")
#: Contract 1.2: what an account manager does with a churn-risk case (topic ``case-events``).
CASE_EVENT_TYPES = enumeration("case_event_types")
CLOSE_OUTCOMES = enumeration("close_outcomes")
FEEDBACK_VERDICTS = enumeration("feedback_verdicts")

# Machine-readable error codes carried by dead letters.
ERROR_CODES = {
    "oversized": "message larger than the configured maximum",
    "not_utf8": "value is not valid UTF-8",
    "not_json": "value is not valid JSON",
    "not_object": "value is JSON but not an object",
    "null_value": "null value (tombstone) on a topic that has no tombstones",
    "schema_violation": "value violates the event contract",
    "bad_timestamp": "timestamp is not a valid RFC 3339 instant with offset",
    "key_mismatch": "message key differs from the record's customer_id",
    "bad_key": ("message key is not a valid customer_id (empty, longer than 256 characters, not UTF-8, or with a "
                "control, format or line-separator character such as a zero-width or bidi mark)"),
}


@dataclass(frozen=True)
class Decoded:
    """Result of decoding one message: ``record`` when valid, else ``error_code``/``error_detail``.

    ``record is None and ok`` means a valid customers tombstone (delete ``key``).
    """

    ok: bool
    record: dict[str, Any] | None = None
    error_code: str | None = None
    error_detail: str | None = None

    @property
    def error(self) -> dict[str, str] | None:
        if self.ok:
            return None
        return {"code": self.error_code or "", "detail": self.error_detail or ""}


@lru_cache(maxsize=3)
def _validator(kind: Kind):
    """Whole-schema validator for ``kind`` (the reference semantics)."""
    doc = schema()
    # fastjsonschema compiles the schema to Python: an order of magnitude faster than jsonschema.
    return fastjsonschema.compile({"$ref": f"#/$defs/{kind}", "$defs": doc["$defs"]})


@lru_cache(maxsize=1)
def _touchpoint_validators() -> tuple[Any, dict[str, Any], dict[str, list[str]]]:
    """The touchpoint schema split for speed: the envelope without its per-type ``allOf`` rules,
    one payload validator per event type, and the fields each type requires.

    Running every ``if/then`` of ``allOf`` on each message cost most of the consumer's CPU; picking
    the one rule that applies by ``event_type`` gives the same verdicts (a test proves it on the
    whole bad-message corpus). Derived from the schema file, so that file stays the one contract.
    """
    defs = schema()["$defs"]
    envelope = {k: v for k, v in defs["touchpoint"].items() if k != "allOf"}
    payloads: dict[str, Any] = {}
    required: dict[str, list[str]] = {}
    for rule in defs["touchpoint"].get("allOf", []):
        condition = rule["if"]["properties"]["event_type"]
        types = condition.get("enum") or [condition["const"]]
        then = rule["then"]
        for event_type in types:
            required.setdefault(event_type, []).extend(then.get("required", []))
            ref = then.get("properties", {}).get("payload", {}).get("$ref")
            if ref:
                payloads[event_type] = fastjsonschema.compile(
                    {"$ref": ref, "$defs": defs}, )
    return fastjsonschema.compile({**envelope, "$defs": defs}), payloads, required


def _validate_touchpoint(record: dict[str, Any]) -> None:
    envelope, payloads, required = _touchpoint_validators()
    envelope(record)
    event_type = record["event_type"]
    for name in required.get(event_type, ()):
        if name not in record:
            raise fastjsonschema.JsonSchemaValueException(
                f"data must contain ['{name}'] properties (required for event_type {event_type})",
                name="data")
    payload_validator = payloads.get(event_type)
    if payload_validator is not None:
        try:
            payload_validator(record["payload"])
        except fastjsonschema.JsonSchemaValueException as exc:
            raise fastjsonschema.JsonSchemaValueException(
                exc.message.replace("data", "data.payload", 1), name="data.payload") from None


def _reject_constant(name: str) -> float:
    # JSON has no NaN or Infinity; Python's parser accepts them unless told not to.
    raise ValueError(f"{name} is not valid JSON")


class JsonProblem(ValueError):
    """A message that is not JSON (``not_json``) or that JSON would not carry as it was meant
    (``schema_violation``); ``detail`` says which, in words."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


def parse_json(text: str) -> tuple[Any, bool]:
    """A message's JSON as the contract reads it, and whether a number in it is beyond a double
    (1e999 reads as inf: ``decode`` says where, after the schema's own rules). Raises JsonProblem for
    what is not JSON (NaN and Infinity included, and nesting deeper than the parser follows) and for
    what would land changed: a key given twice in one object (parsers differ on which value wins), a
    number too small for a double (1e-400 would land as 0), a whole number of more than 4,300 digits.
    The export of dead letters uses it too: what passes here is written back unchanged."""
    overflowed: list[str] = []
    underflowed: list[str] = []
    twice: list[str] = []

    def parse_float(literal: str) -> float:  # notes a literal no double holds
        number = float(literal)
        if math.isinf(number):
            overflowed.append(literal)
        elif number == 0 and any(c in "123456789" for c in literal.lower().split("e")[0]):
            underflowed.append(literal)  # 1e-400: not zero, but it would land as 0.0
        return number

    def members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:  # notes a key given twice in one object
        out = dict(pairs)
        if len(out) != len(pairs) and not twice:
            seen: set[str] = set()
            twice.append(next(k for k, _ in pairs if k in seen or seen.add(k)))
        return out

    try:
        record = json.loads(text, parse_constant=_reject_constant, parse_float=parse_float, object_pairs_hook=members)
    except RecursionError:
        raise JsonProblem("not_json", "nested deeper than the decoder follows (about 1,000 levels of arrays and "
                                      "objects)") from None
    except ValueError as exc:
        if "Exceeds the limit" in str(exc):  # Python's guard on int(); its advice is about Python
            raise JsonProblem("schema_violation", "a whole number of more than 4,300 digits: beyond the range of "
                                                  "any field") from None
        raise JsonProblem("not_json", str(exc)[:500]) from None
    if twice:  # never guess which value the producer meant
        raise JsonProblem("schema_violation", f"key {twice[0]!r} is given twice in one object: send it once")
    if underflowed:
        raise JsonProblem("schema_violation", f"{underflowed[0][:40]}: the number is too small for a double (at "
                                              "least about 5e-324 when not 0): it would land as 0")
    return record, bool(overflowed)


def _infinite_number(value: Any, path: str = "") -> str | None:
    """Where a number too large for a double sits (1e999 is valid JSON syntax; Python reads it as
    inf), for fields the schema leaves open (unknown fields, free-form payloads): landed, it would
    be written back as the non-JSON `Infinity` in payload_json / extra_json, which PostgreSQL's
    json type refuses. Fields the schema bounds (amounts) fail their own rule first."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "the value")
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, child in children:
        found = _infinite_number(child, f"{path}.{name}" if path else str(name))
        if found:
            return found
    return None


#: The schema's pattern of a timestamp (``$defs.rfc3339``) and of an id (``$defs.identifier``): a
#: mismatch is explained in words.
_TIMESTAMP_PATTERN = schema()["$defs"]["rfc3339"]["pattern"]
_IDENTIFIER_PATTERN = schema()["$defs"]["identifier"]["pattern"]
#: ... and of a calendar date (``$defs.isoDate``: YYYY-MM-DD from 2000 to 2099).
_DATE_PATTERN = schema()["$defs"]["isoDate"]["pattern"]
#: A ``tombstone`` field that was meant as the JSON literal true (any other value, such as false on
#: every record, is an unknown field like any other: tolerated and kept).
_TOMBSTONE_LOOKALIKES = ("true", "True", "TRUE", "yes", "1", 1)
#: The minutes of a timestamp's UTC offset (the schema's pattern allows any two digits).
_OFFSET_MINUTES = re.compile(r"[+-][0-9]{2}:([0-9]{2})$")


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp with offset; raise ValueError otherwise. Returns UTC."""
    parsed = datetime.fromisoformat(value.replace("z", "Z"))
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no UTC offset")
    return parsed.astimezone(timezone.utc)


def validate(kind: Kind, record: Any, now: datetime | None = None,
             window: TimeWindow = DEFAULT_WINDOW) -> tuple[str, str] | None:
    """Return ``(error_code, detail)`` if ``record`` breaks the contract, else None. ``now`` is the
    receiver's clock (default: the system's); ``window`` bounds the accepted timestamps around it."""
    if not isinstance(record, dict):
        return "not_object", f"expected a JSON object, got {type(record).__name__}"
    if kind == "customer" and record.get("tombstone") in _TOMBSTONE_LOOKALIKES and record.get("tombstone") is not True:
        return "schema_violation", (f"tombstone: {record['tombstone']!r} is not the JSON literal true; a tombstone "
                                    "line is exactly {\"customer_id\": ..., \"tombstone\": true}: it was sent as a "
                                    "customer record, and nothing was erased")
    if kind == "customer" and record.get("tombstone") is True:  # an erasure request that did not take
        others = sorted(k for k in record if k not in ("customer_id", "tombstone"))
        return "schema_violation", ("a tombstone line is exactly {\"customer_id\": ..., \"tombstone\": true}"
                                    + (f"; this one also has {', '.join(others)}" if others else "")
                                    + ": it was sent as a customer record, and nothing was erased")
    try:
        if kind == "touchpoint":
            _validate_touchpoint(record)
        else:
            _validator(kind)(record)
    except RecursionError:
        return "schema_violation", "value is nested too deeply"
    except fastjsonschema.JsonSchemaValueException as exc:
        if exc.rule == "pattern" and (exc.definition or {}).get("pattern") == _TIMESTAMP_PATTERN:
            # the regular expression says nothing to whoever fixes the feed
            return "schema_violation", (f"{exc.name.removeprefix('data.')}: {exc.value!r} is not a timestamp with "
                                        "its UTC offset, e.g. 2026-03-02T09:15:04Z or 2026-03-02T10:15:04+01:00 "
                                        f"(a time without one is ambiguous) (at {exc.name})")
        if exc.rule == "pattern" and (exc.definition or {}).get("pattern") == _DATE_PATTERN:
            # a snooze until 9999-12-31 showed a manager "must match pattern ^20[0-9]{2}-..."
            return "schema_violation", (f"{exc.name.removeprefix('data.')}: {exc.value!r} is not a date from "
                                        "2000-01-01 to 2099-12-31 written YYYY-MM-DD, e.g. 2026-03-02 (at "
                                        f"{exc.name})")
        if exc.rule == "pattern" and (exc.definition or {}).get("pattern") == _IDENTIFIER_PATTERN:
            bad = sorted({f"U+{ord(c):04X}" for c in str(exc.value) if not _identifier_pattern().match(c)})
            return "schema_violation", (f"{exc.name.removeprefix('data.')}: {exc.value!r} has a control, format or "
                                        f"line-separator character ({', '.join(bad[:5])}): an id must be printable, "
                                        "or two ids that look alike would be two customers (at "
                                        f"{exc.name})")
        return "schema_violation", f"{exc.message} (at {exc.name})"
    stamp_field = "updated_at" if kind == "customer" else "occurred_at"
    stamp = record[stamp_field]
    try:
        if (offset := _OFFSET_MINUTES.search(stamp)) and int(offset.group(1)) > 59:
            # Python reads +00:60 as an hour; RFC 3339 has no such offset
            raise ValueError(f"its UTC offset has {offset.group(1)} minutes (at most 59)")
        instant = parse_timestamp(stamp)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 shifted before UTC year 1
        if "offset must be a timedelta" in str(exc):  # Python's words for +24:00
            return "bad_timestamp", f"{stamp_field}: {stamp!r} has a UTC offset beyond ±23:59"
        return "bad_timestamp", f"{stamp_field}: {stamp!r}: {exc}"
    latest = (now or datetime.now(timezone.utc)) + window.max_skew
    if not window.earliest <= instant <= latest:
        return "bad_timestamp", (f"{stamp_field}: {record[stamp_field]} lies outside the accepted window: from "
                                 f"{window.earliest:%Y-%m-%d} to {window.max_skew.total_seconds() / 3600:g} hours "
                                 f"after the receiver's clock ({latest:%Y-%m-%dT%H:%M}Z)")
    if kind == "touchpoint" and record["event_type"] == "opportunity":
        return _check_opportunity_dates(record["payload"], instant)
    if kind == "case_event" and record["event_type"] == "snooze":
        return _check_snooze_date(record["payload"], instant)
    return None


def _check_snooze_date(payload: dict[str, Any], occurred: datetime) -> tuple[str, str] | None:
    """Contract 1.2: a snooze ends on a day that exists, not before the day it was set (a day of
    slack for time zones): a snooze that had ended when it was sent is a producer's mistake."""
    try:
        until = date.fromisoformat(payload["until"])
    except ValueError as exc:
        return "bad_timestamp", f"payload.until: {exc}"
    if until < (occurred - timedelta(days=1)).date():
        return "bad_timestamp", (f"payload.until: {payload['until']} lies before the event that sets it "
                                 f"({occurred.date().isoformat()})")
    return None


def _check_opportunity_dates(payload: dict[str, Any], occurred: datetime) -> tuple[str, str] | None:
    """Contract 1.1: the payload's dates exist (the schema checks their shape only), and a deal is
    not closed on a day after the event that reports it (a day of slack for time zones)."""
    for name in ("expected_close_date", "closed_on"):
        if name in payload:
            try:
                day = date.fromisoformat(payload[name])
            except ValueError as exc:
                return "bad_timestamp", f"payload.{name}: {exc}"
            if name == "closed_on" and day > (occurred + timedelta(days=1)).date():
                return "bad_timestamp", (f"payload.closed_on: {payload[name]} lies after the event that "
                                         f"reports it ({occurred.date().isoformat()})")
    return None


@lru_cache(maxsize=1)
def _identifier_pattern() -> re.Pattern[str]:
    return re.compile(schema()["$defs"]["identifier"]["pattern"])


def _key_text(key: bytes) -> str | None:
    """A message key as text; None when it is not UTF-8 (it then matches no id: a replacement
    character must not make ``b"\\xff"`` equal to the id "\\ufffd")."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


def is_identifier(key: bytes | str) -> bool:
    """A key the contract accepts as an id (its ``identifier``): UTF-8, 1 to 256 characters, none a
    control, format or line-separator character (two ids that look alike must be alike)."""
    text = _key_text(key) if isinstance(key, bytes) else key
    # fullmatch: the pattern's "$" would also match before a final newline
    return text is not None and 1 <= len(text) <= IDENTIFIER_MAX_CHARS and bool(_identifier_pattern().fullmatch(text))


def decode(kind: Kind, key: bytes | None, value: bytes | None,
           max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, window: TimeWindow = DEFAULT_WINDOW) -> Decoded:
    """Decode and validate one Kafka message of the given kind."""
    if value is None:
        if kind == "customer" and key is not None:  # an empty key is a bad key, not a missing value
            if not is_identifier(key):
                return Decoded(False, error_code="bad_key", error_detail=f"{ERROR_CODES['bad_key']}: {key[:64]!r}")
            return Decoded(ok=True, record=None)  # tombstone: the customer was deleted
        if kind == "customer":  # the customers topic has tombstones: this one names no customer
            return Decoded(False, error_code="null_value",
                           error_detail="null value (tombstone) without a key: a tombstone's key is the id of the "
                                        "customer it deletes")
        return Decoded(False, error_code="null_value", error_detail=ERROR_CODES["null_value"])
    if len(value) > max_bytes:
        return Decoded(False, error_code="oversized",
                       error_detail=f"{len(value)} bytes > limit of {max_bytes}")
    if not value.strip():
        return Decoded(False, error_code="not_json",
                       error_detail=f"empty message ({len(value)} bytes): a message is one JSON object "
                                    "(a Kafka delete, on the customers topic only, is a null value, not an empty one)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Decoded(False, error_code="not_utf8", error_detail=str(exc))
    try:
        record, overflowed = parse_json(text)
    except JsonProblem as exc:
        return Decoded(False, error_code=exc.code, error_detail=exc.detail)
    problem = validate(kind, record, window=window)
    if problem:
        return Decoded(False, error_code=problem[0], error_detail=problem[1])
    infinite = _infinite_number(record) if overflowed else None
    if infinite:
        return Decoded(False, error_code="schema_violation",
                       error_detail=f"{infinite}: the number is beyond the range of a double (at most about 1.8e308)")
    if key is not None and _key_text(key) != record["customer_id"]:
        return Decoded(False, error_code="key_mismatch",
                       error_detail=f"key {key[:64]!r} != customer_id {record['customer_id'][:64]!r}")
    return Decoded(ok=True, record=record)
