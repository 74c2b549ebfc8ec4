"""The landing zone: contract records → flat Arrow rows → Parquet files, written atomically.

Layout (docs/design.md, "Landing zone")::

    <landing>/touchpoints/event_date=YYYY-MM-DD/touchpoints-p{partition:03d}-{first:012d}-{last:012d}.parquet
    <landing>/customers/event_date=YYYY-MM-DD/customers-p{partition:03d}-{first:012d}-{last:012d}.parquet

A file name depends only on the dataset, the partition, the event date and the batch's offset range
of that partition, so a replayed batch rewrites the same names instead of adding duplicates.
Files are written under a temporary name, fsynced (local files) and renamed into place.

``_pending/`` holds one small intent manifest per (dataset, partition) while a batch is written but
not yet committed to Kafka; the consumer uses it to delete a crashed batch's files before it
re-consumes (see docs/streaming.md, "Exactly-once landing").
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from loyalty_monitor.contract import Decoded, decode, parse_timestamp
from loyalty_monitor.settings import Settings

#: Landing datasets, by contract kind. The directory and file prefix are the dataset name,
#: independent of the (configurable) Kafka topic name, which is kept in the `kafka_topic` column.
DATASETS = {"touchpoint": "touchpoints", "customer": "customers"}

UTC = timezone.utc
TMP_SUFFIX = ".tmp"
_INT64 = (-(2**63), 2**63 - 1)
_INT32 = (-(2**31), 2**31 - 1)

LINEAGE_FIELDS = [
    pa.field("kafka_topic", pa.string()),
    pa.field("kafka_partition", pa.int32()),
    pa.field("kafka_offset", pa.int64()),
    pa.field("kafka_timestamp", pa.timestamp("ms", tz="UTC")),
    pa.field("landed_at", pa.timestamp("us", tz="UTC")),
]

#: Payload fields flattened into touchpoint columns (null where absent or of the wrong type;
#: the whole payload is always kept in `payload_json`).
PAYLOAD_FIELDS = [
    ("answered", pa.bool_()), ("duration_s", pa.float64()), ("transferred", pa.bool_()),
    ("resolved", pa.bool_()), ("first_time_fix", pa.bool_()), ("stage", pa.string()),
    ("amount_overdue", pa.float64()), ("days_overdue", pa.int64()), ("invoice_id", pa.string()),
    ("severity", pa.string()), ("nps_score", pa.int32()), ("comment", pa.string()),
    ("amount", pa.float64()), ("currency", pa.string()), ("product_line", pa.string()),
]

TOUCHPOINT_SCHEMA = pa.schema([
    pa.field("event_id", pa.string()),
    pa.field("schema_version", pa.int32()),
    pa.field("event_type", pa.string()),
    pa.field("occurred_at", pa.timestamp("us", tz="UTC")),
    pa.field("occurred_at_raw", pa.string()),
    pa.field("event_date", pa.date32()),
    pa.field("customer_id", pa.string()),
    pa.field("department", pa.string()),
    pa.field("direction", pa.string()),
    pa.field("employee_id", pa.string()),
    pa.field("contact_role", pa.string()),
    pa.field("note", pa.string()),
    pa.field("source", pa.string()),
    *[pa.field(name, kind) for name, kind in PAYLOAD_FIELDS],
    pa.field("payload_json", pa.string()),
    pa.field("extra_json", pa.string()),
    *LINEAGE_FIELDS,
])

CUSTOMER_SCHEMA = pa.schema([
    pa.field("customer_id", pa.string()),
    pa.field("is_deleted", pa.bool_()),
    pa.field("schema_version", pa.int32()),
    pa.field("name", pa.string()),
    pa.field("segment", pa.string()),
    pa.field("country", pa.string()),
    pa.field("account_manager_id", pa.string()),
    pa.field("account_manager_name", pa.string()),
    pa.field("account_manager_email", pa.string()),
    pa.field("annual_potential", pa.float64()),
    pa.field("currency", pa.string()),
    pa.field("updated_at", pa.timestamp("us", tz="UTC")),
    pa.field("event_date", pa.date32()),
    pa.field("extra_json", pa.string()),
    *LINEAGE_FIELDS,
])

SCHEMAS = {"touchpoints": TOUCHPOINT_SCHEMA, "customers": CUSTOMER_SCHEMA}

_TOUCHPOINT_KNOWN = {"schema_version", "event_id", "event_type", "occurred_at", "customer_id",
                     "department", "direction", "employee_id", "contact_role", "note", "source",
                     "payload"}
_CUSTOMER_KNOWN = {"schema_version", "customer_id", "name", "segment", "country",
                   "account_manager", "annual_potential", "currency", "updated_at"}


class UnlandableRecord(ValueError):
    """A record that passed the contract but cannot be stored (e.g. a lone UTF-16 surrogate)."""


#: Error code (beyond the contract's) for a record that passed the contract but cannot be stored.
UNLANDABLE = "unlandable"


def safe_decode(kind: str, key: bytes | None, value: bytes | None, max_bytes: int) -> Decoded:
    """``contract.decode`` that never raises: bad input is data, whatever trips the decoder."""
    try:
        return decode(kind, key, value, max_bytes)
    except OverflowError as exc:  # e.g. 0001-01-01T00:00:00+01:00 leaves datetime's range in UTC
        return Decoded(False, error_code="bad_timestamp", error_detail=f"timestamp out of range: {exc}")
    except Exception as exc:  # noqa: BLE001 - a decoder bug must not stop the stream
        return Decoded(False, error_code="decode_failed", error_detail=f"{type(exc).__name__}: {exc}"[:500])


# --- flattening ------------------------------------------------------------------------------

def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _coerce(value: Any, kind: pa.DataType) -> Any:
    """The payload value if it fits the column type, else None (it stays in payload_json)."""
    if value is None:
        return None
    if kind == pa.bool_():
        return value if isinstance(value, bool) else None
    if kind == pa.string():
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if kind == pa.float64():
        return float(value)
    low, high = _INT32 if kind == pa.int32() else _INT64
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    return value if low <= value <= high else None


def _utc_from_ms(ms: int | None, fallback: datetime) -> datetime:
    if ms is None or ms < 0:
        return fallback
    return datetime.fromtimestamp(ms / 1000, UTC)


def flatten_touchpoint(record: dict[str, Any], topic: str, partition: int, offset: int,
                       timestamp_ms: int | None, landed_at: datetime) -> dict[str, Any]:
    occurred = parse_timestamp(record["occurred_at"])
    payload = record.get("payload") or {}
    extra = {k: v for k, v in record.items() if k not in _TOUCHPOINT_KNOWN}
    row = {
        "event_id": record["event_id"],
        "schema_version": record["schema_version"],
        "event_type": record["event_type"],
        "occurred_at": occurred,
        "occurred_at_raw": record["occurred_at"],
        "event_date": occurred.date(),
        "customer_id": record["customer_id"],
        "department": record["department"],
        "direction": record.get("direction"),
        "employee_id": record.get("employee_id"),
        "contact_role": record.get("contact_role"),
        "note": record.get("note"),
        "source": record.get("source"),
        "payload_json": _json(payload),
        "extra_json": _json(extra) if extra else None,
        "kafka_topic": topic,
        "kafka_partition": partition,
        "kafka_offset": offset,
        "kafka_timestamp": timestamp_ms if timestamp_ms is not None and timestamp_ms >= 0 else None,
        "landed_at": landed_at,
    }
    for name, kind in PAYLOAD_FIELDS:
        row[name] = _coerce(payload.get(name), kind)
    return row


def flatten_customer(record: dict[str, Any] | None, key: bytes | None, topic: str, partition: int,
                     offset: int, timestamp_ms: int | None, landed_at: datetime) -> dict[str, Any]:
    """A customer row; ``record is None`` is a tombstone for ``key``."""
    lineage = {
        "kafka_topic": topic,
        "kafka_partition": partition,
        "kafka_offset": offset,
        "kafka_timestamp": timestamp_ms if timestamp_ms is not None and timestamp_ms >= 0 else None,
        "landed_at": landed_at,
    }
    if record is None:
        try:
            customer_id = (key or b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnlandableRecord(f"tombstone key is not UTF-8: {exc}") from None
        return {"customer_id": customer_id, "is_deleted": True,
                "event_date": _utc_from_ms(timestamp_ms, landed_at).date(), **lineage}
    updated = parse_timestamp(record["updated_at"])
    manager = record["account_manager"]
    extra = {k: v for k, v in record.items() if k not in _CUSTOMER_KNOWN}
    return {
        "customer_id": record["customer_id"],
        "is_deleted": False,
        "schema_version": record["schema_version"],
        "name": record["name"],
        "segment": record["segment"],
        "country": record["country"],
        "account_manager_id": manager["id"],
        "account_manager_name": manager["name"],
        "account_manager_email": manager["email"],
        "annual_potential": float(record["annual_potential"]),
        "currency": record["currency"],
        "updated_at": updated,
        "event_date": updated.date(),
        "extra_json": _json(extra) if extra else None,
        **lineage,
    }


# --- batches ---------------------------------------------------------------------------------

@dataclass
class BatchBuilder:
    """Collects the valid records of one topic for one batch.

    ``offsets`` spans every consumed offset of a partition (dead-lettered ones included), so the
    file names cover the batch's whole offset range as design.md requires.
    """

    dataset: str  # "touchpoints" | "customers"
    topic: str
    landed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    rows: list[dict[str, Any]] = field(default_factory=list)
    refs: list[Any] = field(default_factory=list)
    offsets: dict[int, list[int]] = field(default_factory=dict)

    def note_offset(self, partition: int, offset: int) -> None:
        span = self.offsets.get(partition)
        if span is None:
            self.offsets[partition] = [offset, offset]
        else:
            if offset < span[0]:
                span[0] = offset
            if offset > span[1]:
                span[1] = offset

    def add(self, record: dict[str, Any] | None, key: bytes | None, partition: int, offset: int,
            timestamp_ms: int | None, ref: Any = None) -> None:
        """Add one valid record (``None`` = customers tombstone).

        Raises UnlandableRecord (or the parsing error) if the record cannot be flattened; the
        caller dead-letters it.
        """
        self.note_offset(partition, offset)
        try:
            if self.dataset == "touchpoints":
                row = flatten_touchpoint(record, self.topic, partition, offset, timestamp_ms,
                                         self.landed_at)
            else:
                row = flatten_customer(record, key, self.topic, partition, offset, timestamp_ms,
                                       self.landed_at)
        except UnlandableRecord:
            raise
        except (ValueError, OverflowError, KeyError, TypeError) as exc:
            raise UnlandableRecord(f"{type(exc).__name__}: {exc}") from None
        self.rows.append(row)
        self.refs.append(ref)

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class PreparedBatch:
    """Arrow tables ready to write, keyed by landing path; plus rows Arrow refused."""

    dataset: str
    tables: dict[str, pa.Table]
    by_partition: dict[int, list[str]]  # partition → its paths in ``tables``
    event_dates: list[str]
    rejected: list[tuple[Any, str]]  # (ref, detail)
    records: int


def file_name(dataset: str, partition: int, first: int, last: int) -> str:
    return f"{dataset}-p{partition:03d}-{first:012d}-{last:012d}.parquet"


def relative_path(dataset: str, event_date: date | str, partition: int, first: int, last: int) -> str:
    return posixpath.join(dataset, f"event_date={event_date}", file_name(dataset, partition, first, last))


def _table(dataset: str, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMAS[dataset])


def prepare(batch: BatchBuilder) -> PreparedBatch:
    """Group a batch's rows by (partition, event_date) into Arrow tables.

    The fast path converts all rows at once; if Arrow refuses (a value valid JSON but not
    storable, such as a lone surrogate), rows are converted one by one and the refused ones are
    returned in ``rejected`` for the dead-letter topic instead of failing the batch.
    """
    rejected: list[tuple[Any, str]] = []
    rows, refs = batch.rows, batch.refs
    try:
        table = _table(batch.dataset, rows)
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        good_rows = []
        for row, ref in zip(rows, refs):
            try:
                _table(batch.dataset, [row])
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
                rejected.append((ref, f"{type(exc).__name__}: {exc}"[:500]))
            else:
                good_rows.append(row)
        rows = good_rows
        table = _table(batch.dataset, rows)
    groups: dict[tuple[int, date], list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[(row["kafka_partition"], row["event_date"])].append(index)
    tables: dict[str, pa.Table] = {}
    by_partition: dict[int, list[str]] = defaultdict(list)
    for (partition, event_date), indices in sorted(groups.items()):
        first, last = batch.offsets[partition]
        path = relative_path(batch.dataset, event_date, partition, first, last)
        tables[path] = table.take(pa.array(indices, pa.int64())) if len(groups) > 1 else table
        by_partition[partition].append(path)
    event_dates = sorted({str(d) for _, d in groups})
    return PreparedBatch(batch.dataset, tables, dict(by_partition), event_dates, rejected, len(rows))


# --- the landing zone on any fsspec filesystem ------------------------------------------------

class LandingZone:
    """Atomic, deterministic Parquet files under an fsspec URL, plus the pending-batch manifests."""

    PENDING_DIR = "_pending"
    REJECTED_DIR = "_rejected"

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None):
        self.url = url
        self.fs, self.root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        self.root = self.root.rstrip("/") or "/"
        self.local = isinstance(self.fs, LocalFileSystem)

    @classmethod
    def from_settings(cls, settings: Settings) -> "LandingZone":
        return cls(settings.landing)

    def full(self, relative: str) -> str:
        return posixpath.join(self.root, relative)

    def _write_bytes_atomically(self, relative: str, write) -> str:
        final = self.full(relative)
        parent = posixpath.dirname(final)
        # Hidden and not ending in .parquet: readers globbing *.parquet never see a half file.
        tmp = posixpath.join(parent, f".{posixpath.basename(final)}.{uuid.uuid4().hex[:12]}{TMP_SUFFIX}")
        self.fs.makedirs(parent, exist_ok=True)
        if self.local:
            with open(tmp, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        else:  # object stores publish a file atomically on close; rename keeps one code path
            with self.fs.open(tmp, "wb") as fh:
                write(fh)
            self.fs.mv(tmp, final)
        return final

    def sync_dirs(self, relatives: Iterable[str]) -> None:
        """fsync the parent directories of renamed files so the renames survive a power cut."""
        if not self.local:
            return
        for directory in {posixpath.dirname(self.full(r)) for r in relatives}:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def write_table(self, relative: str, table: pa.Table) -> str:
        return self._write_bytes_atomically(
            relative, lambda fh: pq.write_table(table, fh, compression="zstd"))

    def write_prepared(self, prepared: PreparedBatch) -> list[str]:
        written = [self.write_table(rel, table) for rel, table in prepared.tables.items()]
        self.sync_dirs(prepared.tables)
        return written

    def delete(self, relatives: Iterable[str]) -> int:
        removed = 0
        for rel in relatives:
            path = self.full(rel)
            if self.fs.exists(path):
                self.fs.rm(path)
                removed += 1
        return removed

    def files(self, dataset: str) -> list[str]:
        """Landed Parquet files of a dataset (full paths, sorted)."""
        base = self.full(dataset)
        if not self.fs.exists(base):
            return []
        return sorted(p for p in self.fs.find(base) if p.endswith(".parquet")
                      and not posixpath.basename(p).startswith("."))

    def delete_temp_files(self, relatives: Iterable[str]) -> int:
        """Remove temp files a crash left next to the given (final) paths."""
        removed = 0
        for rel in relatives:
            final = self.full(rel)
            pattern = posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.*{TMP_SUFFIX}")
            for path in self.fs.glob(pattern):
                self.fs.rm(path)
                removed += 1
        return removed

    def read(self, dataset: str) -> pa.Table:
        """All landed rows of a dataset as one table (small data: tests, dev, checks)."""
        paths = self.files(dataset)
        if not paths:
            return SCHEMAS[dataset].empty_table()
        tables = []
        for path in paths:
            with self.fs.open(path, "rb") as fh:
                tables.append(pq.read_table(fh, schema=SCHEMAS[dataset]))
        return pa.concat_tables(tables)

    # pending-batch manifests: written before a batch's files, removed after its commit
    def _pending_rel(self, dataset: str, partition: int) -> str:
        return posixpath.join(self.PENDING_DIR, f"{dataset}-p{partition:03d}.json")

    def write_pending(self, dataset: str, partition: int, manifest: dict[str, Any]) -> None:
        data = json.dumps(manifest, indent=1).encode()
        self._write_bytes_atomically(self._pending_rel(dataset, partition), lambda fh: fh.write(data))

    def read_pending(self, dataset: str, partition: int) -> dict[str, Any] | None:
        path = self.full(self._pending_rel(dataset, partition))
        try:
            with self.fs.open(path, "rb") as fh:
                return json.loads(fh.read())
        except FileNotFoundError:
            return None

    def clear_pending(self, dataset: str, partition: int) -> None:
        path = self.full(self._pending_rel(dataset, partition))
        if self.fs.exists(path):
            self.fs.rm(path)

    def append_rejected(self, name: str, lines: Iterable[dict[str, Any]]) -> str:
        """Append reject records (JSON Lines) under ``_rejected/`` for people to see and replay."""
        rel = posixpath.join(self.REJECTED_DIR, name)
        path = self.full(rel)
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(path, "ab") as fh:
            for line in lines:
                fh.write((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8", "replace"))
        return path


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


def _key_and_value(kind: str, line: bytes) -> tuple[bytes | None, bytes | None]:
    """The Kafka key and value a producer would send for one JSON Lines line."""
    try:
        parsed = json.loads(line)
    except ValueError:
        return None, line
    if not isinstance(parsed, dict):
        return None, line
    customer_id = parsed.get("customer_id")
    key = customer_id.encode() if isinstance(customer_id, str) else None
    if kind == "customer" and parsed.get("tombstone") is True and key:
        return key, None
    return key, line


def land_offline_file(settings: Settings, kind: str, path: Path, zone: LandingZone | None = None,
                      chunk: int | None = None) -> OfflineResult:
    dataset = DATASETS[kind]
    topic = settings.topic_touchpoints if kind == "touchpoint" else settings.topic_customers
    zone = zone or LandingZone.from_settings(settings)
    chunk = chunk or settings.batch_max_records
    result = OfflineResult(dataset)
    timestamp_ms = int(datetime.now(UTC).timestamp() * 1000)
    rejects: list[dict[str, Any]] = []

    def flush(batch: BatchBuilder) -> None:
        if not batch.offsets:
            return
        prepared = prepare(batch)
        for ref, detail in prepared.rejected:
            rejects.append({**ref, "error_code": UNLANDABLE, "error_detail": detail})
        result.files.extend(zone.write_prepared(prepared))
        result.landed += prepared.records

    batch = BatchBuilder(dataset, topic)
    for number, line in _offline_lines(path):
        result.lines += 1
        key, value = _key_and_value(kind, line)
        decoded = safe_decode(kind, key, value, settings.max_message_bytes)
        try:
            ref = {"file": str(path), "line": number, "raw": line.decode("utf-8")}
        except UnicodeDecodeError:  # keep the exact bytes so the line can be repaired and replayed
            ref = {"file": str(path), "line": number, "raw_base64": base64.b64encode(line).decode()}
        if not decoded.ok:
            batch.note_offset(0, number)
            rejects.append({**ref, "error_code": decoded.error_code, "error_detail": decoded.error_detail})
        else:
            try:
                batch.add(decoded.record, key, 0, number, timestamp_ms, ref)
            except UnlandableRecord as exc:
                rejects.append({**ref, "error_code": UNLANDABLE, "error_detail": str(exc)})
        if len(batch.offsets) and batch.offsets[0][1] - batch.offsets[0][0] + 1 >= chunk:
            flush(batch)
            batch = BatchBuilder(dataset, topic)
    flush(batch)
    result.rejected = len(rejects)
    if rejects:
        result.rejects_file = zone.append_rejected(f"{dataset}-offline.jsonl", rejects)
    return result


def land_jsonl_offline(settings: Settings, touchpoints_path: str | Path | None,
                       customers_path: str | Path | None) -> dict[str, OfflineResult]:
    """Decode a generator's JSON Lines files and land them as partition 0, offsets = line numbers.

    Line numbers are 0-based (like Kafka offsets). Lines that break the contract are written to
    ``<landing>/_rejected/<dataset>-offline.jsonl`` with their error code, never dropped silently.
    Re-running on the same files rewrites the same Parquet files.
    """
    zone = LandingZone.from_settings(settings)
    results: dict[str, OfflineResult] = {}
    for kind, path in (("customer", customers_path), ("touchpoint", touchpoints_path)):
        if path is not None:
            results[DATASETS[kind]] = land_offline_file(settings, kind, Path(path), zone)
    return results
