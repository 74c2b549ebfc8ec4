"""The landing zone's layout: its datasets, their Arrow schemas, where each file goes, and
how a file is written atomically (``LandingZone``). The consumer writes it (``streaming.landing``);
the quality gate, the warehouse load and the erasure read it. It imports nothing of the project.

Layout (docs/design.md, "Landing zone")::

    <landing>/touchpoints/event_date=YYYY-MM-DD/touchpoints-p{partition:03d}-{first:012d}-{last:012d}.parquet
    <landing>/customers/event_date=YYYY-MM-DD/customers-p{partition:03d}-{first:012d}-{last:012d}.parquet
    <landing>/case_events/event_date=YYYY-MM-DD/case_events-p{partition:03d}-{first:012d}-{last:012d}.parquet

A file name depends only on the dataset, the partition, the event date and the batch's offset range
of that partition, so a replayed batch rewrites the same names instead of adding duplicates. A file
landed offline (``loyalty land-offline``: line numbers as offsets of partition 0) carries its
source's tag, ``<dataset>-offline-<12 hex>-p000-...``, a hash of the source file's absolute path:
landing the same file again rewrites its own files, and no other file's.
Files are written under a temporary name, fsynced (local files) and renamed into place.

``_pending/`` holds one small intent manifest per (dataset, partition) while a batch is written but
not yet committed to Kafka; the consumer uses it to delete a crashed batch's files before it
re-consumes (see docs/streaming.md, "Exactly-once landing").

Beside it, the quality gate's files under the data directory (``quality_dir``): the quarantine
that staging leaves out, and the data docs.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from datetime import date, timezone
from pathlib import Path
from typing import Any, Iterable

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from loyalty_core.settings import Settings

#: Landing datasets, by contract kind. The directory and file prefix are the dataset name,
#: independent of the (configurable) Kafka topic name, which is kept in the `kafka_topic` column.
DATASETS = {"touchpoint": "touchpoints", "customer": "customers", "case_event": "case_events"}

UTC = timezone.utc
EPOCH_DATE = date(1970, 1, 1)
TMP_SUFFIX = ".tmp"
#: Parquet key-value metadata key holding the writing batch's token (see the consumer).
TOKEN_KEY = "loyalty.batch_token"

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

#: The columns every event dataset starts with (touchpoints, case events).
EVENT_HEAD_FIELDS = [
    pa.field("event_id", pa.string()),
    pa.field("schema_version", pa.int32()),
    pa.field("event_type", pa.string()),
    pa.field("occurred_at", pa.timestamp("us", tz="UTC")),
    pa.field("occurred_at_raw", pa.string()),
    pa.field("event_date", pa.date32()),
]

TOUCHPOINT_SCHEMA = pa.schema([
    *EVENT_HEAD_FIELDS,
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

#: Contract 1.2: what account managers did with churn-risk cases; payload fields flattened (null
#: where absent), the whole payload kept in ``payload_json``.
CASE_EVENT_PAYLOAD_FIELDS = [
    ("snooze_until", pa.date32()), ("reason", pa.string()), ("outcome", pa.string()), ("note", pa.string()),
    ("verdict", pa.string()), ("comment", pa.string()),
]

CASE_EVENT_SCHEMA = pa.schema([
    *EVENT_HEAD_FIELDS,
    pa.field("case_id", pa.string()),
    pa.field("customer_id", pa.string()),
    pa.field("actor", pa.string()),
    pa.field("source", pa.string()),
    *[pa.field(name, kind) for name, kind in CASE_EVENT_PAYLOAD_FIELDS],
    pa.field("payload_json", pa.string()),
    pa.field("extra_json", pa.string()),
    *LINEAGE_FIELDS,
])

SCHEMAS = {"touchpoints": TOUCHPOINT_SCHEMA, "customers": CUSTOMER_SCHEMA, "case_events": CASE_EVENT_SCHEMA}


@dataclass
class PreparedBatch:
    """Arrow tables ready to write, keyed by landing path."""

    dataset: str
    tables: dict[str, pa.Table]
    by_partition: dict[int, list[str]]  # partition → its paths in ``tables``
    event_dates: list[str]
    records: int


def file_name(dataset: str, partition: int, first: int, last: int, source: str = "") -> str:
    """A Kafka batch's file (``source`` empty), or an offline landing's: its ``source`` tag keeps two
    files landed offline, and a file landed offline and a consumer's batch, from sharing a name."""
    prefix = f"{dataset}-{source}" if source else dataset
    return f"{prefix}-p{partition:03d}-{first:012d}-{last:012d}.parquet"


def relative_path(dataset: str, event_date: date | str, partition: int, first: int, last: int,
                  source: str = "") -> str:
    return posixpath.join(dataset, f"event_date={event_date}", file_name(dataset, partition, first, last, source))


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

    def write_table(self, relative: str, table: pa.Table, token: str | None = None) -> str:
        if token:
            table = table.replace_schema_metadata({TOKEN_KEY: token})
        return self._write_bytes_atomically(
            relative, lambda fh: pq.write_table(table, fh, compression="zstd"))

    def beside_other_messages(self, prepared: PreparedBatch) -> tuple[PreparedBatch, list[str]]:
        """The batch with a new name for every file whose name is taken by a landed file of other
        messages, and those names. A name says partition and offsets, and offsets start again at 0
        when a topic is created anew (the embedded broker keeps its messages in memory: a restart
        loses them, and the next messages come at offsets already landed): writing such a batch
        over the landed file lost those events without a word. A replay of the same messages
        (same offsets, same Kafka timestamps) keeps its name and rewrites the same rows. The new
        name adds a hash of the batch's offsets and timestamps, so a replay of it finds it again."""
        renamed: dict[str, str] = {}
        for relative, table in prepared.tables.items():
            if not self.fs.exists(self.full(relative)) or self._same_messages(relative, table):
                continue
            offsets = table.column("kafka_offset").to_numpy()
            stamps = pc.fill_null(table.column("kafka_timestamp").cast(pa.int64()), -1).to_numpy()
            digest = hashlib.sha256(offsets.tobytes() + stamps.tobytes()).hexdigest()[:10]
            renamed[relative] = relative.removesuffix(".parquet") + f"-r{digest}.parquet"
        if not renamed:
            return prepared, []
        tables = {renamed.get(rel, rel): table for rel, table in prepared.tables.items()}
        by_partition = {p: [renamed.get(rel, rel) for rel in rels] for p, rels in prepared.by_partition.items()}
        return (PreparedBatch(prepared.dataset, tables, by_partition, prepared.event_dates, prepared.records),
                sorted(renamed.values()))

    def _same_messages(self, relative: str, table: pa.Table) -> bool:
        """Is the landed file at ``relative`` of the same messages as ``table`` (a replay)? Yes when
        every landed row's offset, Kafka timestamp and id (event_id, else customer_id) is one of the
        new rows': a replay may hold more rows than the file kept (an erasure rewrote it, a
        dead-letter rule changed), never other ones. The id tells two generations of a topic
        apart where the broker gave no timestamps."""
        key = ["kafka_offset", "kafka_timestamp", "event_id" if "event_id" in table.column_names else "customer_id"]
        try:
            with self.fs.open(self.full(relative), "rb") as fh:
                landed = pq.read_table(fh, columns=key)
        except (OSError, pa.ArrowException, KeyError):
            return False  # unreadable: keep it for the data engineer (the gate names it)
        rows = set(zip(*(table.column(c).to_pylist() for c in key)))
        return all(row in rows for row in zip(*(landed.column(c).to_pylist() for c in key)))

    def write_prepared(self, prepared: PreparedBatch, token: str | None = None) -> list[str]:
        """Write a batch's files (``token``: the writer's batch token, kept in the file metadata)."""
        written = [self.write_table(rel, table, token) for rel, table in prepared.tables.items()]
        self.sync_dirs(prepared.tables)
        return written

    def file_token(self, path: str) -> str | None:
        """The batch token a landed file (full path) was written with; None if absent or unreadable."""
        try:
            with self.fs.open(path, "rb") as fh:
                metadata = pq.read_metadata(fh).metadata or {}
        except (OSError, pa.ArrowException):
            return None
        token = metadata.get(TOKEN_KEY.encode())
        return token.decode() if token else None

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

    def delete_pending_temp_files(self, dataset: str, partition: int) -> int:
        """Remove a manifest half-written by a crash (its batch wrote no file yet: manifests come first)."""
        return self.delete_temp_files([self._pending_rel(dataset, partition)])

    def write_rejected(self, name: str, lines: list[dict[str, Any]]) -> str | None:
        """Replace ``_rejected/<name>`` with these reject records (JSON Lines); none removes it."""
        rel = posixpath.join(self.REJECTED_DIR, name)
        if not lines:
            self.delete([rel])
            return None
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        payload = data.encode("utf-8", "backslashreplace")
        return self._write_bytes_atomically(rel, lambda fh: fh.write(payload))


# --- the quality gate's files ---------------------------------------------------------------------

def quality_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "quality"


def quarantine_path(settings: Settings) -> Path:
    """Rows the landing gate set aside (``expectations.quarantine`` writes it; staging leaves them out)."""
    return quality_dir(settings) / "quarantine.parquet"


def docs_dir(settings: Settings) -> Path:
    return quality_dir(settings) / "data_docs"


def runs_path(settings: Settings) -> Path:
    """The gate's record of its runs, one JSON line per run (``expectations.gate`` appends)."""
    return quality_dir(settings) / "runs.jsonl"


def quality_runs(settings: Settings, limit: int | None = None) -> list[dict[str, Any]]:
    """The recorded gate runs, oldest first (the last ``limit`` if given): what the report shows."""
    try:
        lines = runs_path(settings).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    runs = [json.loads(line) for line in lines if line.strip()]
    return runs[-limit:] if limit else runs
