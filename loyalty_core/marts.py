"""One small interface to the warehouse's tables, whichever engine holds them.

Everything that reads the published marts (or writes the few operational tables next to them:
``ops.pipeline_runs``, ``ops.alert_state``) goes through a :class:`MartsReader` from
:func:`open_marts` instead of opening DuckDB itself, so that the same code runs on the embedded
DuckDB file, on PostgreSQL and on Apache Spark (``settings.dbt_target``; docs/warehouse.md "Engines"):

- ``query(sql, params)`` -> rows as dicts; ``query_arrow(sql, params)`` -> a ``pyarrow.Table``;
- ``execute(sql, params)`` -> a DB-API cursor (``fetchone``/``fetchall``/``description``), and
  ``executemany(sql, rows)``, for code that writes (publish, alert state) or already speaks cursors;
- ``table_exists(schema, table)``, ``tables(schema)``, ``close()``; it is a context manager.

SQL is written once, in the portable subset (ANSI types such as ``double precision``, ``varchar``,
``cast(x as date)``; no ``::double``, no ``create or replace table``), with ``?`` placeholders: the
PostgreSQL reader turns them into psycopg2's ``%s`` (and every ``%`` into ``%%``); a ``?``
inside a quoted string literal is left alone.

Implementations: :class:`DuckDBMarts` (the warehouse file; read-only by default, since DuckDB
allows one writer per file), :class:`PostgresMarts` (psycopg2, autocommit: every statement is
its own transaction unless the caller says ``begin``/``commit``, as ``warehouse.publish`` does) and
:class:`SparkMarts` (Spark SQL through a runner: :class:`SessionSql`, the in-process SparkSession
of ``loyalty_core.spark``, or :class:`ThriftSql`, PyHive to a Spark Thrift server or Databricks;
another connector, e.g. ``databricks-sql-connector``, plugs in as a runner with ``run(sql)`` and
``arrow(sql)``). What Spark lacks for the operational tables (transactions, ``delete``, upserts,
``information_schema``) the Spark reader emulates; see its docstring.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from typing import Any, Iterable, Protocol, runtime_checkable

import duckdb
import pyarrow as pa

from loyalty_core import spark
from loyalty_core.settings import Settings, reveal

ENGINES = ("duckdb", "postgres", "spark")


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
        # through the relation API's Arrow export (DuckDB's pandas path trips pandas 3 deprecations);
        # it refuses to run while a result of execute() is unread (table_exists' fetchone, a
        # caller's): run that to its end first, as the next execute() would
        self.con.complete()
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
        # the PostgreSQL driver: only on the postgres target
        from psycopg2.extras import execute_batch

        rows = [[_plain(v) for v in row] for row in rows]
        if rows:
            with self.con.cursor() as cursor:
                execute_batch(cursor, to_pyformat(sql), rows, page_size=500)

    def query_arrow(self, sql: str, params: Iterable[Any] | None = None) -> Any:

        cursor = self.execute(sql, params)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})

    def close(self) -> None:
        self.con.close()


# --- Apache Spark ---------------------------------------------------------------------------------

_TOKENS = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"]|\"\")*\"|\?|;|::|--[^\n]*")
_UPSERT = re.compile(r"^\s*insert\s+into\s+([\w.]+)\s*\(([^)]*)\)\s*(.*?)\s+on\s+conflict\s*\(([^)]*)\)\s*do\s+update\s+set\s+(.*)$",
                     re.IGNORECASE | re.DOTALL)
_DELETE = re.compile(r"^\s*delete\s+from\s+([\w.]+)(?:\s+where\s+(.*))?$", re.IGNORECASE | re.DOTALL)
_CREATE = re.compile(r"^\s*create\s+table\s+(if\s+not\s+exists\s+)?([\w.]+)\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)
_NO_OP = re.compile(r"^\s*(begin|begin\s+transaction|start\s+transaction|commit|rollback|checkpoint)\s*$", re.IGNORECASE)
_INFO = re.compile(r"\binformation_schema\.(tables|columns)\b", re.IGNORECASE)


def spark_literal(value: Any) -> str:
    """A Python value as a Spark SQL literal (parameters are inlined: the same text runs through a
    SparkSession and through a Thrift server)."""

    value = _plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return f"double('{value}')"
        return repr(value) + "D"
    if isinstance(value, decimal.Decimal):
        return f"{value}BD"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return f"timestamp_ntz'{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"date'{value.isoformat()}'"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def to_spark_sql(sql: str, params: Iterable[Any] | None = None) -> list[str]:
    """The portable SQL of the library as Spark statements: ``?`` -> the inlined parameter,
    ``"name"`` -> `` `name` ``, ``null::type`` -> ``cast(null as type)``, ``--`` comments dropped,
    and a script split at ``;`` into its statements."""
    values = list(params or [])
    statements, current, position = [], [], 0
    for match in _TOKENS.finditer(sql):
        current.append(sql[position:match.start()])
        token = match.group(0)
        if token == "?":
            if not values:
                raise MartsError(f"more ? placeholders than parameters in: {sql}")
            current.append(spark_literal(values.pop(0)))
        elif token == ";":
            statements.append("".join(current))
            current = []
        elif token == "::":
            current.append("::")
        elif token.startswith("--"):
            pass
        elif token.startswith('"'):
            current.append("`" + token[1:-1].replace('""', '"').replace("`", "``") + "`")
        elif token.startswith("'") and "''" in token[1:-1]:
            current.append("'" + token[1:-1].replace("''", "\\'") + "'")
        else:
            current.append(token)
        position = match.end()
    current.append(sql[position:])
    statements.append("".join(current))
    if values:
        raise MartsError(f"{len(values)} parameters left over for: {sql}")
    casts = re.compile(r"\bnull::(\w+(?:\s+precision)?)", re.IGNORECASE)
    return [_spark_types(casts.sub(r"cast(null as \1)", s)).strip() for s in statements if s.strip()]


def _spark_types(sql: str) -> str:
    """ANSI type names Spark spells differently, outside string literals: ``varchar`` (no length)
    -> ``string``, ``double precision`` -> ``double``."""
    parts = re.split(r"('(?:[^'\\]|\\.)*')", sql)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"\bvarchar\b(?!\s*\()", "string", parts[i], flags=re.IGNORECASE)
        parts[i] = re.sub(r"\bdouble\s+precision\b", "double", parts[i], flags=re.IGNORECASE)
    return "".join(parts)


class _Rows:
    """A DB-API-like cursor over rows already fetched (``description``, ``fetchone``, ``fetchall``)."""

    def __init__(self, names: list[str] | None = None, types: list[str] | None = None,
                 rows: list[tuple] | None = None):
        self.description = [(n, t, None, None, None, None, True) for n, t in zip(names or [], types or [])]
        self._rows = list(rows or [])
        self.rowcount = len(self._rows)

    def fetchone(self) -> tuple | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self):
        return iter(self.fetchall())


class SessionSql:
    """Runs one Spark SQL statement on a SparkSession (the session method, in this process)."""

    def __init__(self, spark: Any):
        self.spark = spark

    def run(self, statement: str) -> tuple[list[str], list[str], list[tuple]]:
        frame = self.spark.sql(statement)
        fields = frame.schema.fields
        return ([f.name for f in fields], [f.dataType.simpleString() for f in fields],
                [tuple(row) for row in frame.collect()])

    def arrow(self, statement: str) -> Any:
        return self.spark.sql(statement).toArrow()

    def close(self) -> None:
        pass  # the session is the process's (loyalty_core.spark); dbt uses it too


class ThriftSql:
    """Runs one Spark SQL statement through a Spark Thrift server or Databricks (PyHive: the
    ``thrift`` and ``http`` methods). The same statements as ``SessionSql``: everything the reader
    does is SQL text."""

    def __init__(self, connection: Any):
        self.connection = connection

    def run(self, statement: str) -> tuple[list[str], list[str], list[tuple]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(statement)
            if not cursor.description:
                return [], [], []
            names = [d[0].split(".")[-1] for d in cursor.description]
            types = [str(d[1]).lower().replace("_type", "") for d in cursor.description]
            return names, types, [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def arrow(self, statement: str) -> Any:

        names, _, rows = self.run(statement)
        return pa.table({name: [row[i] for row in rows] for i, name in enumerate(names)})

    def close(self) -> None:
        self.connection.close()


class SparkMarts(_Base):
    """The Spark warehouse: schemas ``build``, ``published`` and ``ops`` in Spark's catalog (the
    Hive metastore), through a :class:`SessionSql` (in-process SparkSession) or a :class:`ThriftSql`
    (Thrift server, Databricks).

    The library's portable SQL runs as it is, with what Spark lacks emulated for the small
    operational tables next to the marts (``ops.alert_state``, ``ops.pipeline_runs`` ...), which
    are plain Parquet on Spark:

    - ``?`` parameters are inlined as literals; ``"name"`` becomes `` `name` ``; a script runs
      statement by statement;
    - ``begin``/``commit``/``rollback`` do nothing: Spark has no transactions (``warehouse.publish``
      stages the new published tables and swaps them in by renames instead);
    - ``delete from t where p`` rewrites ``t`` without the matching rows;
    - ``insert into t (...) values/select ... on conflict (key) do update set c = excluded.c, ...``
      (an upsert that replaces the row) rewrites ``t`` with the new rows in place of those with the
      same key;
    - ``create table (...)`` drops what Parquet tables cannot declare (``primary key``, ``default``,
      ``not null``) and stores as Parquet;
    - ``information_schema.tables``/``.columns`` are answered from the catalog (``show tables``,
      ``describe``) as a temporary view, for ``table_exists``, ``tables`` and the queries that ask.

    Writes are not atomic (Parquet without a table format); the ops tables hold idempotency records
    that are rewritten whole, small by design.
    """

    engine = "spark"
    SCHEMAS = ("build", "published", "ops")

    def __init__(self, sql: Any):
        self.sql = sql

    # -- the MartsReader interface ------------------------------------------------------------------
    def execute(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        cursor: Any = _Rows()
        params = list(params or [])
        upsert = _UPSERT.match(sql)
        if upsert:
            self._upsert(upsert, [params] if params else [[]])
            return cursor
        for statement in to_spark_sql(sql, params):
            cursor = self._one(statement)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        rows = [list(row) for row in rows]
        if not rows:
            return
        upsert = _UPSERT.match(sql)
        if upsert:
            self._upsert(upsert, rows)
            return
        values = re.match(r"^\s*(insert\s+into\s+[\w.]+(?:\s*\([^)]*\))?)\s+values\s*(\(.*\))\s*$", sql,
                          re.IGNORECASE | re.DOTALL)
        if values:  # one statement for all rows, not one Spark job per row
            head, row_sql = values.groups()
            tuples = ", ".join(to_spark_sql(row_sql, row)[0] for row in rows)
            self._one(f"{head} values {tuples}")
            return
        for row in rows:
            self.execute(sql, row)

    def query_arrow(self, sql: str, params: Iterable[Any] | None = None) -> Any:
        statements = to_spark_sql(sql, params)
        for statement in statements[:-1]:
            self._one(statement)
        return self.sql.arrow(self._with_catalog(statements[-1]))

    def table_exists(self, schema: str, table: str) -> bool:
        return table in self._tables_of(schema)

    def tables(self, schema: str) -> list[str]:
        return sorted(self._tables_of(schema))

    def close(self) -> None:
        self.sql.close()

    # -- emulations -------------------------------------------------------------------------------
    def _one(self, statement: str) -> Any:
        if _NO_OP.match(statement):
            return _Rows()
        delete = _DELETE.match(statement)
        if delete:
            self._delete(delete.group(1), delete.group(2))
            return _Rows()
        create = _CREATE.match(statement)
        if create:
            statement = self._parquet_table(*create.groups())
        names, types, rows = self.sql.run(self._with_catalog(statement))
        return _Rows(names, types, rows)

    def _schemas_of(self, schema: str) -> set[str]:
        names, _, rows = self.sql.run("show schemas")
        return {str(r[0]) for r in rows}

    def _tables_of(self, schema: str) -> set[str]:
        if not re.fullmatch(r"\w+", schema) or schema not in self._schemas_of(schema):
            return set()
        names, _, rows = self.sql.run(f"show tables in {schema}")
        table = names.index("tableName") if "tableName" in names else 1
        temporary = names.index("isTemporary") if "isTemporary" in names else None
        return {str(r[table]) for r in rows if temporary is None or not r[temporary]}

    def _with_catalog(self, statement: str) -> str:
        """Statements that read information_schema get it as temporary views of the catalog."""
        wanted = {m.lower() for m in _INFO.findall(statement)}
        if not wanted:
            return statement
        tables = [(schema, table) for schema in self.SCHEMAS for table in sorted(self._tables_of(schema))]
        rows = ", ".join(f"({spark_literal(s)}, {spark_literal(t)}, 'BASE TABLE')" for s, t in tables)
        self.sql.run("create or replace temporary view loyalty_information_schema_tables "
                     "(table_schema, table_name, table_type) as "
                     + (f"select * from values {rows}" if rows else
                        "select cast(null as string), cast(null as string), cast(null as string) where false"))
        if "columns" in wanted:
            columns = []
            for schema, table in tables:
                names, _, described = self.sql.run(f"describe table {schema}.{table}")
                for position, row in enumerate(described, start=1):
                    if not row[0] or str(row[0]).startswith("#"):
                        break
                    columns.append(f"({spark_literal(schema)}, {spark_literal(table)}, {spark_literal(row[0])}, "
                                   f"{spark_literal(row[1])}, {position})")
            self.sql.run("create or replace temporary view loyalty_information_schema_columns "
                         "(table_schema, table_name, column_name, data_type, ordinal_position) as "
                         + (f"select * from values {', '.join(columns)}" if columns else
                            "select cast(null as string), cast(null as string), cast(null as string), "
                            "cast(null as string), cast(null as int) where false"))
        return _INFO.sub(lambda m: f"loyalty_information_schema_{m.group(1).lower()}", statement)

    @staticmethod
    def _parquet_table(if_not_exists: str | None, name: str, body: str) -> str:
        parts, depth, current = [], 0, []
        for char in body:
            depth += char == "("
            depth -= char == ")"
            if char == "," and depth == 0:
                parts.append("".join(current))
                current = []
            else:
                current.append(char)
        parts.append("".join(current))
        columns = []
        for part in parts:
            part = part.strip()
            if not part or re.match(r"^(primary\s+key|unique|constraint|check)\b", part, re.IGNORECASE):
                continue
            part = re.sub(r"\s+default\s+\S+", "", part, flags=re.IGNORECASE)
            part = re.sub(r"\s+not\s+null\b|\s+primary\s+key\b", "", part, flags=re.IGNORECASE)
            columns.append(part)
        return f"create table {if_not_exists or ''}{name} ({', '.join(columns)}) using parquet"

    def _scratch(self, table: str, suffix: str) -> str:
        schema, _, name = table.rpartition(".")
        return f"{schema + '.' if schema else ''}loyalty_work__{name}__{suffix}"

    def _replace(self, table: str, select: str) -> None:
        """``table`` becomes the result of ``select`` (which may read ``table``): written to a work
        table first, then swapped in by a drop and a rename."""
        work = self._scratch(table, "next")
        self.sql.run(f"drop table if exists {work}")
        self.sql.run(f"create table {work} using parquet as {select}")
        self.sql.run(f"drop table if exists {table}")
        self.sql.run(f"alter table {work} rename to {table}")

    def _delete(self, table: str, where: str | None) -> None:
        if where is None:
            self._replace(table, f"select * from {table} where false")
            return
        where = self._with_catalog(where)
        _, _, found = self.sql.run(f"select count(*) from {table} where {where}")
        if found[0][0]:
            self._replace(table, f"select * from {table} where not coalesce(({where}), false)")

    def _upsert(self, match: re.Match[str], rows: list[list[Any]]) -> None:
        table, column_list, source, keys, updates = match.groups()
        columns = [c.strip() for c in column_list.split(",")]
        keys = [k.strip() for k in keys.split(",")]
        for assignment in updates.split(","):
            left, _, right = assignment.partition("=")
            if right.strip().lower() != f"excluded.{left.strip().lower()}":
                raise MartsError(f"Spark reader: only upserts that replace the row are supported, not {assignment!r}")
        if re.match(r"^values\b", source.strip(), re.IGNORECASE):
            tuples = ", ".join(to_spark_sql(source.strip()[len("values"):], row)[0] for row in rows)
            new_rows = f"select * from values {tuples} as new_rows ({', '.join(columns)})"
        else:
            new_rows = to_spark_sql(source, rows[0] if rows else [])[0]
        stored = self.sql.run(f"select * from {table} where false")[0]
        fresh = self._scratch(table, "new")
        self.sql.run(f"drop table if exists {fresh}")
        self.sql.run(f"create table {fresh} using parquet as select {', '.join(columns)} from ({new_rows}) as new_rows")
        matched = " and ".join(f"stored.{k} = fresh.{k}" for k in keys)
        picked = ", ".join(f"fresh.{c}" if c in columns else f"cast(null as string) as {c}" for c in stored)
        self._replace(table, f"select stored.* from {table} as stored left anti join {fresh} as fresh on {matched} "
                             f"union all select {picked} from {fresh} as fresh")
        self.sql.run(f"drop table if exists {fresh}")


def spark_connect(settings: Settings) -> Any:
    """The SQL runner of the Spark warehouse of ``settings``: the in-process SparkSession (method
    ``session``) or a PyHive connection to a Thrift server / Databricks (``thrift``, ``http``)."""
    method = (settings.spark_method or "session").lower()
    if method == "session":

        return SessionSql(spark.session(settings))
    try:
        # the Spark engine's client: optional, only on the Spark target
        from pyhive import hive
    except ImportError:
        raise MartsError("the Spark thrift/http methods need PyHive (pip install 'dbt-spark[PyHive]')") from None

    try:
        if method == "thrift":
            connection = hive.connect(host=settings.spark_host, port=int(settings.spark_port),
                                      username=settings.spark_user or "loyalty", configuration=dict(spark.SESSION_CONF))
        elif method == "http":
            # the Spark engine's client: optional, only on the Spark target
            from thrift.transport import THttpClient

            path = (f"sql/protocolv1/o/0/{settings.spark_cluster}" if settings.spark_cluster
                    else f"sql/1.0/warehouses/{settings.spark_endpoint}")
            transport = THttpClient.THttpClient(f"https://{settings.spark_host}:{settings.spark_port}/{path}")
            transport.setCustomHeaders({"Authorization": "Bearer " + reveal(settings.spark_token)})
            connection = hive.connect(thrift_transport=transport, configuration=dict(spark.SESSION_CONF))
        else:
            raise MartsError(f"spark_method {settings.spark_method!r}: choose session, thrift or http")
    except MartsError:
        raise
    except Exception as exc:  # noqa: BLE001 - PyHive/thrift raise many kinds
        raise MartsError(f"cannot connect to Spark ({method}) at {settings.spark_host}:{settings.spark_port}: "
                         f"{' '.join(str(exc).split())}") from None
    return ThriftSql(connection)


def pg_connect(settings: Settings, autocommit: bool = True) -> Any:
    """A psycopg2 connection to the PostgreSQL warehouse of ``settings`` (session time zone UTC)."""
    # the PostgreSQL driver: only on the postgres target
    import psycopg2

    try:
        con = psycopg2.connect(host=settings.pg_host, port=int(settings.pg_port), user=settings.pg_user,
                               password=reveal(settings.pg_password) or None, dbname=settings.pg_database,
                               options="-c timezone=UTC", connect_timeout=15,
                               application_name="loyalty-monitor")
    except psycopg2.OperationalError as exc:
        first = " ".join(str(exc).split())
        raise MartsError(f"cannot connect to PostgreSQL {settings.pg_user}@{settings.pg_host}:{settings.pg_port}/"
                         f"{settings.pg_database}: {first}; {_pg_hint(first, settings)}") from None
    con.autocommit = autocommit
    return con


def _pg_hint(error: str, settings: Settings) -> str:
    """What to do about a failed PostgreSQL connection, by the settings that decide it."""
    lowered = error.lower()
    if "password" in lowered or "authentication" in lowered or ("role" in lowered and "does not exist" in lowered):
        return "check LOYALTY_PG_USER and LOYALTY_PG_PASSWORD (`loyalty config` shows where each comes from)"
    if "database" in lowered and "does not exist" in lowered:
        return (f"create it (create database {settings.pg_database} owner {settings.pg_user}; docs/deployment.md, "
                "\"The warehouse engine\") or set LOYALTY_PG_DATABASE to the warehouse's database")
    return ("check that PostgreSQL runs there and LOYALTY_PG_HOST and LOYALTY_PG_PORT point at it "
            "(`loyalty config` shows where each comes from)")


def engine_of(settings: Settings) -> str:
    engine = (settings.dbt_target or "duckdb").lower()
    if engine not in ENGINES:
        raise MartsError(f"dbt_target {settings.dbt_target!r} is not a known engine; choose from {', '.join(ENGINES)}")
    return engine


def never_built(settings: Settings) -> bool:
    """Whether the warehouse of ``settings`` has certainly never been built here: no DuckDB file, or
    no metastore of the in-process Spark. (PostgreSQL and a Spark server: unknown, False.)"""
    engine = engine_of(settings)
    if engine == "duckdb":
        return not settings.warehouse.exists()
    if engine == "spark" and (settings.spark_method or "session").lower() == "session":
        return not spark.metastore(settings).exists()
    return False


def open_marts(settings: Settings, read_only: bool = True) -> MartsReader:
    """A :class:`MartsReader` on the warehouse of ``settings`` (engine = ``settings.dbt_target``).

    On DuckDB ``read_only`` opens the file read-only (and refuses a missing file); on PostgreSQL it
    only documents intent (access rights belong to the database role).
    """
    if engine_of(settings) == "postgres":
        return PostgresMarts(pg_connect(settings))
    if engine_of(settings) == "spark":
        if read_only and never_built(settings):
            # as a missing DuckDB file: starting Spark would create an empty metastore, and every
            # query would fail with Spark's "table or view not found" and its Java stack
            raise MartsError(f"no Spark warehouse at {spark.spark_dir(settings)}: run `loyalty warehouse build` first")
        return SparkMarts(spark_connect(settings))

    return DuckDBMarts(connect_duckdb(settings, read_only=read_only))


def connect_duckdb(settings: Settings, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """The one way into the DuckDB warehouse file (every reader and writer of the project opens it here).

    ``read_only`` refuses a missing file. When this process already holds the file read-write (dbt
    ran in-process, e.g. ``dag.test()``), DuckDB allows only that configuration: the connection is
    then opened the same way, and the caller still only reads. Sessions run in UTC.
    """
    path = settings.warehouse
    if read_only and not path.exists():
        raise MartsError(f"no warehouse at {path}: run `loyalty warehouse build` first")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.ConnectionException:
        if not read_only:
            raise
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise MartsError(f"cannot open the warehouse {path}: another process is writing it ({exc}); wait for it "
                             "(`loyalty run` holds it while it builds) and try again") from exc
        raise MartsError(f"cannot open the warehouse {path}: the file is damaged or is not a DuckDB database ({exc}); "
                         "move it aside and rebuild it from the landing zone (`loyalty warehouse build "
                         "--full-refresh`, then `loyalty warehouse publish`), or restore it from a backup") from exc
    con.execute("SET TimeZone = 'UTC'")
    return con
