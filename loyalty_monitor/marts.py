"""One small interface to the warehouse's tables, whichever engine holds them.

Everything that reads the published marts (or writes the few operational tables next to them:
``ops.pipeline_runs``, ``ops.alert_state``) goes through a :class:`MartsReader` from
:func:`open_marts` instead of opening DuckDB itself, so that the same code runs on the embedded
DuckDB file and on PostgreSQL (``settings.dbt_target``; docs/warehouse.md "Engines"):

- ``query(sql, params)`` -> rows as dicts; ``query_arrow(sql, params)`` -> a ``pyarrow.Table``;
- ``execute(sql, params)`` -> a DB-API cursor (``fetchone``/``fetchall``/``description``), and
  ``executemany(sql, rows)``, for code that writes (publish, alert state) or already speaks cursors;
- ``table_exists(schema, table)``, ``tables(schema)``, ``close()``; it is a context manager.

SQL is written once, in the portable subset (ANSI types such as ``double precision``, ``varchar``,
``cast(x as date)``; no ``::double``, no ``create or replace table``), with ``?`` placeholders: the
PostgreSQL reader turns them into psycopg2's ``%s`` (and every ``%`` into ``%%``); a ``?``
inside a quoted string literal is left alone.

Implementations: :class:`DuckDBMarts` (the warehouse file; read-only by default, since DuckDB
allows one writer per file) and :class:`PostgresMarts` (psycopg2, autocommit: every statement is
its own transaction unless the caller says ``begin``/``commit``, as ``warehouse.publish`` does).
A Spark (Databricks SQL / Thrift) reader would implement the same five methods over
``databricks-sql-connector`` or ``pyhive``; it is not written yet.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Protocol, runtime_checkable

from loyalty_monitor.settings import Settings, reveal

ENGINES = ("duckdb", "postgres")


class MartsError(RuntimeError):
    """The warehouse cannot be opened (missing file, server down, wrong credentials)."""


@runtime_checkable
class MartsReader(Protocol):
    """A connection to the warehouse (schemas ``build``, ``published``, ``ops``; ``landing`` on PostgreSQL)."""

    engine: str

    def execute(self, sql: str, params: Iterable[Any] | None = None) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None: ...

    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[dict[str, Any]]: ...

    def query_arrow(self, sql: str, params: Iterable[Any] | None = None) -> Any: ...

    def table_exists(self, schema: str, table: str) -> bool: ...

    def tables(self, schema: str) -> list[str]: ...

    def close(self) -> None: ...


class _Base:
    engine = "?"

    def execute(self, sql: str, params: Iterable[Any] | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[dict[str, Any]]:
        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def table_exists(self, schema: str, table: str) -> bool:
        row = self.execute("select count(*) from information_schema.tables where table_schema = ? "
                           "and table_name = ?", [schema, table]).fetchone()
        return bool(row[0])

    def tables(self, schema: str) -> list[str]:
        rows = self.execute("select table_name from information_schema.tables where table_schema = ? "
                            "order by table_name", [schema]).fetchall()
        return [name for (name,) in rows]

    def __enter__(self) -> "_Base":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DuckDBMarts(_Base):
    """The embedded warehouse file (``settings.warehouse``)."""

    engine = "duckdb"

    def __init__(self, con: Any):
        self.con = con

    def execute(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        return self.con.execute(sql, list(params or []))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        rows = [list(row) for row in rows]
        if rows:
            self.con.executemany(sql, rows)

    def query_arrow(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        # through the relation API's Arrow export (DuckDB's pandas path trips pandas 3 deprecations)
        return self.con.sql(sql, params=list(params or []) or None).to_arrow_table()

    def close(self) -> None:
        self.con.close()


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|%")


def to_pyformat(sql: str) -> str:
    """``?`` placeholders outside quoted literals and identifiers -> ``%s``; every ``%`` -> ``%%``
    (psycopg2 reads ``%`` everywhere, quoted or not)."""
    def swap(match: re.Match[str]) -> str:
        token = match.group(0)
        return "%s" if token == "?" else token.replace("%", "%%")
    return _PLACEHOLDER.sub(swap, sql)


def _plain(value: Any) -> Any:
    """numpy scalars (BG/NBD fits, pandas rows) as the Python values psycopg2 knows how to send."""
    return value.item() if type(value).__module__ == "numpy" and hasattr(value, "item") else value


class PostgresMarts(_Base):
    """The PostgreSQL warehouse (``settings.pg_*``), through psycopg2 with autocommit on."""

    engine = "postgres"

    def __init__(self, con: Any):
        self.con = con

    def execute(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        cursor = self.con.cursor()
        values = [_plain(v) for v in params or []]
        cursor.execute(to_pyformat(sql) if values else sql, values or None)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        from psycopg2.extras import execute_batch

        rows = [[_plain(v) for v in row] for row in rows]
        if rows:
            with self.con.cursor() as cursor:
                execute_batch(cursor, to_pyformat(sql), rows, page_size=500)

    def query_arrow(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        import pyarrow as pa

        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})

    def close(self) -> None:
        self.con.close()


def pg_connect(settings: Settings, autocommit: bool = True) -> Any:
    """A psycopg2 connection to the PostgreSQL warehouse of ``settings`` (session time zone UTC)."""
    import psycopg2

    try:
        con = psycopg2.connect(host=settings.pg_host, port=int(settings.pg_port), user=settings.pg_user,
                               password=reveal(settings.pg_password) or None, dbname=settings.pg_database,
                               options="-c timezone=UTC", connect_timeout=15,
                               application_name="loyalty-monitor")
    except psycopg2.OperationalError as exc:
        first = " ".join(str(exc).split())
        raise MartsError(f"cannot connect to PostgreSQL {settings.pg_user}@{settings.pg_host}:{settings.pg_port}/"
                         f"{settings.pg_database}: {first}") from None
    con.autocommit = autocommit
    return con


def engine_of(settings: Settings) -> str:
    engine = (settings.dbt_target or "duckdb").lower()
    if engine not in ENGINES:
        raise MartsError(f"dbt_target {settings.dbt_target!r} is not a known engine; choose from {', '.join(ENGINES)}")
    return engine


def open_marts(settings: Settings, read_only: bool = True) -> MartsReader:
    """A :class:`MartsReader` on the warehouse of ``settings`` (engine = ``settings.dbt_target``).

    On DuckDB ``read_only`` opens the file read-only (and refuses a missing file); on PostgreSQL it
    only documents intent (access rights belong to the database role).
    """
    if engine_of(settings) == "postgres":
        return PostgresMarts(pg_connect(settings))
    import duckdb

    path = settings.warehouse
    if read_only and not path.exists():
        raise MartsError(f"no warehouse at {path}: run `loyalty warehouse build` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return DuckDBMarts(duckdb.connect(str(path), read_only=read_only))
    except duckdb.IOException as exc:
        raise MartsError(f"cannot open the warehouse {path} (is another process writing it?): {exc}") from exc
