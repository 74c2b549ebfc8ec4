"""Landing: contract records → flat Arrow rows → batches → Parquet files in the landing zone.

Where the files go and how they are written atomically is the landing zone's layout
(``loyalty_core.landing_zone``); this module turns Kafka messages (or offline JSON Lines files) into
the rows of that layout: decode against the contract, coerce payload fields, batch per dataset, and
split a batch into one file per (partition, event date).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa

from loyalty_core.contract import DEFAULT_WINDOW, Decoded, TimeWindow, decode, parse_timestamp, schema
from loyalty_core.landing_zone import (
    DATASETS,
    EPOCH_DATE,
    PAYLOAD_FIELDS,
    SCHEMAS,
    UTC,
    LandingZone,
    PreparedBatch,
    relative_path,
)
from loyalty_core.settings import Settings

_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)

_TOUCHPOINT_KNOWN = {"schema_version", "event_id", "event_type", "occurred_at", "customer_id",
                     "department", "direction", "employee_id", "contact_role", "note", "source",
                     "payload"}
_CUSTOMER_KNOWN = {"schema_version", "customer_id", "name", "segment", "country",
                   "account_manager", "annual_potential", "currency", "updated_at"}
_CASE_EVENT_KNOWN = {"schema_version", "event_id", "event_type", "occurred_at", "case_id", "customer_id",
                     "actor", "source", "payload"}


class UnlandableRecord(ValueError):
    """A record that passed the contract but cannot be stored (e.g. a lone UTF-16 surrogate)."""


#: Error code (beyond the contract's) for a record that passed the contract but cannot be stored.
UNLANDABLE = "unlandable"


def contract_window(settings: Settings) -> TimeWindow:
    """The contract's accepted time window as this installation configures it."""
    try:
        earliest = datetime.combine(date.fromisoformat(settings.earliest_event_date), datetime.min.time(), UTC)
    except ValueError:
        raise ValueError(f"setting earliest_event_date={settings.earliest_event_date!r} is not a date "
                         "(YYYY-MM-DD)") from None
    if settings.max_clock_skew_hours < 0:
        raise ValueError(f"setting max_clock_skew_hours={settings.max_clock_skew_hours} must not be negative")
    return TimeWindow(earliest=earliest, max_skew=timedelta(hours=settings.max_clock_skew_hours))


def safe_decode(kind: str, key: bytes | None, value: bytes | None, max_bytes: int,
                window: TimeWindow = DEFAULT_WINDOW) -> Decoded:
    """``contract.decode`` that never raises: bad input is data, whatever trips the decoder."""
    try:
        return decode(kind, key, value, max_bytes, window)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 leaves datetime's range in UTC
        return Decoded(False, error_code="bad_timestamp", error_detail=f"timestamp out of range: {exc}")
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the stream
        return Decoded(False, error_code="decode_failed", error_detail=f"{type(exc).__name__}: {exc}"[:500])


# --- flattening: raw messages → columnar chunks ----------------------------------------------

def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _coerce_bool(value: Any) -> Any:
    return value if isinstance(value, bool) else None


def _coerce_str(value: Any) -> Any:
    return value if isinstance(value, str) else None


def _coerce_float(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int_coercer(low: int, high: int):
    def coerce(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float):
            if not value.is_integer():
                return None
            value = int(value)
        return value if low <= value <= high else None
    return coerce


def _coercer(kind: pa.DataType):
    if kind == pa.bool_():
        return _coerce_bool
    if kind == pa.string():
        return _coerce_str
    if kind == pa.float64():
        return _coerce_float
    return _int_coercer(*(_INT32 if kind == pa.int32() else _INT64))


# Payload field name -> (column position among the payload columns, coercer). Payloads hold a few
# keys of fifteen: walking the payload, not the fifteen columns, is the hot path's cheaper order.
_PAYLOAD_SLOTS = {name: (i, _coercer(kind)) for i, (name, kind) in enumerate(PAYLOAD_FIELDS)}
_NO_PAYLOAD = (None,) * len(PAYLOAD_FIELDS)


def payload_properties(kind: str) -> dict[str, frozenset[str]]:
    """Per event type of ``kind`` (``touchpoint``, ``case_event``), the payload fields the contract
    defines for it (the properties of its payload schema; none for a type without one, e.g. email).

    A typed column holds a field only for the event types that define it: any other payload may
    carry a field of the same name (unknown fields are allowed and kept in ``payload_json``), and
    a help desk's ``"stage": "escalated"`` on a complaint is not a dunning stage. Filled for every
    type, such a field failed the landing gate's checks of that column (a critical in-set or
    range check), so a contract-valid feed stopped the daily run for every customer.
    """
    defs = schema()["$defs"]
    fields: dict[str, set[str]] = {name: set() for name in defs[kind]["properties"]["event_type"]["enum"]}
    for rule in defs[kind].get("allOf", []):
        condition = rule["if"]["properties"]["event_type"]
        ref = rule["then"].get("properties", {}).get("payload", {}).get("$ref")
        if ref:
            for event_type in condition.get("enum") or [condition["const"]]:
                fields[event_type] |= set(defs[ref.rsplit("/", 1)[-1]].get("properties", {}))
    return {event_type: frozenset(names) for event_type, names in fields.items()}


#: Event type -> the payload slots of the fields its payload schema defines.
_PAYLOAD_SLOTS_BY_TYPE = {event_type: {name: slot for name, slot in _PAYLOAD_SLOTS.items() if name in names}
                          for event_type, names in payload_properties("touchpoint").items()}
_CASE_PAYLOAD_FIELDS = payload_properties("case_event")


def _payload_columns(payload: dict[str, Any], slots: dict[str, tuple] = _PAYLOAD_SLOTS) -> list[Any]:
    columns = list(_NO_PAYLOAD)
    for name, value in payload.items():
        slot = slots.get(name)
        if slot is not None and value is not None:
            columns[slot[0]] = slot[1](value)
    return columns


def _utc_from_ms(ms: int | None, fallback: datetime) -> datetime:
    if ms is None or ms < 0:
        return fallback
    return datetime.fromtimestamp(ms / 1000, UTC)


def touchpoint_row(record: dict[str, Any], lineage: tuple) -> tuple:
    """One touchpoint as a tuple in TOUCHPOINT_SCHEMA order (``lineage`` = the last 5 columns)."""
    occurred = parse_timestamp(record["occurred_at"])
    payload = record["payload"]
    extra = {k: v for k, v in record.items() if k not in _TOUCHPOINT_KNOWN} if len(record) > 7 else None
    get = record.get
    return (record["event_id"], record["schema_version"], record["event_type"], occurred,
            record["occurred_at"], occurred.date(), record["customer_id"], record["department"],
            get("direction"), get("employee_id"), get("contact_role"), get("note"), get("source"),
            *_payload_columns(payload, _PAYLOAD_SLOTS_BY_TYPE.get(record["event_type"], {})),
            _json(payload), _json(extra) if extra else None, *lineage)


def customer_row(record: dict[str, Any] | None, key: bytes | None, lineage: tuple,
                 fallback_time: datetime) -> tuple:
    """One customer (``record is None``: a tombstone for ``key``) in CUSTOMER_SCHEMA order."""
    if record is None:
        try:
            customer_id = (key or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnlandableRecord(f"tombstone key is not UTF-8: {exc}") from None
        event_date = _utc_from_ms(lineage[3], fallback_time).date()
        return (customer_id, True, None, None, None, None, None, None, None, None, None, None,
                event_date, None, *lineage)
    updated = parse_timestamp(record["updated_at"])
    manager = record["account_manager"]
    extra = {k: v for k, v in record.items() if k not in _CUSTOMER_KNOWN}
    return (record["customer_id"], False, record["schema_version"], record["name"], record["segment"],
            record["country"], manager["id"], manager["name"], manager["email"],
            float(record["annual_potential"]), record["currency"], updated, updated.date(),
            _json(extra) if extra else None, *lineage)


def case_event_row(record: dict[str, Any], lineage: tuple) -> tuple:
    """One case event (contract 1.2) as a tuple in CASE_EVENT_SCHEMA order."""
    occurred = parse_timestamp(record["occurred_at"])
    payload = record["payload"]
    # only the fields this event type defines (an acknowledge's own "until" is no snooze day)
    defined = _CASE_PAYLOAD_FIELDS.get(record["event_type"], frozenset())
    until = payload.get("until") if "until" in defined else None
    extra = {k: v for k, v in record.items() if k not in _CASE_EVENT_KNOWN}
    return (record["event_id"], record["schema_version"], record["event_type"], occurred,
            record["occurred_at"], occurred.date(), record["case_id"], record["customer_id"],
            record["actor"], record.get("source"),
            date.fromisoformat(until) if isinstance(until, str) else None,
            *(_coerce_str(payload.get(name)) if name in defined else None
              for name in ("reason", "outcome", "note", "verdict", "comment")),
            _json(payload), _json(extra) if extra else None, *lineage)


#: A raw message as the chunk decoder takes it (plain tuples: cheap to send to a worker process).
RawMessage = tuple  # (partition, offset, timestamp_ms, key, value)


@dataclass
class Chunk:
    """Valid rows of some messages of one topic as an Arrow table, and the rejected ones."""

    table: pa.Table
    rejects: list[tuple[int, str, str]]  # (index in the input, error code, detail)


def _to_table(schema: pa.Schema, rows: list[tuple]) -> pa.Table:
    if not rows:
        return schema.empty_table()
    columns = list(zip(*rows))
    return pa.Table.from_arrays([pa.array(col, type=f.type) for col, f in zip(columns, schema)], schema=schema)


def decode_chunk(kind: str, topic: str, messages: list[RawMessage], max_bytes: int,
                 landed_at: datetime, window: TimeWindow = DEFAULT_WINDOW) -> Chunk:
    """Decode, validate and flatten messages of one topic into an Arrow table.

    Pure function of its arguments (no I/O), so the consumer can run it in worker processes.
    Invalid messages are returned as rejects with the contract's error code; a record that is
    valid but cannot be stored (e.g. a lone UTF-16 surrogate in a string) gets ``unlandable``.
    """
    dataset = DATASETS[kind]
    schema = SCHEMAS[dataset]
    rows: list[tuple] = []
    row_index: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    for index, (partition, offset, timestamp_ms, key, value) in enumerate(messages):
        decoded = safe_decode(kind, key, value, max_bytes, window)
        if not decoded.ok:
            rejects.append((index, decoded.error_code or "unknown", decoded.error_detail or ""))
            continue
        lineage = (topic, partition, offset,
                   timestamp_ms if timestamp_ms is not None and timestamp_ms >= 0 else None, landed_at)
        try:
            if kind == "touchpoint":
                rows.append(touchpoint_row(decoded.record, lineage))
            elif kind == "case_event":
                rows.append(case_event_row(decoded.record, lineage))
            else:
                rows.append(customer_row(decoded.record, key, lineage, landed_at))
        except UnlandableRecord as exc:
            rejects.append((index, UNLANDABLE, str(exc)))
            continue
        except (ValueError, OverflowError, KeyError, TypeError, AttributeError) as exc:
            rejects.append((index, UNLANDABLE, f"{type(exc).__name__}: {exc}"[:500]))
            continue
        row_index.append(index)
    try:
        table = _to_table(schema, rows)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        # Rare: find the rows Arrow refuses, one by one, and reject only those.
        good = []
        for row, index in zip(rows, row_index):
            try:
                _to_table(schema, [row])
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
                rejects.append((index, UNLANDABLE, f"{type(exc).__name__}: {exc}"[:500]))
            else:
                good.append(row)
        table = _to_table(schema, good)
        rejects.sort()
    return Chunk(table, rejects)


# --- batches ---------------------------------------------------------------------------------

@dataclass
class BatchBuilder:
    """The landed rows of one topic for one batch, as decoded chunks.

    ``offsets`` spans every consumed offset of a partition (dead-lettered ones included), so the
    file names cover the batch's whole offset range as design.md requires.
    """

    dataset: str  # "touchpoints" | "customers"
    topic: str
    tables: list[pa.Table] = field(default_factory=list)
    offsets: dict[int, list[int]] = field(default_factory=dict)
    #: an offline landing's source tag (``landing_zone.file_name``); empty for Kafka batches
    source: str = ""

    def note_offset(self, partition: int, offset: int) -> None:
        span = self.offsets.get(partition)
        if span is None:
            self.offsets[partition] = [offset, offset]
        else:
            if offset < span[0]:
                span[0] = offset
            if offset > span[1]:
                span[1] = offset

    def add_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self.tables.append(table)

    @property
    def records(self) -> int:
        return sum(t.num_rows for t in self.tables)


def prepare(batch: BatchBuilder) -> PreparedBatch:
    """Split a batch's rows into one table per (partition, event_date), rows in offset order."""
    if not batch.tables:
        return PreparedBatch(batch.dataset, {}, {}, [], 0)
    table = pa.concat_tables(batch.tables)
    partitions = table.column("kafka_partition").to_numpy()
    days = table.column("event_date").cast(pa.int32()).to_numpy()
    order = np.lexsort((table.column("kafka_offset").to_numpy(), days, partitions))
    table = table.take(pa.array(order))
    partitions, days = partitions[order], days[order]
    # start index of every (partition, day) run in the sorted table
    change = np.flatnonzero((np.diff(partitions) != 0) | (np.diff(days) != 0)) + 1
    starts = [0, *change.tolist()]
    ends = [*change.tolist(), table.num_rows]
    tables: dict[str, pa.Table] = {}
    by_partition: dict[int, list[str]] = defaultdict(list)
    event_dates = set()
    for start, end in zip(starts, ends):
        partition = int(partitions[start])
        event_date = EPOCH_DATE + timedelta(days=int(days[start]))
        first, last = batch.offsets[partition]
        path = relative_path(batch.dataset, event_date, partition, first, last, batch.source)
        tables[path] = table.slice(start, end - start)
        by_partition[partition].append(path)
        event_dates.add(str(event_date))
    return PreparedBatch(batch.dataset, tables, dict(by_partition), sorted(event_dates), table.num_rows)


# --- offline landing of generator files (dev and dbt tests; not a replacement for the consumer) --

@dataclass
class OfflineResult:
    dataset: str
    lines: int = 0
    landed: int = 0
    rejected: int = 0
    files: list[str] = field(default_factory=list)
    rejects_file: str | None = None


def _offline_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh):
            line = raw.rstrip(b"\r\n")
            if line.strip():
                yield number, line


def _reject_record(path: Path, number: int, line: bytes, code: str, detail: str) -> dict[str, Any]:
    try:
        ref: dict[str, Any] = {"file": str(path), "line": number, "raw": line.decode("utf-8")}
    except UnicodeDecodeError:  # keep the exact bytes so the line can be repaired and replayed
        ref = {"file": str(path), "line": number, "raw_base64": base64.b64encode(line).decode()}
    return {**ref, "error_code": code, "error_detail": detail}


def land_offline_file(settings: Settings, kind: str, path: Path, zone: LandingZone | None = None,
                      chunk: int | None = None) -> OfflineResult:
    from streaming.producer import key_and_value  # the same key/tombstone rules as `loyalty produce`

    dataset = DATASETS[kind]
    source = offline_source(path)
    # the lineage of a line landed offline: its file, not a Kafka topic (a row is identified by
    # topic, partition and offset: two files' line 12 must not be one row)
    topic = f"{source}:{Path(path).name}"
    zone = zone or LandingZone.from_settings(settings)
    chunk = chunk or settings.batch_max_records
    result = OfflineResult(dataset)
    landed_at = datetime.now(UTC)
    timestamp_ms = int(landed_at.timestamp() * 1000)
    rejects: list[dict[str, Any]] = []

    def land(lines: list[tuple[int, bytes]]) -> None:
        if not lines:
            return
        messages = [(0, number, timestamp_ms, *key_and_value(line)) for number, line in lines]
        decoded = decode_chunk(kind, topic, messages, settings.max_message_bytes, landed_at,
                               contract_window(settings))
        for index, code, detail in decoded.rejects:
            number, line = lines[index]
            rejects.append(_reject_record(path, number, line, code, detail))
        batch = BatchBuilder(dataset, topic, source=source)
        batch.note_offset(0, lines[0][0])
        batch.note_offset(0, lines[-1][0])
        batch.add_table(decoded.table)
        prepared = prepare(batch)
        result.files.extend(zone.write_prepared(prepared))
        result.landed += prepared.records

    pending: list[tuple[int, bytes]] = []
    for number, line in _offline_lines(path):
        result.lines += 1
        pending.append((number, line))
        if pending[-1][0] - pending[0][0] + 1 >= chunk:
            land(pending)
            pending = []
    land(pending)
    result.rejected = len(rejects)
    # one file per source file, replaced when that file is landed again: another file's rejects stay
    result.rejects_file = zone.write_rejected(f"{dataset}-{source}.jsonl", rejects)
    return result


def offline_source(path: str | Path) -> str:
    """The tag of a file landed offline, in its landed files' and rejects' names: a hash of its
    absolute path, so that the same file landed again replaces its own files and no other's."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()
    return f"offline-{digest[:12]}"


def land_jsonl_offline(settings: Settings, touchpoints_path: str | Path | None,
                       customers_path: str | Path | None) -> dict[str, OfflineResult]:
    """Decode a generator's JSON Lines files and land them as partition 0, offsets = line numbers.

    Line numbers are 0-based (like Kafka offsets). Lines that break the contract are written to
    ``<landing>/_rejected/<dataset>-offline-<tag>.jsonl`` with their error code, never dropped
    silently. Re-running on the same files rewrites the same Parquet files; other files land beside
    them (``offline_source``), as a consumer's batches do.
    """
    zone = LandingZone.from_settings(settings)
    results: dict[str, OfflineResult] = {}
    for kind, path in (("customer", customers_path), ("touchpoint", touchpoints_path)):
        if path is not None:
            results[DATASETS[kind]] = land_offline_file(settings, kind, Path(path), zone)
    return results
