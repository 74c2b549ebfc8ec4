"""Load the Parquet landing zone into PostgreSQL: ``loyalty warehouse load`` (docs/warehouse.md "Engines").

On DuckDB, dbt reads the landed Parquet files in place. PostgreSQL cannot, so before each build the
landed files are copied into raw tables with the landing-zone columns (docs/design.md "Landing
zone"), one table per dataset: ``landing.touchpoints``, ``landing.customers``,
``landing.case_events``, plus a column ``_landing_file`` (the file's path under the landing zone)
that says which file each row came from.

**By file, idempotent.** ``landing._load_log`` holds, per dataset and file, the size and
modification time it was loaded with and how many rows it gave. A run loads each file that is new
or changed (the consumer rewrites a replayed batch under the same name; erasure rewrites files
without an erased customer's rows) as ONE transaction: delete that file's rows, COPY the file, upsert
its log row; and removes, again in one transaction per file, the rows of files no longer in the
landing zone. A crash between two files leaves every file either fully loaded or not at all, and a
re-run loads what is missing; running it twice loads nothing the second time.

**COPY from Arrow.** Each file is read with pyarrow (against the dataset's schema, so a file written
before a column existed gets nulls), written as CSV into memory (strings quoted, nulls unquoted:
PostgreSQL tells an empty string from a null) and sent with ``COPY ... FROM STDIN (FORMAT csv)``.
Types map one to one: timestamps with time zone -> ``timestamptz`` (microseconds, UTC), ``date32``
-> ``date``, doubles -> ``double precision`` (written with the shortest representation that
round-trips, so values are bit-identical), decimals -> ``numeric(p, s)``, ``payload_json`` and
``extra_json`` -> ``text`` exactly as landed (``json_text()`` casts to ``json`` when it reads a key;
``jsonb`` would reorder keys and drop duplicates).

The quality gate's quarantine (``<data_dir>/quality/quarantine.parquet``), when present, is copied
into ``ops.quarantine`` in the same way (whole table replaced in one transaction): dbt's staging on
PostgreSQL reads it there (``macros/quarantine.sql``). The erasure register's churn counts
(``<data_dir>/erasure/erased_churn.parquet``, no customer named) become ``ops.erased_churn``.

Loads are serialised by a PostgreSQL advisory lock, so two pipeline runs cannot interleave.
"""

from __future__ import annotations

import io
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.types as t

from loyalty_core.erasure_register import write_churn_counts
from loyalty_core.landing_zone import SCHEMAS, LandingZone, quarantine_path
from loyalty_core.marts import pg_connect
from loyalty_core.settings import Settings

LANDING_SCHEMA = "landing"
LOAD_LOG = f"{LANDING_SCHEMA}._load_log"
FILE_COLUMN = "_landing_file"
QUARANTINE_TABLE = "ops.quarantine"
ERASED_CHURN_TABLE = "ops.erased_churn"
_LOCK_KEY = 0x4C4F59414C  # "LOYAL": pg_advisory_lock key of the landing load


@dataclass
class LoadResult:
    """What one load did, per dataset."""

    files_loaded: dict[str, int] = field(default_factory=dict)
    rows_loaded: dict[str, int] = field(default_factory=dict)
    files_removed: dict[str, int] = field(default_factory=dict)
    files_unchanged: dict[str, int] = field(default_factory=dict)
    quarantine_rows: int | None = None
    seconds: float = 0.0

    def summary(self) -> str:
        parts = []
        for dataset in sorted(set(self.files_loaded) | set(self.files_unchanged) | set(self.files_removed)):
            parts.append(f"{dataset}: {self.files_loaded.get(dataset, 0)} files loaded "
                         f"({self.rows_loaded.get(dataset, 0)} rows), {self.files_unchanged.get(dataset, 0)} "
                         f"unchanged, {self.files_removed.get(dataset, 0)} removed")
        return "; ".join(parts) + f" in {self.seconds:.1f}s"


def pg_type(arrow_type: Any) -> str:
    """The PostgreSQL column type of an Arrow type of the landing zone."""

    if t.is_string(arrow_type) or t.is_large_string(arrow_type):
        return "text"
    if t.is_boolean(arrow_type):
        return "boolean"
    if t.is_int8(arrow_type) or t.is_int16(arrow_type) or t.is_uint8(arrow_type):
        return "smallint"
    if t.is_int32(arrow_type) or t.is_uint16(arrow_type):
        return "integer"
    if t.is_integer(arrow_type):
        return "bigint"
    if t.is_floating(arrow_type):
        return "double precision"
    if t.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision}, {arrow_type.scale})"
    if t.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if t.is_date(arrow_type):
        return "date"
    if t.is_binary(arrow_type) or t.is_large_binary(arrow_type):
        return "bytea"
    raise TypeError(f"no PostgreSQL type for Arrow type {arrow_type} ({pa.__name__})")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _csv(table: Any) -> io.BytesIO:

    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    buffer.seek(0)
    return buffer


def _copy(cursor: Any, qualified: str, table: Any) -> None:
    columns = ", ".join(_quote(name) for name in table.column_names)
    cursor.copy_expert(f"copy {qualified} ({columns}) from stdin with (format csv)", _csv(table))


def _ensure_table(cursor: Any, qualified: str, schema: Any, extra: Iterable[tuple[str, str]] = ()) -> None:
    columns = [(f.name, pg_type(f.type)) for f in schema] + list(extra)
    ddl = ", ".join(f"{_quote(name)} {kind}" for name, kind in columns)
    cursor.execute(f"create table if not exists {qualified} ({ddl})")
    # a column added to the landing schema later (contract minor revision) is added here too
    for name, kind in columns:
        cursor.execute(f"alter table {qualified} add column if not exists {_quote(name)} {kind}")


def ensure_landing_tables(con: Any) -> None:
    """Create schema ``landing``, its tables (every dataset, even with no files yet) and the load log."""

    with con.cursor() as cur:
        cur.execute(f"create schema if not exists {LANDING_SCHEMA}")
        for dataset, schema in SCHEMAS.items():
            qualified = f"{LANDING_SCHEMA}.{dataset}"
            _ensure_table(cur, qualified, schema, [(FILE_COLUMN, "text")])
            cur.execute(f"create index if not exists {dataset}_landing_file_idx on {qualified} ({FILE_COLUMN})")
        cur.execute(f"""create table if not exists {LOAD_LOG} (
            dataset text not null, file text not null, size bigint not null, modified text not null,
            row_count bigint not null, loaded_at timestamptz not null default now(),
            primary key (dataset, file))""")


def _signature(info: dict[str, Any]) -> tuple[int, str]:
    modified = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("created")
    return int(info.get("size") or 0), str(modified)


def _read_file(zone: Any, path: str, schema: Any) -> Any:

    with zone.fs.open(path, "rb") as fh:
        table = pq.read_table(fh)
    # align to the dataset's schema: missing columns as nulls, extra ones dropped, types cast
    import pyarrow as pa

    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def load_landing(settings: Settings, con: Any | None = None, datasets: Iterable[str] | None = None) -> LoadResult:
    """Bring the landed Parquet files into ``landing.*`` on PostgreSQL (module doc); idempotent."""


    started = time.perf_counter()
    own = con is None
    con = con or pg_connect(settings)
    result = LoadResult()
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("select pg_advisory_lock(%s)", [_LOCK_KEY])
        try:
            ensure_landing_tables(con)
            zone = LandingZone.from_settings(settings)
            for dataset in (datasets or SCHEMAS):
                schema = SCHEMAS[dataset]
                qualified = f"{LANDING_SCHEMA}.{dataset}"
                with con.cursor() as cur:
                    cur.execute(f"select file, size, modified from {LOAD_LOG} where dataset = %s", [dataset])
                    logged = {file: (size, modified) for file, size, modified in cur.fetchall()}
                present: dict[str, tuple[int, str]] = {}
                for path in zone.files(dataset):
                    relative = posixpath.relpath(path, zone.root)
                    present[relative] = _signature(zone.fs.info(path))
                loaded = rows = unchanged = 0
                for relative, (size, modified) in sorted(present.items()):
                    if logged.get(relative) == (size, modified):
                        unchanged += 1
                        continue
                    table = _read_file(zone, zone.full(relative), schema)
                    table = table.append_column(FILE_COLUMN, pa.array([relative] * table.num_rows, pa.string()))
                    con.autocommit = False
                    try:
                        with con.cursor() as cur:
                            cur.execute(f"delete from {qualified} where {FILE_COLUMN} = %s", [relative])
                            if table.num_rows:
                                _copy(cur, qualified, table)
                            cur.execute(
                                f"""insert into {LOAD_LOG} (dataset, file, size, modified, row_count, loaded_at)
                                    values (%s, %s, %s, %s, %s, now())
                                    on conflict (dataset, file) do update set size = excluded.size,
                                      modified = excluded.modified, row_count = excluded.row_count,
                                      loaded_at = excluded.loaded_at""",
                                [dataset, relative, size, modified, table.num_rows])
                        con.commit()
                    except BaseException:
                        con.rollback()
                        raise
                    finally:
                        con.autocommit = True
                    loaded += 1
                    rows += table.num_rows
                removed = 0
                for relative in sorted(set(logged) - set(present)):
                    con.autocommit = False
                    try:
                        with con.cursor() as cur:
                            cur.execute(f"delete from {qualified} where {FILE_COLUMN} = %s", [relative])
                            cur.execute(f"delete from {LOAD_LOG} where dataset = %s and file = %s", [dataset, relative])
                        con.commit()
                    except BaseException:
                        con.rollback()
                        raise
                    finally:
                        con.autocommit = True
                    removed += 1
                result.files_loaded[dataset], result.rows_loaded[dataset] = loaded, rows
                result.files_unchanged[dataset], result.files_removed[dataset] = unchanged, removed
            result.quarantine_rows = load_quarantine(settings, con)
            load_erased_churn(settings, con)
        finally:
            with con.cursor() as cur:
                cur.execute("select pg_advisory_unlock(%s)", [_LOCK_KEY])
    finally:
        if own:
            con.close()
    result.seconds = time.perf_counter() - started
    return result


def _replace_ops_rows(con: Any, qualified: str, table: Any) -> int:
    """Replace the rows of the ops table ``qualified`` with ``table`` (a pyarrow table), in one
    transaction. The table is kept, not dropped: dbt's staging views depend on it once it exists."""
    con.autocommit = False
    try:
        with con.cursor() as cur:
            cur.execute("create schema if not exists ops")
            _ensure_table(cur, qualified, table.schema)
            cur.execute(f"delete from {qualified}")
            if table.num_rows:
                _copy(cur, qualified, table)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        con.autocommit = True
    return table.num_rows


def load_quarantine(settings: Settings, con: Any) -> int | None:
    """Replace the rows of ``ops.quarantine`` with the quality gate's quarantine file, if there is one."""
    path = quarantine_path(settings)
    if not path.exists():
        return None

    return _replace_ops_rows(con, QUARANTINE_TABLE, pq.read_table(path))


def load_erased_churn(settings: Settings, con: Any) -> int:
    """Replace the rows of ``ops.erased_churn`` with the erasure register's churn counts (no
    customer named; dbt's source ``erasure.erased_churn`` on PostgreSQL)."""


    return _replace_ops_rows(con, ERASED_CHURN_TABLE, pq.read_table(write_churn_counts(settings)))


def landing_counts(con: Any) -> dict[str, int]:
    """Rows per landing table (for checks and `loyalty warehouse load`)."""

    out = {}
    with con.cursor() as cur:
        for dataset in SCHEMAS:
            cur.execute(f"select count(*) from {LANDING_SCHEMA}.{dataset}")
            out[dataset] = int(cur.fetchone()[0])
    return out
