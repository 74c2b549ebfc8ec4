"""The landing zone's part of an erasure: Parquet files with the customer's rows are rewritten
without them (temporary file, fsync, rename), and the free texts they held are collected."""

from __future__ import annotations

import datetime as dt
import logging
import os
import posixpath
from collections import defaultdict
from typing import Any, Callable, Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loyalty_core.landing_zone import SCHEMAS, LandingZone
from loyalty_core.settings import Settings
from loyalty_monitor.erasure.subjects import ErasureError, Subject, _aware, _utcnow, personal_text

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


LANDING_DATASETS = ("touchpoints", "customers")


def _zone(settings: Settings):

    return LandingZone.from_settings(settings)


def _parquet_files(zone: Any) -> list[str]:
    """Every Parquet file of the landing zone (its datasets, and anything else kept there, such as
    quarantined rows), hidden temporary files excluded."""
    if not zone.fs.exists(zone.root):
        return []
    return sorted(p for p in zone.fs.find(zone.root) if p.endswith(".parquet")
                  and not posixpath.basename(p).startswith("."))


def _dataset_of(zone: Any, path: str) -> str | None:
    relative = posixpath.relpath(path, zone.root)
    top = relative.split("/", 1)[0]
    return top if top in LANDING_DATASETS else None


def _read(zone: Any, path: str, columns: list[str] | None = None):

    with zone.fs.open(path, "rb") as fh:
        return pq.read_table(fh, columns=columns)


def _schema_names(zone: Any, path: str) -> list[str]:

    with zone.fs.open(path, "rb") as fh:
        return pq.read_schema(fh).names


def _duckdb_rows(zone: Any, files: list[str], select: str, where: str = "true",
                 params: dict[str, Any] | None = None) -> list[tuple] | None:
    """Query landed files with DuckDB (parallel, column-pruned: much faster than reading file by
    file); None when the landing zone is not a local directory (then pyarrow reads it)."""
    if not zone.local or not files:
        return None if not zone.local else []

    con = duckdb.connect()
    try:
        return con.execute(f"select {select} from read_parquet($files, union_by_name = true, filename = true) "
                           f"where {where}", {"files": files, **(params or {})}).fetchall()
    except duckdb.Error as exc:
        broken = _unreadable(zone, files)
        if not broken:
            raise
        raise ErasureError(
            f"{len(broken)} landed file(s) are not readable Parquet (cut short or damaged): "
            f"{', '.join(broken[:5])}{' ...' if len(broken) > 5 else ''}. An erasure reads every landed file, so "
            "the run stops here: move them out of the landing zone (keep them to look into), land their "
            "messages again and run again (docs/operations.md, \"What can go wrong\": a landed Parquet file is "
            "cut short)"
        ) from exc
    finally:
        con.close()


def _unreadable(zone: Any, files: list[str]) -> list[str]:
    """The files among ``files`` whose Parquet footer cannot be read."""
    broken = []
    for path in files:
        try:
            with zone.fs.open(path, "rb") as fh:
                pq.read_metadata(fh)
        except (OSError, pa.ArrowException):
            broken.append(path)
    return broken


def _files_with_column(zone: Any, files: list[str], column: str) -> list[str]:
    """The files whose schema has ``column`` (the landing datasets' schemas are known; other
    files, such as quarantined rows, are asked)."""

    out = []
    for path in files:
        dataset = _dataset_of(zone, path)
        if dataset in SCHEMAS:
            if column in SCHEMAS[dataset].names:
                out.append(path)
            continue
        try:
            if column in _schema_names(zone, path):
                out.append(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is reported, not fatal
            log.warning("erasure: cannot read the schema of %s: %s", path, exc)
    return out


def _landed_ids(zone: Any, files: list[str]) -> dict[str, set[str]]:
    """customer_id -> the files holding rows of it (files without a customer_id column skipped)."""

    out: dict[str, set[str]] = defaultdict(set)
    with_ids = _files_with_column(zone, files, "customer_id")
    rows = _duckdb_rows(zone, with_ids, "distinct cast(customer_id as varchar), filename", "customer_id is not null")
    if rows is not None:
        for customer_id, path in rows:
            out[customer_id].add(path)
        return out
    for path in with_ids:
        for customer_id in pc.unique(_read(zone, path, ["customer_id"]).column("customer_id")).to_pylist():
            if customer_id is not None:
                out[str(customer_id)].add(path)
    return out


def _order_at(table) -> list[dt.datetime | None]:
    """A customers row's place in time: updated_at for records, the Kafka timestamp (else the
    landing time) for tombstones, as dbt's stg_landing__customers orders them."""
    names = table.column_names
    n = table.num_rows
    cols = [table.column(c).to_pylist() if c in names else [None] * n
            for c in ("updated_at", "kafka_timestamp", "landed_at")]
    return [_aware(next((v for v in values if v is not None), None)) for values in zip(*cols)]


def _sent_at(table) -> list[dt.datetime | None]:
    """A customers row's place against an erasure: when it was sent (its Kafka timestamp, else its
    landing time), and for a record the earlier of that and its updated_at. A record re-creates an
    erased customer only if both are after the erasure: a source system's clock set a day ahead
    must not make a record sent before the tombstone look newer (its rows would be kept), and a
    replayed old record is not new because it landed again. In doubt, the rows go."""
    names = table.column_names
    n = table.num_rows
    cols = [table.column(c).to_pylist() if c in names else [None] * n
            for c in ("kafka_timestamp", "landed_at", "updated_at")]
    out: list[dt.datetime | None] = []
    for kafka_ts, landed_at, updated_at in zip(*cols):
        sent = _aware(kafka_ts if kafka_ts is not None else landed_at)
        updated = _aware(updated_at)
        out.append(min(sent, updated) if sent is not None and updated is not None else sent or updated)
    return out


def _tombstones(zone: Any, files: list[str]) -> dict[str, dict[str, Any]]:
    """customer_id -> its newest landed tombstone (instant and Kafka position)."""
    found: list[tuple] = []
    customers = [p for p in files if _dataset_of(zone, p) == "customers"]
    rows = _duckdb_rows(zone, customers, "customer_id, epoch_us(coalesce(kafka_timestamp, landed_at)), kafka_topic, "
                        "kafka_partition, kafka_offset", "is_deleted and customer_id is not null")
    if rows is not None:
        found = [(cid, dt.datetime.fromtimestamp(us / 1e6, UTC) if us is not None else None, *rest)
                 for cid, us, *rest in rows]
    else:
        for path in customers:
            table = _read(zone, path)
            if "is_deleted" not in table.column_names or not any(table.column("is_deleted").to_pylist()):
                continue
            columns = {c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
                       for c in ("customer_id", "is_deleted", "kafka_topic", "kafka_partition", "kafka_offset")}
            for i, at in enumerate(_sent_at(table)):
                if columns["is_deleted"][i] and columns["customer_id"][i] is not None:
                    found.append((columns["customer_id"][i], at, columns["kafka_topic"][i],
                                  columns["kafka_partition"][i], columns["kafka_offset"][i]))
    out: dict[str, dict[str, Any]] = {}
    for customer_id, at, topic, partition, offset in found:
        at = at or _utcnow()
        known = out.get(customer_id)
        if known is None or at > known["at"]:
            out[customer_id] = {"at": at, "topic": topic, "partition": partition, "offset": offset}
    return out


def _recreated_after(zone: Any, files: Iterable[str], customer_id: str, through: dt.datetime) -> bool:
    """Is there a master-data record of the customer sent after its erasure (``_sent_at``)?"""

    for path in files:
        if _dataset_of(zone, path) != "customers":
            continue
        table = _read(zone, path)
        table = table.filter(pc.equal(table.column("customer_id"), customer_id))
        deleted = table.column("is_deleted").to_pylist() if "is_deleted" in table.column_names else [False] * table.num_rows
        for is_deleted, at in zip(deleted, _sent_at(table)):
            if not is_deleted and at is not None and at > through:
                return True
    return False


def _erase_mask(zone: Any, path: str, table, targets: dict[str, Subject]) -> list[bool]:
    """Which rows of a landed table go: every row of an erased customer, except (for a re-created
    customer) rows sent after the erasure."""
    dataset = _dataset_of(zone, path)
    ids = table.column("customer_id").to_pylist()
    n = table.num_rows
    if dataset == "customers":
        order = _sent_at(table)
        deleted = table.column("is_deleted").to_pylist() if "is_deleted" in table.column_names else [False] * n
    elif "kafka_timestamp" in table.column_names:  # touchpoints, and any other dataset from Kafka
        order = [_aware(v) for v in table.column("kafka_timestamp").to_pylist()]
        deleted = [False] * n
    else:
        order, deleted = [None] * n, [False] * n
    mask = []
    for customer_id, at, is_deleted in zip(ids, order, deleted):
        subject = targets.get(customer_id) if customer_id is not None else None
        if subject is None:
            mask.append(False)
        elif is_deleted or not subject.recreated or at is None:
            mask.append(True)  # tombstones always go: the erasure register replaces them
        else:
            mask.append(at <= subject.erased_through)
    return mask


def _rewrite_landing(zone: Any, ids_to_files: dict[str, set[str]], targets: dict[str, Subject]) -> None:
    """Rewrite every landed file with rows of the targets without those rows (atomically; an
    emptied file is deleted). Files keep name, Parquet metadata and modification time, so the
    quality gate does not take them for new data."""

    files = sorted({f for cid, paths in ids_to_files.items() if cid in targets for f in paths})
    touched_dirs: list[str] = []
    for path in files:
        table = _read(zone, path)
        if "customer_id" not in table.column_names:
            continue
        mask = _erase_mask(zone, path, table, targets)
        if not any(mask):
            continue
        ids = table.column("customer_id").to_pylist()
        for customer_id, gone in zip(ids, mask):
            if gone:
                targets[customer_id].removed["landing_rows"] += 1
        kept = table.filter(pa.array([not m for m in mask]))
        relative = posixpath.relpath(path, zone.root)
        mtime = None
        if zone.local:
            stat = os.stat(path)
            mtime = (stat.st_atime_ns, stat.st_mtime_ns)
        if kept.num_rows == 0:
            zone.delete([relative])
            for customer_id in {c for c, m in zip(ids, mask) if m}:
                targets[customer_id].removed["landing_files_deleted"] += 1
        else:
            zone.write_table(relative, kept)  # keeps the schema metadata (the batch token)
            if mtime is not None:
                os.utime(path, ns=mtime)
            for customer_id in {c for c, m in zip(ids, mask) if m}:
                targets[customer_id].removed["landing_files_rewritten"] += 1
        touched_dirs.append(relative)
    zone.sync_dirs(touched_dirs)


def _landing_terms(zone: Any, ids_to_files: dict[str, set[str]], ids: set[str]) -> dict[str, set[str]]:
    """customer_id -> its name(s) and its own free texts (notes, survey comments) as landed."""

    texts: dict[str, set[str]] = defaultdict(set)
    files = sorted({f for cid in ids for f in ids_to_files.get(cid, ())})
    for path in files:
        table = _read(zone, path)
        if "customer_id" not in table.column_names:
            continue
        mine = table.filter(pc.is_in(table.column("customer_id"), value_set=_string_array(ids)))
        for column in ("name", "note", "comment"):
            if column in mine.column_names:
                for customer_id, value in zip(mine.column("customer_id").to_pylist(),
                                           mine.column(column).to_pylist()):
                    if personal_text(column, value):
                        texts[customer_id].add(value)
    return texts


def _string_array(values: Iterable[str]):

    return pa.array(sorted(values), type=pa.string())


def _other_customers_values(zone: Any, files: list[str], columns: tuple[str, ...], ids: set[str],
                            candidates: set[str], sql_test: Callable[[str], str],
                            keep: Callable[[str], bool]) -> set[str]:
    """The values of ``columns`` in other customers' rows (not ``ids``) that pass a test against the
    candidate texts: ``sql_test(column)`` (over ``$texts``) in DuckDB on a local zone, else
    ``keep(value)`` on each value read with Arrow."""
    if not candidates:
        return set()
    found: set[str] = set()
    keyed = set(_files_with_column(zone, files, "customer_id"))
    for column in columns:
        holders = [p for p in _files_with_column(zone, files, column) if p in keyed]
        rows = _duckdb_rows(zone, holders, f"distinct {column}",
                            f"customer_id not in (select unnest($ids)) and {sql_test(column)}",
                            {"texts": sorted(candidates), "ids": sorted(ids)}) if zone.local else None
        if rows is not None:
            found.update(r[0] for r in rows if r[0] is not None)
            continue
        for path in holders:
            table = _read(zone, path, ["customer_id", column])
            others = table.filter(pc.invert(pc.is_in(table.column("customer_id"), value_set=_string_array(ids))))
            found.update(v for v in others.column(column).to_pylist() if isinstance(v, str) and keep(v))
    return found


def _shared_texts(zone: Any, files: list[str], candidates: set[str], ids: set[str]) -> set[str]:
    """The candidate texts that other customers' rows use as well (not personal to the erased ones)."""
    return _other_customers_values(zone, files, ("name", "note", "comment"), ids, candidates,
                                   lambda column: f"{column} in (select unnest($texts))",
                                   lambda value: value in candidates)


def _texts_containing(zone: Any, files: list[str], candidates: set[str], ids: set[str]) -> set[str]:
    """Other customers' names that contain one of the candidate texts without being it ("Ek &
    Lindqvist Packaging AB" holds "Lindqvist Packaging AB"): the redaction leaves them whole. Not
    their notes: a note that names the erased customer is redacted as before."""
    return _other_customers_values(
        zone, files, ("name",), ids, candidates,
        lambda column: (f"{column} not in (select unnest($texts)) and exists (select 1 from "
                        f"(select unnest($texts) as t) where contains({column}, t))"),
        lambda value: value not in candidates and any(c in value for c in candidates))
