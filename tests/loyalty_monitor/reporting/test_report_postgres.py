"""The leadership report and the web app on the PostgreSQL warehouse (docs/warehouse.md "Reading
the marts": both read the marts through the engine's reader).

The handmade warehouse of the DuckDB report tests (tests/helpers/report_fixtures.py) is copied,
table by table, into a real PostgreSQL 15 cluster (tests/helpers/postgres_cluster.py); the report
built from each must hold the same sections and figures. PostgreSQL before 16 refuses a subquery
in FROM without an alias, which DuckDB (and PostgreSQL 16) accept: `loyalty report` failed on it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
from postgres_cluster import postgres_cluster  # noqa: F401 - the fixture
from report_browser import SECTIONS
from report_fixtures import build_fixture_warehouse

from loyalty_core.marts import pg_connect
from loyalty_core.settings import load_settings
from loyalty_monitor import access as auth
from loyalty_monitor.reporting import build_context, render_report
from loyalty_monitor.web import BackgroundServer

#: DuckDB column types of the fixture -> PostgreSQL
PG_TYPES = {"VARCHAR": "text", "INTEGER": "integer", "BIGINT": "bigint", "DOUBLE": "double precision",
            "DATE": "date", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz",
            "BOOLEAN": "boolean", "FLOAT": "real", "HUGEINT": "numeric", "SMALLINT": "smallint"}


def _copy_to_postgres(duck_path, pg_settings) -> int:
    duck = duckdb.connect(str(duck_path), read_only=True)
    pg = pg_connect(pg_settings, autocommit=False)
    tables = duck.execute("select table_schema, table_name from information_schema.tables "
                          "where table_schema in ('published', 'ops') order by 1, 2").fetchall()
    with pg.cursor() as cur:
        for schema in ("published", "ops"):
            cur.execute(f"create schema if not exists {schema}")
        for schema, table in tables:
            columns = duck.execute("select column_name, data_type from information_schema.columns "
                                   "where table_schema = ? and table_name = ? order by ordinal_position",
                                   [schema, table]).fetchall()
            types = [PG_TYPES.get(t) or (t.replace("DECIMAL", "numeric") if t.startswith("DECIMAL") else None)
                     for _, t in columns]
            assert all(types), f"{schema}.{table}: map the column types {columns}"
            cur.execute(f"create table {schema}.{table} ("
                        + ", ".join(f'"{name}" {kind}' for (name, _), kind in zip(columns, types)) + ")")
            rows = duck.execute(f"select * from {schema}.{table}").fetchall()
            if rows:
                marks = ", ".join(["%s"] * len(columns))
                cur.executemany(f"insert into {schema}.{table} values ({marks})", rows)
    pg.commit()
    pg.close()
    duck.close()
    return len(tables)


def _plain(value):
    """Values as both engines' drivers can agree on them (numeric comes back as Decimal)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("generated_at", "defs")}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return _plain(vars(value))
    return value


def test_the_report_renders_alike_on_postgres(data_dir, postgres_cluster, tmp_path):  # noqa: F811
    duck_settings = load_settings()
    build_fixture_warehouse(duck_settings.warehouse, with_forecast_section=True)
    pg_settings = duck_settings.replace(dbt_target="postgres", pg_host="127.0.0.1", pg_port=postgres_cluster.port,
                                        pg_user=postgres_cluster.user, pg_database=postgres_cluster.database)
    assert _copy_to_postgres(duck_settings.warehouse, pg_settings) >= 8

    on_duckdb, on_postgres = build_context(duck_settings), build_context(pg_settings)
    sections = [name for name, value in on_duckdb.items() if hasattr(value, "missing")]
    assert "at_risk" in sections and "quality" in sections
    for name in sections:
        assert not on_duckdb[name].missing, f"{name}: the fixture fills every section"
        assert on_postgres[name].missing == "", f"{name} on PostgreSQL: {on_postgres[name].missing}"
        assert _plain(on_postgres[name].data) == _plain(on_duckdb[name].data), name
    assert _plain(on_postgres["summary"]) == _plain(on_duckdb["summary"])

    page = render_report(pg_settings, tmp_path / "postgres.html").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f'<section id="{section}"' in page, section


def test_a_failed_postgres_connection_says_what_to_check(data_dir, postgres_cluster):  # noqa: F811
    """`loyalty warehouse load` (every command on the postgres target connects the same way) against
    a database that does not exist and a port nothing listens on: one line naming the server, the
    driver's reason, and the settings to fix or the database to create."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    base = {**os.environ, **postgres_cluster.env(), "LOYALTY_DBT_TARGET": "postgres"}
    cases = {"no such database": ({"LOYALTY_PG_DATABASE": "nowhere"},
                                  ['database "nowhere" does not exist',
                                   f"create database nowhere owner {postgres_cluster.user}", "LOYALTY_PG_DATABASE"]),
             "nothing listens": ({"LOYALTY_PG_PORT": str(closed_port)},
                                 [f":{closed_port}/", "LOYALTY_PG_HOST and LOYALTY_PG_PORT"])}
    for what, (env, expected) in cases.items():
        done = subprocess.run([str(Path(sys.executable).parent / "loyalty"), "warehouse", "load"],
                              env={**base, **env}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, what
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("loyalty warehouse: error: cannot connect to PostgreSQL"), \
            done.stderr
        for text in expected:
            assert text in lines[0], (what, text, lines[0])



def test_the_web_app_on_postgres_says_when_nothing_is_published_or_the_server_is_down(
        data_dir, postgres_cluster):  # noqa: F811
    """The web app on the postgres target (it read the DuckDB file whatever the engine): an empty
    database says the pipeline has not run, a server that does not answer says so with the settings
    to check. (The same pages from every engine: test_warehouse_postgres.py, on marts dbt built.)"""
    leader = "leader@example.com"
    settings = load_settings(web_signing_keys="web-key-0123456789abcdef", web_leadership_emails=leader,
                             dbt_target="postgres", pg_host="127.0.0.1", pg_port=postgres_cluster.port,
                             pg_user=postgres_cluster.user, pg_database=postgres_cluster.database)
    admin = pg_connect(settings)
    admin.cursor().execute("create database web_reads")
    admin.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    cases = {"Nothing is published yet": settings.replace(pg_database="web_reads"),
             "LOYALTY_PG_HOST and LOYALTY_PG_PORT": settings.replace(pg_port=closed_port)}
    for expected, served in cases.items():
        with BackgroundServer(served) as url, httpx.Client(base_url=url, timeout=60) as client:
            assert client.get(f"/login?token={auth.link_token(served, leader)}").status_code == 303
            for path in ("/queue", "/customers", "/customers/C0001"):
                page = client.get(path)
                assert page.status_code == 503 and expected in page.text, (expected, path, page.text[-500:])
