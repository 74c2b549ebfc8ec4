"""Erasure of a customer's personal data from everything Loyalty Monitor stores (issue 12).

A tombstone on the customers topic (or ``loyalty erase CUSTOMER_ID --by WHO``) erases the
customer everywhere the project keeps data on disk:

* the landing zone: every Parquet file with rows of the customer is rewritten without them
  (temporary file, fsync, rename; the file keeps its name, metadata and modification time), the
  tombstone row itself included, so no landed file names the customer afterwards;
* the warehouse: the customer's rows leave every table of every schema that has a ``customer_id``
  column (build, published, ops, quarantine tables, ...), its alerts leave ``ops.alert_state``, and
  the DuckDB file is then copied into a fresh file that replaces it (DELETE and CHECKPOINT leave
  the deleted values in free blocks of the file; the copy holds live rows only);
* the alert outbox: every message about the customer (its ``.json``, ``.eml`` and ``.html``);
* every other file under the data directory (logs, quality-gate results and Data Docs, reports,
  dbt artifacts, JSON Lines inputs, Airflow's SQLite metadata): JSON Lines records that mention
  the customer are dropped, other text has the customer's id, name and its own free texts
  (notes, survey comments) replaced by ``[erased]``.

What was erased is recorded in ``<data_dir>/erasure/erasures.jsonl`` (append-only): who asked,
when, what was removed where, and the customer only as a keyed hash (HMAC-SHA256 with the
installation's secret ``<data_dir>/erasure/key``), never its id, name or texts. For the figures
that must still count an erased customer (customers who churned, with or without a case: the
leadership report's precision section), the record keeps its ``churn``: the month it churned, its
account manager's id, why (``tombstoned``, or the ``orders_stopped`` / ``closed_lost`` churn it
already had) and whether it had a case, and nothing else about it. Those are counted per month,
manager and reason in ``<data_dir>/erasure/erased_churn.parquet``, which dbt reads
(``stg_erasure__churn`` -> ``fct_case_feedback_monthly``). Every pipeline run
applies new tombstones first and erases again whatever of an erased customer reaches the landing
zone later (a replayed batch, an offset reset, a late event): the register of keyed hashes makes
erasure permanent without keeping the id. Rows sent after the erasure for a customer that a new
master-data record re-created (a record newer than the tombstone) are the new customer's and stay.

Kafka itself is not rewritten here: see docs/operations.md (retention and compaction of the
topics) and ``loyalty dead-letters purge``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import os
import posixpath
import re
import sqlite3
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loyalty_core import locks, marts
from loyalty_core.erasure_register import (  # noqa: F401
    CHURN_FILE,
    KEY_FILE,
    LOG_FILE,
    REGISTER_DIR,
    _append,
    _private_dir,
    _register_path,
    churn_counts_path,
    ensure_churn_counts,
    erased_churn_counts,
    erased_subjects,
    erasure_log,
    erasures,
    pseudonym,
    register_dir,
    subject_key,
    write_churn_counts,
)
from loyalty_core.landing_zone import SCHEMAS, LandingZone
from loyalty_core.marts import open_marts, pg_connect
from loyalty_core.settings import Settings
from loyalty_monitor import scoring, warehouse

log = logging.getLogger(__name__)
UTC = dt.timezone.utc

#: Present while warehouse rows were deleted but the file not yet rewritten (survives a crash).
COMPACT_PENDING = "compact.pending"
ERASED = "[erased]"
#: Free texts shorter than this are not searched for in other files (too likely to be ordinary words).
MIN_TERM_CHARS = 4
#: Text files larger than this are reported, not rewritten in memory.
MAX_TEXT_BYTES = 512 * 1024 * 1024
JSON_LINES_SUFFIXES = {".jsonl", ".ndjson"}
#: Logs may be open for appending by a running process: rewritten in place (same inode), not renamed.
APPENDED_SUFFIXES = {".log", ".out", ".err"}
LANDING_DATASETS = ("touchpoints", "customers")
#: How far back a case counts as "had a case" before a churn day (case_feedback.recall_lookback_days
#: in config/scoring.yml; the same default as dbt_project/macros/case_feedback.sql).
RECALL_LOOKBACK_DAYS = 365
CHURN_REASONS = ("tombstoned", "orders_stopped", "closed_lost")


class ErasureError(RuntimeError):
    """An erasure could not be completed (it is safe to run again)."""


def _lookback_days(settings: Settings) -> int:
    try:
        # optional: the caller handles its absence
        from loyalty_monitor import scoring

        section = scoring.load_scoring(settings.scoring_file).get("case_feedback") or {}
        return int(section.get("recall_lookback_days", RECALL_LOOKBACK_DAYS))
    except Exception:  # noqa: BLE001 - the default, as dbt's macro has it
        return RECALL_LOOKBACK_DAYS


def _warehouse_churn(settings: Settings, ids: list[str]) -> dict[str, dict[str, Any]]:
    """customer_id -> its account manager, its churn as the last build saw it (int_case_churn, if
    it had churned) and its cases' opening days, read from the warehouse before it is erased."""

    if not ids:
        return {}
    if marts.engine_of(settings) == "duckdb":
        if not settings.warehouse.exists():
            return {}

        warehouse.release_duckdb()  # dbt-duckdb keeps the file open after an in-process run
    out: dict[str, dict[str, Any]] = {c: {"cases": []} for c in ids}
    marks = ", ".join("?" * len(ids))
    try:
        reader = marts.open_marts(settings)
    except Exception as exc:  # noqa: BLE001 - no warehouse yet: nothing was built about them
        log.warning("erasure: cannot read the warehouse for the churn record: %s", exc)
        return {}
    try:
        for schema in ("published", "build"):  # the build's is newer; it wins
            if reader.table_exists(schema, "dim_customers"):
                for row in reader.query(f"select customer_id, account_manager_id from {schema}.dim_customers "
                                        f"where customer_id in ({marks})", ids):
                    if row["account_manager_id"] is not None:
                        out[row["customer_id"]]["account_manager_id"] = row["account_manager_id"]
        if reader.table_exists("build", "fct_case_lifecycle"):
            for row in reader.query(f"select customer_id, opened_on from build.fct_case_lifecycle "
                                    f"where customer_id in ({marks})", ids):
                out[row["customer_id"]]["cases"].append(row["opened_on"])
        if reader.table_exists("build", "int_case_churn"):
            for row in reader.query(f"select customer_id, account_manager_id, churned_on, churn_reason, had_case "
                                    f"from build.int_case_churn where customer_id in ({marks})", ids):
                out[row["customer_id"]]["churned"] = row
    except Exception as exc:  # noqa: BLE001 - an older warehouse: tombstoned facts only
        log.warning("erasure: could not read every churn fact from the warehouse: %s", exc)
    finally:
        reader.close()
    return out


def _landed_managers(zone: Any, files: list[str], ids: list[str]) -> dict[str, str]:
    """customer_id -> account manager of its newest landed master-data record (customers never built)."""
    customers = [p for p in files if _dataset_of(zone, p) == "customers"]
    found: dict[str, tuple] = {}
    rows = _duckdb_rows(zone, customers, "customer_id, account_manager_id, updated_at",
                        "customer_id in (select unnest($ids)) and not coalesce(is_deleted, false) "
                        "and account_manager_id is not null", {"ids": ids})
    if rows is None:

        rows = []
        for path in customers:
            table = _read(zone, path)
            if "account_manager_id" not in table.column_names:
                continue
            table = table.filter(pc.is_in(table.column("customer_id"), value_set=_string_array(ids)))
            deleted = table.column("is_deleted").to_pylist() if "is_deleted" in table.column_names else [False] * table.num_rows
            for cid, manager, at, gone in zip(table.column("customer_id").to_pylist(),
                                           table.column("account_manager_id").to_pylist(),
                                           _order_at(table), deleted):
                if manager is not None and not gone:
                    rows.append((cid, manager, at))
    for customer_id, manager, at in rows:
        at = _aware(at) or dt.datetime.min.replace(tzinfo=UTC)
        if customer_id not in found or at >= found[customer_id][1]:
            found[customer_id] = (manager, at)
    return {c: m for c, (m, _) in found.items()}


def _churn_records(settings: Settings, targets: dict[str, Subject], zone: Any, files: list[str],
                   known: dict[str, dt.datetime]) -> dict[str, dict[str, Any]]:
    """customer_id -> what the register keeps of its churn (module doc): only for a customer erased
    for the first time (not a replay, not one a newer master-data record re-created) whose account
    manager is known. A customer that had churned before (orders stopped, a case closed lost, as
    of the last build) keeps that churn; any other churned the day it was erased (tombstoned)."""
    ids = sorted(c for c, s in targets.items()
                 if s.reason in ("tombstone", "request") and s.subject not in known and not s.recreated)
    if not ids:
        return {}
    facts = _warehouse_churn(settings, ids)
    missing = [c for c in ids if not facts.get(c, {}).get("account_manager_id")]
    landed = _landed_managers(zone, files, missing) if missing else {}
    lookback = dt.timedelta(days=_lookback_days(settings))
    out: dict[str, dict[str, Any]] = {}
    for customer_id in ids:
        fact = facts.get(customer_id, {"cases": []})
        erased_on = targets[customer_id].erased_through.astimezone(UTC).date()
        before = fact.get("churned")
        if before is not None and before["churned_on"] is not None and before["churned_on"] <= erased_on:
            churned_on, reason = before["churned_on"], before["churn_reason"]
            manager = before["account_manager_id"] or fact.get("account_manager_id")
            had_case = bool(before["had_case"])
        else:
            churned_on, reason = erased_on, "tombstoned"
            manager = fact.get("account_manager_id") or landed.get(customer_id)
            had_case = any(o is not None and churned_on - lookback <= o <= churned_on for o in fact["cases"])
        if manager is None or reason not in CHURN_REASONS:
            continue  # never in master data: it had no account manager to count under
        out[customer_id] = {"month_start": churned_on.replace(day=1).isoformat(),
                            "account_manager_id": str(manager), "churn_reason": reason, "had_case": had_case}
    return out


# --- what to erase --------------------------------------------------------------------------------

@dataclass
class Subject:
    """One customer to erase in this run (the clear id lives in memory only)."""

    customer_id: str
    subject: str
    erased_through: dt.datetime
    requested_by: str
    reason: str  # "tombstone" | "request" | "re-landed"
    source: dict[str, Any] = field(default_factory=dict)
    erasure_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: True when a master-data record newer than the erasure re-created the customer: its newer
    #: rows stay, and the warehouse is rebuilt from scratch so it holds exactly those.
    recreated: bool = False
    removed: dict[str, Any] = field(default_factory=lambda: defaultdict(int))


@dataclass
class ErasureReport:
    erasures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def customers(self) -> int:
        return len(self.erasures)

    def summary(self) -> str:
        if not self.erasures:
            return "nothing to erase"
        parts = []
        for e in self.erasures:
            removed = e["removed"]
            parts.append(f"{e['subject'][:24]}… ({e['reason']}): {removed.get('landing_rows', 0)} landed rows, "
                         f"{removed.get('warehouse_rows', 0)} warehouse rows, {removed.get('alert_states', 0)} "
                         f"alert states, {removed.get('outbox_files', 0)} outbox files, "
                         f"{removed.get('files_scrubbed', 0)} other files scrubbed")
        return f"erased {len(self.erasures)} customer(s): " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"customers": self.customers, "erasures": self.erasures, "notes": self.notes}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


def _aware(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# --- the landing zone -----------------------------------------------------------------------------

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
    finally:
        con.close()


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
            for i, at in enumerate(_order_at(table)):
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
    """Is there a master-data record of the customer newer than its erasure?"""

    for path in files:
        if _dataset_of(zone, path) != "customers":
            continue
        table = _read(zone, path)
        table = table.filter(pc.equal(table.column("customer_id"), customer_id))
        deleted = table.column("is_deleted").to_pylist() if "is_deleted" in table.column_names else [False] * table.num_rows
        for is_deleted, at in zip(deleted, _order_at(table)):
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
        order = _order_at(table)
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


# --- free texts to look for in other files -------------------------------------------------------

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
                    if isinstance(value, str) and len(value.strip()) >= MIN_TERM_CHARS:
                        texts[customer_id].add(value)
    return texts


def _string_array(values: Iterable[str]):

    return pa.array(sorted(values), type=pa.string())


def _shared_texts(zone: Any, files: list[str], candidates: set[str], ids: set[str]) -> set[str]:
    """The candidate texts that other customers' rows use as well (not personal to the erased ones)."""

    if not candidates:
        return set()
    shared: set[str] = set()
    keyed = set(_files_with_column(zone, files, "customer_id"))
    for column in ("name", "note", "comment"):
        holders = [p for p in _files_with_column(zone, files, column) if p in keyed]
        rows = _duckdb_rows(zone, holders, f"distinct {column}",
                            f"{column} in (select unnest($texts)) and customer_id not in (select unnest($ids))",
                            {"texts": sorted(candidates), "ids": sorted(ids)}) if zone.local else None
        if rows is not None:
            shared.update(r[0] for r in rows)
            continue
        for path in holders:
            table = _read(zone, path, ["customer_id", column])
            others = table.filter(pc.invert(pc.is_in(table.column("customer_id"), value_set=_string_array(ids))))
            hits = others.filter(pc.is_in(others.column(column), value_set=_string_array(candidates)))
            shared.update(v for v in hits.column(column).to_pylist() if v is not None)
    return shared


# --- the warehouse --------------------------------------------------------------------------------

def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _tables(con: Any) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(schema, table, [(column, type)]) of every base table of the warehouse."""
    rows = con.execute(
        "select schema_name, table_name from duckdb_tables() where not internal and not temporary "
        "and database_name = current_database() order by 1, 2").fetchall()
    out = []
    for schema, table in rows:
        columns = con.execute(
            "select column_name, data_type from duckdb_columns() where database_name = current_database() "
            "and schema_name = ? and table_name = ? order by column_index", [schema, table]).fetchall()
        out.append((schema, table, columns))
    return out


def _alert_rules(settings: Settings) -> list[str]:
    """Every rule an alert can carry: config/scoring.yml's (its schema lists them all) and a risk
    case's ``churn_risk``."""

    return sorted({*scoring.RULES, "churn_risk"})


def _alert_ids(con: Any, tables: list, ids: set[str], settings: Settings) -> dict[str, set[str]]:
    """customer_id -> the ids of its alerts and risk cases: from every table that pairs them with
    customer_id, and recomputed (md5 of customer|rule|date, as fct_churn_alerts keys them) for the
    dates in ops.alert_state, so a mart rebuilt without the customer still finds its state rows."""
    out: dict[str, set[str]] = defaultdict(set)
    params = sorted(ids)
    marks = ", ".join("?" * len(params))
    for schema, table, columns in tables:
        names = {c for c, _ in columns}
        if "customer_id" not in names:
            continue
        for key in ("alert_id", "case_id"):
            if key in names:
                for customer_id, value in con.execute(
                        f"select customer_id, {key} from {_quote(schema)}.{_quote(table)} "
                        f"where customer_id in ({marks}) and {key} is not null", params).fetchall():
                    out[customer_id].add(str(value))
    if any(s == "ops" and t == "alert_state" for s, t, _ in tables):
        dates = [r[0] for r in con.execute("select distinct alert_date from ops.alert_state "
                                           "where alert_date is not null").fetchall()]
        rules = _alert_rules(settings)
        for customer_id in ids:
            for day in dates:
                for rule in rules:
                    out[customer_id].add(hashlib.md5(f"{customer_id}|{rule}|{day.isoformat()}".encode()).hexdigest())
    return out


def _warehouse_terms(con: Any, tables: list, ids: set[str]) -> dict[str, set[str]]:
    texts: dict[str, set[str]] = defaultdict(set)
    params = sorted(ids)
    marks = ", ".join("?" * len(params))
    for schema, table, columns in tables:
        names = {c for c, _ in columns}
        if "customer_id" not in names:
            continue
        for column in ("customer_name", "name", "note", "comment"):
            if column in names:
                for customer_id, value in con.execute(
                        f"select distinct customer_id, {_quote(column)} from {_quote(schema)}.{_quote(table)} "
                        f"where customer_id in ({marks})", params).fetchall():
                    if isinstance(value, str) and len(value.strip()) >= MIN_TERM_CHARS:
                        texts[customer_id].add(value)
    return texts


def _compact(settings: Settings) -> None:
    """Replace the warehouse file by a copy that holds live data only (deleted rows survive DELETE
    and CHECKPOINT in the file's free blocks). Atomic: a temporary file, fsynced, renamed."""

    path = settings.warehouse
    tmp = path.with_name(f".{path.name}.erasure-{uuid.uuid4().hex[:8]}.tmp")
    # dbt's views may name the catalog: attach the original under its own name
    catalog = path.stem if path.stem not in {"memory", "system", "temp", "main"} else "erasure_source"
    con = duckdb.connect()
    try:
        con.execute(f"attach {_literal(str(path))} as {_quote(catalog)} (read_only)")
        con.execute(f"attach {_literal(str(tmp))} as erasure_compact")
        con.execute(f"copy from database {_quote(catalog)} to erasure_compact")
        con.execute("detach erasure_compact")
        con.execute(f"detach {_quote(catalog)}")
    except Exception:
        con.close()
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)
        raise
    con.close()
    wal = tmp.with_name(tmp.name + ".wal")
    if wal.exists():  # a detach checkpoints; a WAL left over would be lost by the rename
        raise ErasureError(f"compacting the warehouse left a WAL file {wal}")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, os.stat(path).st_mode & 0o777)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _erase_warehouse(settings: Settings, targets: dict[str, Subject],
                     terms: dict[str, set[str]]) -> dict[str, set[str]]:
    """Delete the targets' rows from every table with a customer_id, their alert states, and
    redact their terms in text columns of the other tables; then compact the file. Returns the
    targets' alert ids (for the outbox). Adds the names and texts the warehouse holds to ``terms``."""

    path = settings.warehouse
    pending = register_dir(settings) / COMPACT_PENDING
    if not path.exists():
        return {}

    warehouse.release_duckdb()  # dbt-duckdb keeps the file open after an in-process run
    ids = set(targets)
    _private_dir(register_dir(settings))
    pending.touch()
    con = marts.connect_duckdb(settings, read_only=False)
    try:
        tables = _tables(con)
        found_terms = _warehouse_terms(con, tables, ids)
        for customer_id, values in found_terms.items():
            terms[customer_id].update(values)
        alert_ids = _alert_ids(con, tables, ids, settings)
        con.execute("begin")
        for schema, table, columns in tables:
            names = {c for c, _ in columns}
            relation = f"{_quote(schema)}.{_quote(table)}"
            if "customer_id" in names:
                for customer_id in ids:
                    deleted = con.execute(f"delete from {relation} where customer_id = ?",
                                          [customer_id]).fetchone()[0]
                    if deleted:
                        targets[customer_id].removed["warehouse_rows"] += deleted
                        targets[customer_id].removed.setdefault("warehouse_tables", [])
                        targets[customer_id].removed["warehouse_tables"].append(f"{schema}.{table}")
            elif "alert_id" in names and (schema, table) == ("ops", "alert_state"):
                for customer_id in ids:
                    mine = sorted(alert_ids.get(customer_id, ()))
                    if mine:
                        deleted = con.execute(
                            f"delete from {relation} where alert_id in ({', '.join('?' * len(mine))})",
                            mine).fetchone()[0]
                        targets[customer_id].removed["alert_states"] += deleted
            if "customer_id" not in names:
                # Tables without a customer key (run records, errors, ...): the customer's id, name
                # and own texts must not survive in their text columns either.
                texts = [c for c, kind in columns if kind.upper().startswith("VARCHAR")]
                for customer_id in ids:
                    for term in _terms_of(customer_id, terms) if texts else ():
                        for column in texts:
                            changed = con.execute(
                                f"update {relation} set {_quote(column)} = replace({_quote(column)}, ?, ?) "
                                f"where contains({_quote(column)}, ?)", [term, ERASED, term]).fetchone()[0]
                            if changed:
                                targets[customer_id].removed["warehouse_values_redacted"] += changed
        con.execute("commit")
        con.execute("checkpoint")
    except Exception:
        try:
            con.execute("rollback")
        except Exception:  # noqa: BLE001 - nothing to roll back
            pass
        raise
    finally:
        con.close()
    _compact(settings)
    pending.unlink(missing_ok=True)
    if any(s.recreated for s in targets.values()):
        # The re-created customer's newer rows were deleted with the old ones: the next build is
        # a full refresh (as after a change of scoring.yml), which rebuilds exactly the newer ones.
        warehouse._scoring_state_file(settings).unlink(missing_ok=True)
    return alert_ids


def _erase_postgres(settings: Settings, targets: dict[str, Subject]) -> dict[str, set[str]]:
    """The PostgreSQL warehouse: delete the targets' rows from every table with a customer_id (the
    loaded landing tables included) and their alert states, in one transaction, then VACUUM FULL
    the touched tables so the deleted tuples do not stay in their files. Returns their alert ids."""

    ids = sorted(targets)
    con = pg_connect(settings, autocommit=False)
    try:
        with con.cursor() as cursor:
            cursor.execute(
                "select table_schema, table_name, array_agg(column_name::text) from information_schema.columns "
                "where table_schema not in ('pg_catalog', 'information_schema') "
                "and (table_schema, table_name) in (select table_schema, table_name from information_schema.tables "
                "where table_type = 'BASE TABLE') group by 1, 2 order by 1, 2")
            tables = [(schema, table, set(columns)) for schema, table, columns in cursor.fetchall()]
            alert_ids: dict[str, set[str]] = defaultdict(set)
            for schema, table, names in tables:
                if "customer_id" in names:
                    for key in ("alert_id", "case_id"):
                        if key in names:
                            cursor.execute(f"select customer_id, {key}::text from {_quote(schema)}.{_quote(table)} "
                                           f"where customer_id = any(%s) and {key} is not null", [ids])
                            for customer_id, value in cursor.fetchall():
                                alert_ids[customer_id].add(value)
            touched = []
            for schema, table, names in tables:
                relation = f"{_quote(schema)}.{_quote(table)}"
                if "customer_id" in names:
                    for customer_id in ids:
                        cursor.execute(f"delete from {relation} where customer_id = %s", [customer_id])
                        if cursor.rowcount:
                            targets[customer_id].removed["warehouse_rows"] += cursor.rowcount
                            targets[customer_id].removed.setdefault("warehouse_tables", []).append(
                                f"postgres:{schema}.{table}")
                            touched.append(relation)
                elif (schema, table) == ("ops", "alert_state") and "alert_id" in names:
                    for customer_id in ids:
                        mine = sorted(alert_ids.get(customer_id, ()))
                        if mine:
                            cursor.execute(f"delete from {relation} where alert_id = any(%s)", [mine])
                            targets[customer_id].removed["alert_states"] += cursor.rowcount
                            touched.append(relation)
        con.commit()
        con.autocommit = True  # VACUUM cannot run inside a transaction
        with con.cursor() as cursor:
            for relation in sorted(set(touched)):
                cursor.execute(f"vacuum full {relation}")
    except Exception:
        con.rollback()
        raise
    finally:
        con.close()
    return alert_ids


def _erase_spark(settings: Settings, targets: dict[str, Subject]) -> dict[str, set[str]]:
    """The Spark warehouse: every table of build, published and ops with a customer_id loses the
    targets' rows, and ops.alert_state their alert states. A delete on Spark's Parquet tables
    rewrites the table without the rows (loyalty_core.marts.SparkMarts) and drops the old files,
    so nothing of the customer stays on disk. Spark has no transactions: a crash part-way leaves
    some tables erased; running the erasure again finishes it. Returns their alert ids."""

    ids = sorted(targets)
    placeholders = ", ".join("?" * len(ids))
    with open_marts(settings, read_only=False) as con:
        rows = con.execute("select table_schema, table_name, column_name from information_schema.columns "
                           "order by table_schema, table_name").fetchall()
        tables: dict[tuple[str, str], set[str]] = defaultdict(set)
        for schema, table, column in rows:
            tables[(schema, table)].add(column)
        alert_ids: dict[str, set[str]] = defaultdict(set)
        for (schema, table), names in tables.items():
            if "customer_id" in names:
                for key in ("alert_id", "case_id"):
                    if key in names:
                        for customer_id, value in con.execute(
                                f"select customer_id, cast({key} as string) from {schema}.{table} "
                                f"where customer_id in ({placeholders}) and {key} is not null", ids).fetchall():
                            alert_ids[customer_id].add(value)
        for (schema, table), names in tables.items():
            relation = f"{schema}.{table}"
            if "customer_id" in names:
                counts = dict(con.execute(f"select customer_id, count(*) from {relation} "
                                          f"where customer_id in ({placeholders}) group by customer_id", ids).fetchall())
                if counts:
                    con.execute(f"delete from {relation} where customer_id in ({placeholders})", ids)
                    for customer_id, count in counts.items():
                        targets[customer_id].removed["warehouse_rows"] += int(count)
                        targets[customer_id].removed.setdefault("warehouse_tables", []).append(f"spark:{relation}")
            elif (schema, table) == ("ops", "alert_state") and "alert_id" in names:
                for customer_id in ids:
                    mine = sorted(alert_ids.get(customer_id, ()))
                    if mine:
                        marks = ", ".join("?" * len(mine))
                        count = con.execute(f"select count(*) from {relation} where alert_id in ({marks})",
                                            mine).fetchone()[0]
                        con.execute(f"delete from {relation} where alert_id in ({marks})", mine)
                        targets[customer_id].removed["alert_states"] += int(count)
    return alert_ids


def _compact_if_pending(settings: Settings) -> bool:
    """A previous erasure deleted rows but died before rewriting the file: finish that first."""
    pending = register_dir(settings) / COMPACT_PENDING
    if pending.exists() and settings.warehouse.exists():

        warehouse.release_duckdb()
        _compact(settings)
        pending.unlink(missing_ok=True)
        return True
    return False


# --- the alert outbox and every other file --------------------------------------------------------

def _outbox(settings: Settings) -> Path:
    return Path(settings.data_dir) / "alerts" / "outbox"


def _erase_outbox(settings: Settings, targets: dict[str, Subject], alert_ids: dict[str, set[str]]) -> None:
    """Delete every outbox message (all its files) that is about an erased customer."""
    outbox = _outbox(settings)
    if not outbox.is_dir():
        return
    by_alert = {alert: cid for cid, alerts in alert_ids.items() for alert in alerts}
    for path in sorted(outbox.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        owners = set()
        for alert in record.get("alerts") or []:
            if isinstance(alert, dict):
                if alert.get("customer_id") in targets:
                    owners.add(alert["customer_id"])
                elif alert.get("alert_id") in by_alert:
                    owners.add(by_alert[alert["alert_id"]])
        key = record.get("idempotency_key")
        if key in by_alert:
            owners.add(by_alert[key])
        if not owners:
            continue
        base = path.name[: -len(".json")]
        for sibling in outbox.glob(glob_escape(base) + ".*"):
            if sibling.name[len(base):] in (".json", ".eml", ".html") or sibling.name.endswith(".tmp"):
                sibling.unlink(missing_ok=True)
                for owner in owners:
                    targets[owner].removed["outbox_files"] += 1


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _terms_of(customer_id: str, terms: dict[str, set[str]]) -> list[str]:
    """The customer's id, name(s) and own free texts, longest first (a name inside a note is
    replaced as part of the note)."""
    values = {customer_id, *terms.get(customer_id, ())}
    return sorted((v for v in values if v), key=lambda v: (-len(v), v))


def _forms(term: str) -> list[str]:
    """How a text may be written into a file: as is, JSON-escaped (both ASCII modes), HTML-escaped."""
    forms = {term, json.dumps(term)[1:-1], json.dumps(term, ensure_ascii=False)[1:-1],
             html.escape(term), html.escape(term, quote=False)}
    return sorted((f for f in forms if f), key=lambda f: (-len(f), f))


def _pattern(terms: list[str], ids: set[str]) -> re.Pattern[str] | None:
    forms = sorted({(f, t in ids) for t in terms for f in _forms(t)}, key=lambda f: (-len(f[0]), f))
    if not forms:
        return None
    # An id is a whole token (C0001 must not match inside C00012); names and texts match anywhere.
    return re.compile("|".join(rf"(?<![\w-]){re.escape(f)}(?![\w])" if is_id else re.escape(f)
                               for f, is_id in forms))


def _is_sqlite(head: bytes) -> bool:
    return head.startswith(b"SQLite format 3\x00")


def _is_duckdb(head: bytes) -> bool:
    return head[8:12] == b"DUCK"


def _scrub_sqlite(path: Path, terms: list[str]) -> int:
    """Redact the terms in every text value of a SQLite database (Airflow's metadata: XComs,
    rendered fields, logs), then VACUUM so no freed page keeps them."""
    changed = 0
    con = sqlite3.connect(path, timeout=30)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type = 'table' "
                                            "and name not like 'sqlite_%'")]
        for table in tables:
            columns = [r[1] for r in con.execute(f"pragma table_info({_quote(table)})")]
            for column in columns:
                for term in terms:
                    for form in _forms(term):
                        cursor = con.execute(
                            f"update {_quote(table)} set {_quote(column)} = replace({_quote(column)}, ?, ?) "
                            f"where typeof({_quote(column)}) = 'text' and instr({_quote(column)}, ?) > 0",
                            [form, ERASED, form])
                        changed += cursor.rowcount
                        cursor = con.execute(
                            f"update {_quote(table)} set {_quote(column)} = "
                            f"cast(replace(cast({_quote(column)} as text), ?, ?) as blob) "
                            f"where typeof({_quote(column)}) = 'blob' and instr({_quote(column)}, cast(? as blob)) > 0",
                            [form, ERASED, form])
                        changed += cursor.rowcount
        con.commit()
        con.execute("vacuum")
    finally:
        con.close()
    return changed


def _rewrite_parquet(path: Path, targets: dict[str, Subject], pattern: re.Pattern[str]) -> None:
    """A Parquet file outside the landing zone (e.g. the quality gate's quarantine): the targets'
    rows go, and their terms are redacted in the text cells of the rows that stay."""

    table = pq.read_table(path)
    dropped: dict[str, int] = defaultdict(int)
    if "customer_id" in table.column_names:
        ids = table.column("customer_id").to_pylist()
        mask = [c in targets for c in ids]
        for customer_id, gone in zip(ids, mask):
            if gone:
                dropped[customer_id] += 1
        if any(mask):
            table = table.filter(pa.array([not m for m in mask]))
    redacted = False
    columns = []
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values = column.to_pylist()
            new = [pattern.sub(ERASED, v) if isinstance(v, str) else v for v in values]
            if new != values:
                redacted = True
                column = pa.chunked_array([pa.array(new, type=column.type)])
        columns.append(column)
    if not dropped and not redacted:
        return
    table = pa.Table.from_arrays(columns, schema=table.schema)
    mode = os.stat(path).st_mode & 0o777
    tmp = path.with_name(f".{path.name}.erasure-{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as fh:
        pq.write_table(table, fh, compression="zstd")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    for customer_id, rows in dropped.items():
        targets[customer_id].removed["other_parquet_rows"] += rows
    for customer_id in targets if redacted else ():
        targets[customer_id].removed["files_scrubbed"] += 1


def _rewrite_in_place(path: Path, text: str) -> None:
    with open(path, "r+b") as fh:
        fh.write(text.encode("utf-8"))
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())


def _write_text_atomically(path: Path, text: str) -> None:
    mode = os.stat(path).st_mode & 0o777
    tmp = path.with_name(f".{path.name}.erasure-{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _scrub_files(settings: Settings, roots: list[Path], skip: set[Path], targets: dict[str, Subject],
                 terms: dict[str, set[str]], notes: list[str], landing_root: Path | None) -> None:
    """Every other file under the data directory: JSON Lines records mentioning a target are
    dropped, text has the targets' terms replaced, SQLite databases are redacted and vacuumed."""
    per_customer = {cid: _terms_of(cid, terms) for cid in targets}
    everything = sorted({t for values in per_customer.values() for t in values}, key=lambda v: (-len(v), v))
    pattern = _pattern(everything, set(targets))
    if pattern is None:
        return
    raw_forms = sorted({f.encode("utf-8") for t in everything for f in _forms(t)}, key=len, reverse=True)

    def owners(text: str) -> set[str]:
        return {cid for cid, values in per_customer.items() if any(f in text for v in values for f in _forms(v))}

    seen: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file() or path.is_symlink() or path in seen:
                continue
            seen.add(path)
            resolved = path.resolve()
            if any(resolved == s or s in resolved.parents for s in skip):
                continue
            in_landing = landing_root is not None and resolved.is_relative_to(landing_root)
            if path.name.endswith(".lock") or (in_landing and path.name.endswith(".tmp")):
                continue  # locks hold a pid; a landing temp file is a batch being written right now
            if path.suffix == ".parquet":
                if not in_landing:
                    _rewrite_parquet(path, targets, pattern)  # e.g. the quality gate's quarantine
                continue
            try:
                size = path.stat().st_size
                with path.open("rb") as fh:
                    head = fh.read(16)
            except OSError:
                continue
            if _is_duckdb(head):
                notes.append(f"another DuckDB database was not searched: {path}")
                continue  # the warehouse itself is erased table by table
            if size > MAX_TEXT_BYTES:
                notes.append(f"not scanned (larger than {MAX_TEXT_BYTES} bytes): {path}")
                continue
            data = path.read_bytes()
            if not any(f in data for f in raw_forms):
                continue
            if _is_sqlite(head):
                who = owners(data.decode("utf-8", "replace"))
                try:
                    _scrub_sqlite(path, everything)
                except sqlite3.Error as exc:
                    notes.append(f"could not redact the SQLite database {path}: {exc}; run the erasure again")
                    log.warning("erasure: could not redact %s: %s", path, exc)
                    continue
                for cid in who:
                    targets[cid].removed["files_scrubbed"] += 1
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                notes.append(f"a binary file mentions an erased customer and was left as is: {path}")
                log.warning("erasure: binary file %s mentions an erased customer; not rewritten", path)
                continue
            who = owners(text)
            if path.suffix in JSON_LINES_SUFFIXES:
                lines = text.splitlines(keepends=True)
                kept = [line for line in lines if not pattern.search(line)]
                for cid in who:
                    targets[cid].removed["json_lines_dropped"] += len(lines) - len(kept)
                new_text = "".join(kept)
            else:
                new_text = pattern.sub(ERASED, text)
            if new_text != text:
                if path.suffix in APPENDED_SUFFIXES:
                    _rewrite_in_place(path, new_text)  # a running process may still append to it
                else:
                    _write_text_atomically(path, new_text)
                for cid in who:
                    targets[cid].removed["files_scrubbed"] += 1


# --- the whole erasure ----------------------------------------------------------------------------

def _lock(settings: Settings):
    """Hold the quality gate's lock: its results and Data Docs are rewritten too."""

    return locks.exclusive(Path(settings.data_dir) / "quality" / ".lock", "the quality gate",
                           settings.lock_timeout_s)


def _run(settings: Settings, targets: dict[str, Subject], ids_to_files: dict[str, set[str]],
         files: list[str], zone: Any, report: ErasureReport) -> None:
    now = _utcnow()
    # What the churn figures keep of them, read before anything is deleted (module doc).
    churn = _churn_records(settings, targets, zone, files, erased_subjects(settings))
    _append(settings, [{
        "event": "requested", "erasure_id": s.erasure_id, "subject": s.subject, "reason": s.reason,
        "requested_by": s.requested_by, "requested_at": now.isoformat(timespec="seconds"),
        "erased_through": s.erased_through.isoformat(), "source": s.source,
        **({"churn": churn[s.customer_id]} if s.customer_id in churn else {}),
    } for s in targets.values()])
    if churn:
        write_churn_counts(settings)

    ids = set(targets)
    terms = _landing_terms(zone, ids_to_files, ids)
    # a text that other customers' rows use as well is not this customer's (e.g. a template note)
    shared = _shared_texts(zone, files, {t for v in terms.values() for t in v}, ids)
    for customer_id in list(terms):
        terms[customer_id] -= shared
    alert_ids = _erase_warehouse(settings, targets, terms)
    if settings.dbt_target == "postgres":
        for customer_id, values in _erase_postgres(settings, targets).items():
            alert_ids.setdefault(customer_id, set()).update(values)
    elif settings.dbt_target == "spark":
        for customer_id, values in _erase_spark(settings, targets).items():
            alert_ids.setdefault(customer_id, set()).update(values)
    elif settings.dbt_target != "duckdb":
        # An engine this module cannot reach: say so in the record, loudly.
        note = (f"the {settings.dbt_target} warehouse was NOT erased: delete the customer's rows there "
                "and rewrite the tables")
        report.notes.append(note)
        log.warning("erasure: %s", note)
        for s in targets.values():
            s.removed["warehouse_engine_not_erased"] = settings.dbt_target
    _erase_outbox(settings, targets, alert_ids)
    data_dir = Path(settings.data_dir).resolve()
    roots = [data_dir]
    if zone.local and not Path(zone.root).resolve().is_relative_to(data_dir):
        roots.append(Path(zone.root))
    skip = {register_dir(settings).resolve(), settings.warehouse.resolve()}
    landing_root = Path(zone.root).resolve() if zone.local else None
    _scrub_files(settings, roots, skip, targets, terms, report.notes, landing_root)
    # Last: the landing zone, tombstones included. Until here a crash leaves the tombstone in
    # place and the next run erases again from the start.
    _rewrite_landing(zone, ids_to_files, targets)

    done = _utcnow()
    completed = []
    for s in targets.values():
        removed = dict(s.removed)
        if "warehouse_tables" in removed:
            removed["warehouse_tables"] = sorted(set(removed["warehouse_tables"]))
        removed["recreated_rows_kept"] = s.recreated
        completed.append({"event": "completed", "erasure_id": s.erasure_id, "subject": s.subject,
                          "completed_at": done.isoformat(timespec="seconds"), "removed": removed})
        report.erasures.append({"erasure_id": s.erasure_id, "subject": s.subject, "reason": s.reason,
                                "requested_by": s.requested_by, "removed": removed})
    _append(settings, completed)
    for entry in report.erasures:
        log.info("erasure %s of %s (%s) by %s: %s", entry["erasure_id"], entry["subject"][:24], entry["reason"],
                 entry["requested_by"], json.dumps(entry["removed"], sort_keys=True))


def apply_erasures(settings: Settings, requested_by: str = "loyalty_pipeline") -> ErasureReport:
    """The pipeline step: erase every customer with a tombstone in the landing zone, and erase again
    whatever of an already erased customer has landed since (a replay, a late event).

    Idempotent: a run with nothing to erase reads the landing zone's customer ids and stops.
    """
    report = ErasureReport()
    with _lock(settings):
        if _compact_if_pending(settings):
            report.notes.append("finished compacting the warehouse after an interrupted erasure")
        zone = _zone(settings)
        files = _parquet_files(zone)
        ids_to_files = _landed_ids(zone, files)
        key = subject_key(settings)
        register = erased_subjects(settings)
        tombstones = _tombstones(zone, files)
        targets: dict[str, Subject] = {}
        for customer_id, tomb in tombstones.items():
            subject = pseudonym(key, customer_id)
            known = register.get(subject)
            through = max(tomb["at"], known) if known else tomb["at"]
            replayed = known is not None and tomb["at"] <= known
            targets[customer_id] = Subject(
                customer_id, subject, through, requested_by, "re-landed" if replayed else "tombstone",
                source={"kind": "tombstone", "topic": tomb["topic"], "partition": tomb["partition"],
                        "offset": tomb["offset"], "sent_at": tomb["at"].isoformat()})
        for customer_id in ids_to_files:
            if customer_id in targets:
                continue
            subject = pseudonym(key, customer_id)
            if subject in register:
                targets[customer_id] = Subject(customer_id, subject, register[subject], requested_by,
                                            "re-landed", source={"kind": "re-landed"})
        for customer_id, target in list(targets.items()):
            target.recreated = _recreated_after(zone, ids_to_files.get(customer_id, ()), customer_id,
                                             target.erased_through)
            if target.reason == "re-landed" and target.recreated:
                # only the new incarnation's rows may be left: anything sent before the erasure goes
                probe = {customer_id: target}
                if not any(any(_erase_mask(zone, p, _read(zone, p), probe))
                           for p in ids_to_files.get(customer_id, ())):
                    del targets[customer_id]
        if targets:
            _run(settings, targets, ids_to_files, files, zone, report)
    return report


def erase_customers(settings: Settings, customer_ids: Iterable[str], requested_by: str,
                    erased_through: dt.datetime | None = None) -> ErasureReport:
    """Erase these customers now, on request (``loyalty erase``): everything landed or built about
    them up to ``erased_through`` (default now). A later master-data record re-creates the customer."""
    if not requested_by or not requested_by.strip():
        raise ValueError("say who requested the erasure (--by): it is recorded")
    ids = [c for c in dict.fromkeys(str(c) for c in customer_ids) if c]
    if not ids:
        raise ValueError("no customer id given")
    report = ErasureReport()
    through = _aware(erased_through) or _utcnow()
    with _lock(settings):
        _compact_if_pending(settings)
        zone = _zone(settings)
        files = _parquet_files(zone)
        ids_to_files = _landed_ids(zone, files)
        key = subject_key(settings)
        register = erased_subjects(settings)
        targets = {}
        for customer_id in ids:
            subject = pseudonym(key, customer_id)
            known = register.get(subject)
            targets[customer_id] = Subject(customer_id, subject, max(through, known) if known else through,
                                           requested_by.strip(), "request", source={"kind": "request"})
        for customer_id, target in targets.items():
            target.recreated = _recreated_after(zone, ids_to_files.get(customer_id, ()), customer_id,
                                             target.erased_through)
        _run(settings, targets, ids_to_files, files, zone, report)
    return report


def is_erased(settings: Settings, customer_id: str) -> bool:
    """Was this customer erased (by a tombstone or on request)?"""
    return pseudonym(subject_key(settings), customer_id) in erased_subjects(settings)
