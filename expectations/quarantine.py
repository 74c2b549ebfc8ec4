"""The quarantine: landed rows that failed a row-level critical expectation, set aside so that the
rest of the day is built, published and alerted (docs/quality.md "Quarantine").

One Parquet file, ``<data_dir>/quality/quarantine.parquet``, one row per landed row, keyed by its
dataset, Kafka lineage (``kafka_topic``, ``kafka_partition``, ``kafka_offset``: a landed row is one
Kafka message, whichever file holds it) and record id (``event_id`` / ``customer_id``: offline
loads number every file's lines from offset 0, so lineage alone is not unique). It says why (``expectation``, ``reason``,
``failures_json``), what the row was (``original_json``: every landed column), where it is
(``source_file``) and what became of it (``status``):

- ``quarantined``: set aside by the landing gate; dbt staging leaves it out;
- ``released``: re-validated after a fix (master data landed, a suite or contract corrected) and
  passed: staging takes it in on the next run;
- ``accepted``: taken in as it is by an operator who said why;
- ``superseded``: a corrected re-send of the same event id was taken in instead; stays out.

``released_at``, ``released_by`` and ``release_reason`` record who let a row in, when and why.
A Parquet file rather than a warehouse table for the reason the gate's run log is one: the landing
gate runs before any warehouse exists, and DuckDB allows one writer (dbt). Writers hold the quality
gate's lock and replace the file atomically; dbt reads it through ``LOYALTY_QUARANTINE``
(``dbt_project/macros/quarantine.sql``). Nothing here imports Great Expectations.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import uuid
from datetime import date, datetime, timezone
from typing import Any, Iterable

import duckdb
import pandas as pd

from expectations.landing_reader import LandingReader
from loyalty_core.landing_zone import quarantine_path
from loyalty_core.settings import Settings

UTC = timezone.utc
STATUSES = ("quarantined", "released", "accepted", "superseded")
#: Statuses whose rows are in the warehouse; every other row is held out of it.
ADMITTED = ("released", "accepted")
ROW_KEY = ("kafka_topic", "kafka_partition", "kafka_offset")
#: The record id of each dataset, part of a landed row's key (``row_id``).
ID_COLUMN = {"touchpoint": "event_id", "customer": "customer_id", "case_event": "event_id"}
KEY = ("dataset",) + ROW_KEY + ("row_id",)
ROW_ID_SQL = "CASE dataset WHEN 'customer' THEN customer_id ELSE event_id END"
SCHEMA = """
    quarantine_id BIGINT, dataset VARCHAR, kafka_topic VARCHAR, kafka_partition INTEGER,
    kafka_offset BIGINT, source_file VARCHAR, event_id VARCHAR, customer_id VARCHAR,
    event_date DATE, landed_at TIMESTAMPTZ, expectation VARCHAR, reason VARCHAR,
    failures_json VARCHAR, original_json VARCHAR, quarantined_at TIMESTAMPTZ, gate_run_id VARCHAR,
    status VARCHAR, released_at TIMESTAMPTZ, released_by VARCHAR, release_reason VARCHAR"""
COLUMNS = tuple(part.split()[0] for part in SCHEMA.split(","))


def operator() -> str:
    """Who runs this process (recorded with a release or an acceptance)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


# --- the file ------------------------------------------------------------------------------------

def _session(settings: Settings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with temp table ``quarantine`` loaded from the file (if any)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TEMP TABLE quarantine ({SCHEMA})")
    path = quarantine_path(settings)
    if path.exists():
        con.execute("INSERT INTO quarantine BY NAME SELECT * FROM read_parquet(?)", [str(path)])
    return con


def _save(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    path = quarantine_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".quarantine-{uuid.uuid4().hex}.parquet")
    try:
        con.execute(f"COPY (SELECT * FROM quarantine ORDER BY quarantine_id) TO '{tmp}' (FORMAT parquet)")
        os.replace(tmp, path)  # dbt reads either the old file or the new one, never half of one
    finally:
        tmp.unlink(missing_ok=True)


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    return con.sql(sql, params=params or None).to_arrow_table().to_pandas()


def table(settings: Settings) -> pd.DataFrame:
    """Every quarantine row, oldest first (empty before the first one)."""
    con = _session(settings)
    try:
        return _frame(con, "SELECT * FROM quarantine ORDER BY quarantine_id")
    finally:
        con.close()


def _keys_sql(where: str) -> str:
    return (f"SELECT dataset, {', '.join(ROW_KEY)}, {ROW_ID_SQL} AS row_id FROM quarantine WHERE {where}")


_HELD = f"status NOT IN ({', '.join(repr(s) for s in ADMITTED)})"


def held_keys(settings: Settings) -> pd.DataFrame:
    """The key (``KEY``) of every row held out of the warehouse (status not admitted)."""
    if not quarantine_path(settings).exists():
        return pd.DataFrame(columns=list(KEY))
    con = _session(settings)
    try:
        return _frame(con, _keys_sql(_HELD))
    finally:
        con.close()


def key_of(record: dict[str, Any]) -> tuple:
    """The key of a quarantine row or a failing row (a dict with the dataset, lineage and ids)."""
    dataset = record["dataset"]
    return (dataset, *(_plain(record[c]) for c in ROW_KEY), _plain(record[ID_COLUMN[dataset]]))


def keys_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """``KEY`` columns of quarantine rows (or failing rows)."""
    return pd.DataFrame([key_of(r) for r in rows.to_dict("records")], columns=list(KEY))


def _plain(value: Any) -> Any:
    """A JSON- and comparison-friendly Python value (numpy scalars, NaN, timestamps)."""
    if value is None or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def listing(settings: Settings, status: str | None = "quarantined",
            ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Quarantine rows as plain dicts (``original`` and ``failures`` parsed), oldest first;
    ``status=None``: every status."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
    rows = table(settings)
    if status is not None:
        rows = rows[rows["status"] == status]
    if ids is not None:
        rows = rows[rows["quarantine_id"].isin(list(ids))]
    out = []
    for record in rows.to_dict("records"):
        item = {k: _plain(v) for k, v in record.items()
                if k not in ("original_json", "failures_json")}
        item["original"] = json.loads(record["original_json"]) if record["original_json"] else None
        item["failures"] = json.loads(record["failures_json"]) if record["failures_json"] else []
        out.append(item)
    return out


# --- which rows failed ---------------------------------------------------------------------------

def failing_rows(frame: Any, finding: Any, entries: list[dict[str, Any]],
                 locators: Iterable[str] = ()) -> pd.DataFrame | None:
    """The landed rows behind the failing GX rows ``entries`` of one failed expectation.

    ``entries`` are GX's unexpected-index rows (index columns + the values that failed);
    ``frame.match`` says which of their columns identify rows of ``frame.rows``. None when
    the failure cannot be traced to landed rows (then it can only stop the run)."""
    if frame.rows is None or not frame.match or not entries:
        return None
    found: dict[tuple, dict[str, Any]] = {}
    skip = set(locators)  # where the row is, not what failed
    for entry in entries:
        key = tuple(_plain(entry.get(column)) for column in frame.match)
        values = {k: _plain(v) for k, v in entry.items() if k not in skip}
        found.setdefault(key, values)
    rows = frame.rows
    keys = list(zip(*(map(_plain, rows[column].tolist()) for column in frame.match.values())))
    mask = [key in found for key in keys]
    if not any(mask):
        return None
    picked = rows.loc[mask, ["kafka_topic", "kafka_partition", "kafka_offset", "source_file",
                             "event_id", "customer_id", "event_date", "landed_at"]].copy()
    values = [found[key] for key, hit in zip(keys, mask) if hit]
    where = f"{finding.suite}.{finding.expectation}" + (f" on {finding.column}" if finding.column else "")
    picked["dataset"] = frame.dataset
    picked["row_id"] = picked[ID_COLUMN[frame.dataset]]
    picked["expectation"] = where
    picked["reason"] = [
        finding.why + (f" ({', '.join(f'{k} = {_shown(v)}' for k, v in value.items())})" if value else "")
        for value in values]
    picked["failure"] = [json.dumps({"suite": finding.suite, "expectation": finding.expectation,
                                     "column": finding.column, "why": finding.why,
                                     "values": value, "batch": finding.batch}, default=str)
                         for value in values]
    return picked.reset_index(drop=True)


def _shown(value: Any) -> str:
    return "null" if value is None else str(value)


# --- writing -------------------------------------------------------------------------------------

def _originals(zone: Any, rows: pd.DataFrame) -> dict[tuple, str]:
    """Every landed column of the given rows as JSON, read again from their landing files."""

    out: dict[tuple, str] = {}
    reader = LandingReader(zone)
    try:
        for dataset, group in rows.groupby("dataset"):
            files = sorted(set(group["source_file"].dropna()))
            if not files:
                continue
            keys = group[list(ROW_KEY) + ["row_id"]].drop_duplicates()
            reader.con.register("_wanted", keys)
            listing_sql = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            found = reader.df(f"""
                SELECT w.kafka_topic, w.kafka_partition, w.kafka_offset, w.row_id,
                       any_value(to_json(t)) AS original
                FROM read_parquet([{listing_sql}], union_by_name = true, hive_partitioning = false) AS t
                JOIN _wanted w ON w.kafka_topic IS NOT DISTINCT FROM t.kafka_topic
                             AND w.kafka_partition = t.kafka_partition AND w.kafka_offset = t.kafka_offset
                             AND w.row_id IS NOT DISTINCT FROM t.{ID_COLUMN[dataset]}
                GROUP BY ALL""")
            reader.con.unregister("_wanted")
            for record in found.itertuples(index=False):
                out[(dataset, _plain(record.kafka_topic), _plain(record.kafka_partition),
                     _plain(record.kafka_offset), _plain(record.row_id))] = record.original
    finally:
        reader.close()
    return out


def record(settings: Settings, zone: Any, failures: list[pd.DataFrame], run_id: str,
           now: datetime | None = None) -> list[int]:
    """Set the failing rows aside: one quarantine row per landed row (all its failures in it).
    A row already in the quarantine keeps its record and status (a re-validation, a replayed
    file). Returns the ids of the rows set aside now. Call under the quality gate's lock."""
    failures = [f for f in failures if f is not None and len(f)]
    if not failures:
        return []
    now = now or datetime.now(UTC)
    rows = pd.concat(failures, ignore_index=True)
    for column in ROW_KEY + ("row_id",):
        rows[column] = rows[column].map(_plain)
    grouped = []
    for key, group in rows.groupby(list(KEY), dropna=False, sort=True):
        first = group.iloc[0]
        grouped.append({
            "dataset": key[0], "kafka_topic": key[1], "kafka_partition": key[2], "kafka_offset": key[3],
            "row_id": key[4], "source_file": first["source_file"], "event_id": first["event_id"],
            "customer_id": first["customer_id"], "event_date": _day(first["event_date"]),
            "landed_at": first["landed_at"],
            "expectation": "; ".join(dict.fromkeys(group["expectation"])),
            "reason": "; ".join(dict.fromkeys(group["reason"])),
            "failures_json": "[" + ", ".join(dict.fromkeys(group["failure"])) + "]",
        })
    new = pd.DataFrame(grouped)
    originals = _originals(zone, new)
    new["original_json"] = [originals.get(tuple(_plain(r[c]) for c in KEY)) for r in new.to_dict("records")]
    con = _session(settings)
    try:
        con.register("_new", new)
        fresh = _frame(con, f"""
            SELECT n.* EXCLUDE (row_id) FROM _new n WHERE NOT EXISTS (
                SELECT 1 FROM ({_keys_sql('true')}) q WHERE q.dataset = n.dataset
                  AND q.kafka_topic IS NOT DISTINCT FROM n.kafka_topic
                  AND q.kafka_partition = n.kafka_partition AND q.kafka_offset = n.kafka_offset
                  AND q.row_id IS NOT DISTINCT FROM n.row_id)
            ORDER BY n.dataset, n.kafka_topic, n.kafka_partition, n.kafka_offset, n.row_id""")
        if not len(fresh):
            return []
        start = con.execute("SELECT coalesce(max(quarantine_id), 0) + 1 FROM quarantine").fetchall()[0][0]
        fresh.insert(0, "quarantine_id", range(start, start + len(fresh)))
        fresh["quarantined_at"] = now
        fresh["gate_run_id"] = run_id
        fresh["status"] = "quarantined"
        con.register("_fresh", fresh)
        con.execute("INSERT INTO quarantine BY NAME SELECT * FROM _fresh")
        _save(con, settings)
        return [int(i) for i in fresh["quarantine_id"]]
    finally:
        con.close()


def _day(value: Any) -> date | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def supersede(settings: Settings, zone: Any, files: list[str], now: datetime | None = None) -> list[int]:
    """Held touchpoints whose event id now reaches the warehouse from a row of ``files`` that is
    not held itself (a corrected re-send) are ``superseded``: listed as done, still left out.
    Returns their ids. Call under the quality gate's lock, after :func:`record`."""
    if not files or not quarantine_path(settings).exists():
        return []

    con = _session(settings)
    try:
        held = _frame(con, "SELECT quarantine_id, event_id FROM quarantine WHERE dataset = 'touchpoint' "
                           "AND status = 'quarantined' AND event_id IS NOT NULL")
        if not len(held):
            return []
        keys = _frame(con, _keys_sql(_HELD))
        reader = LandingReader(zone)
        try:
            reader.con.register("_ids", held[["event_id"]].drop_duplicates())
            reader.con.register("_held", keys)
            taken = set(reader.df(f"""
                SELECT DISTINCT t.event_id FROM {reader.parquet(files)} AS t
                WHERE t.event_id IN (SELECT event_id FROM _ids) AND NOT EXISTS (
                    SELECT 1 FROM _held h WHERE h.dataset = 'touchpoint'
                      AND h.kafka_topic IS NOT DISTINCT FROM t.kafka_topic
                      AND h.kafka_partition = t.kafka_partition AND h.kafka_offset = t.kafka_offset
                      AND h.row_id IS NOT DISTINCT FROM t.event_id)
                """)["event_id"])
        finally:
            reader.close()
        ids = [int(i) for i, e in zip(held["quarantine_id"], held["event_id"]) if e in taken]
        if ids:
            _set_status(con, ids, "superseded", now or datetime.now(UTC), "landing gate",
                        "a re-send of the same event id passed the gate and was taken in instead")
            _save(con, settings)
        return ids
    finally:
        con.close()


def _set_status(con: duckdb.DuckDBPyConnection, ids: list[int], status: str, now: datetime,
                by: str, reason: str) -> None:
    con.execute(f"""UPDATE quarantine SET status = ?, released_at = ?, released_by = ?, release_reason = ?
                    WHERE quarantine_id IN ({', '.join(str(int(i)) for i in ids)})""",
                [status, now, by, reason])


def decide(settings: Settings, ids: list[int], status: str, reason: str, by: str,
           now: datetime | None = None) -> list[int]:
    """Set ``status`` (released / accepted) on the given rows still ``quarantined``, recording who,
    why and when; returns the ids changed. Call under the quality gate's lock."""
    if status not in ADMITTED:
        raise ValueError(f"a decision lets rows in: {' or '.join(ADMITTED)}, not {status!r}")
    if not ids:
        return []
    con = _session(settings)
    try:
        wanted = ", ".join(str(int(i)) for i in ids)
        changed = [int(r[0]) for r in con.execute(
            f"SELECT quarantine_id FROM quarantine WHERE status = 'quarantined' AND quarantine_id IN ({wanted}) "
            "ORDER BY quarantine_id").fetchall()]
        if changed:
            _set_status(con, changed, status, now or datetime.now(UTC), by, reason)
            _save(con, settings)
        return changed
    finally:
        con.close()
