"""The tables the suites validate, and their run-time parameters.

Landing: the gate validates only NEW data (files landed since the last passing gate, or the
event dates asked for), but some checks need history, read with DuckDB straight from the Parquet
landing zone and only the columns they need:
- event-id conflicts: the batch's event ids are looked up (event_id column only) in every earlier
  file; only the files that hold one are read in full;
- the daily-volume band: the same weekday of the trailing weeks (only those date partitions);
- known customers: every customer id with a record in the landed master data (small).
Rows held in the quarantine (expectations.quarantine) are not history: they are not in the
warehouse, so they neither conflict with a corrected re-send nor make a customer known.
Marts: read from the warehouse (DuckDB file, or PostgreSQL/Spark through loyalty_core.marts),
schema ``build`` (before publish) or ``published``.
"""

from __future__ import annotations

import math
import posixpath
import re
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable, Iterator

import pandas as pd

from expectations.config import GateConfig
from expectations.landing_reader import LandingReader
from expectations.quarantine import ID_COLUMN, KEY
from expectations.suites import (
    landed_case_events,
    landed_customers,
    landed_touchpoints,
    mart_alerts,
    mart_customers,
    mart_health,
    touchpoint_daily_volume,
    touchpoint_event_ids,
)
from loyalty_core.contract import EVENT_TYPES
from loyalty_core.landing_zone import LandingZone
from loyalty_core.marts import DuckDBMarts, MartsError, connect_duckdb, engine_of, open_marts
from loyalty_core.settings import Settings

_PARTITION = re.compile(r"event_date=(\d{4}-\d{2}-\d{2})")
#: Content that makes a touchpoint what it is; Kafka lineage and landing time are not content,
#: and occurred_at counts as the instant (not the raw text), so a re-send is the same content.
TOUCHPOINT_CONTENT = ("schema_version", "event_type", "occurred_at", "customer_id", "department",
                      "direction", "employee_id", "contact_role", "note", "source", "payload_json",
                      "extra_json")
CUSTOMER_CONTENT = ("schema_version", "name", "segment", "country", "account_manager_id",
                    "account_manager_name", "account_manager_email", "annual_potential",
                    "currency", "updated_at", "extra_json")
#: Touchpoint columns the suite reads, plus lineage so a failure can be traced to its file (and
#: its row quarantined: kafka_topic, kafka_partition, kafka_offset identify a landed row).
TOUCHPOINT_COLUMNS = ("event_id", "schema_version", "event_type", "occurred_at", "event_date",
                      "customer_id", "department", "direction", "contact_role", "stage", "severity",
                      "duration_s", "amount", "amount_overdue", "days_overdue", "nps_score",
                      "currency", "kafka_topic", "kafka_partition", "kafka_offset", "landed_at")
#: Content that makes a case event what it is (lineage and landing time are not content).
CASE_EVENT_CONTENT = ("schema_version", "event_type", "occurred_at", "case_id", "customer_id", "actor",
                      "source", "payload_json", "extra_json")
CASE_EVENT_COLUMNS = ("event_id", "schema_version", "event_type", "occurred_at", "event_date", "case_id",
                      "customer_id", "actor", "snooze_until", "reason", "outcome", "verdict",
                      "kafka_topic", "kafka_partition", "kafka_offset", "landed_at")
# DuckDB temp tables of landed-row keys (expectations.quarantine.KEY): ``held_rows`` (rows in
# quarantine) and ``only_rows`` (re-validating quarantined rows).


@dataclass
class LandedFile:
    path: str
    modified: float  # seconds since the epoch
    event_date: date | None
    size: int = 0  # bytes


@dataclass
class Frame:
    """One table for one suite, with its parameters; ``label`` tells batches of a suite apart.

    Row-level suites also say which landed rows their failures are: ``rows`` (one row per landed
    row of the batch, with its Kafka lineage, ``source_file``, ``event_id``,
    ``customer_id``, ``event_date``, ``landed_at``) and ``match`` (a column of a failing GX row ->
    the column of ``rows`` it equals). A frame without ``rows`` fails as a whole, unless it is a
    table of checks (volume: a day and event type per row) that names each failing row through
    ``describe_row``.
    """

    suite: str
    data: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    dataset: str | None = None  # "touchpoint" | "customer" | "case_event" (loyalty_core.landing_zone.DATASETS keys)
    rows: pd.DataFrame | None = None
    match: dict[str, str] = field(default_factory=dict)
    #: A table of checks, one per row (volume: a day and event type): each failing row is its own
    #: finding, ``describe_row(row) -> (batch, column, observed)``.
    describe_row: Callable[[dict[str, Any]], tuple[str, str, str]] | None = None


# --- landing zone listing -------------------------------------------------------------------------

def _modified(info: dict[str, Any]) -> float:
    for key in ("mtime", "LastModified", "updated", "last_modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return float(value)
    return 0.0


def list_landed(zone: LandingZone, dataset: str) -> list[LandedFile]:
    """Every landed Parquet file of a dataset with its modification time and partition date."""
    base = zone.full(dataset)
    if not zone.fs.exists(base):
        return []
    found = zone.fs.find(base, detail=True)
    files = []
    for path, info in sorted(found.items()):
        name = posixpath.basename(path)
        if not name.endswith(".parquet") or name.startswith(".tmp-"):
            continue
        match = _PARTITION.search(path)
        files.append(LandedFile(path, _modified(info),
                                date.fromisoformat(match.group(1)) if match else None,
                                int(info.get("size") or 0)))
    return files


# --- DuckDB helpers ------------------------------------------------------------------------------

def _fingerprint(columns: tuple[str, ...]) -> str:
    return "hash(" + ", ".join(columns) + ")"


# --- landing frames ------------------------------------------------------------------------------

def volume_band(samples: list[int], cfg: GateConfig) -> tuple[int, int] | None:
    """[low, high] daily events of one type from same-weekday samples; None if too few samples."""
    if len(samples) < cfg.volume_min_history_days:
        return None
    median = statistics.median(samples)
    # Poisson slack, at least that of one event a day: a type that is usually absent may still
    # occur a few times without looking like a surge.
    slack = cfg.volume_poisson_sigmas * math.sqrt(max(median, 1.0))
    low = max(0, math.floor(median * cfg.volume_low_factor - slack))
    high = math.ceil(median * cfg.volume_high_factor + slack)
    return low, high


def chunks(files: list[LandedFile], max_bytes: int) -> list[list[LandedFile]]:
    """Consecutive groups of files of at most ``max_bytes`` of Parquet (at least one file each),
    so that a first run over a long history never loads it into memory at once."""
    groups: list[list[LandedFile]] = []
    size = 0
    for landed in files:
        if not groups or (size + landed.size > max_bytes and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(landed)
        size += landed.size
    return groups


def _key_table(reader: LandingReader, name: str, keys: pd.DataFrame | None) -> None:
    """Temp table ``name`` of landed-row keys (dataset, Kafka lineage, row_id)."""
    reader.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} (dataset VARCHAR, kafka_topic VARCHAR, "
                       "kafka_partition INTEGER, kafka_offset BIGINT, row_id VARCHAR)")
    if keys is not None and len(keys):
        table = keys[list(KEY)]
        reader.con.register("_keys", table)
        reader.con.execute(f"INSERT INTO {name} SELECT * FROM _keys")
        reader.con.unregister("_keys")


def _not_in(table: str, dataset: str, alias: str) -> str:
    """SQL condition: the row ``alias`` is not one of the landed rows in temp table ``table``."""
    return (f"NOT EXISTS (SELECT 1 FROM {table} k WHERE k.dataset = '{dataset}' "
            f"AND k.kafka_topic IS NOT DISTINCT FROM {alias}.kafka_topic "
            f"AND k.kafka_partition = {alias}.kafka_partition AND k.kafka_offset = {alias}.kafka_offset "
            f"AND k.row_id IS NOT DISTINCT FROM {alias}.{ID_COLUMN[dataset]})")


def _in(table: str, dataset: str, alias: str) -> str:
    return _not_in(table, dataset, alias).replace("NOT EXISTS", "EXISTS", 1)


def landing_frames(zone: LandingZone, cfg: GateConfig, touchpoint_files: list[LandedFile],
                   customer_files: list[LandedFile], all_touchpoints: list[LandedFile],
                   all_customers: list[LandedFile], volume_dates: list[date], now: datetime,
                   notes: list[str], *, held: pd.DataFrame | None = None,
                   only: pd.DataFrame | None = None, case_event_files: list[LandedFile] | None = None,
                   all_case_events: list[LandedFile] | None = None,
                   case_lookup: Callable[[list[str]], pd.DataFrame | None] | None = None) -> Iterator[Frame]:
    """The landing tables, one at a time (the caller validates each before the next is read).

    New files are validated; history (``all_*``) is read for event-id conflicts, the volume band and
    known customers. Notes for the data engineer (e.g. a band without history) go to ``notes``.
    ``held``: landed rows in quarantine (not history). ``only``: validate just these landed rows of
    the new files (re-validating quarantined rows before their release): every unknown customer
    then fails, whatever the tolerance, and the other rows of their files count as history.
    ``case_event_files`` / ``all_case_events``: the new and all landed case-event files;
    ``case_lookup(case_ids)``: the published cases among them (case_id, customer_id), or None
    when there is no warehouse to ask.
    """
    reader = LandingReader(zone)
    try:
        _key_table(reader, "held_rows", held)
        if only is not None:
            _key_table(reader, "only_rows", only)
        _known_customers(reader, all_customers)
        skew = timedelta(minutes=cfg.clock_skew_minutes)
        groups = chunks(touchpoint_files, cfg.chunk_mb * 1024 * 1024)
        for number, group in enumerate(groups, 1):
            label = f"files {number}/{len(groups)}" if len(groups) > 1 else ""
            yield from _touchpoint_frames(reader, cfg, group, all_touchpoints, now, skew, label,
                                          only=only is not None)
        if customer_files:
            yield _customer_frame(reader, customer_files, now, skew, only=only is not None)
        if case_event_files:
            yield _case_event_frame(reader, cfg, case_event_files, all_case_events or case_event_files, now,
                                    skew, case_lookup, notes, only=only is not None)
        if volume_dates:
            volume, volume_notes = _volume_frames(reader, cfg, volume_dates, all_touchpoints)
            notes += volume_notes
            yield from volume
    finally:
        reader.close()


def _known_customers(reader: LandingReader, files: list[LandedFile]) -> None:
    """Create temp table ``known_customers``: every id that ever had a master-data record.

    A customer deleted later (tombstone) stays known: its earlier touches were valid when they
    happened, and removing erased customers is staging's job, not a data defect.
    """
    if not files:
        reader.con.execute("CREATE OR REPLACE TEMP TABLE known_customers (customer_id VARCHAR)")
        return
    reader.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE known_customers AS
        SELECT DISTINCT customer_id FROM {reader.parquet([f.path for f in files])} AS c
        WHERE customer_id IS NOT NULL AND NOT coalesce(is_deleted, false)
          AND {_not_in('held_rows', 'customer', 'c')}""")


def _arrival(batch: pd.DataFrame, now: datetime) -> datetime:
    """When the batch arrived: nothing in it can have happened later (plus clock skew). Landing
    time, not the wall clock, so that re-validating old data (backfills) judges it fairly."""
    latest = batch["landed_at"].max() if "landed_at" in batch and len(batch) else None
    return latest.to_pydatetime() if latest is not None and not pd.isna(latest) else now


def _touchpoint_frames(reader: LandingReader, cfg: GateConfig, new: list[LandedFile],
                       every: list[LandedFile], now: datetime, skew: timedelta,
                       label: str, only: bool = False) -> list[Frame]:
    con = reader.con
    new_paths = [f.path for f in new]
    where = f"WHERE {_in('only_rows', 'touchpoint', 't')}" if only else ""
    con.execute(f"CREATE OR REPLACE TEMP VIEW new_touchpoints AS "
                f"SELECT * FROM {reader.parquet(new_paths, filename=True)} AS t {where}")
    columns = ", ".join(TOUCHPOINT_COLUMNS)
    batch = reader.df(f"SELECT {columns}, filename AS source_file FROM new_touchpoints")
    unknown_ids = reader.df("SELECT DISTINCT customer_id FROM new_touchpoints WHERE customer_id "
                            "NOT IN (SELECT customer_id FROM known_customers)")["customer_id"].tolist()
    params = {
        "occurred_at_min": now - timedelta(days=cfg.max_event_age_days),
        "occurred_at_max": _arrival(batch, now) + skew,
        "unknown_customer_ids": sorted(unknown_ids),
        "known_customer_mostly": 1.0 if only else 1.0 - max(
            cfg.unknown_customer_tolerance,
            min(1.0, cfg.unknown_customer_floor_rows / max(1, len(batch)))),
        "resend_mostly": 1.0 - cfg.resend_warning_share,
    }
    lineage = {"source_file": "source_file", "kafka_partition": "kafka_partition",
               "kafka_offset": "kafka_offset"}
    frames = [Frame(landed_touchpoints.NAME, batch, params, label, "touchpoint", batch, lineage)]

    # Event ids: phase 1 reads only event_id of earlier files to find the few that hold a batch id.
    con.execute("CREATE OR REPLACE TEMP TABLE batch_ids AS "
                "SELECT DISTINCT event_id FROM new_touchpoints WHERE event_id IS NOT NULL")
    # (Re-validating quarantined rows, the other rows of their files are history too.)
    new_set = set() if only else set(new_paths)
    earlier = [f.path for f in every if f.path not in new_set]
    holders: list[str] = []
    if earlier:
        holders = reader.df(
            f"SELECT DISTINCT filename FROM {reader.parquet(earlier, filename=True)} "
            f"WHERE event_id IN (SELECT event_id FROM batch_ids)")["filename"].tolist()
    sources = "SELECT * FROM new_touchpoints"
    if holders:
        sources += (f" UNION ALL BY NAME SELECT * FROM {reader.parquet(holders, filename=True)} AS h "
                    f"WHERE event_id IN (SELECT event_id FROM batch_ids) "
                    f"AND {_not_in('held_rows', 'touchpoint', 'h')}")
    versions = reader.df(f"""
        SELECT event_id, CAST({_fingerprint(TOUCHPOINT_CONTENT)} AS VARCHAR) AS content_fingerprint,
               any_value(event_type) AS event_type, any_value(customer_id) AS customer_id,
               min(occurred_at) AS occurred_at, min(landed_at) AS first_landed_at,
               count(*) AS copies, string_agg(DISTINCT filename, ' ') AS files
        FROM ({sources}) WHERE event_id IS NOT NULL
        GROUP BY event_id, content_fingerprint ORDER BY event_id""")
    # A conflicting event id is a failure of every row of the batch that carries it.
    frames.append(Frame(touchpoint_event_ids.NAME, versions, {}, label, "touchpoint", batch,
                        {"event_id": "event_id"}))
    return frames


def _customer_frame(reader: LandingReader, new: list[LandedFile], now: datetime, skew: timedelta,
                    only: bool = False) -> Frame:
    where = f"AND {_in('only_rows', 'customer', 'c')}" if only else ""
    reader.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE new_customers AS
        SELECT *, row_number() OVER (PARTITION BY content_fingerprint
                                     ORDER BY landed_at, kafka_offset, kafka_partition, filename) AS copy_number
        FROM (SELECT *, {_fingerprint(('customer_id',) + CUSTOMER_CONTENT)} AS content_fingerprint
              FROM {reader.parquet([f.path for f in new], filename=True)} AS c
              WHERE NOT coalesce(is_deleted, false) {where})""")
    # Exact re-sends are validated once (the first copy); a failure is a failure of every copy.
    data = reader.df("""
        SELECT * EXCLUDE (copy_number, content_fingerprint) FROM new_customers WHERE copy_number = 1
        ORDER BY customer_id, updated_at""")
    data = data.rename(columns={"filename": "source_file"})
    rows = reader.df("""
        SELECT c.kafka_topic, c.kafka_partition, c.kafka_offset, c.filename AS source_file,
               CAST(NULL AS VARCHAR) AS event_id, c.customer_id, c.event_date, c.landed_at,
               first.filename AS first_source_file, first.kafka_partition AS first_kafka_partition,
               first.kafka_offset AS first_kafka_offset
        FROM new_customers c JOIN new_customers first
          ON first.content_fingerprint = c.content_fingerprint AND first.copy_number = 1""")
    return Frame(landed_customers.NAME, data, {"updated_at_max": _arrival(data, now) + skew}, "",
                 "customer", rows, {"source_file": "first_source_file",
                                    "kafka_partition": "first_kafka_partition",
                                    "kafka_offset": "first_kafka_offset"})


def _case_event_frame(reader: LandingReader, cfg: GateConfig, new: list[LandedFile], every: list[LandedFile], now: datetime,
                      skew: timedelta, case_lookup: Callable[[list[str]], pd.DataFrame | None] | None,
                      notes: list[str], only: bool = False) -> Frame:
    """The new case events, with the columns the suite computes: the case's own customer where the
    event names another (``case_customer_mismatch``), ``snooze_days`` and ``conflicting_event_id``."""
    con = reader.con
    new_paths = [f.path for f in new]
    where = f"WHERE {_in('only_rows', 'case_event', 'e')}" if only else ""
    con.execute(f"CREATE OR REPLACE TEMP VIEW new_case_events AS "
                f"SELECT * FROM {reader.parquet(new_paths, filename=True)} AS e {where}")
    columns = ", ".join(CASE_EVENT_COLUMNS)
    batch = reader.df(f"""SELECT {columns}, filename AS source_file,
                                 datediff('day', event_date, snooze_until) AS snooze_days
                          FROM new_case_events ORDER BY kafka_partition, kafka_offset""")
    # Event ids: the same id with other content in the batch or in earlier (not held) files.
    con.execute("CREATE OR REPLACE TEMP TABLE batch_case_ids AS "
                "SELECT DISTINCT event_id FROM new_case_events WHERE event_id IS NOT NULL")
    new_set = set() if only else set(new_paths)
    earlier = [f.path for f in every if f.path not in new_set]
    sources = "SELECT * FROM new_case_events"
    if earlier:
        sources += (f" UNION ALL BY NAME SELECT * FROM {reader.parquet(earlier, filename=True)} AS h "
                    f"WHERE event_id IN (SELECT event_id FROM batch_case_ids) "
                    f"AND {_not_in('held_rows', 'case_event', 'h')}")
    conflicting = set(reader.df(f"""
        SELECT event_id FROM ({sources}) WHERE event_id IS NOT NULL GROUP BY event_id
        HAVING count(DISTINCT {_fingerprint(CASE_EVENT_CONTENT)}) > 1""")["event_id"])
    batch["conflicting_event_id"] = [e if e in conflicting else None for e in batch["event_id"]]
    case_ids = sorted({c for c in batch["case_id"].dropna()})
    known = case_lookup(case_ids) if case_lookup is not None and case_ids else None
    if known is None:
        unknown: list[str] = []
        owner: dict[str, Any] = {}
        if case_ids:
            notes.append("case events: no published warehouse to check their case ids against yet; "
                         "unknown cases and customers that do not match their case are not checked")
    else:
        owner = dict(zip(known["case_id"], known["customer_id"]))
        unknown = [c for c in case_ids if c not in owner]
    batch["case_customer_mismatch"] = [
        owner[c] if c in owner and owner[c] is not None and customer is not None and owner[c] != customer else None
        for c, customer in zip(batch["case_id"], batch["customer_id"])]
    params = {
        "occurred_at_min": now - timedelta(days=cfg.max_event_age_days),
        "occurred_at_max": _arrival(batch, now) + skew,
        "unknown_case_ids": unknown,
    }
    lineage = {"source_file": "source_file", "kafka_partition": "kafka_partition", "kafka_offset": "kafka_offset"}
    return Frame(landed_case_events.NAME, batch, params, "", "case_event", batch, lineage)


def published_cases(settings: Settings) -> Callable[[list[str]], pd.DataFrame | None]:
    """``lookup(case_ids)``: those of the published churn-risk cases (case_id, customer_id); None
    when the warehouse has none to ask (not built yet, or busy: a note says the check was skipped)."""
    def lookup(case_ids: list[str]) -> pd.DataFrame | None:

        if engine_of(settings) == "duckdb" and not settings.warehouse.exists():
            return None
        reader = None
        try:
            # PostgreSQL or Spark: open_marts (Spark not built yet: MartsError, skipped with the note)
            reader = (DuckDBMarts(connect_duckdb(settings, read_only=True)) if engine_of(settings) == "duckdb"
                      else open_marts(settings))
            if not reader.table_exists("published", "fct_churn_risk_cases"):
                return None
            marks = ", ".join("?" * len(case_ids))
            rows = reader.query(f"SELECT case_id, customer_id FROM published.fct_churn_risk_cases "
                                f"WHERE case_id IN ({marks})", case_ids)
            return pd.DataFrame(rows, columns=["case_id", "customer_id"])
        except Exception:  # noqa: BLE001 - a warehouse being written (a Spark metastore is locked only at
            return None   # its first query): the check is skipped, with a note
        finally:
            if reader is not None:
                reader.close()
    return lookup


def _volume_frames(reader: LandingReader, cfg: GateConfig, dates: list[date],
                   every: list[LandedFile]) -> tuple[list[Frame], list[str]]:
    """One frame for every checked day: a row per day and event type that has a band."""
    history = {d: [d - timedelta(weeks=k) for k in range(1, cfg.volume_history_weeks + 1)]
               for d in dates}
    needed = set(dates) | {h for hs in history.values() for h in hs}
    paths = [f.path for f in every if f.event_date in needed]
    counts: dict[tuple[date, str], int] = {}
    if paths:
        table = reader.df(f"""
            SELECT event_date, event_type, count(DISTINCT event_id) AS events
            FROM {reader.parquet(paths)} WHERE event_date IS NOT NULL AND event_type IS NOT NULL
            GROUP BY ALL""")
        for row in table.itertuples(index=False):
            day = row.event_date.date() if hasattr(row.event_date, "date") else row.event_date
            counts[(day, row.event_type)] = int(row.events)
    days_with_data = {day for day, _ in counts}
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for day in dates:
        samples_days = [h for h in history[day] if h in days_with_data]
        banded = 0
        for event_type in EVENT_TYPES:
            band = volume_band([counts.get((h, event_type), 0) for h in samples_days], cfg)
            if band:
                banded += 1
                rows.append({"event_date": day, "event_type": event_type,
                             "events": counts.get((day, event_type), 0), "band_low": band[0],
                             "band_high": band[1], "history_days": len(samples_days)})
        if not banded:
            notes.append(f"daily volume of {day}: no band yet ({len(samples_days)} same-weekday "
                         f"day(s) of history, need {cfg.volume_min_history_days})")
    if not rows:
        return [], notes
    data = pd.DataFrame(rows)
    return [Frame(touchpoint_daily_volume.NAME, data, label="", describe_row=_volume_finding)], notes


def _volume_finding(row: dict[str, Any]) -> tuple[str, str, str]:
    """A failing row of the volume table as a finding's (batch, column, observed)."""
    events, low, high = (int(row[k]) for k in ("events", "band_low", "band_high"))
    days = row.get("history_days")
    source = f" from {int(days)} same-weekday day(s)" if days is not None and not pd.isna(days) else ""
    return (str(row["event_date"]), str(row["event_type"]),
            f"{events} event(s), expected {low}-{high}{source}")


# --- mart frames ---------------------------------------------------------------------------------

class MissingTable(LookupError):
    pass


def mart_frames(settings: Settings, as_of: date, schema: str) -> list[Frame]:
    """dim_customers, the as-of day of fct_customer_health_daily and fct_churn_alerts of ``schema``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
        raise ValueError(f"not a schema name: {schema!r}")

    if engine_of(settings) != "duckdb":  # the marts are read through loyalty_core.marts
        # PostgreSQL, or Spark: the frames are bounded (customers, one day of health, the alert
        # episodes), so the suites run on pandas as on DuckDB, one definition for every engine
        path = (f"PostgreSQL database {settings.pg_database}" if engine_of(settings) == "postgres"
                else f"Spark ({settings.spark_method})")
        reader = open_marts(settings)
    else:
        path = settings.warehouse
        if not path.exists():
            raise FileNotFoundError(f"warehouse {path} does not exist: build the marts first")
        try:
            reader = DuckDBMarts(connect_duckdb(settings, read_only=True))
        except MartsError as exc:
            raise RuntimeError(str(exc)) from exc
    try:
        present = set(reader.tables(schema))
        needed = ("dim_customers", "fct_customer_health_daily", "fct_churn_alerts")
        missing = [t for t in needed if t not in present]
        if missing:
            raise MissingTable(f"{schema}.{', '.join(missing)} missing from {path}")
        customers = reader.query_arrow(f"SELECT * FROM {schema}.dim_customers").to_pandas()
        health = reader.query_arrow(f"SELECT * FROM {schema}.fct_customer_health_daily WHERE as_of_date = ?",
                                    [as_of]).to_pandas()
        alerts = reader.query_arrow(f"SELECT * FROM {schema}.fct_churn_alerts").to_pandas()
    finally:
        reader.close()
    customer_ids = set(customers["customer_id"].dropna())
    manager_ids = set(customers["account_manager_id"].dropna())

    def missing(values: pd.Series, known: set) -> list:
        return sorted(set(values.dropna()) - known)

    return [
        Frame(mart_customers.NAME, customers, {}, label=schema),
        Frame(mart_health.NAME, health, {
            "customer_count": int(len(customers)),
            "unknown_customer_ids": missing(health["customer_id"], customer_ids),
        }, label=f"{schema} {as_of}"),
        Frame(mart_alerts.NAME, alerts, {
            "unknown_customer_ids": missing(alerts["customer_id"], customer_ids),
            "unknown_account_manager_ids": missing(alerts["account_manager_id"], manager_ids),
        }, label=schema),
    ]
