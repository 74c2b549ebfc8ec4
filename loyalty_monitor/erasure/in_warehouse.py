"""The warehouse's part of an erasure: the customer's rows leave every table with a ``customer_id``
(DuckDB, PostgreSQL, Spark), and the DuckDB file is compacted so no deleted value stays in it."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import defaultdict
from typing import Any, Iterable

import duckdb

from loyalty_core import marts
from loyalty_core.erasure_register import _private_dir, register_dir
from loyalty_core.files import replacing
from loyalty_core.marts import open_marts, pg_connect
from loyalty_core.settings import Settings
from loyalty_monitor import scoring, warehouse
from loyalty_monitor.erasure.files import _pattern, _redact_text
from loyalty_monitor.erasure.subjects import (
    ErasureError,
    Subject,
    _quote,
    _terms_of,
    personal_text,
)

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


#: Present while warehouse rows were deleted but the file not yet rewritten (survives a crash).
COMPACT_PENDING = "compact.pending"


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
                    if personal_text(column, value):
                        texts[customer_id].add(value)
    return texts


def _compact(settings: Settings) -> None:
    """Replace the warehouse file by a copy that holds live data only (deleted rows survive DELETE
    and CHECKPOINT in the file's free blocks). Atomic: a temporary file, fsynced, renamed."""

    path = settings.warehouse
    # dbt's views may name the catalog: attach the original under its own name
    catalog = path.stem if path.stem not in {"memory", "system", "temp", "main"} else "erasure_source"
    with replacing(path, durable=True) as tmp:
        wal = tmp.with_name(tmp.name + ".wal")
        try:
            con = duckdb.connect()
            try:
                con.execute(f"attach {_literal(str(path))} as {_quote(catalog)} (read_only)")
                con.execute(f"attach {_literal(str(tmp))} as erasure_compact")
                con.execute(f"copy from database {_quote(catalog)} to erasure_compact")
                con.execute("detach erasure_compact")
                con.execute(f"detach {_quote(catalog)}")
            finally:
                con.close()
            if wal.exists():  # a detach checkpoints; a WAL left over would be lost by the rename
                raise ErasureError("compacting the warehouse left a WAL file beside its copy; "
                                   "the warehouse is unchanged: run the erasure again")
        except BaseException:
            wal.unlink(missing_ok=True)
            raise


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _present_ids(settings: Settings, ids: set[str]) -> set[str]:
    """Which of these ids have a row in a table of the DuckDB warehouse (read-only; empty without
    the file)."""
    if not settings.warehouse.exists() or not ids:
        return set()
    warehouse.release_duckdb()  # dbt-duckdb keeps the file open after an in-process run
    params = sorted(ids)
    marks = ", ".join("?" * len(params))
    con = marts.connect_duckdb(settings, read_only=True)
    try:
        found: set[str] = set()
        for schema, table, columns in _tables(con):
            if "customer_id" in {c for c, _ in columns}:
                found.update(r[0] for r in con.execute(
                    f"select distinct customer_id from {_quote(schema)}.{_quote(table)} "
                    f"where customer_id in ({marks})", params).fetchall())
        return found
    finally:
        con.close()


def _erase_warehouse(settings: Settings, targets: dict[str, Subject],
                     terms: dict[str, set[str]], keep: Iterable[str] = ()) -> dict[str, set[str]]:
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
                # Matched as in every other file (files._pattern): the id as a whole token (C0001
                # is not in C00012), and another customer's name that holds this one's stays whole.
                texts = [c for c, kind in columns if kind.upper().startswith("VARCHAR")]
                for customer_id in ids if texts else ():
                    mine = _terms_of(customer_id, terms, targets[customer_id].search_id)
                    pattern = _pattern(mine, {customer_id}, keep)
                    if pattern is None:
                        continue
                    for column in texts:
                        quoted = _quote(column)
                        values = [r[0] for r in con.execute(
                            f"select distinct {quoted} from {relation} where "
                            + " or ".join(f"contains({quoted}, ?)" for _ in mine), mine).fetchall()]
                        for value in values:
                            redacted = _redact_text(value, pattern)
                            if redacted == value:
                                continue
                            changed = con.execute(f"update {relation} set {quoted} = ? where {quoted} = ?",
                                                  [redacted, value]).fetchone()[0]
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
